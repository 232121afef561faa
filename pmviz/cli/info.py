"""``pmviz info NAME.pmviz``: summarise a capture and check its parts."""

from __future__ import annotations

import argparse
import json
import os

from ..storage import open as open_capture
from ..storage.format import list_parts, table_order


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a NAME.pmviz capture directory")
    parser.add_argument(
        "--lenient", action="store_true", help="skip damaged parts instead of failing"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def _disk_usage(path: str, side: list[str]) -> tuple[int, dict[str, int]]:
    total, per_table = 0, {}
    for table in table_order(side):
        parts, _ = list_parts(path, table)
        per_table[table] = len(parts)
        total += sum(os.path.getsize(p.path) for p in parts)
    return total, per_table


def run(args: argparse.Namespace) -> int:
    cap = open_capture(args.path, strict=not args.lenient)
    facts = cap.summary()
    size, parts = _disk_usage(args.path, list(cap.side_tables))
    per_region = size / cap.n_regions if cap.n_regions else 0.0
    facts["on disk"] = (
        f"{size:,} bytes in {sum(parts.values())} parts ({per_region:.2f} bytes per region)"
    )
    facts["format"] = (
        f"version {cap.meta.format_version}, written by pmviz {cap.meta.pmviz_version}"
    )
    facts["complete"] = "yes" if cap.complete else "no (the recorder did not finish)"
    if cap.skipped_parts:
        facts["damaged parts skipped"] = ", ".join(cap.skipped_parts)
    if cap.dropped:
        facts["dropped (damaged)"] = "; ".join(cap.dropped)
    if args.json:
        print(json.dumps({"path": args.path, **facts, "meta": cap.meta.as_dict()}, default=str))
        return 0
    width = max(len(k) for k in facts)
    for k, v in facts.items():
        print(f"{k:>{width}}  {v}")
    return 0
