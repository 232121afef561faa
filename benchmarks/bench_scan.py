"""pmviz.scan against a C reference loop, measured in the same run (not a test).

    python3 benchmarks/bench_scan.py [--rounds 7] [--out benchmarks/RESULTS-kernel.md]

Workloads (all in this process, scanned through /proc/self/pagemap by both sides):

(a) 1 GiB of alternating present pages: 262,144 regions.
(b) a 16 TiB MAP_NORESERVE mapping with 1000 touched pages (ASan-shadow-like).
(c) a 1-page range through a reused ``Pagemap``: the fixed cost per call.
(d) ``Mask.apply`` on the regions of (a), in regions per second.
(e) the classic-pagemap fallback against a raw ``pread`` of the same entries, on (a) (one
    region per page, the worst case) and on 1 GiB in runs of 64 pages; both sides read the
    same 262,144 entries of the same range, the reference into a reused buffer through an
    open fd, the fallback from a bare ``scan_pagemap`` call (maps, open, decode, result). A
    third row bounds (e) from below: the raw read plus the least numpy work that writes one
    region per page (shift the entries to keys, write start, end and categories), without
    even finding where runs change.

The C reference (``benchmarks/c/scan_ref.c``, compiled here with ``cc -O2``) resumes after a
full vector exactly like pmviz, into one reused pre-faulted vector. Rounds interleave C and
pmviz so that a noisy machine slows both alike. Every time is taken twice, wall clock and the
thread's CPU time (less disturbed by other load on a shared machine); tables give medians.
"""

from __future__ import annotations

import argparse
import mmap
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

import pmviz
from pmviz import Category, Mask, fallback
from pmviz._kernel import pagemap as pm
from pmviz._kernel.pagemap_scan import REGION_DTYPE
from pmviz.fallback import scan_pagemap

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE = mmap.PAGESIZE
GIB = 1 << 30
TIB = 1 << 40
MAP_NORESERVE = 0x4000


@dataclass
class Timing:
    """Median and best per-call seconds, wall clock and thread CPU time."""

    wall: float
    wall_best: float
    cpu: float
    cpu_best: float

    @classmethod
    def merge(cls, parts: list[Timing]) -> Timing:
        return cls(
            statistics.median(p.wall for p in parts),
            min(p.wall_best for p in parts),
            statistics.median(p.cpu for p in parts),
            min(p.cpu_best for p in parts),
        )


def compile_reference(tmp: str) -> str:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        sys.exit("bench_scan: no C compiler (cc) found")
    exe = os.path.join(tmp, "scan_ref")
    subprocess.run([cc, "-O2", "-o", exe, os.path.join(HERE, "c", "scan_ref.c")], check=True)
    return exe


def run_c(exe: str, start: int, end: int, iterations: int, mode: str) -> tuple[int, Timing]:
    out = subprocess.run(
        [exe, str(os.getpid()), hex(start), hex(end), str(iterations), mode],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    n, _, best, median, cpu_best, cpu_median = (int(x) for x in out)
    return n, Timing(median / 1e9, best / 1e9, cpu_median / 1e9, cpu_best / 1e9)


def time_py(fn, iterations: int) -> Timing:
    wall, cpu = [], []
    for _ in range(iterations):
        c, t = time.thread_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
    return Timing(statistics.median(wall), min(wall), statistics.median(cpu), min(cpu))


def compare_c(exe, start, end, rounds, iterations, fn, mode="scan"):
    """Interleaved rounds of C and pmviz; returns (C timing, pmviz timing, C region count)."""
    fn()  # warm up (first-call allocations, caches)
    cs, ps, n = [], [], 0
    for _ in range(rounds):
        n, c = run_c(exe, start, end, iterations, mode)
        cs.append(c)
        ps.append(time_py(fn, iterations))
    return Timing.merge(cs), Timing.merge(ps), n


def compare_py(rounds, iterations, ref, fn):
    fn()
    rs, fs = [], []
    for _ in range(rounds):
        rs.append(time_py(ref, iterations))
        fs.append(time_py(fn, iterations))
    return Timing.merge(rs), Timing.merge(fs)


def output_floor(entries: np.ndarray, start: int):
    """The least numpy work for one region per page: keys, then three strided field writes.

    Everything is preallocated (not timed); no run detection, no merging, no maps.
    """
    n = entries.shape[0]
    keys = np.empty(n, dtype=np.uint16)
    out = np.empty(n, dtype=REGION_DTYPE)
    starts, ends = out["start"], out["end"]
    offsets = np.arange(n, dtype=np.uint64) << np.uint64(12)
    categories = np.empty(n, dtype=np.uint64)
    lut = fallback._lut()

    def run():
        np.right_shift(entries, np.uint64(55), out=keys, casting="unsafe")
        np.add(offsets, start, out=starts)
        np.copyto(ends[:-1], starts[1:])
        ends[-1] = start + n * PAGE
        out["categories"] = np.take(lut, keys, out=categories, mode="clip")

    return run


def mapped(size: int, flags: int = 0) -> tuple[mmap.mmap, np.ndarray]:
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | flags)
    m.madvise(mmap.MADV_NOHUGEPAGE)  # 4 KiB pages, as the workloads describe
    return m, np.frombuffer(m, dtype=np.uint8)


def ratio_row(label, ref: Timing, got: Timing, target: float, unit=1e3, suffix="ms") -> str:
    ok = "ok" if got.wall / ref.wall <= target else "MISSED"
    cpu_ok = "ok" if got.cpu / ref.cpu <= target else "MISSED"
    return (
        f"| {label} | {ref.wall * unit:.3f} {suffix} | {got.wall * unit:.3f} {suffix} "
        f"| {got.wall / ref.wall:.3f} {ok} | {got.cpu / ref.cpu:.3f} {cpu_ok} | ≤ {target:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", help="also write the markdown tables to this file")
    args = parser.parse_args()
    rounds = args.rounds
    head = "| workload | {ref} (median) | {got} (median) | ratio wall | ratio CPU | target |"
    lines = [
        "## Kernel layer benchmarks",
        "",
        f"`python3 benchmarks/bench_scan.py --rounds {rounds}` on Linux "
        f"{os.uname().release}, {os.cpu_count()} CPUs, load average at start "
        f"{os.getloadavg()[0]:.2f}. Ratios are medians over interleaved rounds.",
        "",
        head.format(ref="C loop", got="pmviz.scan"),
        "|---|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        exe = compile_reference(tmp)
        pagemap = pmviz.Pagemap()

        big, view = mapped(GIB)
        view[:: 2 * PAGE] = 1
        a = view.ctypes.data
        span = (a, a + GIB)
        regions = pagemap.scan(*span)
        assert len(regions) == 262_144, len(regions)
        c, p, n = compare_c(exe, *span, rounds, 15, lambda: pagemap.scan(*span))
        assert n == len(regions)
        lines.append(ratio_row("(a) 1 GiB alternating pages, 262,144 regions", c, p, 1.10))

        shadow, sview = mapped(16 * TIB, MAP_NORESERVE)
        rng = np.random.default_rng(42)
        sview[rng.choice(16 * TIB // PAGE, size=1000, replace=False) * PAGE] = 1
        s = sview.ctypes.data
        sspan = (s, s + 16 * TIB)
        sregions = pagemap.scan(*sspan)
        assert sregions.pages_with(Category.PRESENT) == 1000
        c, p, n = compare_c(exe, *sspan, rounds, 15, lambda: pagemap.scan(*sspan))
        assert n == len(sregions)
        label = f"(b) 16 TiB NORESERVE, 1000 touched pages, {n:,} regions"
        lines.append(ratio_row(label, c, p, 1.10))
        del sview
        shadow.close()

        c, p, _ = compare_c(
            exe, a, a + PAGE, rounds, 3000, lambda: pagemap.scan(a, a + PAGE), "page"
        )
        ok = "ok" if p.wall <= 20e-6 else "MISSED"
        lines += [
            "",
            "| (c) 1-page range, reused `Pagemap` | wall (median) | CPU (median) | target |",
            "|---|---:|---:|---:|",
            f"| C ioctl | {c.wall * 1e6:.2f} µs | {c.cpu * 1e6:.2f} µs | |",
            f"| pmviz `Pagemap.scan` | {p.wall * 1e6:.2f} µs | {p.cpu * 1e6:.2f} µs "
            f"| ≤ 20 µs {ok} |",
            f"| fixed overhead of pmviz | {(p.wall - c.wall) * 1e6:.2f} µs "
            f"| {(p.cpu - c.cpu) * 1e6:.2f} µs | |",
            "",
            "| (d) `Mask.apply` on the 262,144 regions of (a) | wall (median) | CPU (median) "
            "| target |",
            "|---|---:|---:|---:|",
        ]
        masks = (
            (
                "CRIU dump mask (anyof PRESENT/SWAPPED, exclude FILE/PFNZERO)",
                Mask(anyof="present|swapped", exclude="file|pfnzero"),
            ),
            (
                "require WRITTEN and PRESENT, report WRITTEN",
                Mask(require="written|present", report="written"),
            ),
            ("report PRESENT only (merges everything)", Mask(report="present")),
        )
        for label, mask in masks:
            t = Timing.merge([time_py(lambda m=mask: m.apply(regions), 20) for _ in range(rounds)])
            rate, cpu_rate = len(regions) / t.wall, len(regions) / t.cpu
            ok = "ok" if rate >= 20e6 else "MISSED"
            lines.append(
                f"| {label} | {rate / 1e6:.1f} M regions/s | {cpu_rate / 1e6:.1f} M regions/s "
                f"| ≥ 20 M/s {ok} |"
            )

        lines += [
            "",
            head.format(ref="raw pread", got="fallback"),
            "|---|---:|---:|---:|---:|---:|",
        ]
        entries = np.empty(GIB // PAGE, dtype=np.uint64)
        fd = pagemap.fd

        def raw(start):
            return lambda: pm.pread_entries(fd, start, entries)

        # Same work as the ioctl: the fallback's regions are the kernel's (plain anonymous
        # memory: nothing the classic pagemap cannot express).
        assert scan_pagemap("self", *span) == pagemap.scan(*span)
        r, f = compare_py(rounds, 20, raw(a), lambda: scan_pagemap("self", *span))
        lines.append(ratio_row("(e) 1 GiB alternating pages: one region per page", r, f, 1.50))
        pm.pread_entries(fd, a, entries)
        floor = output_floor(entries, a)
        read_a = raw(a)
        r, f = compare_py(rounds, 20, read_a, lambda: (read_a(), floor()))
        lines.append(ratio_row("(e) floor: raw pread + least numpy output, no decode", r, f, 1.50))
        runs, rview = mapped(GIB)
        for start in range(0, GIB, 128 * PAGE):
            rview[start : start + 64 * PAGE : PAGE] = 1
        b = rview.ctypes.data
        assert len(scan_pagemap("self", b, b + GIB)) == 4096
        assert scan_pagemap("self", b, b + GIB) == pagemap.scan(b, b + GIB)
        r, f = compare_py(rounds, 20, raw(b), lambda: scan_pagemap("self", b, b + GIB))
        lines.append(ratio_row("(e') 1 GiB in runs of 64 pages: 4,096 regions", r, f, 1.50))
        del view, rview
        big.close()
        runs.close()
        pagemap.close()

    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as out:
            out.write(text)


if __name__ == "__main__":
    main()
