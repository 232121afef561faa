"""Write tracking of shared memory against private memory of the same size.

Whole-process tracking arms shared mappings too (memfd, shm, shared files). This measures
what that costs: the collect of a 1 GiB memfd mapped ``MAP_SHARED`` against the collect of a
1 GiB private anonymous mapping, both fully resident, in this process, interleaved rounds:
nothing written since the last collect, and every page written.

Run: ``python3 benchmarks/bench_shared_tracking.py [--mib 1024] [--rounds 7]``
"""

from __future__ import annotations

import argparse
import mmap
import os
import time

import numpy as np

from pmviz.tracking import WriteTracker

PAGE = mmap.PAGESIZE


def mapping(kind: str, size: int) -> mmap.mmap:
    if kind == "private":
        return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    fd = os.memfd_create("bench-shared")
    os.ftruncate(fd, size)
    m = mmap.mmap(fd, size, flags=mmap.MAP_SHARED)
    os.close(fd)
    return m


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    size = args.mib << 20
    maps = {k: mapping(k, size) for k in ("private", "shared")}
    arrays = {k: np.frombuffer(m, np.uint8) for k, m in maps.items()}
    for a in arrays.values():
        a[::PAGE] = 1  # resident
    trackers = {k: WriteTracker(ranges=[a]) for k, a in arrays.items()}
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for k, t in trackers.items():  # interleaved: private, shared, private, ...
            t.collect()
            t0 = time.perf_counter()
            n = t.collect().n_pages
            times.setdefault((k, "nothing written"), []).append(time.perf_counter() - t0)
            assert n == 0
            arrays[k][::PAGE] += 1
            t0 = time.perf_counter()
            n = t.collect().n_pages
            times.setdefault((k, "every page written"), []).append(time.perf_counter() - t0)
            assert n == size // PAGE, (k, n)
    print(f"{args.mib} MiB, {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    print("| case | private (ms) | shared memfd (ms) | shared / private |")
    print("|---|---:|---:|---:|")
    for case in ("nothing written", "every page written"):
        p = float(np.median(times[("private", case)])) * 1e3
        s = float(np.median(times[("shared", case)])) * 1e3
        print(f"| {case} | {p:.2f} | {s:.2f} | {s / p:.2f} |")
    for t in trackers.values():
        t.close()


if __name__ == "__main__":
    main()
