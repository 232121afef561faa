"""Working sets on the two-VMA synthetic capture (answers from its docstring table)."""

import numpy as np
import pytest
from synthetic import PAGE, P, S, W, regions, two_vma_capture

from pmviz.analysis.working_set import (
    cumulative_written,
    idle_time,
    temperature,
    working_set_size,
    wss_curve,
)
from pmviz.capture import Capture, CaptureMeta
from pmviz.categories import Category as C


def pages(x):
    return (np.asarray(x) // PAGE).tolist()


def test_working_set_totals_and_kinds():
    ws = working_set_size(two_vma_capture())
    assert pages(ws.resident) == [4, 10, 10, 6]
    assert pages(ws.swapped) == [0, 0, 2, 0]
    assert pages(ws.written) == [4, 6, 3, 1]
    anon, heap = ws.kinds.index("anon"), ws.kinds.index("heap")
    assert pages(ws.resident_by_kind[:, heap]) == [4, 8, 8, 2]
    assert pages(ws.resident_by_kind[:, anon]) == [0, 2, 2, 4]
    assert pages(ws.written_by_kind[:, anon]) == [0, 2, 2, 0]
    assert ws.resident_by_kind[:, ws.kinds.index("unattributed")].sum() == 0
    assert list(ws.to_pandas().columns) == ["time", "resident", "swapped", "written"]


def test_swapped_leaves_out_guard_markers():
    r = regions(
        (0, 1, S | W), (1, 2, S | C.WPALLOWED), (2, 3, S | W | C.WPALLOWED), (3, 4, S | C.GUARD | W)
    )
    cap = Capture.from_snapshots(CaptureMeta(), [(0, r, None, None)])
    ws = working_set_size(cap)
    # The recorder already cleared SWAPPED on uffd-wp markers (pmviz.swapped); guards stay out.
    assert pages(ws.swapped) == [3]
    assert pages(ws.swapped_by_kind[:, -1]) == [3]  # no maps: unattributed
    assert ws.written is None


def test_cumulative_and_wss_curve():
    cap = two_vma_capture()
    assert pages(cumulative_written(cap)) == [4, 10, 12, 12]
    w = wss_curve(cap, windows=(1, 2, 4))
    assert pages(w.bytes) == [[4, 6, 3, 1], [4, 10, 9, 3], [4, 10, 12, 12]]
    assert w.interval_s == 1.0
    with pytest.raises(ValueError, match="windows"):
        wss_curve(cap, windows=(0,))


def test_idle_time():
    cap = two_vma_capture()
    it = idle_time(cap)  # resident at 3: heap 0-2, anon 0-4
    assert pages(it.bytes) == [1, 2, 2, 1] and it.never == 0
    assert pages(idle_time(cap, among="written").bytes) == [1, 2, 6, 3]
    early = idle_time(cap, at=1)  # resident: heap 0-8 (0-4 at 0, 4-8 at 1), anon 0-2 (at 1)
    assert pages(early.bytes) == [6, 4]


def test_temperature():
    t = temperature(two_vma_capture())
    # heap page 0 written in 3 of 4 intervals (hot), page 1 once; anon 0-4 once each.
    assert t.bytes == {"cold": 0, "warm": 5 * PAGE, "hot": PAGE}
    assert t.regions["categories"].tolist() == [4, 2, 2]
    assert pages(t.vma_bytes) == [[0, 1, 1], [0, 4, 0]]
    assert t.vma_labels == ["[heap]", "anon"]
    last2 = temperature(two_vma_capture(), window=2, hot=1.0)
    # window = snapshots 2-3: heap page 0 both (hot), heap page 1 none (cold), anon 2-4 once.
    assert last2.bytes == {"cold": 3 * PAGE, "warm": 2 * PAGE, "hot": PAGE}
    with pytest.raises(ValueError, match="window"):
        temperature(two_vma_capture(), window=9)


def test_no_write_tracking_is_a_clear_error():
    cap = Capture.from_snapshots(CaptureMeta(), [(0, regions((0, 1, P)), None, None)])
    with pytest.raises(ValueError, match="write tracking"):
        wss_curve(cap)


def _random_written(seed, n=12, span=64):
    rng = np.random.default_rng(seed)
    dense = rng.random((n, span)) < rng.uniform(0.05, 0.5)
    snaps = []
    for i in range(n):
        row = np.concatenate([[False], dense[i], [False]]).astype(np.int8)
        edges = np.flatnonzero(np.diff(row))
        runs = [(int(a), int(b), int(W)) for a, b in zip(edges[0::2], edges[1::2])]
        present = regions((0, span, P | W))
        snaps.append((i * 10**9, present, regions(*runs), None))
    return Capture.from_snapshots(CaptureMeta(interval_ns=10**9), snaps), dense


@pytest.mark.parametrize("seed", range(4))
def test_history_functions_match_a_dense_per_page_reference(seed):
    cap, dense = _random_written(seed)
    n = dense.shape[0]
    assert (
        pages(cumulative_written(cap))
        == np.cumsum([(dense[: i + 1].any(0) & ~dense[:i].any(0)).sum() for i in range(n)]).tolist()
    )
    wins = (1, 3, 5, n)
    curve = wss_curve(cap, windows=wins)
    for j, k in enumerate(wins):
        ref = [dense[max(0, i - k + 1) : i + 1].any(0).sum() for i in range(n)]
        assert pages(curve.bytes[j]) == ref
    at = n - 3
    it = idle_time(cap, at=at)
    ever = dense[: at + 1].any(0)
    last = at - np.argmax(dense[: at + 1][::-1], axis=0)
    assert pages(it.bytes) == np.bincount(at - last[ever], minlength=at + 1).tolist()
    assert it.never // PAGE == (~ever).sum()
    t = temperature(cap, at=at, window=4, hot=0.5)
    f = dense[at - 3 : at + 1].sum(0) / 4
    assert t.bytes == {
        "cold": int((f == 0).sum()) * PAGE,
        "warm": int(((f > 0) & (f < 0.5)).sum()) * PAGE,
        "hot": int((f >= 0.5).sum()) * PAGE,
    }
