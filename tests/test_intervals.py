"""The shared interval algebra (``pmviz._intervals``): hand-computed cases and sets of pages."""

from __future__ import annotations

import mmap

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pmviz import _intervals as iv
from pmviz.regions import REGION_DTYPE

P = mmap.PAGESIZE

_pairs = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)), max_size=12).map(
    lambda xs: np.array([(s, s + n) for s, n in xs], dtype=np.uint64).reshape(-1, 2)
)


def _cells(pairs: np.ndarray) -> set[int]:
    return {x for s, e in pairs.tolist() for x in range(s, e)}


def _canonical(pairs: np.ndarray) -> bool:
    return bool((pairs[:, 1] > pairs[:, 0]).all() and (pairs[1:, 0] > pairs[:-1, 1]).all())


def _u(*xs: int) -> np.ndarray:
    return np.array(xs, dtype=np.uint64)


def _p(*pairs: tuple[int, int]) -> np.ndarray:
    return np.array(pairs, dtype=np.uint64).reshape(-1, 2)


# -- hand-computed cases -------------------------------------------------------------------------


def test_union_hand_cases():
    # Unsorted, overlapping, touching, nested and empty intervals.
    s, e = iv.union_columns(_u(5, 1, 3, 10, 20, 2), _u(6, 3, 4, 12, 20, 3))
    assert s.tolist() == [1, 5, 10] and e.tolist() == [4, 6, 12]
    assert iv.union(_p((0, 10), (2, 4), (10, 12), (14, 15))).tolist() == [[0, 12], [14, 15]]
    assert iv.union(_p()).shape == (0, 2)
    assert iv.union(_p((3, 3))).shape == (0, 2)
    s, e = iv.union_columns(_u(), _u())
    assert s.dtype == np.uint64 and not s.size and not e.size


def test_union_fast_path_does_not_alias_the_input():
    s0, e0 = _u(0, 10), _u(5, 20)
    s, e = iv.union_columns(s0, e0)  # already canonical: no sort
    s[0] = e[0] = 99
    assert s0.tolist() == [0, 10] and e0.tolist() == [5, 20]


def test_union_of_inverted_pairs_still_sorts():
    # An end below its start is an empty interval; it must not hide an unsorted input.
    assert iv.union(_p((0, 10), (20, 5), (6, 8))).tolist() == [[0, 10]]


def test_intersect_subtract_hand_cases():
    a = _p((0, 10), (20, 30))
    b = _p((5, 25), (28, 40))
    assert iv.intersect(a, b).tolist() == [[5, 10], [20, 25], [28, 30]]
    pieces, owner = iv.intersect_indexed(a, b)
    assert owner.tolist() == [0, 1, 1]
    assert iv.intersect(a, _p((8, 22))).tolist() == [[8, 10], [20, 22]]  # one-span path
    assert iv.subtract(a, b).tolist() == [[0, 5], [25, 28]]
    assert iv.subtract(b, a).tolist() == [[10, 20], [30, 40]]
    assert iv.subtract(a, _p()).tolist() == a.tolist()
    assert iv.subtract(_p(), a).shape == (0, 2)
    assert iv.intersect(a, _p()).shape == (0, 2)


def test_covered_elementary_set_op_hand_cases():
    s, e = _u(0, 10), _u(5, 20)
    assert iv.covered(s, e, _u(0, 4, 5, 9, 10, 19, 20)).tolist() == [
        True,
        True,
        False,
        False,
        True,
        True,
        False,
    ]
    assert iv.elementary(_u(3, 0), _u(5, 3)).tolist() == [0, 3, 5]
    b = (_u(3), _u(12))
    got = iv.set_op((s, e), b, lambda x, y: x | y)
    assert [v.tolist() for v in got] == [[0], [20]]
    got = iv.set_op((s, e), b, lambda x, y: x & y)
    assert [v.tolist() for v in got] == [[3, 10], [5, 12]]
    assert [v.tolist() for v in iv.set_op((_u(), _u()), (_u(), _u()), np.logical_or)] == [[], []]


def test_merge_runs_hand_cases():
    s, e, v = _u(0, 2, 4, 7, 9), _u(2, 4, 7, 9, 10), _u(1, 1, 2, 2, 2)
    ms, me, mv = iv.merge_runs(s, e, v)
    assert ms.tolist() == [0, 4] and me.tolist() == [4, 10] and mv.tolist() == [1, 2]
    # A gap splits a run even with equal values; without values, touching alone merges.
    ms, me, mv = iv.merge_runs(_u(0, 3, 5), _u(2, 5, 6), _u(1, 1, 1))
    assert ms.tolist() == [0, 3] and me.tolist() == [2, 6]
    ms, me, none = iv.merge_runs(_u(0, 2, 4), _u(2, 3, 6))
    assert ms.tolist() == [0, 4] and me.tolist() == [3, 6] and none is None
    # Nothing to merge: the very same arrays come back (callers rely on it to skip a copy).
    s, e, v = _u(0, 3), _u(2, 5), _u(1, 1)
    out = iv.merge_runs(s, e, v)
    assert out[0] is s and out[1] is e and out[2] is v


def test_merge_equal_neighbours_and_regions():
    a = iv.regions_array(_u(0, P, 2 * P, 4 * P), _u(P, 2 * P, 3 * P, 5 * P), _u(1, 1, 2, 2))
    m = iv.merge_equal_neighbours(a)
    assert m.dtype == REGION_DTYPE
    assert m.tolist() == [(0, 2 * P, 1), (2 * P, 3 * P, 2), (4 * P, 5 * P, 2)]
    assert iv.merge_equal_neighbours(m) is m
    u = iv.union_regions([_p((0, P)), _p(), _p((P, 3 * P), (5 * P, 6 * P))], 7)
    assert u.tolist() == [(0, 3 * P, 7), (5 * P, 6 * P, 7)]
    assert iv.union_regions([], 7).dtype == REGION_DTYPE


def test_page_align_runs_and_page_addresses():
    assert iv.page_align(_p((P + 1, 2 * P + 1))).tolist() == [[P, 3 * P]]
    r = iv.runs_to_regions(np.array([1, 1, 0, 1], bool), 0x10000, 5)
    assert r.tolist() == [(0x10000, 0x10000 + 2 * P, 5), (0x10000 + 3 * P, 0x10000 + 4 * P, 5)]
    addrs, owner = iv.page_addresses(r)
    assert addrs.tolist() == [0x10000, 0x10000 + P, 0x10000 + 3 * P]
    assert owner.tolist() == [0, 0, 1]


def test_bridge_gaps_hand_cases():
    s, e = iv.bridge_gaps(_u(0, 5, 7, 20), _u(4, 6, 10, 22), 1)
    assert s.tolist() == [0, 20] and e.tolist() == [10, 22]
    s, e = iv.bridge_gaps(_u(0, 5, 7, 20), _u(4, 6, 10, 22), 0)
    assert s.tolist() == [0, 5, 7, 20] and e.tolist() == [4, 6, 10, 22]
    s, e = iv.bridge_gaps(_u(0, 4), _u(4, 6), 0)  # touching: joined
    assert s.tolist() == [0] and e.tolist() == [6]
    assert iv.bridge_gaps(_u(3), _u(4), 100)[0].tolist() == [3]


def test_clip_regions_hand_cases():
    a = iv.regions_array(_u(0, 10, 20), _u(5, 15, 30), _u(1, 2, 3))
    out, keep = iv.clip_regions(a, 3, 22)
    assert out.tolist() == [(3, 5, 1), (10, 15, 2), (20, 22, 3)]
    assert keep.tolist() == [True, True, True]
    out, keep = iv.clip_regions(a, 5, 10)  # only touching: nothing overlaps
    assert not len(out) and not keep.any()
    assert a.tolist() == [(0, 5, 1), (10, 15, 2), (20, 30, 3)]  # the input is untouched


def test_concat_aranges_hand_cases():
    assert iv.concat_aranges(np.array([10, 0, 7]), np.array([2, 0, 3])).tolist() == [
        10,
        11,
        7,
        8,
        9,
    ]
    assert iv.concat_aranges(0, np.array([3, 1])).tolist() == [0, 1, 2, 0]
    got = iv.concat_aranges(np.array([], np.int64), np.array([], np.int64))
    assert got.dtype == np.int64 and not got.size


# -- against Python sets of pages ----------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(_pairs, _pairs)
def test_interval_algebra_matches_sets(a, b):
    ua, ub = iv.union(a), iv.union(b)
    assert _cells(ua) == _cells(a) and _canonical(ua)
    inter, which = iv.intersect_indexed(ua, ub)
    assert _cells(inter) == _cells(a) & _cells(b)
    assert all(ua[i, 0] <= s and e <= ua[i, 1] for (s, e), i in zip(inter.tolist(), which.tolist()))
    assert _cells(iv.subtract(ua, ub)) == _cells(a) - _cells(b)
    page = np.uint64(P)
    merged = iv.union_regions([ua * page, ub * page], 2)
    assert _cells(iv.as_pairs(merged["start"] // page, merged["end"] // page)) == _cells(
        a
    ) | _cells(b)


@settings(max_examples=300, deadline=None)
@given(_pairs, _pairs)
def test_column_algebra_matches_sets(a, b):
    sa, ea = iv.union_columns(a[:, 0], a[:, 1])
    sb, eb = iv.union_columns(b[:, 0], b[:, 1])
    assert _canonical(iv.as_pairs(sa, ea)) and _cells(iv.as_pairs(sa, ea)) == _cells(a)
    cells_a, cells_b = _cells(a), _cells(b)
    points = np.arange(70, dtype=np.uint64)
    assert iv.covered(sa, ea, points).tolist() == [int(p) in cells_a for p in points]
    for op, want in (
        (lambda x, y: x & y, cells_a & cells_b),
        (lambda x, y: x | y, cells_a | cells_b),
        (lambda x, y: y & ~x, cells_b - cells_a),
        (lambda x, y: x ^ y, cells_a ^ cells_b),
    ):
        s, e = iv.set_op((sa, ea), (sb, eb), op)
        got = iv.as_pairs(s, e)
        assert _cells(got) == want and _canonical(got)
    # The pair and column forms agree (set_op merges touching pieces; subtract's never touch
    # when its inputs are unions).
    s, e = iv.set_op((sa, ea), (sb, eb), lambda x, y: x & ~y)
    assert iv.subtract(iv.union(a), iv.union(b)).tolist() == iv.as_pairs(s, e).tolist()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 2), st.integers(0, 2)), max_size=20))
def test_merge_runs_matches_pages(items):
    # Sorted disjoint intervals (gap 0 = touching) with a value each.
    lengths = np.array([n for n, _, _ in items], dtype=np.uint64)
    gaps = np.array([g for _, g, _ in items], dtype=np.uint64)
    values = np.array([v for _, _, v in items], dtype=np.uint64)
    start = np.cumsum(gaps + lengths) - lengths
    end = start + lengths
    page_value = {p: v for s, e, v in zip(start, end, values) for p in range(int(s), int(e))}
    s, e, v = iv.merge_runs(start, end, values)
    got = {p: val for s_, e_, val in zip(s, e, v) for p in range(int(s_), int(e_))}
    assert got == page_value
    # Maximal: no two output neighbours touch with equal values.
    assert not ((s[1:] == e[:-1]) & (v[1:] == v[:-1])).any()


@settings(max_examples=300, deadline=None)
@given(_pairs, st.integers(0, 5))
def test_bridge_gaps_and_clip_match_sets(a, gap):
    u = iv.union(a)
    s, e = iv.bridge_gaps(u[:, 0], u[:, 1], gap)
    joined = iv.as_pairs(s, e)
    cells = _cells(u)
    # The bridged gaps, and only they, are added.
    holes = {
        x
        for lo, hi in zip(u[:-1, 1].tolist(), u[1:, 0].tolist())
        if hi - lo <= gap
        for x in range(lo, hi)
    }
    assert _cells(joined) == cells | holes
    assert not len(joined) or (joined[1:, 0] - joined[:-1, 1] > gap).all()
    regions = iv.regions_array(u[:, 0], u[:, 1], 1)
    out, keep = iv.clip_regions(regions, 10, 40)
    assert _cells(iv.as_pairs(out["start"], out["end"])) == {x for x in cells if 10 <= x < 40}
    assert keep.sum() == len(out)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), max_size=40))
def test_runs_to_regions_matches_flags(flags):
    r = iv.runs_to_regions(np.array(flags, dtype=bool), 0x10000, 2)
    addrs, _ = iv.page_addresses(r)
    assert set(addrs.tolist()) == {0x10000 + i * P for i, f in enumerate(flags) if f}
    assert _canonical(iv.as_pairs(r["start"], r["end"]).reshape(-1, 2)) or not len(r)


def test_shared_module_imports_only_the_lowest_layers():
    import ast
    import pathlib

    import pmviz

    tree = ast.parse(pathlib.Path(pmviz._intervals.__file__).read_text())
    modules = {
        ("." * n.level) + (n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
    } | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    allowed = {"__future__", "collections.abc", "typing", "numpy"}
    assert all(
        m in allowed or m.startswith(("._kernel", ".categories", ".regions")) for m in modules
    ), modules


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 5)), max_size=20))
def test_concat_aranges_matches_a_loop(ranges):
    starts = np.array([s for s, _ in ranges], dtype=np.int64)
    counts = np.array([c for _, c in ranges], dtype=np.int64)
    want = [x for s, c in ranges for x in range(s, s + c)]
    assert iv.concat_aranges(starts, counts).tolist() == want


def test_take_rows_equals_numpy_indexing():
    from pmviz._intervals import take_rows

    rng = np.random.default_rng(7)
    a = np.zeros(1000, REGION_DTYPE)
    a["start"] = np.sort(rng.integers(0, 2**40, 1000)).astype(np.uint64)
    a["end"] = a["start"] + np.uint64(4096)
    a["categories"] = rng.integers(0, 2**10, 1000).astype(np.uint64)
    mask = rng.random(1000) < 0.3
    for which in (mask, np.flatnonzero(mask), np.zeros(1000, bool), np.array([999, 0, 5])):
        got = take_rows(a, which)
        assert got.dtype == REGION_DTYPE and np.array_equal(got, a[which])
    strided = a[::2]  # not contiguous: numpy's own indexing
    assert np.array_equal(take_rows(strided, mask[:500]), strided[mask[:500]])
