"""Heatmap binning: 1,000 snapshots x 100,000 regions into a 1,000 x 1,000 grid.

``pmviz.analysis.heatmap_grid`` (exact coverage, compact address axis) against two per-page
rasterisation references measured in the same run on a subset of snapshots and scaled to the
full capture (their cost is linear in snapshots):

* naive: a Python loop over each snapshot's regions painting a per-page array, then a
  per-bin mean (what one writes first);
* numpy per-page: the same rasterisation vectorised (``np.repeat`` to pages + ``bincount``),
  the strongest per-page approach.

Both references are checked to produce the same grid rows as ``heatmap_grid``.

Run: ``python3 benchmarks/bench_heatmap.py [--snapshots 1000] [--regions 100000] [--bins 1000]``

Big layouts (issue 11.4), ``--layouts``: ``pmviz heatmap`` (target <= 5 s) and ``pmviz report``
(<= 20 s) as the user runs them (a fresh process each, wall time), on

* a real process with 50,000 VMAs: a Python child maps 49,800 one-page anonymous pages whose
  protections cycle rw / none / r (so neighbours never merge; the compact axis has ~16,600
  segments) and 200 two-page files with long ``.cpython-311-x86_64-linux-gnu.so`` names,
  recorded by ``pmviz.record`` (10 snapshots, write tracking as the recorder chooses);
* a synthetic capture of 10,000 snapshots (500 regions each over 20 VMAs, 1 % of the regions
  changing per snapshot, with written sets), saved to disk.

The reference, measured in the same run, is ``pmviz info`` on the same capture (start-up,
open, summary): what any command pays before drawing anything.

Run: ``python3 benchmarks/bench_heatmap.py --layouts``
"""

from __future__ import annotations

import argparse
import bisect
import os
import time

import numpy as np

from pmviz.analysis import address_axis, heatmap_grid
from pmviz.capture import Capture, CaptureMeta
from pmviz.maps import VMA_DTYPE, VmaKind, Vmas
from pmviz.regions import REGION_DTYPE

PAGE = 4096
PRESENT = 8


def build(n_snap: int, n_reg: int, seed: int = 0) -> Capture:
    """Regions of 1-7 pages with 0-6 page holes, spread over 8 VMAs with big gaps between."""
    rng = np.random.default_rng(seed)
    lens = rng.integers(1, 8, n_reg).astype(np.uint64)
    gaps = rng.integers(0, 7, n_reg).astype(np.uint64)
    # Eight VMAs of equal share, 1 GiB apart: the compact axis must collapse the gaps.
    vma_of = (np.arange(n_reg) * 8) // n_reg
    base = np.uint64(0x7F0000000000) + vma_of.astype(np.uint64) * np.uint64(1 << 30)
    pos = np.zeros(n_reg, np.uint64)
    for v in range(8):  # per VMA
        sel = vma_of == v
        pos[sel] = np.cumsum(gaps[sel] + lens[sel]) - lens[sel]
    start = base + pos * np.uint64(PAGE)
    end = start + lens * np.uint64(PAGE)
    vs = np.array([start[vma_of == v].min() for v in range(8)], np.uint64)
    ve = np.array([end[vma_of == v].max() for v in range(8)], np.uint64)
    table = np.zeros(8, VMA_DTYPE)
    table["start"], table["end"], table["kind"] = vs, ve, int(VmaKind.ANON)
    table["perms"] = b"rw-p"
    regions = np.empty(n_snap * n_reg, REGION_DTYPE)
    r2 = regions.reshape(n_snap, n_reg)
    r2["start"] = start
    r2["end"] = end
    # Categories change between snapshots: 3 of 4 regions present, the pattern shifting.
    pattern = np.array([PRESENT | 2, PRESENT, 16, PRESENT | 4], np.uint64)
    for i in range(n_snap):  # per snapshot, data generation only
        r2["categories"][i] = pattern[(np.arange(n_reg) + i) % 4]
    offsets = np.arange(n_snap + 1, dtype=np.int64) * n_reg
    times = np.arange(n_snap, dtype=np.int64) * 100_000_000
    return Capture(
        CaptureMeta(interval_ns=100_000_000),
        times,
        regions,
        offsets,
        vma_tables=[Vmas(table, [""] * 8)],
    )


def naive(cap: Capture, rows: range, edges_pos: np.ndarray, axis) -> np.ndarray:
    """Per-page rasterisation with a Python loop over regions."""
    n_pages = axis.length // PAGE
    seg_pages = (axis.seg_pos // PAGE).tolist()
    seg_start = axis.seg_start.tolist()
    out = []
    for i in rows:
        pages = np.zeros(n_pages, np.uint8)
        for s, e, c in cap.regions_at(i).array.tolist():
            if c & PRESENT:
                k = bisect.bisect_right(seg_start, s) - 1
                p = seg_pages[k] + (s - seg_start[k]) // PAGE
                pages[p : p + (e - s) // PAGE] = 1
        b = edges_pos // PAGE
        out.append(np.add.reduceat(pages, b[:-1]) / np.diff(b))
    return np.array(out)


def numpy_pages(cap: Capture, rows: range, edges_pos: np.ndarray, axis) -> np.ndarray:
    """Per-page rasterisation, vectorised: every present page becomes one array element."""
    b = edges_pos // PAGE
    out = []
    for i in rows:
        a = cap.regions_at(i).array
        a = a[(a["categories"] & np.uint64(PRESENT)) != 0]
        cpos = axis.to_compact(a["start"]) // PAGE
        n = ((a["end"] - a["start"]) // np.uint64(PAGE)).astype(np.int64)
        pages = np.repeat(cpos, n) + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
        bins = np.searchsorted(b, pages, side="right") - 1
        out.append(np.bincount(bins, minlength=b.size - 1)[: b.size - 1] / np.diff(b))
    return np.array(out)


MANY_VMAS = r"""
import ctypes, mmap, os, sys
n, d = int(sys.argv[1]), sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                      ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
P, n_files = 4096, 200
n_anon = n - n_files
addr = libc.mmap(None, n_anon * P, 3, 0x22, -1, 0)
ctypes.memset(addr, 1, n_anon * P)
for i in range(1, n_anon):  # protections cycle rw / none / r: no two neighbours merge
    if i % 3:
        libc.mprotect(addr + i * P, P, 0 if i % 3 == 1 else 1)
keep = []
for i in range(n_files):
    p = os.path.join(d, f"_multiarray_umath_{i}.cpython-311-x86_64-linux-gnu.so")
    with open(p, "wb") as f:
        f.write(b"x" * 2 * P)
    fd = os.open(p, os.O_RDONLY)
    keep.append(mmap.mmap(fd, 2 * P, prot=mmap.PROT_READ))
    os.close(fd)
print(sum(1 for _ in open("/proc/self/maps")), flush=True)
sys.stdin.read()
"""


def record_many_vmas(tmp: str, n_vmas: int) -> tuple[str, int]:
    """Record a real process holding ``n_vmas`` VMAs; returns the capture path and its VMAs."""
    import subprocess
    import sys

    import pmviz

    files = os.path.join(tmp, "files")
    os.makedirs(files)
    child = subprocess.Popen(
        [sys.executable, "-c", MANY_VMAS, str(n_vmas), files],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        n_maps = int(child.stdout.readline())
        out = os.path.join(tmp, "many-vmas.pmviz")
        pmviz.record(child.pid, interval=0.2, count=10, out=out, progress=False)
    finally:
        child.stdin.close()
        child.wait(timeout=60)
    return out, n_maps


def many_snapshots(tmp: str, n_snap: int = 10_000, n_reg: int = 500, seed: int = 0) -> str:
    """A saved synthetic capture of ``n_snap`` snapshots, 1 % of its regions changing each."""
    from pmviz.storage import save

    rng = np.random.default_rng(seed)
    lens = rng.integers(1, 16, n_reg).astype(np.uint64)
    # each region starts one page after the previous one ends (sorted and disjoint, as the
    # kernel reports them; the reader refuses overlapping rows)
    step = np.cumsum(lens + np.uint64(1)) - (lens + np.uint64(1))
    start = np.uint64(0x7F0000000000) + step * np.uint64(PAGE)
    end = start + lens * np.uint64(PAGE)
    v = np.arange(20) * n_reg // 20
    table = np.zeros(20, VMA_DTYPE)
    table["start"], table["end"] = start[v], np.append(start[v[1:]] - PAGE, end[-1])
    table["kind"], table["perms"] = int(VmaKind.ANON), b"rw-p"
    state = rng.integers(0, 4, n_reg)
    cats = np.array([PRESENT | 2, PRESENT, 16, 0], np.uint64)
    regs = np.empty((n_snap, n_reg), REGION_DTYPE)
    regs["start"], regs["end"] = start, end
    written = np.zeros((n_snap, n_reg), bool)
    for i in range(n_snap):  # per snapshot, data generation only
        idx = rng.integers(0, n_reg, n_reg // 100)
        state[idx] = (state[idx] + 1) % 4
        regs["categories"][i] = cats[state]
        written[i] = state == 0
    w = regs[written].copy()
    w["categories"] = 2
    cap = Capture(
        CaptureMeta(interval_ns=100_000_000, write_mechanism="uffd-wp"),
        np.arange(n_snap, dtype=np.int64) * 100_000_000,
        regs.reshape(-1),
        np.arange(n_snap + 1, dtype=np.int64) * n_reg,
        written=w,
        written_offsets=np.concatenate([[0], np.cumsum(written.sum(axis=1))]),
        vma_tables=[Vmas(table, [""] * 20)],
    )
    return save(cap, os.path.join(tmp, "many-snapshots.pmviz"))


def layouts() -> None:
    import subprocess
    import sys
    import tempfile

    def timed(*argv: str) -> float:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pmviz", *argv], check=True, capture_output=True)
        return time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        big, n_maps = record_many_vmas(tmp, 50_000)
        print(f"recorded a process with {n_maps:,} VMAs in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        long = many_snapshots(tmp)
        print(f"saved a 10,000-snapshot capture in {time.perf_counter() - t:.1f} s")
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        print("| capture | `pmviz info` (reference, s) | `pmviz heatmap` (s) | target | "
              "`pmviz report` (s) | target |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|")
        for name, path in (("50,000 VMAs (real process)", big), ("10,000 snapshots", long)):
            ref = timed("info", path)
            hm = timed("heatmap", path, "-o", os.path.join(tmp, "h.png"))
            rep = timed("report", path, "-o", os.path.join(tmp, "r.html"), "--no-progress")
            print(
                f"| {name} | {ref:.2f} | {hm:.2f} ({hm / ref:.1f}x) | <= 5 | "
                f"{rep:.2f} ({rep / ref:.1f}x) | <= 20 |"
            )
        print(f"load average now {os.getloadavg()[0]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layouts", action="store_true", help="the big-layout CLI benchmark")
    ap.add_argument("--snapshots", type=int, default=1000)
    ap.add_argument("--regions", type=int, default=100_000)
    ap.add_argument("--bins", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if args.layouts:
        layouts()
        return
    t = time.perf_counter()
    cap = build(args.snapshots, args.regions)
    print(
        f"built {args.snapshots:,} x {args.regions:,} regions "
        f"({cap.regions.nbytes / 2**30:.1f} GiB) in {time.perf_counter() - t:.1f} s; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other work competes)"
    )
    heatmap_grid(cap.select(slice(0, 2)), "present", addr_bins=args.bins)  # warm-up
    best, best_cpu = float("inf"), 0.0
    for _ in range(args.repeat):
        t, c = time.perf_counter(), time.process_time()
        g = heatmap_grid(cap, "present", addr_bins=args.bins, time_bins=args.bins)
        if time.perf_counter() - t < best:
            best, best_cpu = time.perf_counter() - t, time.process_time() - c
    print(
        f"heatmap_grid: {best:.3f} s wall, {best_cpu:.3f} s CPU (best of {args.repeat}), "
        f"grid {g.grid.shape}, load average now {os.getloadavg()[0]:.1f}"
    )
    axis = address_axis(cap)
    # Per-snapshot grid (time_bins=None: one column per snapshot) for the exactness check.
    exact = heatmap_grid(cap.select(slice(0, 4)), "present", addr_bins=args.bins, axis=axis)
    sub_naive, sub_np = range(0, 2), range(0, 4)
    t = time.perf_counter()
    ref = naive(cap, sub_naive, exact.addr_pos, axis)
    t_naive = (time.perf_counter() - t) / len(sub_naive) * args.snapshots
    t = time.perf_counter()
    ref_np = numpy_pages(cap, sub_np, exact.addr_pos, axis)
    t_np = (time.perf_counter() - t) / len(sub_np) * args.snapshots
    np.testing.assert_allclose(exact.grid[: len(sub_naive)], ref)
    np.testing.assert_allclose(exact.grid[: len(sub_np)], ref_np)
    print(
        f"naive per-page (Python loop over regions), {len(sub_naive)} snapshots scaled "
        f"x{args.snapshots // len(sub_naive)}: {t_naive:.1f} s -> {t_naive / best:.0f}x"
    )
    print(
        f"numpy per-page (vectorised), {len(sub_np)} snapshots scaled "
        f"x{args.snapshots // len(sub_np)}: {t_np:.1f} s -> {t_np / best:.1f}x"
    )
    print("| case | time (s) | heatmap_grid speed-up |")
    print("|---|---:|---:|")
    print(
        f"| `heatmap_grid` {args.snapshots:,} x {args.regions:,} -> {args.bins} x {args.bins}"
        f" | {best:.3f} | 1 |"
    )
    print(
        f"| naive per-page rasterisation (scaled from {len(sub_naive)} snapshots) | "
        f"{t_naive:.1f} | {t_naive / best:.0f}x |"
    )
    print(
        f"| numpy per-page rasterisation (scaled from {len(sub_np)} snapshots) | "
        f"{t_np:.1f} | {t_np / best:.1f}x |"
    )


if __name__ == "__main__":
    main()
