"""Cost of ``pmviz.accounting.account`` per GiB resident, against reading ``smaps_rollup``.

A child process writes ``--gib`` GiB of anonymous memory and forks one child (so every page is
copy-on-write shared by two processes); both then wait. Timed, best of ``--repeat``, in the
same run: reading both ``smaps_rollup`` files (the kernel's own walk: the reference), one
full ``PAGEMAP_SCAN`` of both, and ``account()`` in pfn mode (root) and inode mode.

    python3 benchmarks/bench_accounting.py --gib 1 --repeat 3
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
import time

from pmviz._kernel.smaps import has_cap_sys_admin, read_rollup
from pmviz.accounting import account
from pmviz.scanning import scan

CHILD = textwrap.dedent(
    """
    import mmap, os, sys
    n = int(sys.argv[1])
    m = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for off in range(0, n, mmap.PAGESIZE):
        m[off] = 1
    pid = os.fork()
    if pid == 0:
        sys.stdin.read(); os._exit(0)
    print(pid, flush=True)
    sys.stdin.read()
    os.waitpid(pid, 0)
    """
)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    size = int(args.gib * (1 << 30))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pids = [proc.pid, int(proc.stdout.readline())]
        rss = sum(read_rollup(p)["Rss"] for p in pids)
        gib = rss / (1 << 30)
        rows = {
            "read smaps_rollup of both (reference)": best(
                lambda: [read_rollup(p) for p in pids], args.repeat
            ),
            "PAGEMAP_SCAN of both, full": best(lambda: [scan(p) for p in pids], args.repeat),
            "account(mode='inode')": best(lambda: account(pids, mode="inode"), args.repeat),
        }
        if has_cap_sys_admin():
            rows["account(mode='pfn')"] = best(lambda: account(pids, mode="pfn"), args.repeat)
        ref = rows["read smaps_rollup of both (reference)"]
        print(f"two processes, {gib:.2f} GiB resident in all (4 KiB pages), best of {args.repeat}")
        print("| step | ms | ms / GiB | / smaps_rollup |\n|---|---:|---:|---:|")
        for name, t in rows.items():
            print(f"| {name} | {t * 1e3:.1f} | {t * 1e3 / gib:.1f} | {t / ref:.2f} |")
        t = account(pids)
        print(
            f"counted once: {sum(t.column('counted_bytes').to_pylist()) / (1 << 30):.2f} GiB, "
            f"sum of RSS {sum(t.column('rss_bytes').to_pylist()) / (1 << 30):.2f} GiB "
            f"({t.schema.metadata[b'mode'].decode()} mode)"
        )
    finally:
        proc.stdin.close()
        proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
