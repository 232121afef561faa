"""``pmviz info NAME.pmviz``: summarise a capture and check its parts, or describe a session
(its processes; ``--pid N`` for one of them).
"""

from __future__ import annotations

import argparse
import json
import os

from ..storage import is_session, open_session
from ..storage.format import list_parts, table_order
from . import add_pid_argument, open_capture_arg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a NAME.pmviz capture (or session) directory")
    add_pid_argument(parser)
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
    if is_session(args.path) and args.pid is None:
        return _session_info(args)
    cap = open_capture_arg(args.path, args.pid, strict=not args.lenient)
    path = cap.path if args.pid is not None else args.path
    facts = cap.summary()
    size, parts = _disk_usage(path, list(cap.side_tables))
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
        print(json.dumps({"path": path, **facts, "meta": cap.meta.as_dict()}, default=str))
        return 0
    width = max(len(k) for k in facts)
    for k, v in facts.items():
        print(f"{k:>{width}}  {v}")
    return 0


def _session_info(args: argparse.Namespace) -> int:
    session = open_session(args.path, strict=not args.lenient)
    facts = session.summary()
    rows = session.processes.to_pylist()
    if args.json:
        doc = {"path": args.path, **facts, "meta": session.meta, "processes": rows}
        print(json.dumps(doc, default=str))
        return 0
    width = max(len(k) for k in facts)
    for k, v in facts.items():
        print(f"{k:>{width}}  {v}")
    print()
    print(f"{'pid':>8} {'ppid':>8} {'snaps':>6} {'exit':>5} {'writes':<10} command / why not")
    for r in rows:
        status = "" if r["exit_status"] is None else str(r["exit_status"])
        what = (r["command"] or "?") if r["recorded"] else f"not recorded: {r['reason']}"
        print(
            f"{r['pid']:>8} {r['ppid']:>8} {r['n_snapshots'] or 0:>6} {status:>5} "
            f"{(r['write_mechanism'] or '-'):<10} {what[:100]}"
        )
    print(f"\none process: pmviz info {args.path} --pid N (heatmap and report take --pid too)")
    return 0
