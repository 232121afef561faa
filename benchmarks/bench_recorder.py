"""Recorder overhead against the kernel's raw scan time, measured on the same process, same run.

For a child with 1 GiB resident (4 KiB pages, THP off for the mapping) it measures, interleaved
over several rounds:

* raw     — back-to-back ``PAGEMAP_SCAN`` calls of the whole address space through the bare
            ioctl loop (``pmviz._kernel.pagemap_scan.scan_range``): the kernel's cost;
* recorder — ``Recorder(pid, interval=0, writes="none")``: the highest sustainable snapshot
            rate (scan + maps check + columnar append), in memory and also writing a capture;
            the mean start-to-start time over the run, so every stall counts;

and reports the recorder's time per snapshot divided by the raw scan time (target <= 1.15).
Two layouts: "dense" (every page written: few regions) and "fragmented" (pages alternate
written / read-only zero page: ~262k regions per snapshot, the output-heavy worst case).

    python3 benchmarks/bench_recorder.py [--rounds 5] [--snapshots 40]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import pmviz
from pmviz._kernel import pagemap_scan as pms
from pmviz.scanning import _full_mask

CHILD = r"""
import mmap, sys, numpy as np
m = mmap.mmap(-1, 1 << 30, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
m.madvise(mmap.MADV_NOHUGEPAGE)
a = np.frombuffer(m, np.uint8)
if sys.argv[1] == "dense":
    a[::4096] = 1
else:
    a[::8192] = 1                 # even pages written
    s = int(a[4096::8192].sum())  # odd pages read: the shared zero page
print("ready", flush=True)
sys.stdin.read()
"""


def raw_scan_ns(pid: int, n: int) -> float:
    fields = _full_mask().kernel_fields()
    limit = pmviz.features().user_address_limit
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        cap = 1 << 20
        pms.scan_range(fd, 0, limit, capacity=cap, **fields)  # warm
        t = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            pms.scan_range(fd, 0, limit, capacity=cap, **fields)
            t.append(time.perf_counter_ns() - t0)
    finally:
        os.close(fd)
    return statistics.median(t)


def recorder_ns(pid: int, n: int, out: str | None) -> tuple[float, int]:
    if out:
        shutil.rmtree(out, ignore_errors=True)
    cap = pmviz.record(pid, interval=0, count=n, writes="none", out=out, progress=False)
    # start-to-start over the run: everything the recorder does per snapshot, stalls included
    per = (cap.time_ns[-1] - cap.time_ns[0]) / (cap.n_snapshots - 1)
    return float(per), int(np.median(cap.telemetry["n_regions"]))


def measure(layout: str, rounds: int, n: int) -> dict:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, layout], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    tmp = tempfile.mkdtemp(prefix="pmviz-bench-")
    try:
        assert child.stdout.readline().startswith(b"ready")
        raw, mem, disk = [], [], []
        regions = 0
        for _ in range(rounds):
            raw.append(raw_scan_ns(child.pid, n))
            t, regions = recorder_ns(child.pid, n, None)
            mem.append(t)
            disk.append(recorder_ns(child.pid, n, os.path.join(tmp, "b.pmviz"))[0])
        r = statistics.median(raw)
        return {
            "layout": layout,
            "regions": regions,
            "raw_ms": r / 1e6,
            "mem_ms": statistics.median(mem) / 1e6,
            "disk_ms": statistics.median(disk) / 1e6,
            "mem_ratio": statistics.median(mem) / r,
            "disk_ratio": statistics.median(disk) / r,
        }
    finally:
        child.stdin.close()
        child.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--snapshots", type=int, default=60)
    args = ap.parse_args()
    print(f"kernel {os.uname().release}, {os.cpu_count()} CPUs, 1 GiB resident child")
    print(
        "| layout | regions/snapshot | raw scan (ms) | recorder, memory (ms) | ratio | "
        "recorder + file (ms) | ratio | max rate (snap/s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for layout in ("dense", "fragmented"):
        m = measure(layout, args.rounds, args.snapshots)
        print(
            f"| {m['layout']} | {m['regions']:,} | {m['raw_ms']:.2f} | {m['mem_ms']:.2f} | "
            f"{m['mem_ratio']:.3f} | {m['disk_ms']:.2f} | {m['disk_ratio']:.3f} | "
            f"{1e3 / m['disk_ms']:.0f} |"
        )


if __name__ == "__main__":
    main()
