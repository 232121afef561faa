"""Sessions under process churn: a tree forking short-lived children at a fixed rate.

A Python root forks ``--rate`` children per second for ``--seconds``; each sleeps ``--life``
seconds and exits 7. Recorded with ``scope="tree"`` at ``--interval``, with and without write
tracking. Reported: children forked (the root prints it), processes seen / recorded, exit
statuses known, ticks run and skipped, the time a tick's discovery took (mean / max), the peak
number of this process's threads, and file descriptors before / after (they must match).

Run: ``python3 benchmarks/bench_session.py [--rate 200] [--seconds 10] [--life 0.15]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time

import pmviz

CHURN = r"""
import os, sys, time
rate, duration, life = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
end = time.monotonic() + duration
n = 0
while time.monotonic() < end:
    if os.fork() == 0:
        time.sleep(life)
        os._exit(7)
    n += 1
    while True:
        try:
            p, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if p == 0:
            break
    time.sleep(1 / rate)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
with open(sys.argv[4], "w") as f:
    f.write(str(n))
"""


def run(args: argparse.Namespace, writes: str, tmp: str, workers: int) -> dict:
    fds = len(os.listdir("/proc/self/fd"))
    out = os.path.join(tmp, f"churn-{writes}-{workers}.pmviz")
    log = os.path.join(tmp, f"forked-{writes}-{workers}.txt")
    cmd = [sys.executable, "-c", CHURN, str(args.rate), str(args.seconds), str(args.life), log]
    rec = pmviz.SessionRecorder(
        cmd,
        scope="tree",
        out=out,
        interval=args.interval,
        writes=writes,
        progress=False,
        start_workers=workers,
    )
    t = time.monotonic()
    rec.start()
    peak = 0
    while rec.running:
        peak = max(peak, threading.active_count())
        time.sleep(0.05)
    s = rec.wait()
    took = time.monotonic() - t
    rows = s.processes.to_pylist()
    kids = rows[1:]
    m = s.meta
    with open(log) as f:
        forked = int(f.read().split()[0])
    return {
        "writes": writes,
        "start workers": workers,
        "forked": forked,
        "seen": len(kids),
        "recorded": sum(r["recorded"] for r in kids),
        "status known": sum(r["exit_status"] is not None for r in kids if r["recorded"]),
        "ticks": m["ticks"],
        "skipped ticks": m["skipped_ticks"],
        "tick work mean ms": m["tick_work_ns_mean"] / 1e6,
        "tick work max ms": m["tick_work_ns_max"] / 1e6,
        "max live": m["max_live"],
        "peak threads": peak,
        "fds before/after": f"{fds}/{len(os.listdir('/proc/self/fd'))}",
        "seconds": took,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--life", type=float, default=0.15)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument(
        "--workers", type=int, nargs="+", default=[4], help="start_workers values to compare"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(args, w, tmp, n) for n in args.workers for w in ("none", "auto")]
    keys = list(results[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in results:
        cells = [f"{v:.1f}" if isinstance(v, float) else str(v) for v in r.values()]
        print("| " + " | ".join(cells) + " |")
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
