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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--snapshots", type=int, default=1000)
    ap.add_argument("--regions", type=int, default=100_000)
    ap.add_argument("--bins", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
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
