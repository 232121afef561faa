"""Cost and yield of access tracking (``pmviz.accessed``), on this machine, in one run.

1. smaps walk: ``/proc/PID/smaps`` read + parse and ``clear_refs`` of a Python child holding
   N GiB resident (anonymous, 4 KiB pages), per GiB, against a full ``PAGEMAP_SCAN`` of the
   same process (the reference, same run).
2. redis-server under ``redis-benchmark -t get`` (a read-heavy program): GET throughput and
   redis CPU time with ``accessed="probe"`` at the default budget (collect every interval)
   against no probing (the reference, interleaved, best of N); the refaults the probes cost;
   accessed (vma: exact per VMA; probe: estimate) against written (uffd-wp by injection)
   bytes per interval.

3. Through the Recorder (``pmviz.record(..., accessed=...)``): the median time a snapshot takes
   with ``accessed="none"`` (the reference), ``"vma"`` and ``"probe"`` (default budget), and the
   access mechanism's own share (``access_telemetry.accessed_ns``), on the same N GiB child,
   modes interleaved, best of N; and the recorded probe estimate of a quarter-read 8 MiB area
   against the truth (the setup of ``tests/test_accessed_recorder.py``), over N runs
   (``--recorder`` runs only this).

Needs root for swap (a temporary swap file is made and removed when none is on) and for
process_madvise on another process (CAP_SYS_NICE).

Run: ``python3 benchmarks/bench_accessed.py [--gib 1] [--repeat 3] [--seconds 6]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from pmviz import injection
from pmviz.accessed import AccessProbe, VmaReferenced, parse_smaps
from pmviz.accessed._probe import swap_active
from pmviz.scanning import Pagemap

HOLD = (
    "import mmap, sys; n = int(sys.argv[1]) << 30; m = mmap.mmap(-1, n); "
    "[m.__setitem__(i, 1) for i in range(0, n, 4096)]; print('ok', flush=True); sys.stdin.read()"
)


@contextlib.contextmanager
def _swap(size_mib: int = 1024):
    if swap_active():
        yield "existing"
        return
    d = tempfile.mkdtemp(prefix="pmviz-bench-swap-")
    path = os.path.join(d, "swap")
    try:
        subprocess.run(["fallocate", "-l", f"{size_mib}M", path], check=True)
        os.chmod(path, 0o600)
        subprocess.run(["mkswap", path], check=True, capture_output=True)
        subprocess.run(["swapon", path], check=True)
        yield path
    finally:
        subprocess.run(["swapoff", path], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


def bench_smaps(gib: int, repeat: int) -> dict[str, float]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(gib)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None and child.stdout.readline().startswith(b"ok")
        best: dict[str, float] = {}
        with VmaReferenced(child.pid) as vr, Pagemap(child.pid) as pm:
            for _ in range(repeat):
                t0 = time.perf_counter()
                text = vr._read_smaps()
                t1 = time.perf_counter()
                rows = parse_smaps(text)
                t2 = time.perf_counter()
                vr._clear()
                t3 = time.perf_counter()
                pm.scan()
                t4 = time.perf_counter()
                for k, v in (
                    ("smaps read", t1 - t0),
                    ("parse", t2 - t1),
                    ("clear_refs", t3 - t2),
                    ("PAGEMAP_SCAN (reference)", t4 - t3),
                ):
                    best[k] = min(best.get(k, 1e9), v)
        resident = int(rows["resident_bytes"].sum())
        return {k: v * 1e3 / (resident / (1 << 30)) for k, v in best.items()} | {
            "resident GiB": resident / (1 << 30),
            "VMAs": float(len(rows)),
        }
    finally:
        child.kill()
        child.wait()


def bench_parse(n_vmas: int = 50000) -> dict[str, float]:
    """parse_smaps on ``n_vmas`` VMAs (this process's smaps repeated) against a per-line loop."""
    with open("/proc/self/smaps", "rb") as f:
        text = f.read()
    big = text * (n_vmas // text.count(b"Referenced:"))
    t0 = time.perf_counter()
    rows = parse_smaps(big)
    t1 = time.perf_counter()
    lines = big.decode().splitlines()
    ref = [int(ln.split()[1]) for ln in lines if ln.startswith("Referenced:")]
    heads = [int(ln.split("-", 1)[0], 16) for ln in lines if ln[:1] in "0123456789abcdef"]
    t2 = time.perf_counter()
    assert ref == (rows["referenced_bytes"] >> 10).tolist() and len(heads) == len(rows)
    return {
        "VMAs": float(len(rows)),
        "parse_smaps ms": (t1 - t0) * 1e3,
        "per-line Python ms (reference)": (t2 - t1) * 1e3,
    }


def _redis(tmp: str) -> tuple[subprocess.Popen, str]:
    sock = os.path.join(tmp, "redis.sock")
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    return proc, sock


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _get_run(sock: str, n: int) -> float:
    out = subprocess.run(
        [
            "redis-benchmark",
            "-s",
            sock,
            "-t",
            "get",
            "-n",
            str(n),
            "-r",
            "200000",
            "-d",
            "512",
            "-c",
            "8",
            "-q",
            "--csv",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.strip().splitlines()[-1].split(",")[1].strip('"'))


def bench_redis(repeat: int, seconds: float, requests: int) -> dict[str, object]:
    tmp = tempfile.mkdtemp(prefix="pmviz-bench-redis-")
    proc, sock = _redis(tmp)
    try:
        subprocess.run(
            [
                "redis-benchmark",
                "-s",
                sock,
                "-t",
                "set",
                "-n",
                "400000",
                "-r",
                "200000",
                "-d",
                "512",
                "-q",
            ],
            check=True,
            capture_output=True,
        )
        base_rps, probe_rps, base_cpu, probe_cpu = [], [], [], []
        refaults = probed = 0
        acc_probe: list[float] = []
        for _ in range(repeat):  # interleaved: reference, then probed
            c0 = _cpu(proc.pid)
            base_rps.append(_get_run(sock, requests))
            base_cpu.append(_cpu(proc.pid) - c0)
            stop = threading.Event()
            ap = AccessProbe(proc.pid, interval=seconds / 6)
            samples = []

            def loop(ap=ap, samples=samples) -> None:
                while not stop.wait(seconds / 6):
                    samples.append(ap.collect())

            th = threading.Thread(target=loop)
            c0 = _cpu(proc.pid)
            th.start()
            probe_rps.append(_get_run(sock, requests))
            probe_cpu.append(_cpu(proc.pid) - c0)
            stop.set()
            th.join()
            refaults += ap.refaults
            probed += ap.probed_total
            ap.close()
            acc_probe += [float(np.nansum(_est(s))) for s in samples]
        # accessed (vma, exact) vs written (uffd-wp, injected) per interval under GETs
        tracker = injection.attach(proc.pid)
        vr = VmaReferenced(proc.pid)
        tracker.collect()
        vr.collect()
        acc, wr = [], []
        th = threading.Thread(target=_get_run, args=(sock, requests))
        th.start()
        while th.is_alive():
            time.sleep(seconds / 6)
            acc.append(int(vr.collect().referenced_bytes.sum()))
            wr.append(tracker.collect().size)
        th.join()
        tracker.close()
        vr.close()
        resident = int(VmaReferenced(proc.pid).collect().resident_bytes.sum())
        return {
            "GET rps probe/none (best)": max(probe_rps) / max(base_rps),
            "redis CPU s probe/none (best)": min(probe_cpu) / min(base_cpu),
            "rps none / probe": f"{max(base_rps):,.0f} / {max(probe_rps):,.0f}",
            "refaults per probed page": refaults / max(probed, 1),
            "refaults per second": refaults / max(sum(1 for _ in acc_probe), 1) / (seconds / 6),
            "redis resident MiB": resident / (1 << 20),
            "accessed MiB/interval (vma, median)": float(np.median(acc)) / (1 << 20),
            "written MiB/interval (uffd-wp, median)": float(np.median(wr)) / (1 << 20),
            "accessed MiB/interval (probe est., median)": float(np.median(acc_probe)) / (1 << 20)
            if acc_probe
            else float("nan"),
            "interval s": seconds / 6,
        }
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def _est(sample) -> np.ndarray:
    r = sample.rows
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(
            r["probed_pages"] > 0,
            r["accessed_pages"] / r["probed_pages"] * r["resident_pages"] * 4096,
            0.0,
        )


def bench_accuracy(rounds: int, interval: float) -> dict[str, float]:
    """Probe estimates at the default budget against known page sets (a layout child)."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    from layouts import Area, spawn_layout

    n = 16384  # 64 MiB per area
    truth = {"hot": n, "mix": n // 4, "cold": 0}
    areas = [Area(k, n, write=[[0, n]]) for k in truth]
    errs: list[float] = []
    area_err: dict[str, list[float]] = {k: [] for k in truth}
    probes: list[int] = []
    with spawn_layout(areas) as lay, AccessProbe(lay.pid, interval=interval) as ap:
        for _ in range(rounds):
            time.sleep(interval)
            lay.do("read", "hot", [[0, n]])
            lay.do("read", "mix", [[0, n, 4]])
            s = ap.collect()
            est_total = true_total = 0.0
            for k, t in truth.items():
                lo, hi = lay.range(k)
                sel = (s.start >= lo) & (s.end <= hi)
                est = float(_est(s)[sel].sum()) / 4096
                area_err[k].append(abs(est - t) / n)
                est_total += est
                true_total += t
            errs.append(abs(est_total - true_total) / true_total)
            probes.append(int(s.probed_pages.sum()))
    out = {
        "probes per interval (median)": float(np.median(probes)),
        "total accessed pages: relative error median": float(np.median(errs)),
        "total accessed pages: relative error max": float(np.max(errs)),
    }
    for k, v in area_err.items():
        out[f"{k} area ({truth[k]}/{n} pages read): |error| / area, max"] = float(np.max(v))
    return out


def notebook_demo(
    seconds: float = 6.0, interval: float = 0.5, out_png: str | None = None, probe: bool = False
):
    """Notebook 02's reads section: redis under GETs, recorded, with both access mechanisms.

    Returns ``(capture, vma_series, probe_series)`` and, with ``out_png``, saves a figure:
    accessed vs written working set, the access heatmap on the capture's address axis, and
    idle ages. ``read_mostly(vma_series, capture)`` is the per-VMA table.

    ``probe=True`` also runs ``AccessProbe``; on main as of this writing the recorder then
    fails once paged-out probes sit next to uffd-wp markers (``resolve_swapped`` returns more
    rows than the scan had, which ``Recorder._run`` writes back in place).
    """
    import pmviz
    from pmviz.analysis.accessed import AccessSeries, access_heatmap_grid, accessed_wss

    tmp = tempfile.mkdtemp(prefix="pmviz-demo-redis-")
    proc, sock = _redis(tmp)
    try:
        subprocess.run(
            [
                "redis-benchmark",
                "-s",
                sock,
                "-t",
                "set",
                "-n",
                "200000",
                "-r",
                "100000",
                "-d",
                "512",
                "-q",
            ],
            check=True,
            capture_output=True,
        )
        rec = pmviz.Recorder(proc.pid, interval=interval, progress=False).start()
        vr = VmaReferenced(proc.pid)
        ap = AccessProbe(proc.pid, interval=interval) if probe and swap_active() else None
        load = subprocess.Popen(
            [
                "redis-benchmark",
                "-s",
                sock,
                "-t",
                "get",
                "-n",
                "100000000",
                "-r",
                "100000",
                "-d",
                "512",
                "-c",
                "4",
                "-q",
            ],
            stdout=subprocess.DEVNULL,
        )
        vs, ps = [], []
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:  # one sample of each per interval
            time.sleep(interval)
            vs.append(vr.collect())
            if ap is not None:
                ps.append(ap.collect())
        load.kill()
        load.wait()
        cap = rec.stop()
        vr.close()
        if ap is not None:
            ap.close()
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    vma = AccessSeries.from_samples(vs)
    probe = AccessSeries.from_samples(ps) if ps else None
    if out_png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from pmviz.plotting.accessed import (
            access_heatmap,
            access_idle_histogram,
            accessed_wss_lines,
        )

        fig, axes = plt.subplots(1, 3, figsize=(18, 5))
        accessed_wss_lines(accessed_wss(vma, cap), ax=axes[0])
        access_heatmap(access_heatmap_grid(probe or vma, cap, addr_bins=256), ax=axes[1])
        access_idle_histogram(vma, ax=axes[2])
        fig.tight_layout()
        fig.savefig(out_png, dpi=80)
        plt.close(fig)
    return cap, vma, probe


def bench_recorder(gib: int, repeat: int, count: int = 12) -> dict[str, float]:
    """Median snapshot time per accessed mode, through the Recorder, same child, interleaved."""
    import pmviz

    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(gib)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"ok"
        best: dict[str, list[float]] = {}
        for _ in range(repeat):
            for mode in ("none", "vma", "probe"):
                cap = pmviz.record(
                    child.pid, interval=0.25, count=count, writes="none", accessed=mode,
                    progress=False,
                )  # fmt: skip
                snap = np.median(cap.telemetry["snapshot_ns"][1:]) / 1e6
                tel = cap.accessed_telemetry
                acc = np.median(tel["accessed_ns"][1:]) / 1e6 if tel is not None else 0.0
                ref = int(tel["refaults"].sum()) if tel is not None else 0
                prev = best.get(mode)
                if prev is None or snap < prev[0]:
                    best[mode] = [snap, acc, ref]
        out = {}
        for mode, (snap, acc, ref) in best.items():
            out[f"{mode}: snapshot ms (median)"] = snap
            out[f"{mode}: of which access sampling ms"] = acc
            out[f"{mode}: snapshot / none"] = snap / best["none"][0]
            if mode == "probe":
                out["probe: refaults over the recording"] = ref
        return out
    finally:
        child.kill()
        child.wait()


READER = r"""
import mmap, time
N, P = 2048, mmap.PAGESIZE
areas, spacers = {}, []
for k in ("hot", "cold", "mix"):  # unmapped gaps between the areas
    areas[k] = mmap.mmap(-1, N * P)
    spacers.append(mmap.mmap(-1, 512 * P))
for g in spacers:
    g.close()
for m in areas.values():
    for i in range(0, N * P, P):
        m[i] = 1
import ctypes
addr = {k: ctypes.addressof(ctypes.c_char.from_buffer(m)) for k, m in areas.items()}
print(" ".join(f"{k}={v}" for k, v in addr.items()), flush=True)
hot, mix = areas["hot"], areas["mix"]
while True:  # reads only: every page of hot, every 4th page of mix, every 50 ms
    s = 0
    for i in range(0, N * P, P):
        s += hot[i]
    for i in range(0, N * P, 4 * P):
        s += mix[i]
    time.sleep(0.05)
"""


def bench_recorded_accuracy(runs: int) -> dict[str, float]:
    """Recorded probes (pages_per_s=1e6, max_fraction=0.25, 6 x 0.5 s): the summed estimate of
    the accessed pages of a quarter-read area against the truth, and whether the truth lies
    inside the summed per-region Wilson 99.9 % bounds."""
    import pmviz
    from pmviz.accessed import wilson_interval

    page = os.sysconf("SC_PAGE_SIZE")
    errs, inside = [], 0
    for run in range(runs):
        child = subprocess.Popen([sys.executable, "-c", READER], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            addr = dict(kv.split("=") for kv in child.stdout.readline().split())
            cap = pmviz.record(
                child.pid, interval=0.5, count=6, accessed="probe", writes="none",
                accessed_options={"pages_per_s": 1e6, "max_fraction": 0.25, "seed": run},
                progress=False,
            )  # fmt: skip
        finally:
            child.kill()
            child.wait()
        a = int(addr["mix"])
        b = a + 2048 * page
        est = lo = hi = truth = 0.0
        for i in range(1, len(cap)):  # snapshot 0's interval began at start()
            rows = cap.probed_at(i)
            m = (rows["start"] >= a) & (rows["end"] <= b) & (rows["probed_pages"] > 0)
            n, x = rows["probed_pages"][m], rows["accessed_pages"][m]
            res = rows["resident_pages"][m]
            wl, wh = wilson_interval(x, n, z=3.29)
            est += float((x / n * res).sum())
            lo += float((wl * res).sum())
            hi += float((wh * res).sum())
            truth += 2048 / 4
        errs.append((est - truth) / truth)
        inside += lo <= truth <= hi
    return {
        "recorded probe, 1/4-read area: error min %": 100 * min(errs),
        "recorded probe, 1/4-read area: error max %": 100 * max(errs),
        "recorded probe, 1/4-read area: error mean %": 100 * float(np.mean(errs)),
        "recorded probe: truth inside 99.9 % bounds (runs)": inside,
        "runs": runs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=6.0, help="sets the interval (seconds/6)")
    ap.add_argument("--requests", type=int, default=400000)
    ap.add_argument("--demo", metavar="PNG", help="only run notebook_demo and save its figure")
    ap.add_argument("--recorder", action="store_true", help="only the Recorder comparison (3)")
    args = ap.parse_args()
    if args.recorder:
        with _swap():
            print(f"## through the Recorder ({args.gib} GiB resident, best of {args.repeat})")
            for k, v in bench_recorder(args.gib, args.repeat).items():
                print(f"- {k}: {v:.3f}")
            print("## recorded probe accuracy (8 MiB areas: all / 1/4 / none read)")
            for k, v in bench_recorded_accuracy(2 * args.repeat).items():
                print(f"- {k}: {v:.2f}")
        return
    if args.demo:
        from pmviz.analysis.accessed import read_mostly

        with _swap():
            cap, vma, probe = notebook_demo(out_png=args.demo)
        print(cap)
        print(read_mostly(vma, cap).to_pandas().head(8).to_string())
        return
    print("## smaps walk (ms per GiB resident)")
    for k, v in bench_smaps(args.gib, args.repeat).items():
        print(f"- {k}: {v:.3f}")
    print("## smaps parse")
    for k, v in bench_parse().items():
        print(f"- {k}: {v:.1f}")
    with _swap():
        print("## probe accuracy at the default budget (3 x 64 MiB: all / 1/4 / none read)")
        for k, v in bench_accuracy(8, args.seconds / 6).items():
            print(f"- {k}: {v:.4f}")
        print("## redis-server under redis-benchmark -t get")
        for k, v in bench_redis(args.repeat, args.seconds, args.requests).items():
            print(f"- {k}: {v if isinstance(v, str) else f'{v:.3f}'}")


if __name__ == "__main__":
    main()
