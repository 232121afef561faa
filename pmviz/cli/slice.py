"""``pmviz slice IN --from T --to T [--addr-range START-END] -o OUT``: cut a capture."""

from __future__ import annotations

import argparse
import sys

from ..storage import open as open_capture
from ..storage import save
from . import check_output
from .record import parse_seconds


def parse_addr_range(text: str) -> tuple[int, int]:
    """``0x7f00000000-0x7f10000000`` (or ``START:END``; hex or decimal) -> ``(start, end)``."""
    sep = ":" if ":" in text else "-"
    lo, found, hi = text.partition(sep)
    try:
        start, end = int(lo, 0), int(hi, 0)
    except ValueError:
        found = ""
    if not found:
        raise argparse.ArgumentTypeError(
            f"expected START-END addresses (hex ok, e.g. 0x7f0000000000-0x7f0040000000), got {text!r}"
        )
    if not 0 <= start < end:
        raise argparse.ArgumentTypeError(f"need 0 <= START < END, got {start:#x}-{end:#x}")
    return start, end


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = "pmviz slice IN [--from T] [--to T] [--addr-range START-END] -o OUT"
    parser.add_argument("input", help="the capture to cut (NAME.pmviz)")
    parser.add_argument(
        "--from",
        dest="t0",
        type=parse_seconds,
        help="keep snapshots from this time on (seconds since the first snapshot: 1.5, 1.5s, 500ms)",
    )
    parser.add_argument(
        "--to", dest="t1", type=parse_seconds, help="keep snapshots before this time (same units)"
    )
    parser.add_argument(
        "--addr-range",
        type=parse_addr_range,
        help="cut regions, written sets and VMAs to [START, END) (hex ok)",
    )
    parser.add_argument("-o", "--out", required=True, help="the capture to write (NAME.pmviz)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")


def run(args: argparse.Namespace) -> int:
    if args.t0 is not None and args.t1 is not None and args.t1 <= args.t0:
        raise ValueError(f"--to ({args.t1:g} s) must be after --from ({args.t0:g} s)")
    check_output(args.out, args.overwrite)
    cap = open_capture(args.input)
    out = cap.slice(args.t0, args.t1, addr_range=args.addr_range)
    if not out.n_snapshots:
        raise ValueError(
            f"no snapshot of {args.input} lies in the time window "
            f"(its snapshots span 0 to {float(cap.times[-1]) if cap.n_snapshots else 0:g} s)"
        )
    window = {"from_s": args.t0, "to_s": args.t1}
    if args.addr_range is not None:
        window["addr_range"] = list(args.addr_range)
    out.meta = out.meta.replace(extra={**out.meta.extra, "slice": window})
    save(out, args.out, overwrite=args.overwrite)
    print(
        f"pmviz slice: wrote {args.out} ({out.n_snapshots} of {cap.n_snapshots} snapshots, "
        f"{out.n_regions:,} region rows)",
        file=sys.stderr,
    )
    return 0
