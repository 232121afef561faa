"""Recorder overhead against the kernel's raw scan time, measured on the same process, same run.

For a child with 1 GiB resident (4 KiB pages, THP off for the mapping) it measures, interleaved
over several rounds:

* raw     — back-to-back ``PAGEMAP_SCAN`` calls of the whole address space through the bare
            ioctl loop (``pmviz._kernel.pagemap_scan.scan_range``): the kernel's cost;
* recorder — ``Recorder(pid, interval=0, writes="none")``: the highest sustainable snapshot
            rate (scan + maps check + columnar append), in memory and also writing a capture;
            the mean start-to-start time over the run, so every stall counts;

and reports the recorder's time per snapshot divided by the raw scan time (target <= 1.15),
as wall-clock time and as CPU time (all threads of this process, insensitive to other load on
the machine). Ratios are taken per interleaved round; the tables show their medians.
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


def raw_scan(pid: int, n: int) -> tuple[float, float]:
    """Median wall time and mean CPU time (ns) of ``n`` back-to-back raw scans."""
    fields = _full_mask().kernel_fields()
    limit = pmviz.features().user_address_limit
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        pms.scan_range(fd, 0, limit, **fields)  # warm: the result buffer is reused after this
        t = []
        c0 = time.thread_time_ns()
        for _ in range(n):
            t0 = time.perf_counter_ns()
            pms.scan_range(fd, 0, limit, **fields)
            t.append(time.perf_counter_ns() - t0)
        cpu = (time.thread_time_ns() - c0) / n
    finally:
        os.close(fd)
    return statistics.median(t), cpu


def recorder(pid: int, n: int, out: str | None, writes: str = "none") -> tuple[float, float, int]:
    """Mean start-to-start wall time and CPU time (ns) per snapshot of a recording."""
    if out:
        shutil.rmtree(out, ignore_errors=True)
    c0 = time.process_time_ns()  # every thread: recorder, writer, and this one waiting
    cap = pmviz.record(pid, interval=0, count=n, writes=writes, out=out, progress=False)
    assert writes == "none" or cap.meta.write_mechanism == "uffd-wp", cap.meta.extra
    cpu = (time.process_time_ns() - c0) / n
    # start-to-start over the run: everything the recorder does per snapshot, stalls included
    wall = (cap.time_ns[-1] - cap.time_ns[0]) / (cap.n_snapshots - 1)
    return float(wall), cpu, int(np.median(cap.telemetry["n_regions"]))


def measure_tracked(rounds: int, n: int) -> tuple[float, float]:
    """Dense child, ``writes="auto"`` (uffd-wp injected): per-round ratio to the raw scan."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, "dense"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout.readline().startswith(b"ready")
        ratios, walls = [], []
        for _ in range(rounds):
            raw, _ = raw_scan(child.pid, n)
            wall, _, _ = recorder(child.pid, n, None, writes="auto")
            ratios.append(wall / raw)
            walls.append(wall)
        return statistics.median(walls) / 1e6, statistics.median(ratios)
    finally:
        child.stdin.close()
        child.wait()


def measure(layout: str, rounds: int, n: int) -> dict:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, layout], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    tmp = tempfile.mkdtemp(prefix="pmviz-bench-")
    try:
        assert child.stdout.readline().startswith(b"ready")
        rows: dict[str, list[float]] = {
            k: [] for k in ("raw", "mem", "disk", "rcpu", "mcpu", "dcpu")
        }
        regions = 0
        # Interleaved rounds; each ratio is taken within its round, then the median over rounds,
        # so load from other processes on the machine shifts numerator and denominator alike.
        for _ in range(rounds):
            raw, rcpu = raw_scan(child.pid, n)
            mem, mcpu, regions = recorder(child.pid, n, None)
            disk, dcpu, _ = recorder(child.pid, n, os.path.join(tmp, "b.pmviz"))
            for k, v in zip(rows, (raw, mem, disk, rcpu, mcpu, dcpu)):
                rows[k].append(v)
        med = {k: statistics.median(v) for k, v in rows.items()}
        ratio = lambda a, b: statistics.median(x / y for x, y in zip(rows[a], rows[b]))  # noqa: E731
        return {
            "layout": layout,
            "regions": regions,
            "raw_ms": med["raw"] / 1e6,
            "mem_ms": med["mem"] / 1e6,
            "disk_ms": med["disk"] / 1e6,
            "mem_ratio": ratio("mem", "raw"),
            "disk_ratio": ratio("disk", "raw"),
            "mem_cpu_ratio": ratio("mcpu", "rcpu"),
            "disk_cpu_ratio": ratio("dcpu", "rcpu"),
        }
    finally:
        child.stdin.close()
        child.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--snapshots", type=int, default=60)
    args = ap.parse_args()
    print(f"kernel {os.uname().release}, {os.cpu_count()} CPUs, 1 GiB resident child")
    print(
        "| layout | regions/snapshot | raw scan (ms) | recorder, memory (ms) | ratio | "
        "recorder + file (ms) | ratio | CPU ratio, memory | CPU ratio, + file | "
        "max rate (snap/s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for layout in ("dense", "fragmented"):
        m = measure(layout, args.rounds, args.snapshots)
        print(
            f"| {m['layout']} | {m['regions']:,} | {m['raw_ms']:.2f} | {m['mem_ms']:.2f} | "
            f"{m['mem_ratio']:.3f} | {m['disk_ms']:.2f} | {m['disk_ratio']:.3f} | "
            f"{m['mem_cpu_ratio']:.3f} | {m['disk_cpu_ratio']:.3f} | {1e3 / m['disk_ms']:.0f} |"
        )
    if pmviz.features().uffd_wp_async and os.geteuid() == 0:
        wall, ratio = measure_tracked(args.rounds, args.snapshots)
        print(
            f"\nWith write tracking (dense, writes='auto' = uffd-wp injected, in memory): "
            f"{wall:.2f} ms per snapshot, {ratio:.3f}x the raw scan (median of per-round ratios)."
        )


if __name__ == "__main__":
    main()
