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
