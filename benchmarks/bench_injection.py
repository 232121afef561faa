"""Cost of write tracking by syscall injection (``pmviz.injection``).

1. Slowdown of a memory-writing C workload launched with ``pmviz.track`` and collected at
   1 Hz and 10 Hz, against the same workload untracked (the reference, measured in the same
   run, interleaved, best of N).
2. Time to attach and to detach (``attach()``, the part of it during which the target is
   stopped, ``close()``) for a small C program and a Python process holding 1 GiB of
   written memory.

Run: ``python3 benchmarks/bench_injection.py [--repeat N] [--markdown]``.
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from pmviz import injection
from pmviz.errors import NoSuchProcess

WORKLOAD_C = r"""
/* Writes one byte in each page of a 256 MiB buffer, pass after pass, plus a little
 * arithmetic per cache line: a page-touching, memory-bound workload (the worst case for
 * write tracking, whose cost is one write-protect fault per page per interval). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
int main(int argc, char **argv) {
    long size = 256L << 20, passes = atol(argv[1]);
    unsigned char *b = mmap(NULL, size, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned long sum = 0;
    for (long p = 0; p < passes; p++)
        for (long i = 0; i < size; i += 64) { b[i] += (unsigned char)(p + i); sum += b[i]; }
    printf("%lu\n", sum);
    return 0;
}
"""

SLEEPER_C = r"""
#include <unistd.h>
int main(void) { char c; return (int)read(0, &c, 1); }
"""

SQLITE_SQL = (
    "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n REAL);"
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 1500000) "
    "INSERT INTO t SELECT x, printf('%08d', x*7919 % 1000003), x*1.5 FROM c;"
    "CREATE INDEX ti ON t(v); UPDATE t SET n = n * 2 WHERE id % 3 = 0;"
    "SELECT count(*), sum(n), min(v), max(v) FROM t;"
)

BIG_PY = (
    "import numpy as np, sys; a = np.ones(1 << 27); print('ready', flush=True); sys.stdin.read()"
)


def compile_c(source: str, name: str, tmp: str) -> str:
    src = os.path.join(tmp, name + ".c")
    exe = os.path.join(tmp, name)
    with open(src, "w") as f:
        f.write(source)
    subprocess.run(["cc", "-O2", "-o", exe, src], check=True)
    return exe


def reap(proc: subprocess.Popen) -> float:
    """Reap ``proc`` with wait4 and return its CPU seconds (user + system): the target's
    own cost, including its write-protect faults, and insensitive to other load on the box.
    """
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0
    return usage.ru_utime + usage.ru_stime


def exited_within(pidfd: int, seconds: float) -> bool:
    """Wait up to ``seconds`` for the process to exit, without reaping it."""
    return bool(select.select([pidfd], [], [], max(0.0, seconds))[0])


def run_untracked(cmd: list[str]) -> tuple[float, float, str]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    cpu = reap(proc)
    return time.perf_counter() - t0, cpu, out


def run_tracked(cmd: list[str], hz: float) -> tuple[float, float, str, list[float], list[int]]:
    t0 = time.perf_counter()
    tracker = injection.track(cmd, stdout=subprocess.PIPE, text=True)
    pidfd = os.pidfd_open(tracker.pid)
    out_box: list[str] = []
    reader = threading.Thread(target=lambda: out_box.append(tracker.process.stdout.read()))
    reader.start()
    collect_s: list[float] = []
    n_pages: list[int] = []
    period = 1.0 / hz
    next_t = time.perf_counter() + period
    with tracker:
        while not exited_within(pidfd, next_t - time.perf_counter()):
            next_t += period
            c0 = time.perf_counter()
            try:
                written = tracker.collect()
            except NoSuchProcess:
                break
            collect_s.append(time.perf_counter() - c0)
            n_pages.append(written.n_pages)
    cpu = reap(tracker.process)
    elapsed = time.perf_counter() - t0
    os.close(pidfd)
    reader.join()
    return elapsed, cpu, out_box[0], collect_s, n_pages


def bench_slowdown(name: str, cmd: list[str], repeat: int) -> list[dict]:
    modes = [
        ("untracked", None),
        ("tracked, collect at 1 Hz", 1.0),
        ("tracked, collect at 10 Hz", 10.0),
    ]
    wall: dict[str, list[float]] = {m: [] for m, _ in modes}
    cpu: dict[str, list[float]] = {m: [] for m, _ in modes}
    collects: dict[str, list[float]] = {m: [] for m, _ in modes}
    pages: dict[str, list[int]] = {m: [] for m, _ in modes}
    ref_out = None
    for _ in range(repeat):  # interleaved, so drift in machine load affects all modes alike
        for mode, hz in modes:
            if hz is None:
                t, c, out = run_untracked(cmd)
            else:
                t, c, out, cs, pg = run_tracked(cmd, hz)
                collects[mode].extend(cs)
                pages[mode].extend(pg)
            ref_out = ref_out or out
            assert out == ref_out, f"{mode}: output differs from the untracked output"
            wall[mode].append(t)
            cpu[mode].append(c)
    base_wall, base_cpu = min(wall["untracked"]), min(cpu["untracked"])
    return [
        {
            "workload": name,
            "mode": mode,
            "seconds": min(wall[mode]),
            "ratio": min(wall[mode]) / base_wall,
            "cpu": min(cpu[mode]),
            "cpu_ratio": min(cpu[mode]) / base_cpu,
            "collects": len(collects[mode]) / repeat,
            "pages": statistics.mean(pages[mode]) if pages[mode] else 0,
            "ms": 1e3 * statistics.median(collects[mode]) if collects[mode] else 0,
        }
        for mode, _ in modes
    ]


def bench_attach(label: str, cmd: list[str], ready: str | None, repeat: int) -> dict:
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if ready:
            assert proc.stdout.readline().strip() == ready
        time.sleep(0.1)
        attach_s, stopped_s, close_s, registered = [], [], [], 0
        for _ in range(repeat):
            t0 = time.perf_counter()
            tracker = injection.attach(proc.pid)
            attach_s.append(time.perf_counter() - t0)
            stopped_s.append(tracker.attach_seconds)
            registered = tracker.registered.n_pages
            tracker.collect()
            t0 = time.perf_counter()
            tracker.close()
            close_s.append(time.perf_counter() - t0)
        return {
            "target": label,
            "registered_mib": registered * os.sysconf("SC_PAGE_SIZE") / 2**20,
            "attach_ms": 1e3 * statistics.median(attach_s),
            "stopped_ms": 1e3 * statistics.median(stopped_s),
            "close_ms": 1e3 * statistics.median(close_s),
        }
    finally:
        proc.kill()
        proc.wait()


def bench_launch(repeat: int) -> dict:
    """``track(["true"])`` (launcher shell, seize, inject at exec) vs ``subprocess.run``."""

    def tracked() -> float:
        t0 = time.perf_counter()
        with injection.track(["true"]) as t:
            t.wait()
        return time.perf_counter() - t0

    def plain() -> float:
        t0 = time.perf_counter()
        subprocess.run(["true"], check=True)
        return time.perf_counter() - t0

    for _ in range(3):  # warm up
        tracked(), plain()
    a, b = [], []
    for _ in range(repeat):  # interleaved, so load changes hit both alike
        a.append(tracked())
        b.append(plain())
    return {"tracked_ms": 1e3 * statistics.median(a), "plain_ms": 1e3 * statistics.median(b)}


def print_launch(r: dict) -> None:
    print(
        f"| launch `true`: track() {r['tracked_ms']:.2f} ms, subprocess.run "
        f"{r['plain_ms']:.2f} ms (median) | {r['tracked_ms'] / r['plain_ms']:.2f}x |"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--passes", type=int, default=100)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--launch-only", action="store_true", help="only the launch latency of track()")
    args = ap.parse_args()
    if args.launch_only:
        print_launch(bench_launch(30 * args.repeat))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        workload = compile_c(WORKLOAD_C, "workload", tmp)
        sleeper = compile_c(SLEEPER_C, "sleeper", tmp)
        slow = bench_slowdown(
            f"C: every page of 256 MiB, {args.passes} passes",
            [workload, str(args.passes)],
            args.repeat,
        )
        slow += bench_slowdown(
            "sqlite3 :memory:, 1.5M-row insert + index + update",
            ["sqlite3", ":memory:", SQLITE_SQL],
            args.repeat,
        )
        att = [
            bench_attach("C program blocked in read", [sleeper], None, 10 * args.repeat),
            bench_attach(
                "Python, 1 GiB written numpy array",
                [sys.executable, "-c", BIG_PY],
                "ready",
                3 * args.repeat,
            ),
        ]
    print(
        f"Launched workloads, best of {args.repeat} interleaved runs; target CPU = its user + "
        "system time (rusage), which includes its write-protect faults"
    )
    print()
    print(
        "| workload | mode | wall s | wall vs untracked | target CPU s | CPU vs untracked "
        "| collects/run | pages/collect | collect ms (median) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in slow:
        print(
            f"| {r['workload']} | {r['mode']} | {r['seconds']:.3f} | {r['ratio']:.3f}x | "
            f"{r['cpu']:.3f} | {r['cpu_ratio']:.3f}x | {r['collects']:.0f} | "
            f"{r['pages']:,.0f} | {r['ms']:.2f} |"
        )
    print()
    print("| target | registered MiB | attach() ms | target stopped ms | close() ms |")
    print("|---|---:|---:|---:|---:|")
    for r in att:
        print(
            f"| {r['target']} | {r['registered_mib']:,.1f} | {r['attach_ms']:.2f} | "
            f"{r['stopped_ms']:.2f} | {r['close_ms']:.2f} |"
        )
    print()
    print_launch(bench_launch(30 * args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
