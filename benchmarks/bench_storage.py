"""Capture files: bytes per region per snapshot, and loading a 1 % window of a 1 GiB capture.

1. **Size, format 1 vs 2.** Records real processes with ``pmviz.record(..., out=...)``
   (format 2: keyframes + changes) and divides the bytes on disk by the regions over all
   snapshots; the same capture is also written as format 1 would (every snapshot in full,
   the old writer's layout and Parquet options) for the same-run reference. Workloads: a
   quiescent child (the steady case), a Python child whose heap churns a little every
   snapshot, this benchmark's own interpreter, and the bundled sample captures (format 1 on
   disk, rewritten with ``save`` as format 2).
2. **1 GiB capture.** Synthesises a capture whose region rows take 1 GiB in memory (44.7 M
   rows of 24 bytes: 4,470 snapshots of 10,000 regions, ~1 % of them changing category per
   snapshot), writes it with ``pmviz.storage.save`` to a temporary directory (deleted
   afterwards, never committed), then in fresh interpreters measures the time and peak RSS
   increase of: opening it; loading a 1 % time window; loading a 1 % address window; and,
   as the reference, loading everything.

    python3 benchmarks/bench_storage.py [--snapshots 4470] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

import pmviz
from pmviz._kernel.pagemap_scan import REGION_DTYPE
from pmviz.capture import Capture, CaptureMeta
from pmviz.storage import save

STEADY = "import sys, numpy as np\na = np.ones(50_000_000, np.uint8)\nsys.stdin.read()\n"
CHURN = (
    "import sys, time, random\n"
    "keep = []\n"
    "while True:\n"
    "    keep.append(bytearray(random.randrange(1 << 12, 1 << 20)))\n"
    "    if len(keep) > 200: keep.pop(random.randrange(len(keep)))\n"
    "    time.sleep(0.002)\n"
)


def disk_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def v1_bytes(cap: Capture, tmp: str) -> int:
    """Bytes of ``cap`` written as format 1: every snapshot's rows in full (dense), one part."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pmviz.storage import format as fmt

    d = tempfile.mkdtemp(dir=tmp)
    off = cap.region_offsets
    rows = cap.regions
    snap = np.repeat(np.arange(cap.n_snapshots, dtype=np.int64), np.diff(off))
    regions = pa.table(
        [
            pa.array(snap),
            pa.array(np.ascontiguousarray(rows["start"])),
            pa.array(np.ascontiguousarray(rows["end"])),
            pa.array(rows["categories"].astype(np.uint16)),
        ],
        schema=fmt.REGIONS_SCHEMA_V1,
    )
    pq.write_table(
        regions,
        os.path.join(d, "r.parquet"),
        row_group_size=fmt.ROW_GROUP_ROWS,
        **fmt.PARQUET_OPTIONS,
    )
    b = disk_bytes(d)
    shutil.rmtree(d)
    return b


def table_bytes(path: str, table: str) -> int:
    d = os.path.join(path, table)
    return disk_bytes(d) if os.path.isdir(d) else 0


def size_row(name: str, cap: Capture, path: str, tmp: str) -> str:
    """Whole capture in format 2 vs the same capture with its regions table as format 1."""
    total = disk_bytes(path)
    v1 = total - table_bytes(path, "regions") + v1_bytes(cap, tmp)
    regions = cap.n_regions
    return (
        f"| {name} | {cap.n_snapshots} | {regions // max(cap.n_snapshots, 1):,} | "
        f"{len(cap.vma_tables)} | {v1:,} | {v1 / regions:.3f} | {total:,} | "
        f"{total / regions:.3f} | **{total / v1:.3f}** |"
    )


def size_case(name: str, target, n: int, tmp: str) -> str:
    out = os.path.join(tmp, f"{name}.pmviz")
    child = None
    if target is not None:
        child = subprocess.Popen([sys.executable, "-c", target], stdin=subprocess.PIPE)
        time.sleep(0.5)
    try:
        cap = pmviz.record(
            child.pid if child else "self",
            interval=0.02,
            count=n,
            out=out,
            writes="none",
            progress=False,
        )
    finally:
        if child:
            child.kill()
            child.wait()
    return size_row(name, cap, out, tmp)


def synthesize(n_snap: int, n_reg: int, churn: float, seed: int = 0) -> Capture:
    rng = np.random.default_rng(seed)
    gaps = rng.integers(1, 64, n_reg).astype(np.uint64) << np.uint64(12)
    lens = rng.integers(1, 256, n_reg).astype(np.uint64) << np.uint64(12)
    start = np.uint64(0x7F0000000000) + np.cumsum(gaps + lens) - lens
    combos = np.array([0x0A, 0x02, 0x2A, 0x0E, 0x12, 0x4A, 0x0B], np.uint64)
    cats = combos[rng.integers(0, len(combos), n_reg)]
    regions = np.empty(n_snap * n_reg, REGION_DTYPE)
    regions["start"] = np.tile(start, n_snap)
    regions["end"] = np.tile(start + lens, n_snap)
    c = np.tile(cats, n_snap)
    flip = rng.random(len(c)) < churn  # this share of the regions changes per snapshot
    c[flip] = combos[rng.integers(0, len(combos), int(flip.sum()))]
    regions["categories"] = c
    off = np.arange(n_snap + 1, dtype=np.int64) * n_reg
    t = 10**9 + np.arange(n_snap, dtype=np.int64) * 100_000_000
    meta = CaptureMeta(pid=1, interval_ns=100_000_000, extra={"synthetic": True})
    tel = {"n_regions": np.full(n_snap, n_reg), "scan_ns": np.full(n_snap, 10**6)}
    return Capture(meta, t, regions, off, telemetry=tel)


PROBE = r"""
import json, sys, time
import pmviz, pmviz.storage, pyarrow.parquet  # imports are not part of the time measured


def status(key):  # this process's own counters (ru_maxrss would include the forked parent)
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024


path, what = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
cap = pmviz.open(path)
t_open = time.perf_counter() - t0
rss_open = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak: VmHWM = VmRSS
t0 = time.perf_counter()
n = cap.n_snapshots
if what == "time":
    mid = cap.times[n // 2]
    part = cap.window(mid, mid + cap.times[-1] * 0.01)
    rows = part.n_regions
elif what == "address":
    r = cap.regions_at(0)
    lo = int(r.start[len(r) // 2])
    hi = int(r.start[len(r) // 2 + len(r) // 100])
    part = cap.address_window(lo, hi)
    rows = part.n_regions
elif what == "all":
    rows = len(cap.regions)
else:
    rows = 0
dt = time.perf_counter() - t0
print(json.dumps({"open_s": t_open, "load_s": dt, "rss_open_mib": rss_open,
                  "peak_mib": status("VmHWM"), "rows": int(rows)}))
"""


def probe(path: str, what: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, path, what], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--snapshots", type=int, default=4470)
    ap.add_argument("--regions", type=int, default=10_000)
    ap.add_argument("--keep", help="write the big capture here and keep it")
    ap.add_argument("--sizes-only", action="store_true", help="only the first table")
    ap.add_argument(
        "--churn", type=float, default=0.002, help="share of regions changing per snapshot"
    )
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pmviz-bench-storage-")
    try:
        print(
            "| workload | snapshots | regions/snapshot | VMA tables | format 1 bytes | "
            "format 1 B/region/snapshot | format 2 bytes | format 2 B/region/snapshot | "
            "2 / 1 |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        print(size_case("quiescent child (numpy, 50 MB)", STEADY, 600, tmp))
        print(size_case("churning Python heap", CHURN, 600, tmp))
        print(size_case("this interpreter (self)", None, 300, tmp))
        sample = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sample_data")
        for name in sorted(os.listdir(sample)):
            if name.endswith(".pmviz"):
                v1 = pmviz.open(os.path.join(sample, name))
                out = save(v1, os.path.join(tmp, name))
                print(size_row(f"sample_data/{name}", pmviz.open(out), out, tmp))
        if args.sizes_only:
            return

        t0 = time.perf_counter()
        cap = synthesize(args.snapshots, args.regions, args.churn)
        t_gen = time.perf_counter() - t0
        path = args.keep or os.path.join(tmp, "big.pmviz")
        t0 = time.perf_counter()
        save(cap, path, overwrite=True)
        t_save = time.perf_counter() - t0
        mem_bytes = cap.regions.nbytes
        disk = disk_bytes(path)
        del cap
        print()
        print(
            f"Synthetic capture: {args.snapshots:,} snapshots x {args.regions:,} regions = "
            f"{mem_bytes / 2**30:.2f} GiB of region rows in memory; generated in {t_gen:.1f} s, "
            f"written in {t_save:.1f} s, {disk / 2**20:.1f} MiB on disk "
            f"({disk / (args.snapshots * args.regions):.3f} bytes per region per snapshot)."
        )
        print()
        print(
            "| operation (fresh interpreter) | time (s) | peak RSS during it (MiB) | "
            "peak increase (MiB) | rows loaded |"
        )
        print("|---|---:|---:|---:|---:|")
        o = probe(path, "open")
        print(
            f"| open (metadata, footers, snapshots table) | {o['open_s']:.3f} | "
            f"{o['rss_open_mib']:.0f} (RSS after) | — | 0 |"
        )
        results = {w: probe(path, w) for w in ("time", "address", "all")}
        names = {
            "time": "1 % time window (`window`)",
            "address": "1 % address window, all snapshots (`address_window`)",
            "all": "everything (`regions`), reference",
        }
        for w, r in results.items():
            print(
                f"| {names[w]} | {r['load_s']:.3f} | {r['peak_mib']:.0f} | "
                f"{r['peak_mib'] - r['rss_open_mib']:.0f} | {r['rows']:,} |"
            )
        t, a = results["time"], results["all"]
        print()
        print(
            f"1 % time window vs everything: {t['load_s'] / a['load_s']:.3f}x the time, "
            f"{(t['peak_mib'] - t['rss_open_mib']) / (a['peak_mib'] - a['rss_open_mib']):.3f}x "
            "the peak memory increase."
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
