"""A Python multiprocessing pool over one shared-memory array, paced for a 100 ms recorder.

The parent creates a 16 MiB ``multiprocessing.shared_memory`` block (a file in /dev/shm,
mapped ``MAP_SHARED`` by every process that attaches to it) viewed as a float64 numpy
array, fills its first quarter, then starts a pool of three forked workers. Every worker
attaches to the block and, in three rounds:

1. writes its own quarter of the array (disjoint: each page has one writer);
2. writes a 2 MiB window in the middle of the array that all workers share (overlapping:
   those pages have three writers);
3. allocates and fills a private 4 MiB numpy array of its own (anonymous, one owner).

The parent also keeps a private 8 MiB array that the workers inherit copy-on-write at fork
and only read: those pages stay shared between parent and workers until they exit.
Prints "phase N" lines; takes about 6 s (200 ms steps: several session ticks per phase
even while the recorder attaches to new workers). Deterministic.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from multiprocessing import shared_memory

import numpy as np

STEP_S = 0.2
MIB = 1 << 20
SIZE = 16 * MIB
N_WORKERS = 3
_inherited: np.ndarray | None = None  # set before fork: the workers see it copy-on-write


def phase(n: int, what: str) -> None:
    print(f"phase {n}: {what}", flush=True)


def worker(args: tuple[str, int]) -> float:
    name, k = args
    shm = shared_memory.SharedMemory(name=name)
    a = np.ndarray(SIZE // 8, dtype=np.float64, buffer=shm.buf)
    quarter = a.size // 4
    total = 0.0
    # 1. disjoint: worker k writes quarter k + 1, an 8th at a time
    lo = (k + 1) * quarter if k + 1 < 4 else 0
    for step in range(4):
        s = lo + step * quarter // 4
        a[s : s + quarter // 4] = k + 1
        time.sleep(STEP_S)
    # 2. overlapping: everyone writes the same 2 MiB window
    mid = a.size // 2 - (MIB // 8)
    for _ in range(4):
        a[mid : mid + 2 * MIB // 8] += 1.0
        time.sleep(STEP_S)
    # 3. private: a worker's own anonymous memory; read the inherited array (no copy)
    own = np.full(4 * MIB // 8, float(k))
    assert _inherited is not None
    total += float(_inherited[::512].sum()) + float(own[::512].sum())
    time.sleep(6 * STEP_S)
    del a  # the view must go before the block is closed
    shm.close()
    return total


def main() -> int:
    global _inherited
    phase(0, "start")
    _inherited = np.arange(8 * MIB // 8, dtype=np.float64)  # private, before fork
    shm = shared_memory.SharedMemory(create=True, size=SIZE)
    try:
        a = np.ndarray(SIZE // 8, dtype=np.float64, buffer=shm.buf)
        a[: a.size // 4] = -1.0
        time.sleep(3 * STEP_S)
        phase(1, "pool: disjoint quarters, a shared window, private arrays")
        ctx = mp.get_context("fork")
        with ctx.Pool(N_WORKERS) as pool:
            totals = pool.map(worker, [(shm.name, k) for k in range(N_WORKERS)])
        phase(2, "pool done")
        time.sleep(3 * STEP_S)
        checksum = float(a[::512].sum()) + sum(totals)
        del a
    finally:
        shm.close()
        shm.unlink()
    phase(3, f"exit (checksum {checksum:.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
