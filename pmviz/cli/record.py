"""``pmviz record``: record a process (or a command) into a ``NAME.pmviz`` capture."""

from __future__ import annotations

import argparse
import signal
import sys
import warnings
from typing import Any

from .. import _units
from ..errors import PmvizWarning, UnsupportedKernel
from ..marks import record_marks
from ..recorder import WRITES_CHOICES, Recorder
from ..summary import summarize_recording, summarize_session_recording


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


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not (v > 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"need a positive number, got {text!r}")
    return v


def _fraction(text: str) -> float:
    v = _positive_float(text)
    if v > 1:
        raise argparse.ArgumentTypeError(f"need a fraction in (0, 1], got {text!r}")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = (
        "pmviz record (--pid N | -- CMD [ARGS...]) [--follow-children] [-i 100ms] [-d 30s] "
        "[-n COUNT] -o NAME.pmviz\n       pmviz record (--cgroup PATH | --all) [-i 100ms] "
        "[-d 30s] [-n COUNT] -o NAME.pmviz"
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
        "--follow-children",
        action="store_true",
        help="record the process and every descendant (also those that appear later) as a "
        "session: one capture per process under NAME.pmviz/pid=N/ (docs/sessions.md)",
    )
    parser.add_argument(
        "--cgroup",
        metavar="PATH",
        help="record every process of this cgroup v2 directory (joining and leaving) as a session",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="record every process this user may read (root: the machine) as a session; the "
        "ones that cannot be read are listed with the reason",
    )
    parser.add_argument(
        "--accounting",
        action="store_true",
        help="sessions: also account each tick's memory with shared pages counted once",
    )
    parser.add_argument(
        "--max-size",
        type=parse_size,
        metavar="SIZE",
        help="keep the capture under SIZE (e.g. 512M, 2G) by dropping its oldest segments "
        "(a ring; what was dropped is said in its metadata)",
    )
    parser.add_argument(
        "--accessed",
        choices=("none", "vma", "probe"),
        default="none",
        help="also record what the target accessed (reads too): vma = referenced bytes per "
        "VMA (clear_refs + smaps, exact); probe = a sample of resident pages paged out per "
        "interval and checked at the next snapshot (per page, estimated; costs the target "
        "refaults; anonymous memory needs swap)",
    )
    parser.add_argument(
        "--probe-rate",
        type=_positive_float,
        default=4096,
        metavar="PAGES",
        help="with --accessed probe: pages probed per second at most (default 4096, 16 MiB/s)",
    )
    parser.add_argument(
        "--probe-max-fraction",
        type=_fraction,
        default=0.02,
        metavar="F",
        help="with --accessed probe: at most this fraction of resident memory per interval "
        "(default 0.02)",
    )
    parser.add_argument(
        "--probe-file-only",
        action="store_true",
        help="with --accessed probe: probe page-cache (file) pages only; needs no swap",
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
    if args.follow_children or args.cgroup is not None or args.all:
        return _run_session(args, command)
    if args.accounting:
        print(
            "pmviz record: error: --accounting goes with a session (--follow-children, "
            "--cgroup, --all)",
            file=sys.stderr,
        )
        return 2
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
    if args.accessed == "probe":
        options["accessed_options"] = {
            "pages_per_s": args.probe_rate,
            "max_fraction": args.probe_max_fraction,
            "anon": not args.probe_file_only,
        }
    elif args.probe_file_only or args.probe_rate != 4096 or args.probe_max_fraction != 0.02:
        print("pmviz record: error: --probe-* options need --accessed probe", file=sys.stderr)
        return 2
    rec = Recorder(
        command or args.pid,
        interval=args.interval,
        duration=args.duration,
        count=args.count,
        out=args.out,
        writes=args.writes,
        progress=not args.no_progress,
        overwrite=args.overwrite,
        accessed=args.accessed,
        **options,
    )
    marks = record_marks(rec, args.marks) if args.marks else None  # sets $PMVIZ_MARKS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PmvizWarning)  # the reason is printed below instead
        try:
            rec.start()
        except UnsupportedKernel as err:
            if args.accessed != "probe" or "swap" not in str(err):
                raise
            print(
                f"pmviz record: error: {str(err).replace('pass anon=False', 'add --probe-file-only')}",
                file=sys.stderr,
            )
            return 1
    try:
        cap = _wait_stoppable(rec)
    finally:
        if marks is not None:
            marks.close()
    summarize_recording(args.out)  # summary.parquet for fleet queries (pmviz fleet)
    m = cap.meta
    print(
        f"pmviz record: {cap.n_snapshots} snapshots of pid {m.pid} written to {args.out} "
        f"({m.end_reason}; write tracking: {m.write_mechanism}"
        + (f"; accessed: {m.accessed_mechanism}" if m.accessed_mechanism != "none" else "")
        + ")",
        file=sys.stderr,
    )
    if m.write_mechanism == "none" and args.writes == "auto":
        print(f"pmviz record: note: {m.extra.get('writes_reason')}", file=sys.stderr)
    return 0


def _run_session(args: argparse.Namespace, command: list[str]) -> int:
    """--follow-children / --cgroup / --all: several processes into one session directory."""
    from ..recorder import SessionRecorder

    scopes = [args.follow_children, args.cgroup is not None, args.all]
    if sum(bool(x) for x in scopes) > 1:
        print(
            "pmviz record: error: give one of --follow-children, --cgroup PATH, --all",
            file=sys.stderr,
        )
        return 2
    if args.follow_children:
        if (args.pid is None) == (not command):
            print(
                "pmviz record: error: --follow-children needs --pid N or -- CMD [ARGS...]",
                file=sys.stderr,
            )
            return 2
        target, scope = (command or args.pid), "tree"
    else:
        if args.pid is not None or command:
            which = "--cgroup" if args.cgroup is not None else "--all"
            print(f"pmviz record: error: {which} takes no --pid or command", file=sys.stderr)
            return 2
        target, scope = None, "cgroup" if args.cgroup is not None else "all"
    ignored = [f for f, v in (("--max-size", args.max_size), ("--marks", args.marks)) if v]
    if ignored:
        print(
            f"pmviz record: error: {', '.join(ignored)} record one process (not a session)",
            file=sys.stderr,
        )
        return 2
    if not command and args.duration is None and args.count is None:
        print("pmviz record: recording until Ctrl-C", file=sys.stderr)
    rec = SessionRecorder(
        target,
        scope=scope,
        cgroup=args.cgroup,
        out=args.out,
        interval=args.interval,
        duration=args.duration,
        count=args.count,
        writes=args.writes,
        overwrite=args.overwrite,
        accounting=args.accounting,
        progress=not args.no_progress,
    )
    rec.start()
    session = _wait_stoppable(rec)
    summarize_session_recording(args.out)  # summary.parquet per capture (pmviz fleet)
    facts = session.summary()
    print(
        f"pmviz record: session of {facts['processes']} written to {args.out} "
        f"({session.meta.get('end_reason')}; write tracking: {facts['write tracking']})",
        file=sys.stderr,
    )
    if "not recorded" in facts:
        print(f"pmviz record: not recorded: {facts['not recorded']}", file=sys.stderr)
    return 0


def _wait_stoppable(rec: Any) -> Any:
    """``rec.wait()`` while SIGINT (Ctrl-C) and SIGTERM ask the recording to end: its files
    are then finished normally, whatever ended it.
    """
    handlers = {
        signal.SIGINT: lambda *_: rec.request_stop("interrupted (SIGINT)"),
        signal.SIGTERM: lambda *_: rec.request_stop("terminated (SIGTERM)"),
    }
    previous = {s: signal.signal(s, h) for s, h in handlers.items()}
    try:
        return rec.wait()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
