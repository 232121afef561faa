"""Cost of ``WriteTracker.collect()`` against the kernel's own get-and-clear scan.

For each write pattern in a tracked 128 MiB mapping, the same pattern is written twice: once
harvested by ``collect()`` (maps check, new-VMA detection, harvest, filtering, merging) and once
by one raw ``PAGEMAP_SCAN`` with ``PM_SCAN_WP_MATCHING`` and ``category_mask = return_mask =
WRITTEN`` over the same range — what a minimal C harvester would call. Both are timed in the
same run; the table reports medians and their ratio.

    python3 benchmarks/bench_tracking.py [--repeat 25] [--markdown]
"""

from __future__ import annotations

import argparse
import mmap
import os
import statistics
import time

import numpy as np

import pmviz
from pmviz._kernel import pagemap_scan as pms
from pmviz.tracking import WriteTracker

P = mmap.PAGESIZE
N_PAGES = 32768  # 128 MiB
W = int(pmviz.Category.WRITTEN)


def raw_harvest(fd: int, lo: int, hi: int) -> np.ndarray:
    return pms.scan_range(fd, lo, hi, flags=pms.PM_SCAN_WP_MATCHING, category_mask=W, return_mask=W)


def raw_content(fd: int, written: np.ndarray) -> None:
    """pmviz's second kernel call: a plain scan of the written span (what is data)."""
    if len(written):
        C = pmviz.Category
        pms.scan_range(
            fd,
            int(written["start"][0]),
            int(written["end"][-1]),
            category_anyof_mask=int(C.PRESENT | C.SWAPPED),
            return_mask=int(C.PRESENT | C.SWAPPED | C.PFNZERO | C.FILE),
        )


def median_us(samples: list[int]) -> float:
    return statistics.median(samples) / 1e3


def measure(
    tracker, fd, view, base, pages: np.ndarray, repeat: int
) -> tuple[float, float, float, int]:
    offsets = pages * P
    t_collect, t_raw, t_both, n_regions = [], [], [], 0
    for _ in range(repeat):
        view[offsets] += 1
        t0 = time.perf_counter_ns()
        got = tracker.collect()
        t_collect.append(time.perf_counter_ns() - t0)
        n_regions = len(got)
        assert got.n_pages == len(pages), (got.n_pages, len(pages))
        view[offsets] += 1
        t0 = time.perf_counter_ns()
        raw_harvest(fd, base, base + N_PAGES * P)
        t_raw.append(time.perf_counter_ns() - t0)
        view[offsets] += 1
        t0 = time.perf_counter_ns()
        raw_content(fd, raw_harvest(fd, base, base + N_PAGES * P))
        t_both.append(time.perf_counter_ns() - t0)
    return median_us(t_collect), median_us(t_raw), median_us(t_both), n_regions


def measure_resolve(repeat: int) -> tuple[int, int, float, float, float]:
    """resolve_swapped on full snapshots of this (tracked) interpreter: the no-swap fast path
    and the classic-pagemap decode path (what runs while a swap device is on), against the
    snapshot scan itself.
    """
    from pmviz import swapped as sw

    with pmviz.Pagemap("self") as pm:
        snap = pm.scan()
        c = snap.categories
        S, WG = int(pmviz.Category.SWAPPED), int(pmviz.Category.WRITTEN | pmviz.Category.GUARD)
        ambiguous = (c & np.uint64(S) != 0) & (c & np.uint64(WG) == 0)
        reader = sw._reader(pm.fd)
        t_scan, t_fast, t_decode = [], [], []
        for _ in range(repeat):
            t0 = time.perf_counter_ns()
            snap = pm.scan()
            t_scan.append(time.perf_counter_ns() - t0)
            c = snap.categories
            ambiguous = (c & np.uint64(S) != 0) & (c & np.uint64(WG) == 0)
            t0 = time.perf_counter_ns()
            out = snap.array.copy()  # the no-swap path: clear the bit on ambiguous regions
            out["categories"][ambiguous] &= ~np.uint64(S)
            t_fast.append(time.perf_counter_ns() - t0)
            t0 = time.perf_counter_ns()
            sw._resolve(snap, ambiguous, reader)
            t_decode.append(time.perf_counter_ns() - t0)
        n_amb = int(snap.page_counts[ambiguous].sum())
    return len(snap), n_amb, median_us(t_scan), median_us(t_fast), median_us(t_decode)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=25)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    buf = mmap.mmap(-1, N_PAGES * P, flags=mmap.MAP_PRIVATE)
    view = np.frombuffer(buf, dtype=np.uint8)
    view[::P] = 1  # populated before tracking: harvests see present pages, not holes
    base = view.__array_interface__["data"][0]
    fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)

    rows = []
    with WriteTracker(view) as tracker:
        for n in (0, 1, 64, 1024, 8192, 32768):  # contiguous: one region
            c, r, b, nr = measure(tracker, fd, view, base, np.arange(n), args.repeat)
            rows.append(("contiguous", n, nr, c, r, b))
        for nr_want in (16, 256, 4096, 16384):  # every other page: one region per page
            pages = np.arange(nr_want) * 2
            c, r, b, nr = measure(tracker, fd, view, base, pages, args.repeat)
            rows.append(("every 2nd page", len(pages), nr, c, r, b))

    # Whole-process mode: every private writable VMA of this Python process.
    with WriteTracker() as whole:
        whole.collect()
        spans = whole.registered
        t_c, t_r = [], []
        for _ in range(args.repeat):
            view[: 64 * P : P] += 1
            t0 = time.perf_counter_ns()
            whole.collect()
            t_c.append(time.perf_counter_ns() - t0)
        for _ in range(args.repeat):
            t0 = time.perf_counter_ns()
            for lo, hi in zip(spans.start.tolist(), spans.end.tolist()):
                raw_harvest(fd, lo, hi)
            t_r.append(time.perf_counter_ns() - t0)
        whole_row = (len(spans), spans.n_pages, median_us(t_c), median_us(t_r))
        swap_row = measure_resolve(args.repeat)
    os.close(fd)
    del view
    buf.close()

    print(
        "| pattern | written pages | regions | collect() µs | kernel get-and-clear µs "
        "| ratio | kernel get-and-clear + content scan µs | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for pattern, n, nr, c, r, b in rows:
        print(
            f"| {pattern} | {n:,} | {nr:,} | {c:,.0f} | {r:,.0f} | {c / r:.1f}x "
            f"| {b:,.0f} | {c / b:.1f}x |"
        )
    n_spans, n_pages, c, r = whole_row
    print()
    print(
        "| whole process | registered spans | registered pages | collect() µs | kernel get-and-clear per span µs | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| this interpreter | {n_spans} | {n_pages:,} | {c:,.0f} | {r:,.0f} | {c / r:.1f}x |")
    n_regions, n_amb, t_scan, t_fast, t_decode = swap_row
    print()
    print(
        "| resolve_swapped on a full snapshot | regions | ambiguous pages | snapshot scan µs "
        "| no swap device µs | swap on (decode) µs |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    print(
        f"| this tracked interpreter | {n_regions:,} | {n_amb:,} | {t_scan:,.0f} "
        f"| {t_fast:,.0f} | {t_decode:,.0f} |"
    )


if __name__ == "__main__":
    main()
