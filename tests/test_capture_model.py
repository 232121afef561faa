"""The capture's change model: keyframes + changes, exact against the dense definition."""

import numpy as np
import pytest

from pmviz import Regions
from pmviz._kernel.pagemap_scan import REGION_DTYPE
from pmviz.capture import Capture, CaptureMeta, Mark, _apply, _diff


def churn(n=80, regions=300, rate=0.02, seed=1, unsorted_at=(), written=True):
    """A layout whose rows change a little each snapshot: categories flip, regions split,
    merge, appear and vanish; ``unsorted_at`` snapshots come out of order."""
    rng = np.random.default_rng(seed)
    base = 0x7F0000000000 + np.arange(regions, dtype=np.uint64) * 0x10000
    ends = base + 0x8000
    cats = np.full(regions, 0xA, np.uint64)
    snaps = []
    for i in range(n):
        k = max(1, int(rate * regions))
        cats[rng.integers(0, regions, k)] ^= 0x10
        pick = rng.integers(0, regions, k)
        ends[pick] = base[pick] + rng.integers(1, 16, k).astype(np.uint64) * 0x1000
        live = rng.random(regions) > 0.05 if i % 9 == 4 else np.ones(regions, bool)
        r = np.zeros(int(live.sum()), REGION_DTYPE)
        r["start"], r["end"], r["categories"] = base[live], ends[live], cats[live]
        if i in unsorted_at:
            r = r[::-1].copy()
        w = Regions.from_arrays(base[: i % 5], base[: i % 5] + 0x1000, 2) if written else None
        snaps.append((10**9 + i * 10**7, Regions(r), w, None))
    return Capture.from_snapshots(CaptureMeta(), snaps, marks=[Mark(10**9 + 5 * 10**7, "m")])


def reference_changes(cap, lo, hi):
    """The dense definition of Capture.changes (the implementation before the change model)."""
    off = cap.region_offsets
    rows = cap.regions[off[lo] : off[hi]]
    snap = np.repeat(np.arange(lo, hi), np.diff(off[lo : hi + 1]))
    order = np.lexsort((snap, rows["categories"], rows["end"], rows["start"]))
    r, s = rows[order], snap[order]
    same = np.zeros(len(r), bool)
    same[1:] = (
        (r["start"][1:] == r["start"][:-1])
        & (r["end"][1:] == r["end"][:-1])
        & (r["categories"][1:] == r["categories"][:-1])
        & (s[1:] == s[:-1] + 1)
    )
    appears = ~same
    cont = np.zeros(len(r), bool)
    cont[:-1] = same[1:]
    dis = ~cont & (s + 1 < hi)
    ev_s = np.concatenate([s[dis] + 1, s[appears]])
    ev_r = np.concatenate([r[dis], r[appears]])
    ev_k = np.concatenate([-np.ones(int(dis.sum()), np.int8), np.ones(int(appears.sum()), np.int8)])
    o = np.lexsort((ev_r["start"], ev_s))
    return ev_s[o], ev_r[o], ev_k[o]


def dense(cap):
    return [cap.regions_at(i).array.copy() for i in range(cap.n_snapshots)]


def test_keyframes_plus_changes_rebuild_every_snapshot_exactly():
    cap = churn(unsorted_at=(30,))
    want = [s[1].array for s in _snaps(cap)]
    fresh = Capture._from_encoded(
        cap.meta, cap.time_ns, (cap._crow, cap._ckind, cap._n_rows, np.diff(cap._coff), cap._key)
    )
    for i in [5, 0, 79, 31, 30, 29, 40, 41, 42, 10]:  # random order and stepping
        assert np.array_equal(fresh.regions_at(i).array, want[i]), i
    assert np.array_equal(fresh.regions, cap.regions)
    assert fresh.keyframes[0] == 0 and 30 in fresh.keyframes and 31 in fresh.keyframes
    assert fresh.stored_rows < cap.n_regions / 3  # it stores change, not snapshots x regions


def _snaps(cap):
    return [(0, Regions(r), None, None) for r in dense(cap)]


def test_keyframe_policy_bounds_rebuild_cost():
    cap = churn(n=200, rate=0.05)
    keys = cap.keyframes
    crows = np.diff(cap._coff)
    for a, b in zip(keys, list(keys[1:]) + [cap.n_snapshots]):
        assert crows[a + 1 : b].sum() <= cap._n_rows[a]  # at most twice the keyframe's size
    assert len(keys) > 1


@pytest.mark.parametrize("max_rows", [1, 500, 1 << 22])
def test_changes_and_chunks_match_the_dense_definition(max_rows):
    cap = churn(unsorted_at=(20, 21))
    stored = Capture._from_encoded(
        cap.meta, cap.time_ns, (cap._crow, cap._ckind, cap._n_rows, np.diff(cap._coff), cap._key)
    )
    for lo, hi in [(0, 80), (7, 50), (20, 23)]:
        got = list(stored.changes(slice(lo, hi), max_rows=max_rows))
        assert got[0].first == lo and got[-1].end == hi
        s = np.concatenate([c.snapshot for c in got])
        r = np.concatenate([c.rows for c in got])
        k = np.concatenate([c.sign for c in got])
        ws, wr, wk = reference_changes(cap, lo, hi)
        assert np.array_equal(s, ws) and np.array_equal(r, wr) and np.array_equal(k, wk)
        chunks = list(stored.chunks(slice(lo, hi), max_rows=max_rows))
        assert [a for a, _ in chunks][0] == lo
        rows = np.concatenate([c.regions for _, c in chunks])
        off = cap.region_offsets
        assert np.array_equal(rows, cap.regions[off[lo] : off[hi]])


def test_select_window_slice_downsample_address_window_keep_exact_rows():
    cap = churn()
    d = dense(cap)
    sel = cap.select(np.array([3, 4, 5, 40, 41, 70]))
    assert all(
        np.array_equal(sel.regions_at(j).array, d[i]) for j, i in enumerate([3, 4, 5, 40, 41, 70])
    )
    assert sel.written_at(3) == cap.written_at(40) and sel.marks == cap.marks
    ds = cap.downsample(every=7)
    assert all(np.array_equal(ds.regions_at(j).array, d[7 * j]) for j in range(ds.n_snapshots))
    lo, hi = 0x7F0000000000 + 0x10000 * 20 + 0x2000, 0x7F0000000000 + 0x10000 * 90 + 0x6000
    aw = cap.address_window(lo, hi)
    for i in range(cap.n_snapshots):
        want = Regions(d[i]).clip(lo, hi)
        want = want[want.page_counts > 0]
        assert aw.regions_at(i) == want, i
    sl = cap.slice(0.04, 0.3, addr_range=(lo, hi))
    assert sl.n_snapshots == 26 and sl.marks == cap.marks
    assert cap.slice(0.1, 0.3).marks == []


def test_apply_and_diff_are_inverse():
    cap = churn(n=10)
    d = dense(cap)
    for a, b in zip(d, d[1:]):
        gone, came = _diff(a, b)
        rows = np.concatenate([gone, came])
        sign = np.concatenate([-np.ones(len(gone), np.int8), np.ones(len(came), np.int8)])
        assert np.array_equal(_apply(a, rows, sign), b)


def test_in_memory_size_of_a_low_churn_capture_is_a_few_percent_of_dense():
    cap = churn(n=400, regions=5000, rate=0.001, written=False)
    ratio = cap.stored_rows / cap.n_regions
    assert ratio < 0.05, ratio


@pytest.mark.parametrize(
    "bad, field",
    [
        (dict(time_ns=np.array([5, 3])), "time_ns"),
        (dict(time_ns=np.zeros((2, 1), np.int64)), "time_ns"),
        (dict(regions=np.zeros((1, 1), REGION_DTYPE)), "regions"),
        (dict(region_offsets=np.array([0, 1, 3])), "region_offsets"),
        (dict(region_offsets=np.array([0, 2])), "region_offsets"),
    ],
)
def test_constructor_rejects_bad_columns(bad, field):
    rows = np.zeros(1, REGION_DTYPE)
    rows["start"], rows["end"] = 0x1000, 0x2000
    kw = dict(time_ns=np.array([1]), regions=rows, region_offsets=np.array([0, 1])) | bad
    with pytest.raises(ValueError, match=field):
        Capture(CaptureMeta(), kw["time_ns"], kw["regions"], kw["region_offsets"])


def test_constructor_rejects_reversed_and_negative_rows():
    rows = np.zeros(1, REGION_DTYPE)
    rows["start"], rows["end"] = 0x3000, 0x2000
    with pytest.raises(ValueError, match="regions: row 0 is reversed"):
        Capture(CaptureMeta(), np.array([1]), rows, np.array([0, 1]))
    neg = np.array([(-4096, 0, 8)], dtype=[("start", "i8"), ("end", "i8"), ("categories", "u8")])
    with pytest.raises(ValueError, match="negative start"):
        Capture(CaptureMeta(), np.array([1]), neg, np.array([0, 1]))
    with pytest.raises(ValueError, match="written: row 0 is reversed"):
        ok = rows.copy()
        ok["start"] = 0x1000
        Capture(CaptureMeta(), np.array([1]), ok, [0, 1], written=rows, written_offsets=[0, 1])


def test_contiguous_selections_and_chunks_are_views_with_the_same_rows():
    cap = churn()
    d = dense(cap)
    k = int(cap.keyframes[len(cap.keyframes) // 2])
    end = min(k + 5, cap.n_snapshots)
    sel = cap.select(slice(k, end))
    assert np.shares_memory(sel._crow, cap._crow)  # the stored rows, not a copy
    assert all(np.array_equal(sel.regions_at(j).array, d[k + j]) for j in range(end - k))
    dense_cap = Capture(cap.meta, cap.time_ns, cap.regions, cap.region_offsets)
    for first, chunk in dense_cap.chunks(slice(3, 40), max_rows=500):
        assert np.shares_memory(chunk.regions, dense_cap.regions)
        assert all(
            np.array_equal(chunk.regions_at(j).array, d[first + j])
            for j in range(chunk.n_snapshots)
        )
