"""``pmviz record``: record a process (or a command) into a ``NAME.pmviz`` capture."""

from __future__ import annotations

import argparse
import signal
import sys
import warnings

from .. import _units
from ..errors import PmvizWarning
from ..marks import record_marks
from ..recorder import WRITES_CHOICES, Recorder
from ..summary import summarize_recording


def parse_seconds(text: str) -> float:
    """``"100ms"``, ``"2.5s"``, ``"1m"``, ``"0.1"`` (seconds) -> float seconds."""
    try:
        return _units.parse_seconds(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parse_size(text: str) -> int:
    """``"512M"``, ``"2G"``, ``"1.5g"``, ``"4096"`` (bytes; K/M/G/T are powers of 1024)."""
    try:
        return _units.parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = (
        "pmviz record (--pid N | -- CMD [ARGS...]) [-i 100ms] [-d 30s] [-n COUNT] -o NAME.pmviz"
    )
    parser.add_argument("--pid", type=int, help="record this running process")
    parser.add_argument(
        "-i", "--interval", type=parse_seconds, default=0.1, help="time between snapshots"
    )
    parser.add_argument("-d", "--duration", type=parse_seconds, help="stop after this long")
    parser.add_argument("-n", "--count", type=int, help="stop after this many snapshots")
    parser.add_argument(
        "-o", "--out", required=True, help="capture directory to write (NAME.pmviz)"
    )
    parser.add_argument(
        "--writes",
        choices=WRITES_CHOICES,
        default="auto",
        help="write tracking: auto picks the best available (default), none records "
        "present/swapped only",
    )
    parser.add_argument(
        "--follow-exec",
        action="store_true",
        help="with --pid: go on recording when the process execs a new program (a launched "
        "command is always followed)",
    )
    parser.add_argument(
        "--max-size",
        type=parse_size,
        metavar="SIZE",
        help="keep the capture under SIZE (e.g. 512M, 2G) by dropping its oldest segments "
        "(a ring; what was dropped is said in its metadata)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing capture")
    parser.add_argument(
        "--marks",
        metavar="FIFO",
        help="phase marks: lines 'label' or '<monotonic_ns> label' written to this FIFO "
        "(created if missing; a launched command finds it in $PMVIZ_MARKS, pmviz.mark() uses it)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS... to launch")


def run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if (args.pid is None) == (not command):
        print("pmviz record: error: give either --pid N or -- CMD [ARGS...]", file=sys.stderr)
        return 2
    if args.pid is not None and args.duration is None and args.count is None:
        print("pmviz record: recording until Ctrl-C (or until the process exits)", file=sys.stderr)
    options = {}
    if args.max_size is not None:
        options["max_size"] = args.max_size
    if args.follow_exec:
        options["follow_exec"] = True
    rec = Recorder(
        command or args.pid,
        interval=args.interval,
        duration=args.duration,
        count=args.count,
        out=args.out,
        writes=args.writes,
        progress=not args.no_progress,
        overwrite=args.overwrite,
        **options,
    )
    marks = record_marks(rec, args.marks) if args.marks else None  # sets $PMVIZ_MARKS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PmvizWarning)  # the reason is printed below instead
        rec.start()
    # SIGINT (Ctrl-C) and SIGTERM end the recording; the file is then finished normally.
    handlers = {
        signal.SIGINT: lambda *_: rec.request_stop("interrupted (SIGINT)"),
        signal.SIGTERM: lambda *_: rec.request_stop("terminated (SIGTERM)"),
    }
    previous = {s: signal.signal(s, h) for s, h in handlers.items()}
    try:
        cap = rec.wait()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if marks is not None:
            marks.close()
    summarize_recording(args.out)  # summary.parquet for fleet queries (pmviz fleet)
    m = cap.meta
    print(
        f"pmviz record: {cap.n_snapshots} snapshots of pid {m.pid} written to {args.out} "
        f"({m.end_reason}; write tracking: {m.write_mechanism})",
        file=sys.stderr,
    )
    if m.write_mechanism == "none" and args.writes == "auto":
        print(f"pmviz record: note: {m.extra.get('writes_reason')}", file=sys.stderr)
    return 0
