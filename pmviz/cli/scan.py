"""``pmviz scan PID``: one scan, printed as a table or JSON."""

from __future__ import annotations

import argparse
import json
import os

from ..categories import Category
from ..mask import Mask
from ..scanning import scan


def _addr(text: str) -> int:
    return int(text, 0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pid", help="process id, or 'self'")
    parser.add_argument("--start", type=_addr, help="range start (hex ok, page-aligned)")
    parser.add_argument("--end", type=_addr, help="range end (hex ok)")
    parser.add_argument(
        "--require", default=None, help="categories that must be set, e.g. present|written"
    )
    parser.add_argument("--anyof", default=None, help="at least one of these must be set")
    parser.add_argument("--exclude", default=None, help="categories that must be clear")
    parser.add_argument("--report", default="all", help="categories to report (default all)")
    parser.add_argument("--max-pages", type=int, default=0, help="stop after this many pages")
    parser.add_argument("--backend", choices=("auto", "ioctl", "pagemap"), default="auto")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _names(bits: int) -> str:
    return "|".join(c.name or "" for c in Category if bits & c.value) or "0"


def run(args: argparse.Namespace) -> int:
    mask = None
    if any(x is not None for x in (args.require, args.anyof, args.exclude)) or (
        args.report != "all"
    ):
        mask = Mask(
            require=args.require, anyof=args.anyof, exclude=args.exclude, report=args.report
        )
    pid = args.pid  # "self" or digits; scan() validates it (a bad one: exit 2, cli.main)
    regions = scan(
        pid, args.start, args.end, mask=mask, max_pages=args.max_pages, backend=args.backend
    )
    if args.json:
        print(
            json.dumps(
                {
                    "pid": os.getpid() if pid == "self" else int(pid),
                    "page_size": regions.page_size,
                    "regions": [
                        {"start": s, "end": e, "categories": c, "names": _names(c)}
                        for s, e, c in regions.array.tolist()
                    ],
                }
            )
        )
        return 0
    print(f"{'start':>14}  {'end':>14}  {'pages':>10}  categories")
    for s, e, c in regions.array.tolist():
        print(f"{s:#14x}  {e:#14x}  {(e - s) // regions.page_size:>10}  {_names(c)}")
    print(f"{len(regions)} regions, {regions.n_pages} pages")
    return 0
