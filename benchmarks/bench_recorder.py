"""Recorder overhead against the kernel's raw scan time, measured on the same process, same run.

For a child with 1 GiB written (4 KiB pages, THP off for the mapping) it measures, interleaved
over several rounds:

* raw      — back-to-back ``PAGEMAP_SCAN`` calls of the whole address space, the bare ioctl
             into one warm buffer: the kernel's cost; with
             writes on, of the same process with its memory armed for uffd-wp (a write
             source open), and also that scan plus the get-and-clear harvest
             (``pmviz.tracking.harvest_written``), the kernel work a tracked snapshot needs;
* recorder — ``Recorder(pid, interval=0, writes=...)``: the highest sustainable snapshot rate
             (scan + maps check + change encoding [+ written set, swap resolution]), in
             memory and also writing a capture; the median start-to-start time (wall) and
             the CPU time of every thread of the recording process, per snapshot;

and reports the recorder's time per snapshot divided by the raw scan time (target <= 1.15),
as wall-clock time and as CPU time (all threads of this process, insensitive to other load on
the machine). Ratios are taken per interleaved round; the tables show their medians.
Three layouts: "dense" (every page of the 1 GiB mapping written: it is one region),
"fragmented" (pages alternate written / read-only zero page: ~262k regions per snapshot) and
"million" (a 4 GiB mapping, pages cycling written / zero page / untouched / zero page: ~1 M
regions with 1 GiB written). Writes off (``writes="none"``) and on (``writes="auto"``: uffd-wp
injected, needs root and Linux >= 6.7).

The first snapshots of each recording (``WARMUP``) and its end are one-time costs and are left
out of its figures; the raw reference is measured right before each recording.

    python3 benchmarks/bench_recorder.py [--rounds 5] [--snapshots 60] [--layouts ...]
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
layout = sys.argv[1]
size = (4 << 30) if layout == "million" else (1 << 30)
m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
m.madvise(mmap.MADV_NOHUGEPAGE)
a = np.frombuffer(m, np.uint8)
if layout == "dense":
    a[::4096] = 1
elif layout == "fragmented":
    a[::8192] = 1                  # even pages written
    s = int(a[4096::8192].sum())   # odd pages read: the shared zero page
else:  # million: written, zero page, untouched, zero page
    a[::16384] = 1
    s = int(a[4096::8192].sum())
print("ready", flush=True)
sys.stdin.read()
"""

LAYOUTS = ("dense", "fragmented", "million")
WARMUP = 5  # snapshots left out of each recording's figures (one-time costs)


def raw_scan(pid: int, n: int, harvest: bool = False) -> tuple[float, float]:
    """Median wall time and mean CPU time (ns) of ``n`` back-to-back raw scans.

    The bare ioctl of the whole address space into one warm buffer (sized and faulted in by
    a first scan; resumed only if it fills, as the recorder does): what the kernel costs.
    ``harvest``: each scan followed by a get-and-clear of the whole address space (the
    memory must be armed: a write source open on ``pid``).
    """
    from pmviz.tracking import harvest_written

    fields = _full_mask().kernel_fields()
    limit = pmviz.features().user_address_limit
    buf = np.empty(1 << 16, pms.REGION_DTYPE)
    pm = pmviz.Pagemap(pid)

    def scan() -> int:
        nonlocal buf
        arg = pms.PmScanArg(size=96, **fields)
        arg.start, arg.end = 0, limit
        got = 0
        while True:
            arg.vec = buf.ctypes.data + got * buf.itemsize
            arg.vec_len = len(buf) - got
            got += pms.ioctl_scan(pm.fd, arg)
            if got < len(buf):
                return got
            arg.start = int(buf["end"][got - 1])
            bigger = np.empty(2 * len(buf), pms.REGION_DTYPE)
            bigger[:got] = buf
            buf = bigger

    try:
        scan()
        scan()  # warm: the buffer is as large as it needs to be and faulted in
        t = []
        c0 = time.thread_time_ns()
        for _ in range(n):
            t0 = time.perf_counter_ns()
            scan()
            if harvest:
                harvest_written(pm)
            t.append(time.perf_counter_ns() - t0)
        cpu = (time.thread_time_ns() - c0) / n
    finally:
        pm.close()
    return statistics.median(t), cpu


def armed_raw(pid: int, n: int) -> tuple[float, float, float]:
    """(scan, scan + get-and-clear, CPU of the scan) of ``pid`` with a uffd-wp source open."""
    from pmviz.injection import open_write_source

    source, reason = open_write_source(pid)
    if source is None or source.mechanism != "uffd-wp":
        raise SystemExit(f"writes on needs uffd-wp injection: {reason}")
    try:
        scan, cpu = raw_scan(pid, n)
        both, _ = raw_scan(pid, n, harvest=True)
    finally:
        source.close()
    return scan, both, cpu


def swap_on() -> bool:
    """Whether a swap device is on (other jobs on a shared machine turn swap on and off): with
    uffd-wp, markers must then be told from swap page by page (see pmviz.swapped).
    """
    with open("/proc/swaps") as f:
        return len(f.read().splitlines()) > 1


def recorder(
    pid: int, n: int, out: str | None, writes: str = "none", warmup: int = WARMUP
) -> tuple[float, float, int]:
    """Wall and CPU time (ns) per snapshot of a recording, after ``warmup`` snapshots.

    Wall: median start-to-start time of the snapshots after the warm-up (as the raw scan's
    median: on a loaded machine a mean mostly measures the other processes).
    CPU: every thread of this process (recorder, writer, injection) from the end of the
    warm-up to the last snapshot, sampled by this thread every millisecond. The warm-up and
    the end are one-time costs left out: arming the target's memory (writes on), the first
    snapshot (a keyframe: copied, then flushed in full: with ``out`` the warm-up lasts until
    that first flush is done), the final merge.
    """
    if out:
        shutil.rmtree(out, ignore_errors=True)
    rec = pmviz.Recorder(pid, interval=0, writes=writes, out=out, progress=False).start()
    builder = rec._builder  # (its snapshot count, read without building a capture view)
    assert builder is not None
    # Writing, the warm-up lasts until the first flush is on disk: it writes the first
    # snapshot in full (a keyframe, ~0.6 s of CPU at 1 M regions), which lands flush_interval
    # after the start, well after the first few snapshots.
    while (builder.n <= warmup or (out and builder.mem_first == 0)) and rec.running:
        time.sleep(0.001)
    c0, k0 = time.process_time_ns(), builder.n
    while builder.n < k0 + n and rec.running:
        time.sleep(0.001)
    c1, k1 = time.process_time_ns(), builder.n
    cap = rec.stop()
    assert writes == "none" or cap.meta.write_mechanism == "uffd-wp", cap.meta.extra
    wall = np.median(np.diff(cap.time_ns[k0:k1]))
    return float(wall), (c1 - c0) / max(k1 - k0, 1), int(np.median(cap.telemetry["n_regions"]))


def measure(layout: str, rounds: int, n: int, writes: bool) -> list[dict]:
    """Rows for ``layout``: writes off, and on when ``writes``; interleaved rounds."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, layout], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    tmp = tempfile.mkdtemp(prefix="pmviz-bench-")
    out = os.path.join(tmp, "b.pmviz")
    keys = ["raw", "mem", "disk", "rcpu", "mcpu", "dcpu"]
    modes = ["none", "auto"] if writes else ["none"]
    extra = ["both", "raw2", "rcpu2", "both2", "swap"]
    rows: dict[str, dict[str, list[float]]] = {m: {k: [] for k in keys + extra} for m in modes}
    regions = dict.fromkeys(modes, 0)
    try:
        assert child.stdout.readline().startswith(b"ready")
        # Interleaved rounds; each ratio is taken within its round, then the median over rounds,
        # so load from other processes on the machine shifts numerator and denominator alike.
        for _ in range(rounds):
            for mode in modes:
                r = rows[mode]
                # the raw reference is taken right before each recording (load drifts)
                ref = []
                for target in (None, out):
                    if mode == "none":
                        raw, rcpu = raw_scan(child.pid, n)
                        both = raw
                    else:
                        raw, both, rcpu = armed_raw(child.pid, n)
                    swapping = swap_on()
                    wall, cpu, regions[mode] = recorder(child.pid, n, target, mode)
                    r["swap"].append(float(swapping or swap_on()))
                    ref.append((raw, rcpu, both, wall, cpu))
                (raw, rcpu, both, mem, mcpu), (raw2, rcpu2, both2, disk, dcpu) = ref
                for k, v in zip(
                    keys + ["both", "raw2", "rcpu2", "both2"],
                    (raw, mem, disk, rcpu, mcpu, dcpu, both, raw2, rcpu2, both2),
                ):
                    r[k].append(v)
    finally:
        child.stdin.close()
        child.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    result = []
    for mode in modes:
        r = rows[mode]
        med = {k: statistics.median(v) for k, v in r.items()}

        def ratio(a: str, b: str, r: dict = r) -> float:
            return statistics.median(x / y for x, y in zip(r[a], r[b]))

        result.append(
            {
                "layout": layout,
                "writes": "on" if mode == "auto" else "off",
                "regions": regions[mode],
                "raw_ms": med["raw"] / 1e6,
                "both_ms": med["both"] / 1e6,
                "mem_ms": med["mem"] / 1e6,
                "disk_ms": med["disk"] / 1e6,
                "mem_ratio": ratio("mem", "raw"),
                "disk_ratio": ratio("disk", "raw2"),
                "disk_both_ratio": ratio("disk", "both2"),
                "mem_cpu_ratio": ratio("mcpu", "rcpu"),
                "disk_cpu_ratio": ratio("dcpu", "rcpu2"),
                "swap": f"{int(sum(r['swap']))}/{len(r['swap'])}",
            }
        )
    return result


def _mark(ratio: float, target: float = 1.15) -> str:
    return f"{ratio:.3f}" if ratio <= target else f"**{ratio:.3f}**"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--snapshots", type=int, default=60)
    ap.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=list(LAYOUTS))
    ap.add_argument("--no-writes", action="store_true", help="skip the writes-on rows")
    args = ap.parse_args()
    writes = not args.no_writes and pmviz.features().uffd_wp_async and os.geteuid() == 0
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"kernel {os.uname().release}, {os.cpu_count()} CPUs, load average {load}")
    print(
        "| layout | writes | regions/snapshot | raw scan (ms) | raw scan + get-and-clear (ms) "
        "| recorder, memory (ms) | ratio | recorder + file (ms) | ratio | ratio to scan + "
        "get-and-clear | CPU ratio, memory | CPU ratio, + file | recordings with swap on |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for layout in args.layouts:
        for m in measure(layout, args.rounds, args.snapshots, writes):
            both = f"{m['both_ms']:.2f}" if m["writes"] == "on" else "—"
            rb = _mark(m["disk_both_ratio"]) if m["writes"] == "on" else "—"
            print(
                f"| {m['layout']} | {m['writes']} | {m['regions']:,} | {m['raw_ms']:.2f} | "
                f"{both} | {m['mem_ms']:.2f} | {_mark(m['mem_ratio'])} | {m['disk_ms']:.2f} | "
                f"{_mark(m['disk_ratio'])} | {rb} | {_mark(m['mem_cpu_ratio'])} | "
                f"{_mark(m['disk_cpu_ratio'])} | {m['swap']} |",
                flush=True,
            )
    with open("/proc/loadavg") as f:
        print(f"load average at the end: {' '.join(f.read().split()[:3])}")


if __name__ == "__main__":
    main()
