"""A numpy workload in phases, paced so a 100 ms recorder sees each phase.

1. allocate  a 64 MiB float64 array (np.zeros: mmap'ed, nothing resident yet)
2. fill      write it front to back, 8 MiB per step (a write front moving through memory)
3. hot loop  rewrite a 4 MiB hot window every step, plus a few scattered cold pages
             (a small write working set: the case where live-migration pre-copy converges)
4. sort      np.sort of a 16 MiB slice into a new array (fresh pages written once)
5. release   drop the big array (munmap) and idle briefly before exiting

Prints "phase N" lines to stdout; takes about 4 s. Deterministic (fixed seed).
"""

from __future__ import annotations

import sys
import time

import numpy as np

STEP_S = 0.1
MIB = 1 << 20


def phase(n: int, what: str) -> None:
    print(f"phase {n}: {what}", flush=True)


def main(scale: float = 1.0) -> int:
    rng = np.random.default_rng(7)
    n = int(64 * MIB * scale) // 8
    phase(0, "start")
    time.sleep(3 * STEP_S)

    phase(1, "allocate")
    a = np.zeros(n)
    time.sleep(2 * STEP_S)

    phase(2, "fill front to back")
    chunk = int(8 * MIB * scale) // 8
    for lo in range(0, n, chunk):
        a[lo : lo + chunk] = np.arange(lo, min(lo + chunk, n), dtype=np.float64)
        time.sleep(STEP_S)

    phase(3, "hot loop")
    hot = int(4 * MIB * scale) // 8
    hot_lo = n // 2
    page = 4096 // 8
    for step in range(14):
        a[hot_lo : hot_lo + hot] += 1.0
        cold = rng.integers(0, n // page, size=4 + step // 2) * page
        a[cold] = -a[cold]
        time.sleep(STEP_S)

    phase(4, "sort a slice into a new array")
    b = np.sort(a[: int(16 * MIB * scale) // 8][::-1])
    time.sleep(3 * STEP_S)

    phase(5, "release")
    checksum = float(a[::page].sum() + b[::page].sum())
    del a, b
    time.sleep(3 * STEP_S)
    print(f"checksum {checksum:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0))
