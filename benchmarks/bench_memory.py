"""Cost that grows with change: in-memory size, regions_at, recorder RSS over time, flush cost
at 1 M regions, and the data lost when the recorder is SIGKILLed.

1. **In memory.** A synthetic capture (``--regions`` regions, ``--snapshots`` snapshots,
   0.2 % of the regions changing category per snapshot) and the bundled sample captures:
   bytes of stored rows (keyframes + changes, 25 bytes a row with its kind) against the dense
   24 bytes per region per snapshot.
2. **regions_at(i)** on that capture (random i, a fresh capture object so nothing is cached)
   against the dense reference: slicing and copying snapshot i out of the dense array.
3. **Recorder RSS over time.** A child with ~262k regions (1 GiB, pages alternating written /
   zero page) recorded at full speed (``interval=0``) to a capture file by a separate
   recorder process; that process's VmRSS after ``--rss-minutes`` [1, N] minutes.
4. **Flush cost at 1 M regions.** A child with 1,048,576 regions (4 GiB mapping, pages
   alternating written / zero page: 2 GiB resident) recorded to a file for ``--flush-seconds``;
   every ``CaptureWriter.flush`` is timed (the first holds the keyframe), against the raw scan
   of the same process in the same run.
5. **Loss on SIGKILL.** A recorder process (``flush_interval=0.5``) is SIGKILLed at a random
   time 0-3 s after its first snapshot; loss = kill time - time of the last snapshot on disk
   (or of the first snapshot if none is on disk; ``CLOCK_MONOTONIC`` is shared by all
   processes). Small target (this recorder's own process) and the 1 M-region child.

    python3 benchmarks/bench_memory.py [--rss-minutes 1 3] [--kills 8] [--skip-rss]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import pmviz
from pmviz._kernel import pagemap_scan as pms
from pmviz._kernel.pagemap_scan import REGION_DTYPE
from pmviz.capture import Capture, CaptureMeta
from pmviz.scanning import _full_mask

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import mmap, sys, numpy as np
size = int(sys.argv[1])
m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
m.madvise(mmap.MADV_NOHUGEPAGE)
a = np.frombuffer(m, np.uint8)
a[::8192] = 1                 # even pages written
s = int(a[4096::8192].sum())  # odd pages read: the shared zero page
print("ready", flush=True)
sys.stdin.read()
"""

RECORDER = r"""
import json, sys, time, pmviz
target = sys.argv[1]
target = "self" if target == "self" else int(target)
rec = pmviz.Recorder(target, interval=float(sys.argv[3]), out=sys.argv[2], writes="none",
                     progress=False, flush_interval=0.5, overwrite=True)
flushes = []
if len(sys.argv) > 4 and sys.argv[4] == "time-flushes":
    from pmviz.storage import CaptureWriter
    real = CaptureWriter.flush
    def timed(self, cap, first=0):
        t0 = time.perf_counter_ns()
        r = real(self, cap, first)
        flushes.append((time.perf_counter_ns() - t0, cap.n_snapshots, cap.stored_rows))
        return r
    CaptureWriter.flush = timed
rec.start()
while rec._builder.n == 0:
    time.sleep(0.001)
print(json.dumps({"first_ns": int(rec._builder.meta.start_monotonic_ns)}), flush=True)
t0 = time.monotonic()
while True:
    rss = [l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1]
    print(json.dumps({"t": time.monotonic() - t0, "n": rec._builder.n, "rss_kib": int(rss),
                      "flushes": flushes[-200:]}), flush=True)
    flushes.clear()
    time.sleep(1.0)
"""


def child(size: int) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(size)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert p.stdout is not None and p.stdout.readline().startswith(b"ready")
    return p


def stop(p: subprocess.Popen) -> None:
    if p.stdin:
        p.stdin.close()
    p.kill()
    p.wait()


def synth(n_snap: int, n_reg: int, churn: float, seed: int = 0) -> Capture:
    """Independent 0.2 % category flips per snapshot, built snapshot by snapshot."""
    rng = np.random.default_rng(seed)
    start = np.uint64(0x7F0000000000) + np.arange(n_reg, dtype=np.uint64) * np.uint64(0x3000)
    base = np.full(n_reg, 0x0A, np.uint64)
    snaps = []
    for _ in range(n_snap):
        r = np.empty(n_reg, REGION_DTYPE)
        r["start"], r["end"] = start, start + np.uint64(0x1000)
        c = base.copy()
        flip = rng.random(n_reg) < churn
        c[flip] = 0x1A
        r["categories"] = c
        snaps.append(r)
    dense = np.concatenate(snaps)
    off = np.arange(n_snap + 1, dtype=np.int64) * n_reg
    t = 10**9 + np.arange(n_snap, dtype=np.int64) * 10**8
    return Capture(CaptureMeta(), t, dense, off)


def in_memory(args: argparse.Namespace) -> Capture:
    print("## 1. In-memory size: stored rows (keyframes + changes) vs dense\n")
    print("| capture | snapshots | regions/snapshot | dense (MiB) | stored (MiB) | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    cap = synth(args.snapshots, args.regions, 0.002)
    rows = [("synthetic, 0.2 % churn", cap)]
    sample = os.path.join(HERE, "..", "sample_data")
    for name in sorted(os.listdir(sample)):
        if name.endswith(".pmviz"):
            v1 = pmviz.open(os.path.join(sample, name))
            rows.append(
                (f"sample_data/{name}", Capture(v1.meta, v1.time_ns, v1.regions, v1.region_offsets))
            )
    for name, c in rows:
        dense = c.n_regions * REGION_DTYPE.itemsize
        stored = c.stored_rows * (REGION_DTYPE.itemsize + 1)
        print(
            f"| {name} | {c.n_snapshots:,} | {c.n_regions // max(c.n_snapshots, 1):,} | "
            f"{dense / 2**20:.1f} | {stored / 2**20:.2f} | **{stored / dense:.4f}** |"
        )
    print()
    return cap


def regions_at(cap: Capture) -> None:
    print("## 2. regions_at(i) vs the dense slice\n")
    fresh = Capture._from_encoded(
        cap.meta,
        cap.time_ns,
        (cap._crow, cap._ckind, cap._n_rows, np.diff(cap._coff), cap._key),
    )
    dense, off = cap.regions, cap.region_offsets
    rng = random.Random(1)
    idx = [rng.randrange(cap.n_snapshots) for _ in range(200)]
    t_rand, t_dense, t_next = [], [], []
    for i in idx:
        fresh._decoded = None  # random access: from the keyframe
        t0 = time.perf_counter_ns()
        fresh.regions_at(i)
        t_rand.append(time.perf_counter_ns() - t0)
        t0 = time.perf_counter_ns()
        dense[off[i] : off[i + 1]].copy()
        t_dense.append(time.perf_counter_ns() - t0)
    for i in range(1, 200):  # stepping: one snapshot's changes from the previous one
        t0 = time.perf_counter_ns()
        fresh.regions_at(i)
        t_next.append(time.perf_counter_ns() - t0)
    r, d, s = (statistics.median(x) / 1e3 for x in (t_rand, t_dense, t_next))
    print(
        f"{cap.n_regions // cap.n_snapshots:,} regions per snapshot, keyframes every "
        f"{cap.n_snapshots / len(cap.keyframes):.0f} snapshots on average.\n"
    )
    print("| access | median (µs) | ratio to dense copy |")
    print("|---|---:|---:|")
    print(f"| dense slice + copy (reference) | {d:.0f} | 1.00 |")
    print(f"| regions_at(i), random i (keyframe + changes) | {r:.0f} | **{r / d:.2f}** |")
    print(f"| regions_at(i+1) after regions_at(i) | {s:.0f} | **{s / d:.2f}** |")
    print()


def run_recorder(target: str, out: str, interval: float, timed: bool = False) -> subprocess.Popen:
    argv = [sys.executable, "-c", RECORDER, target, out, str(interval)]
    if timed:
        argv.append("time-flushes")
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def rss_over_time(args: argparse.Namespace, tmp: str) -> None:
    marks = [m * 60 for m in args.rss_minutes]
    print("## 3. Recorder RSS over time (262k regions, full speed, to a file)\n")
    c = child(1 << 30)
    rec = run_recorder(str(c.pid), os.path.join(tmp, "rss.pmviz"), 0.0)
    got: dict[float, dict] = {}
    try:
        assert rec.stdout is not None
        for line in rec.stdout:
            s = json.loads(line)
            if "t" not in s:
                continue
            for m in marks:
                if m not in got and s["t"] >= m:
                    got[m] = s
            if len(got) == len(marks):
                break
    finally:
        rec.kill()
        rec.wait()
        stop(c)
    base = got[marks[0]]
    print("| after | snapshots | RSS (MiB) | ratio to the first |")
    print("|---|---:|---:|---:|")
    for m in marks:
        s = got[m]
        print(
            f"| {m / 60:g} min | {s['n']:,} | {s['rss_kib'] / 1024:.0f} | "
            f"**{s['rss_kib'] / base['rss_kib']:.3f}** |"
        )
    print()


def raw_scan_ms(pid: int, n: int = 5) -> float:
    fields = _full_mask().kernel_fields()
    limit = pmviz.features().user_address_limit
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        pms.scan_range(fd, 0, limit, **fields)
        t = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            pms.scan_range(fd, 0, limit, **fields)
            t.append(time.perf_counter_ns() - t0)
    finally:
        os.close(fd)
    return statistics.median(t) / 1e6


def flush_cost(args: argparse.Namespace, tmp: str) -> None:
    print("## 4. Flush cost at 1 M regions (to a file, interval 0.1 s)\n")
    c = child(4 << 30)
    try:
        raw = raw_scan_ms(c.pid)
        rec = run_recorder(str(c.pid), os.path.join(tmp, "flush.pmviz"), 0.1, timed=True)
        flushes = []
        t_end = time.monotonic() + args.flush_seconds
        try:
            assert rec.stdout is not None
            for line in rec.stdout:
                s = json.loads(line)
                flushes += s.get("flushes", [])
                if time.monotonic() > t_end:
                    break
        finally:
            rec.kill()
            rec.wait()
        raw2 = raw_scan_ms(c.pid)
    finally:
        stop(c)
    first = flushes[0]
    rest = flushes[1:]
    ms = [f[0] / 1e6 for f in rest]
    per = [f[0] / 1e6 / max(f[1], 1) for f in rest]
    raw_ref = (raw + raw2) / 2
    print(
        f"raw scan of the child: {raw_ref:.1f} ms (1,048,576 regions); {len(flushes)} flushes "
        f"over {args.flush_seconds} s.\n"
    )
    print("| flush | snapshots | stored rows | time (ms) | per snapshot (ms) | ratio to raw scan |")
    print("|---|---:|---:|---:|---:|---:|")
    print(
        f"| first (keyframe) | {first[1]} | {first[2]:,} | {first[0] / 1e6:.0f} | "
        f"{first[0] / 1e6 / max(first[1], 1):.0f} | {first[0] / 1e6 / raw_ref:.2f} |"
    )
    if rest:
        print(
            f"| later, median | {statistics.median([f[1] for f in rest]):.0f} | "
            f"{statistics.median([f[2] for f in rest]):,.0f} | {statistics.median(ms):.0f} | "
            f"{statistics.median(per):.1f} | **{statistics.median(per) / raw_ref:.2f}** |"
        )
        print(f"| later, max | | | {max(ms):.0f} | {max(per):.1f} | {max(per) / raw_ref:.2f} |")
    print()


def loss(args: argparse.Namespace, tmp: str) -> None:
    print("## 5. Loss on SIGKILL (flush_interval 0.5 s)\n")
    print(
        "| target | kills | kill times (s after the first snapshot) | loss median (s) | loss max (s) |"
    )
    print("|---|---:|---|---:|---:|")
    rng = random.Random(7)
    for name, size, interval in (
        ("small (the recorder itself)", 0, 0.02),
        ("1 M regions", 4 << 30, 0.1),
    ):
        c = child(size) if size else None
        losses, when = [], []
        try:
            for k in range(args.kills):
                out = os.path.join(tmp, f"kill{k}.pmviz")
                rec = run_recorder(str(c.pid) if c else "self", out, interval)
                assert rec.stdout is not None
                first_ns = json.loads(rec.stdout.readline())["first_ns"]
                delay = rng.uniform(0.0, 3.0)
                time.sleep(delay)
                t_kill = time.monotonic_ns()
                rec.send_signal(signal.SIGKILL)
                rec.wait()
                try:
                    cap = pmviz.open(out)
                    last = int(cap.time_ns[-1]) if cap.n_snapshots else first_ns
                except pmviz.CaptureError:
                    last = first_ns  # nothing on disk: lost since the first snapshot
                losses.append((t_kill - last) / 1e9)
                when.append(delay)
                shutil.rmtree(out, ignore_errors=True)
        finally:
            if c:
                stop(c)
        print(
            f"| {name} | {len(losses)} | {', '.join(f'{w:.1f}' for w in when)} | "
            f"{statistics.median(losses):.2f} | **{max(losses):.2f}** |"
        )
    print()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--snapshots", type=int, default=2000)
    ap.add_argument("--regions", type=int, default=10_000)
    ap.add_argument("--rss-minutes", type=float, nargs="+", default=[1, 3])
    ap.add_argument("--flush-seconds", type=float, default=20)
    ap.add_argument("--kills", type=int, default=8)
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--only", choices=["memory", "rss", "flush", "loss"])
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pmviz-bench-memory-")
    try:
        print(f"kernel {os.uname().release}, {os.cpu_count()} CPUs\n")
        if args.only in (None, "memory"):
            regions_at(in_memory(args))
        if args.only in (None, "flush"):
            flush_cost(args, tmp)
        if args.only in (None, "loss"):
            loss(args, tmp)
        if args.only in (None, "rss") and not args.skip_rss:
            rss_over_time(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
