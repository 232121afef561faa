"""The analyses read a capture only through ``chunks()`` / ``changes()`` and per-snapshot views.

A guarded capture refuses its all-snapshot arrays (``regions``, ``region_offsets``,
``written``, ``written_offsets``); with chunks of a few hundred rows every analysis must still
equal the golden results (``tests/test_analysis_golden.py``).
"""

import os
import sys

import numpy as np
import pytest
from synthetic import two_vma_capture

import pmviz
import pmviz.analysis as pa
import pmviz.analysis._stream as stream
from pmviz.capture import Capture

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "golden"))

import golden_analysis as golden  # noqa: E402


class Guarded(Capture):
    """A capture that serves chunks, changes and single snapshots, never its dense arrays."""

    def __init__(self, inner: Capture) -> None:  # no super().__init__: no dense arrays at all
        self._inner = inner
        self.meta = inner.meta
        self.marks = inner.marks
        self.time_ns = inner.time_ns
        self.vma_index = inner.vma_index
        self.telemetry = inner.telemetry
        self._vma_tables = inner.vma_tables

    def _refuse(self):
        raise AssertionError("an analysis touched the capture's all-snapshot arrays")

    regions = property(lambda self: self._refuse())
    written = property(lambda self: self._refuse())
    region_offsets = property(lambda self: self._refuse())
    written_offsets = property(lambda self: self._refuse())

    @property
    def has_written(self):
        return self._inner.has_written

    @property
    def keyframes(self):  # where snapshots are stored whole: which reading is cheaper
        return self._inner.keyframes

    def chunks(self, snapshots=None, *, max_rows=1 << 22):
        return self._inner.chunks(snapshots, max_rows=max_rows)

    def changes(self, snapshots=None, *, max_rows=1 << 22, **kw):
        return self._inner.changes(snapshots, max_rows=max_rows, **kw)

    def written_chunks(self, snapshots=None, *, max_rows=1 << 22):
        return self._inner.written_chunks(snapshots, max_rows=max_rows)

    def regions_at(self, i):
        return self._inner.regions_at(i)

    def written_at(self, i):
        return self._inner.written_at(i)


@pytest.fixture(scope="module")
def stored():
    with np.load(golden.GOLDEN) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("max_rows", [97, 1000])
@pytest.mark.parametrize("name", golden.CAPTURES)
def test_small_chunks_without_dense_arrays_give_the_golden_results(
    stored, name, max_rows, monkeypatch
):
    path = os.path.join(golden.SAMPLES, f"{name}.pmviz")
    if not os.path.isdir(path):
        pytest.skip("sample capture not built")
    monkeypatch.setattr(stream, "MAX_ROWS", max_rows)
    cap = Guarded(pmviz.open(path))
    for key, got in golden.results(cap):
        golden.assert_same(key, np.asarray(got), stored[f"{name}/{key}"])


def test_heatmap_memory_does_not_grow_with_snapshots(monkeypatch):
    """Peak memory of heatmap_grid over a 40x longer capture stays within the grid's growth."""
    import tracemalloc

    monkeypatch.setattr(stream, "MAX_ROWS", 64)
    base = two_vma_capture()
    peaks = []
    for reps in (5, 200):
        snaps = [
            (i * 10**9, base.regions_at(i % 4), base.written_at(i % 4), base.vmas_at(0))
            for i in range(4 * reps)
        ]
        cap = Guarded(Capture.from_snapshots(base.meta, snaps))
        tracemalloc.start()
        pa.heatmap_grid(cap, "present", addr_bins=4, time_bins=8)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # Dense reading would grow ~40x with the rows; chunked reading is flat (time_bins fixed).
    assert peaks[1] < 3 * peaks[0], peaks


def _all_dense(keyframes, lo, hi):
    return [(lo, hi, True)]


def _all_changes(keyframes, lo, hi):
    return [(lo, hi, False)]


def _alternating(keyframes, lo, hi):
    """Runs of 1-3 snapshots, dense and changes in turn (every switch of path)."""
    cuts = list(range(lo, hi, 2)) + [hi]
    cuts[1::3] = [min(c + 1, hi) for c in cuts[1::3]]
    bounds = sorted(set(cuts))
    return [(a, b, i % 2 == 1) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]


@pytest.mark.parametrize("dense_changes", [0.0, float("inf")])  # changes binned densely / by row
@pytest.mark.parametrize("runs", [_all_dense, _all_changes, _alternating])
def test_every_heatmap_path_gives_the_golden_grids(stored, runs, dense_changes, monkeypatch):
    import pmviz.analysis.heatmap as hm

    monkeypatch.setattr(hm, "_runs", runs)
    monkeypatch.setattr(hm, "_DENSE_CHANGES", dense_changes)
    monkeypatch.setattr(stream, "MAX_ROWS", 3000)
    for name in golden.CAPTURES:
        path = os.path.join(golden.SAMPLES, f"{name}.pmviz")
        if not os.path.isdir(path):
            pytest.skip("sample capture not built")
        cap = Guarded(pmviz.open(path))
        for key, got in golden.results(cap, heatmaps_only=True):
            golden.assert_same(key, np.asarray(got), stored[f"{name}/{key}"])


def test_heatmap_runs_read_keyframe_runs_densely_and_the_rest_as_changes():
    from pmviz.analysis.heatmap import _runs

    # keyframes 0, 5, 6, 7, 12: 5-6 are followed by keyframes (dense); 7 starts the changes
    assert _runs(np.array([0, 5, 6, 7, 12]), 0, 15) == [
        (0, 5, False),
        (5, 7, True),
        (7, 15, False),
    ]
    # every snapshot a keyframe (categories flipping everywhere): all dense
    assert _runs(np.arange(10), 2, 10) == [(2, 10, True)]
    # a range starting inside a change run starts from its first snapshot, whole
    assert _runs(np.array([0, 8]), 3, 8) == [(3, 8, False)]
    assert _runs(np.array([0, 4]), 3, 5) == [(3, 5, True)]


def test_heatmap_of_every_region_changing_uses_dense_chunks_and_matches_the_changes():
    """100 % churn: every snapshot is stored whole; the dense reading equals the changes'."""
    import pmviz.analysis.heatmap as hm

    rng = np.random.default_rng(3)
    base = two_vma_capture()
    snaps = []
    for i in range(30):
        r = base.regions_at(i % 4).array.copy()
        r["categories"] = rng.integers(0, 16, r.size).astype(np.uint64)
        snaps.append((i * 10**8, pmviz.Regions(r), None, base.vmas_at(0)))
    cap = Capture.from_snapshots(base.meta, snaps)
    assert len(cap.keyframes) > 20
    got = pa.heatmap_grid(cap, "present", addr_bins=16, time_bins=7)
    mp = pytest.MonkeyPatch()
    mp.setattr(hm, "_runs", _all_changes)
    mp.setattr(hm, "_DENSE_CHANGES", float("inf"))
    try:
        ref = pa.heatmap_grid(cap, "present", addr_bins=16, time_bins=7)
    finally:
        mp.undo()
    np.testing.assert_allclose(got.grid, ref.grid, rtol=1e-12, atol=1e-15)
    assert np.isfinite(got.grid).any()


class FirstChunkShared(Guarded):
    """Changes whose first chunk carries the first snapshot whole AND the next changes (the
    contract allows it; ``Capture.changes`` happens to yield the first snapshot alone)."""

    def changes(self, snapshots=None, *, max_rows=1 << 22, **kw):
        it = self._inner.changes(snapshots, max_rows=max_rows, **kw)
        first = next(it, None)
        if first is None:
            return
        second = next(it, None)
        whole = (  # a keyframe that comes whole stays alone in its chunk
            second is not None
            and kw.get("whole_keyframes")
            and second.end == second.first + 1
            and second.first in self._inner.keyframes
        )
        if second is None or second.first != first.end or whole:
            yield first
        else:
            yield first._replace(
                end=second.end,
                snapshot=np.concatenate([first.snapshot, second.snapshot]),
                rows=np.concatenate([first.rows, second.rows]),
                sign=np.concatenate([first.sign, second.sign]),
            )
            second = None
        if second is not None:
            yield second
        yield from it


def test_heatmap_reads_a_first_chunk_that_also_holds_changes(stored, monkeypatch):
    monkeypatch.setattr(stream, "MAX_ROWS", 3000)
    for name in golden.CAPTURES:
        path = os.path.join(golden.SAMPLES, f"{name}.pmviz")
        if not os.path.isdir(path):
            pytest.skip("sample capture not built")
        cap = FirstChunkShared(pmviz.open(path))
        for key, got in golden.results(cap, heatmaps_only=True):
            golden.assert_same(key, np.asarray(got), stored[f"{name}/{key}"])
