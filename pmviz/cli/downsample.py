"""``pmviz downsample IN (--every K | --interval 1s) -o OUT``: fewer snapshots, exact written sets."""

from __future__ import annotations

import argparse
import sys

from ..storage import open as open_capture
from ..storage import save
from . import check_output
from .record import parse_seconds


def _positive_int(text: str) -> int:
    try:
        k = int(text)
    except ValueError:
        k = 0
    if k < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return k


def _positive_seconds(text: str) -> float:
    s = parse_seconds(text)
    if not s > 0:
        raise argparse.ArgumentTypeError(f"the interval must be > 0, got {text!r}")
    return s


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = "pmviz downsample IN (--every K | --interval 1s) -o OUT"
    parser.add_argument("input", help="the capture to thin out (NAME.pmviz)")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--every", type=_positive_int, help="keep every K-th snapshot")
    how.add_argument(
        "--interval",
        type=_positive_seconds,
        help="keep the first snapshot at or after every multiple of this (1s, 250ms, 0.5)",
    )
    parser.add_argument("-o", "--out", required=True, help="the capture to write (NAME.pmviz)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")


def run(args: argparse.Namespace) -> int:
    check_output(args.out, args.overwrite)
    cap = open_capture(args.input)
    out = cap.downsample(every=args.every, interval=args.interval)
    how = {"every": args.every} if args.every is not None else {"interval_s": args.interval}
    out.meta = out.meta.replace(extra={**out.meta.extra, "downsample": how})
    save(out, args.out, overwrite=args.overwrite)
    print(
        f"pmviz downsample: wrote {args.out} ({out.n_snapshots} of {cap.n_snapshots} snapshots"
        + ("; written sets are the unions of the dropped ones" if out.has_written else "")
        + ")",
        file=sys.stderr,
    )
    return 0
