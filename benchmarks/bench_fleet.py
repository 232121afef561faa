"""Fleet analysis at scale: 500 captures summarized on 1 vs 2 Dask workers, and DuckDB SQL
over all their region parts under a memory limit (spilling), on this machine, in one run.

The captures are synthetic, built through the public API (``pmviz.Capture.from_snapshots``,
saved with ``pmviz.storage.save``, format 2): each 60 snapshots of 400 regions whose
categories and sizes change (so the region parts hold keyframes and many change rows),
with written sets. Recording 500 real programs would take as long as they run; the
summaries and queries only see Parquet parts, which these are.

1. Summaries: ``Fleet.summaries`` with a ready ``LocalCluster`` of 1 and of 2 worker
   processes (cluster start-up timed apart), cached summaries deleted before each run;
   serial in-process as the reference. Repeated (``--repeat``), best and worst reported.
2. SQL: the ``snapshot_bytes`` view (each snapshot rebuilt from keyframes + changes: a
   window over every stored row) and a GROUP BY over every stored row, with
   ``memory_limit`` small against the data; peak RSS of the process running the queries
   (a fresh child, so nothing else is counted) and the bytes DuckDB spilled.

Run: ``python3 benchmarks/bench_fleet.py [--n 500] [--repeat 2] [--memory-limit 64MB]``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

import pmviz
from pmviz.capture import Capture, CaptureMeta
from pmviz.storage import save

PROGRAMS = ["api", "worker", "cache", "batch", "db"]


def synthetic(seed: int, n_snap: int = 60, n_reg: int = 400) -> Capture:
    rng = np.random.default_rng(seed)
    starts = 0x7F0000000000 + np.arange(n_reg, dtype=np.uint64) * 0x100000
    sizes = rng.integers(1, 64, n_reg).astype(np.uint64) * 4096
    cats = rng.choice(np.array([9, 11, 16, 12, 40], np.uint16), n_reg)
    scale = 1 + seed % 5
    snaps = []
    for i in range(n_snap):
        flip = rng.random(n_reg) < 0.05 * scale
        cats = np.where(flip, rng.choice(np.array([9, 11, 16, 12, 40], np.uint16), n_reg), cats)
        grow = rng.random(n_reg) < 0.02
        sizes = np.where(grow, sizes + np.uint64(4096), sizes)
        w = rng.random(n_reg) < 0.1 * scale
        wr = pmviz.Regions.from_arrays(
            starts[w], starts[w] + sizes[w], np.full(int(w.sum()), 2, np.uint16)
        )
        snaps.append(
            (
                i * 100_000_000,
                pmviz.Regions.from_arrays(starts, starts + sizes, cats.astype(np.uint16)),
                wr,
                None,
            )
        )
    meta = CaptureMeta(
        command=[PROGRAMS[seed % 5]],
        interval_ns=100_000_000,
        write_mechanism="uffd-wp",
        pmviz_version=pmviz.__version__,
        extra={"seed": seed},
    )
    return Capture.from_snapshots(meta, snaps)


def make(root: str, n: int) -> float:
    t = time.perf_counter()
    for i in range(n):
        save(synthetic(i), os.path.join(root, f"c{i:04d}.pmviz"))
    return time.perf_counter() - t


def clear(root: str) -> None:
    for p in glob.glob(os.path.join(root, "*.pmviz", "summary.parquet")):
        os.unlink(p)


def summaries(root: str, workers: int | None) -> tuple[float, float, object]:
    from distributed import Client, LocalCluster

    from pmviz import fleet

    f = fleet.open(os.path.join(root, "*.pmviz"))
    clear(root)
    if workers is None:
        t = time.perf_counter()
        df = f.summaries(client="serial", progress=False)
        return 0.0, time.perf_counter() - t, df
    t0 = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cl, Client(cl) as c:  # fmt: skip
        c.wait_for_workers(workers)
        start = time.perf_counter() - t0
        t = time.perf_counter()
        df = f.summaries(c, progress=False)
        return start, time.perf_counter() - t, df


QUERIES = {
    "peak resident per capture (snapshot_bytes: rebuild every snapshot)": (
        "SELECT capture_id, max(resident_bytes) AS peak, quantile_disc(dump_bytes, 0.99) "
        "FROM snapshot_bytes GROUP BY capture_id"
    ),
    "GROUP BY (capture, start) over every stored region row": (
        "SELECT count(*), sum(n) FROM (SELECT capture_id, start, count(*) AS n, "
        "sum(change) AS net FROM regions GROUP BY capture_id, start)"
    ),
    "sort every stored region row": (
        'SELECT count(*) FROM (SELECT * FROM regions ORDER BY categories, "end" - start, start '
        "OFFSET 1)"
    ),
}


def sql_child(root: str, memory_limit: str, spill: str) -> None:
    """In a fresh process: run the queries, print JSON with times, peak RSS and spill."""
    import threading

    from pmviz import fleet

    f = fleet.open(os.path.join(root, "*.pmviz"), memory_limit=memory_limit, temp_directory=spill,
                   threads=2)  # fmt: skip
    con = f.connect()
    rows = con.execute("SELECT count(*) FROM regions").fetchone()[0]
    out: dict = {"stored_rows": rows, "queries": {}, "spill_mib": {}}
    out["rss_before_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak = [0]
    done = threading.Event()

    def watch() -> None:  # what DuckDB has spilled at any moment (its files come and go)
        while not done.wait(0.02):
            size = 0
            for dp, _, fns in os.walk(spill):
                for fn in fns:
                    try:
                        size += os.path.getsize(os.path.join(dp, fn))
                    except OSError:
                        pass
            peak[0] = max(peak[0], size)

    w = threading.Thread(target=watch, daemon=True)
    w.start()
    for name, q in QUERIES.items():
        peak[0] = 0
        t = time.perf_counter()
        con.execute(q).fetchall()
        out["queries"][name] = time.perf_counter() - t
        out["spill_mib"][name] = peak[0] / 2**20
    done.set()
    w.join()
    out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--memory-limit", default="64MB")
    ap.add_argument("--sql-only", action="store_true", help="skip the summaries")
    ap.add_argument("--sql-child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.sql_child:
        sql_child(*a.sql_child)
        return
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as root:
        gen = make(root, a.n)
        files = glob.glob(os.path.join(root, "**", "*.parquet"), recursive=True)
        size = sum(os.path.getsize(p) for p in files)
        print(f"{a.n} synthetic captures written in {gen:.1f} s ({size / 2**20:.1f} MiB of parts)")
        if not a.sql_only:
            bench_summaries(root, a.n, a.repeat)
        with tempfile.TemporaryDirectory(prefix="bench-fleet-spill-") as spill:
            for limit in (a.memory_limit, "4GB"):
                r = subprocess.run([sys.executable, __file__, "--sql-child", root, limit, spill],
                                   capture_output=True, text=True, check=True)  # fmt: skip
                out = json.loads(r.stdout.strip().splitlines()[-1])
                print(f"DuckDB over {out['stored_rows']:,} stored region rows, memory_limit={limit}, "
                      f"2 threads: peak RSS {out['rss_mib']:.0f} MiB "
                      f"({out['rss_before_mib']:.0f} MiB before the queries)")  # fmt: skip
                for name, t in out["queries"].items():
                    print(f"  {name}: {t:.2f} s, spilled at most {out['spill_mib'][name]:.0f} MiB")


def bench_summaries(root: str, n: int, repeat: int) -> None:
    res: dict[str, list[float]] = {"serial": [], "1": [], "2": []}
    starts: dict[str, list[float]] = {"1": [], "2": []}
    ref = None
    for _ in range(repeat):
        for key, w in (("serial", None), ("1", 1), ("2", 2)):
            st, t, df = summaries(root, w)
            res[key].append(t)
            if key != "serial":
                starts[key].append(st)
            d = df.drop(columns=["url"]).sort_values("capture_id").reset_index(drop=True)
            assert df["error"].isna().all()
            if ref is None:
                ref = d
            else:
                assert d.equals(ref), "summaries differ between runs"
    print(f"summaries of {n} captures (cache cleared each run; best / worst of {repeat}):")
    for k, v in res.items():
        extra = (
            f", cluster start {min(starts[k]):.1f}-{max(starts[k]):.1f} s" if k in starts else ""
        )
        print(f"  {k:>6} worker(s): {min(v):6.1f} / {max(v):6.1f} s "
              f"({n / min(v):.0f} captures/s){extra}")  # fmt: skip
    print(f"  speed-up 2 vs 1 workers: {min(res['1']) / min(res['2']):.2f}x (best), "
          f"{max(res['1']) / max(res['2']):.2f}x (worst)")  # fmt: skip


if __name__ == "__main__":
    main()
