"""``pmviz report NAME.pmviz -o report.html``: a self-contained HTML report of a capture.

For a session directory the report has a tree-wide section, then one section per process.
"""

from __future__ import annotations

import argparse
import math
import re

from .heatmap import check_file_output, positive_int

_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "ki": 2**10, "mi": 2**20, "gi": 2**30}


def _rate(text: str) -> float:
    """``1.25e9``, ``10Gbit``, ``1GiB``, ``500MB`` (per second) -> bytes per second."""
    m = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([kKmMgG]i?)?(bit|b|B)?(/s)?\s*", text)
    try:
        value = float(m.group(1)) if m else math.nan
    except ValueError:
        value = math.nan
    if m is None or not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"bad bandwidth {text!r}: a positive rate per second, e.g. 1.25e9, 10Gbit, 1GiB, 500MB"
        )
    value *= _UNITS[(m.group(2) or "").lower()]
    return value / 8 if m.group(3) in ("bit", "b") else value


def _downtime(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(
            f"--downtime must be a finite number of seconds >= 0, got {text!r}"
        )
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("capture", help="a NAME.pmviz capture or session directory")
    parser.add_argument("-o", "--output", required=True, help="the HTML file to write")
    parser.add_argument("--title", help="report title (default: program name and pid)")
    parser.add_argument(
        "--addr-bins", type=positive_int, default=512, help="at most one per image pixel"
    )
    parser.add_argument(
        "--time-bins",
        type=positive_int,
        default=None,
        help="default: one per snapshot; at most one per image pixel",
    )
    parser.add_argument(
        "--bandwidth",
        type=_rate,
        default=1.25e9,
        help="migration link for the pre-copy estimate, per second (default 10Gbit)",
    )
    parser.add_argument("--downtime", type=_downtime, default=0.3, help="stop-and-copy budget (s)")
    parser.add_argument(
        "--axis",
        choices=("auto", "compact", "occupied", "linear"),
        default="auto",
        help="heatmap address axis (auto: collapse never-touched stretches when they dominate)",
    )
    parser.add_argument(
        "--max-processes",
        type=positive_int,
        default=None,
        help="a session: sections for the first N processes only (the tree view shows all)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    check_file_output(args.output)

    from ..report import write_report
    from ..storage import is_session
    from ..storage import open as open_capture

    if is_session(args.capture):
        return _run_session(args)
    cap = open_capture(args.capture)
    try:
        write_report(
            cap,
            args.output,
            title=args.title,
            addr_bins=args.addr_bins,
            time_bins=args.time_bins,
            bandwidth=args.bandwidth,
            downtime=args.downtime,
            axis=args.axis,
            progress=not args.no_progress,
        )
    except OSError as err:
        raise ValueError(f"cannot write {args.output}: {err.strerror or err}") from None
    print(f"wrote {args.output} ({cap.n_snapshots} snapshots)")
    return 0


def _run_session(args: argparse.Namespace) -> int:
    from ..session_report import write_session_report
    from ..storage import open_session

    session = open_session(args.capture)
    try:
        write_session_report(
            session,
            args.output,
            title=args.title,
            progress=not args.no_progress,
            max_processes=args.max_processes,
            addr_bins=args.addr_bins,
            time_bins=args.time_bins,
            bandwidth=args.bandwidth,
            downtime=args.downtime,
            axis=args.axis,
        )
    except OSError as err:
        raise ValueError(f"cannot write {args.output}: {err.strerror or err}") from None
    print(f"wrote {args.output} (session of {len(session.pids)} processes)")
    return 0
