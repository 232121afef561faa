#!/usr/bin/env python3
"""Build ``sample_data/fleet/``: short recordings of real programs with different inputs.

    python3 sample_data/make_fleet.py              # record the whole fleet (about a minute)
    python3 sample_data/make_fleet.py --only sort  # just the sort runs

Each run is recorded with ``pmviz.record`` (write tracking where this machine offers it),
anonymized with ``Capture.anonymize`` and saved as ``fleet/PROGRAM-VARIANT.pmviz`` with its
``summary.parquet``. Anonymization removes the command line, so the program's name is put
back as ``extra.program`` (``pmviz.summarize`` reads it as ``command_name``) and, because the
fleet comes from one machine, each run is given one of three made-up host labels
(``extra.host``: ``host-a`` ...) so the notebook can show per-host views. Both are labels,
not measurements.

Needs: root or ptrace rights over the children, python3 with numpy, sqlite3, Debian's
``redis-server`` and ``redis-tools``, coreutils ``sort`` and ``gzip``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

import pmviz
from pmviz.storage import save
from pmviz.summary import summarize

HERE = Path(__file__).resolve().parent
OUT = HERE / "fleet"
MAX_FLEET_BYTES = 5 << 20
HOSTS = ("host-a", "host-b", "host-c")

NUMPY = (
    "import numpy as np, time, sys; n = int(sys.argv[1]) << 17; "
    "a = np.random.default_rng(0).random(n); time.sleep(0.2); b = np.sort(a); "
    "c = a * 2 + b; time.sleep(0.3); del b, c; time.sleep(0.3)"
)


def _data(tmp: Path, mib: int) -> Path:
    """A text file of random numbers, ``mib`` MiB (reused between runs)."""
    p = tmp / f"numbers-{mib}.txt"
    if not p.exists():
        import numpy as np

        nums = np.random.default_rng(mib).integers(0, 10**9, (mib << 20) // 10)
        p.write_text("\n".join(map(str, nums.tolist())) + "\n")
    return p


def rec(cmd: list[str], interval: float = 0.05) -> pmviz.Capture:
    return pmviz.record(cmd, interval=interval, writes="auto", progress=False)


def numpy_run(tmp: Path, mib: int) -> pmviz.Capture:
    return rec([sys.executable, "-c", NUMPY, str(mib)])


def sqlite_run(tmp: Path, rows: int) -> pmviz.Capture:
    sql = (
        "PRAGMA cache_size=-200000; CREATE TABLE t(k INTEGER, v TEXT); "
        f"WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < {rows}) "
        "INSERT INTO t SELECT abs(random()) % 1000, hex(randomblob(32)) FROM r; "
        "CREATE INDEX tk ON t(k); SELECT count(*) FROM (SELECT k, max(v) FROM t GROUP BY k);"
    )
    return rec(["sqlite3", ":memory:", sql])


def sort_run(tmp: Path, mib: int) -> pmviz.Capture:
    return rec(["sort", "-n", "-o", os.devnull, str(_data(tmp, mib))])


def gzip_run(tmp: Path, mib: int) -> pmviz.Capture:
    return rec(["gzip", "-9", "-k", "-f", "-S", ".gz", str(_data(tmp, mib))])


def redis_run(tmp: Path, size: int) -> pmviz.Capture:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp), "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            ping = subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True
            )
            if ping.stdout.strip() == "PONG":
                break
            time.sleep(0.05)
        r = pmviz.Recorder(server.pid, interval=0.05, writes="auto", progress=False)
        r.start()
        try:
            subprocess.run(
                ["redis-benchmark", "-p", str(port), "-q", "-n", "20000", "-r", "20000",
                 "-d", str(size), "-c", "4", "-t", "set,get"],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(0.2)
        finally:
            cap = r.stop()
    finally:
        server.terminate()
        server.wait(timeout=10)
    return cap


# program -> (function, variants)
RUNS: dict[str, tuple[Callable[[Path, int], pmviz.Capture], tuple[int, ...]]] = {
    "numpy": (numpy_run, (8, 32, 64, 128)),  # MiB of float64
    "sqlite3": (sqlite_run, (20_000, 100_000, 300_000)),  # rows
    "sort": (sort_run, (2, 8, 24)),  # MiB of text
    "gzip": (gzip_run, (2, 8, 24)),  # MiB of text
    "redis-server": (redis_run, (64, 1024, 8192)),  # value bytes
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=sorted(RUNS), nargs="+")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    jobs = [(p, v) for p in (a.only or RUNS) for v in RUNS[p][1]]
    a.out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pmviz-fleet-") as td:
        tmp = Path(td)
        for k, (program, variant) in enumerate(tqdm(jobs, desc="recording", unit="run")):
            cap = RUNS[program][0](tmp, variant).anonymize()
            cap.meta = cap.meta.replace(
                extra={**cap.meta.extra, "program": program, "host": HOSTS[k % len(HOSTS)]}
            )
            path = a.out / f"{program}-{variant}.pmviz"
            if path.exists():
                shutil.rmtree(path)
            save(cap, str(path))
            summarize(str(path))
    total = sum(f.stat().st_size for f in a.out.rglob("*") if f.is_file())
    print(f"{len(list(a.out.glob('*.pmviz')))} captures, {total / 2**20:.2f} MiB in {a.out}")
    if total > MAX_FLEET_BYTES:
        raise SystemExit(f"the fleet is {total / 2**20:.1f} MiB: over the 5 MiB limit for git")


if __name__ == "__main__":
    main()
