"""Analysis at scale: the heatmap of 10^8-10^9 region rows with low churn, streamed.

Issue 11.3/benchmark: the heatmap of a huge capture in <= 2x the time needed just to read its
region rows, in bounded memory. The capture is synthetic and never exists densely:
``SyntheticCapture`` generates its ``changes()`` (the first snapshot in full, then ``churn`` of
the rows changing category per snapshot) and its ``chunks()`` (the dense snapshots, rebuilt
from those changes) on the fly, the way a capture that stores keyframes + changes serves them.
Its all-snapshot arrays (``regions``, ``region_offsets``) raise: the analysis cannot use them.

Each measurement runs in its own child process (peak RSS = that child's ``ru_maxrss``):

* ``changes``: iterate ``capture.changes()`` (the reading reference: what the heatmap needs);
* ``read`` (stored captures): iterate ``capture.changes(whole_keyframes=True)``, the stored
  rows as pmviz's reader decodes them (keyframes whole, not diffed): what the heatmap reads;
* ``chunks``: iterate ``capture.chunks()`` (dense snapshots: what a per-snapshot scan reads);
* ``heatmap``: ``heatmap_grid(capture, "present", addr_bins=B, time_bins=B)``.

``--write PATH`` stores the synthetic capture through ``pmviz.storage.save`` (which encodes
it as keyframes + changes, chunk by chunk: the dense form never exists). ``--capture PATH``
measures a stored capture (``pmviz.open``, timed with each step) against ``pyarrow``: reading
every region part with ``pyarrow.parquet.read_table`` (all columns), the issue's reference.

Run: ``python3 benchmarks/bench_analysis_scale.py [--snapshots 1000] [--regions 100000]
[--churn 0.002] [--bins 1000] [--repeat N] [--capture PATH | --write PATH]``

The issue's 10^9-row benchmark (a stored capture, against pyarrow reading its region parts)::

    python3 benchmarks/bench_analysis_scale.py --snapshots 1000 --regions 1000000 --write D/g.pmviz
    python3 benchmarks/bench_analysis_scale.py --capture D/g.pmviz --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

from pmviz.capture import Capture, CaptureMeta, Changes
from pmviz.maps import VMA_DTYPE, VmaKind, Vmas
from pmviz.regions import REGION_DTYPE

PAGE = 4096
PRESENT, WRITTEN, SWAPPED = 8, 2, 4
STATES = np.array([PRESENT | WRITTEN, PRESENT, SWAPPED, 0], np.uint64)


class SyntheticCapture(Capture):
    """``n_snap`` snapshots of ``n_reg`` regions over 8 VMAs 16 GiB apart (room for 10^6
    regions: the rows stay sorted); ``churn`` of them change per step."""

    def __init__(self, n_snap: int, n_reg: int, churn: float, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        lens = rng.integers(1, 8, n_reg).astype(np.uint64)
        gaps = rng.integers(1, 7, n_reg).astype(np.uint64)  # >= 1: neighbours never merge
        vma_of = (np.arange(n_reg) * 8) // n_reg
        base = np.uint64(0x7F0000000000) + vma_of.astype(np.uint64) * np.uint64(1 << 34)
        pos = np.zeros(n_reg, np.uint64)
        for v in range(8):  # per VMA
            sel = vma_of == v
            pos[sel] = np.cumsum(gaps[sel] + lens[sel]) - lens[sel]
        self._start = base + pos * np.uint64(PAGE)
        self._end = self._start + lens * np.uint64(PAGE)
        table = np.zeros(8, VMA_DTYPE)
        table["start"] = [self._start[vma_of == v].min() for v in range(8)]
        table["end"] = [self._end[vma_of == v].max() for v in range(8)]
        table["kind"], table["perms"] = int(VmaKind.ANON), b"rw-p"
        self._state0 = rng.integers(0, 4, n_reg)
        self._k = max(1, int(round(churn * n_reg)))
        self._seed = seed
        self._for_save = False
        self.meta = CaptureMeta(interval_ns=100_000_000)
        self.marks = []
        self.time_ns = np.arange(n_snap, dtype=np.int64) * 100_000_000
        self.vma_index = np.zeros(n_snap, np.int32)
        self.telemetry = {"n_regions": np.full(n_snap, n_reg, np.int64)}
        self._vma_tables = [Vmas(table, [""] * 8)]
        self.written_offsets = None
        self._written = None
        self._side = {}  # no side tables (access samples)
        self.n_rows = n_snap * n_reg

    @property
    def regions(self) -> np.ndarray:
        raise AssertionError("SyntheticCapture has no dense regions array")

    @property
    def region_offsets(self) -> np.ndarray:  # type: ignore[override]
        raise AssertionError("SyntheticCapture has no dense region offsets")

    @region_offsets.setter
    def region_offsets(self, _value) -> None:
        raise AssertionError("read-only")

    def _steps(self):
        """``(snapshot, changed row indices, old states, new states)`` for snapshots 1..n-1."""
        rng = np.random.default_rng(self._seed + 1)
        state = self._state0.copy()
        n = len(state)
        for i in range(1, self.n_snapshots):  # per snapshot: k random rows change state
            idx = np.unique(rng.integers(0, n, self._k))
            old = state[idx]
            new = (old + rng.integers(1, 4, idx.size)) % 4
            state[idx] = new
            yield i, idx, old, new

    def _rows(self, idx: np.ndarray, states: np.ndarray) -> np.ndarray:
        r = np.empty(idx.size, REGION_DTYPE)
        r["start"], r["end"], r["categories"] = self._start[idx], self._end[idx], STATES[states]
        return r

    def changes(self, snapshots=None, *, max_rows=1 << 22, whole_keyframes=False):
        # (snapshot 0 is the only keyframe: whole_keyframes changes nothing here)
        assert snapshots is None or snapshots == slice(0, self.n_snapshots), snapshots
        n_reg = self._start.size
        all_idx = np.arange(n_reg)
        # The first chunk brings the whole first snapshot.
        buf = [
            (np.zeros(n_reg, np.int64), self._rows(all_idx, self._state0), np.ones(n_reg, np.int8))
        ]
        size, first = n_reg, 0
        for i, idx, old, new in self._steps():
            snap = np.full(2 * idx.size, i, np.int64)
            rows = np.concatenate([self._rows(idx, old), self._rows(idx, new)])
            sign = np.concatenate([-np.ones(idx.size, np.int8), np.ones(idx.size, np.int8)])
            o = np.argsort(rows["start"], kind="stable")
            buf.append((snap, rows[o], sign[o]))
            size += rows.size
            if size >= max_rows:
                yield _changes(first, i + 1, buf)
                buf, size, first = [], 0, i + 1
        if buf:
            yield _changes(first, self.n_snapshots, buf)

    @property
    def keyframes(self) -> np.ndarray:
        # Stored whole only for ``save`` (``--write``): it then encodes the dense snapshots of
        # ``_decode_chunks`` itself. To an analysis this capture is keyframe + changes.
        return np.arange(self.n_snapshots) if self._for_save else np.zeros(1, np.int64)

    def _decode_chunks(self, a, stop, max_rows):
        """Dense snapshots ``[a, stop)`` as ``(first, rows, counts)`` (``Capture``'s protocol)."""
        assert a == 0 and stop == self.n_snapshots, (a, stop)
        n_reg = self._start.size
        per = max(1, max_rows // n_reg)
        state = self._state0.copy()
        all_idx = np.arange(n_reg)
        steps = self._steps()
        for a in range(0, self.n_snapshots, per):
            b = min(a + per, self.n_snapshots)
            out = np.empty((b - a) * n_reg, REGION_DTYPE)
            for j, i in enumerate(range(a, b)):  # per snapshot
                if i:
                    _, idx, _, new = next(steps)
                    state[idx] = new
                out[j * n_reg : (j + 1) * n_reg] = self._rows(all_idx, state)
            yield a, out, np.full(b - a, n_reg, np.int64)

    def chunks(self, snapshots=None, *, max_rows=1 << 22):
        assert snapshots is None or snapshots == slice(0, self.n_snapshots), snapshots
        for a, out, counts in self._decode_chunks(0, self.n_snapshots, max_rows):
            b = a + counts.size
            off = np.concatenate([[0], np.cumsum(counts)])
            yield a, Capture(self.meta, self.time_ns[a:b], out, off, vma_tables=self._vma_tables)


def _changes(first: int, end: int, buf) -> Changes:
    snap, rows, sign = (np.concatenate(x) for x in zip(*buf))
    return Changes(first, end, snap, rows, sign)


def write(args) -> None:
    """Store the synthetic capture at ``args.write`` through ``pmviz.storage.save``."""
    from pmviz.storage import save

    cap = SyntheticCapture(args.snapshots, args.regions, args.churn)
    cap._for_save = True
    t, c = time.perf_counter(), time.process_time()
    save(cap, args.write)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.write) for f in fs)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        f"wrote {args.write}: {args.snapshots * args.regions:,} region rows, "
        f"{size / 2**20:,.0f} MiB on disk, in {wall:.0f} s ({cpu:.0f} s CPU, peak RSS "
        f"{rss / 2**20:,.0f} MiB)"
    )


def region_parts(path: str) -> list[str]:
    from pmviz.storage import format as fmt

    parts, _ = fmt.list_parts(path, "regions")
    return [p.path for p in parts]


def child(args) -> None:
    # Libraries are imported before any timer starts, pmviz's storage layer (pyarrow) as the
    # reference's pyarrow.parquet: the steps time reading and analysis, not imports.
    import pyarrow.parquet  # noqa: F401

    import pmviz.storage  # noqa: F401
    from pmviz.analysis import heatmap_grid

    if args.child == "pyarrow":  # the reference: pyarrow reading the region parts, all columns
        import pyarrow.parquet as pq

        paths = region_parts(args.capture)
        t, c = time.perf_counter(), time.process_time()
        n = 0
        for p in paths:  # one part at a time, as a reader with bounded memory would
            n += pq.read_table(p).num_rows
        what = f"{n:,} stored rows in {len(paths)} part(s)"
    else:
        t, c = time.perf_counter(), time.process_time()
        cap = open_capture(args)  # timed: opening a stored capture reads its footers
        if args.child == "changes":
            n = sum(ch.rows.size for ch in cap.changes())
            what = f"{n:,} change rows"
        elif args.child == "read":  # the stored rows as pmviz reads them, keyframes whole
            n = sum(ch.rows.size for ch in cap.changes(whole_keyframes=True))
            what = f"{n:,} stored rows"
        elif args.child == "chunks":
            n = sum(ch.regions.size for _, ch in cap.chunks())
            what = f"{n:,} region rows"
        else:
            g = heatmap_grid(cap, "present", addr_bins=args.bins, time_bins=args.bins)
            what = f"grid {g.grid.shape}, mean {np.nanmean(g.grid):.4f}"
            if args.capture:
                what += (
                    f"; stored rows {cap.stored_rows:,} = {cap.stored_rows / cap.n_regions:.2%}"
                    f" of {cap.n_regions:,} dense"
                )
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"wall": wall, "cpu": cpu, "rss": rss, "what": what}))


def open_capture(args) -> Capture:
    if args.capture:
        import pmviz

        return pmviz.open(args.capture)
    return SyntheticCapture(args.snapshots, args.regions, args.churn)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--snapshots", type=int, default=1000)
    ap.add_argument("--regions", type=int, default=100_000)
    ap.add_argument("--churn", type=float, default=0.002)
    ap.add_argument("--bins", type=int, default=1000)
    ap.add_argument("--capture", help="a stored capture to measure instead of the synthetic one")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each step; the best is shown")
    ap.add_argument("--write", help="store the synthetic capture at this path (then measure it "
                    "with --capture PATH)")  # fmt: skip
    ap.add_argument(
        "--steps",
        default=None,
        help="comma-separated steps to run (default: changes,chunks,heatmap; with --capture "
        "pyarrow,read,changes,heatmap)",
    )
    ap.add_argument(
        "--child",
        choices=("pyarrow", "read", "changes", "chunks", "heatmap"),
        help=argparse.SUPPRESS,
    )
    args = ap.parse_args()
    if args.write:
        write(args)
        return
    if args.child:
        child(args)
        return
    base = [a for a in sys.argv[1:]]
    steps = args.steps or (
        "pyarrow,read,changes,heatmap" if args.capture else "changes,chunks,heatmap"
    )
    steps = steps.split(",")
    ref = steps[0]
    what = (
        args.capture
        or f"synthetic: {args.snapshots:,} snapshots x {args.regions:,} regions = "
        f"{args.snapshots * args.regions:,} rows ({args.snapshots * args.regions * 24 / 2**30:.1f}"
        f" GiB dense), churn {args.churn:g}"
    )
    print(f"{what}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    res = {}
    for _ in range(args.repeat):  # steps interleaved: each sees the same load
        for step in steps:
            out = subprocess.run(
                [sys.executable, __file__, *base, "--child", step],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            if step not in res or r["wall"] < res[step]["wall"]:
                res[step] = r  # the best wall time of the repeats, with its CPU and RSS
    print(f"| step | wall (s) | CPU (s) | peak RSS (MiB) | wall / {ref} | CPU / {ref} | result |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for step, r in res.items():
        print(
            f"| {step} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['rss'] / 2**20:.0f} | "
            f"{r['wall'] / res[ref]['wall']:.2f} | {r['cpu'] / res[ref]['cpu']:.2f} | {r['what']} |"
        )
    print(f"load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
