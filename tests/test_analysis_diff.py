"""Snapshot diff, CRIU dump size, pre-copy model and Hilbert layout on synthetic captures."""

import numpy as np
import pytest
from synthetic import BASE, HEAP, PAGE, P, regions, two_vma_capture

from pmviz.analysis.diff import diff_grid, snapshot_diff
from pmviz.analysis.hilbert import hilbert_d2xy, hilbert_map
from pmviz.analysis.migration import dirty_bytes, dump_size, precopy_estimate
from pmviz.categories import Category as C


def pages(x):
    return (np.asarray(x) // PAGE).tolist()


def test_diff_between_snapshots():
    d = snapshot_diff(two_vma_capture(), 1, 2)
    assert {k: v // PAGE for k, v in d.totals().items()} == {
        "became_resident": 2,
        "left_resident": 2,
        "became_swapped": 2,
        "left_swapped": 0,
        "written": 3,
    }
    assert d.became_resident.start.tolist() == [BASE + 2 * PAGE]
    assert d.left_resident.start.tolist() == d.became_swapped.start.tolist() == [BASE]
    assert d.written.start.tolist() == [HEAP, BASE + 2 * PAGE]
    whole = snapshot_diff(two_vma_capture(), 0, 3)  # sets 1-3: heap 0-1, 4-8, anon 0-4
    assert pages(whole.written.size) == 9
    g = diff_grid(d, addr_bins=4)
    assert g.changes[0] == "became_resident"
    np.testing.assert_array_equal(g.grid[0], [0, 0, 0.5, 0])
    np.testing.assert_array_equal(g.grid[4], [0.25, 0, 0.5, 0])
    with pytest.raises(ValueError, match="before"):
        snapshot_diff(two_vma_capture(), 3, 1)


def test_diff_across_captures_has_no_written_set():
    d = snapshot_diff(two_vma_capture(), 0, 3, other=two_vma_capture())
    assert d.written is None and "written" not in d.changes()
    assert pages(d.became_resident.size) == 4  # anon 0-4
    assert pages(d.left_resident.size) == 2  # heap 2-4


def test_dump_size_uses_criu_mask():
    assert pages(dump_size(two_vma_capture())) == [4, 10, 12, 6]


def test_dirty_bytes_and_precopy_rounds():
    secs, dirty = dirty_bytes(two_vma_capture())
    assert secs.tolist() == [0, 1, 2, 3, 4]
    assert pages(dirty) == [0, 6, 10, 12, 12]  # worst window of k intervals
    # Mean over the full windows: k=1 (4+6+3+1)/4, k=2 (10+9+3)/3, k=3 (12+9)/2, k=4 12.
    mean = dirty_bytes(two_vma_capture(), "mean")[1] / PAGE
    np.testing.assert_allclose(mean, [0, 3.5, 22 / 3, 10.5, 12])
    # 6 pages at 64 pages/s: 93.75 ms, dirtying 6 * 0.09375 = 0.5625 pages; 8.8 ms < 10 ms.
    est = precopy_estimate(two_vma_capture(), bandwidth=64 * PAGE, downtime=0.01)
    assert est.converged and est.round_bytes.tolist() == [6 * PAGE, 0.5625 * PAGE]
    assert est.downtime_s == pytest.approx(0.5625 / 64)
    slow = precopy_estimate(two_vma_capture(), bandwidth=4 * PAGE, downtime=0.1)
    assert not slow.converged and slow.reason == "dirty set no longer shrinks"
    with pytest.raises(ValueError, match="bandwidth"):
        precopy_estimate(two_vma_capture(), bandwidth=0)


def test_hilbert_curve_is_a_path_through_every_cell():
    x, y = hilbert_d2xy(3, np.arange(64))
    assert len(set(zip(x.tolist(), y.tolist()))) == 64
    assert (np.abs(np.diff(x)) + np.abs(np.diff(y)) == 1).all()
    assert list(zip(*hilbert_d2xy(1, np.arange(4)))) == [(0, 0), (0, 1), (1, 1), (1, 0)]


def test_hilbert_map_places_fractions_on_the_curve():
    r = regions((0, 3, P), (3, 16, 0), (16, 17, C.SWAPPED))
    h = hilbert_map(r, "present", start=BASE, end=BASE + 16 * PAGE)
    assert h.order == 2 and h.image.shape == (4, 4)
    x, y = hilbert_d2xy(2, np.arange(16))
    np.testing.assert_array_equal(h.image[y, x], [1, 1, 1] + [0] * 13)
    h1 = hilbert_map(two_vma_capture(), at=3, vma="[heap]")  # heap pages 0-2 of 8 present
    assert h1.order == 1 and h1.image[0, 0] == 1 and h1.image.sum() == 1
    with pytest.raises(ValueError, match="order"):
        hilbert_map(r, start=BASE, end=BASE + 16 * PAGE, order=3)


def test_results_render_in_notebooks():
    import pmviz.analysis as pa

    cap = two_vma_capture()
    for obj, title in (
        (pa.working_set_size(cap), "WorkingSet"),
        (pa.temperature(cap), "Temperature"),
        (snapshot_diff(cap, 1, 2), "SnapshotDiff"),
        (precopy_estimate(cap, bandwidth=64 * PAGE, downtime=0.01), "Pre-copy"),
        (pa.sparsity(cap), "Sparsity"),
    ):
        html = obj._repr_html_()
        assert html.startswith("<div><b>") and title in html
    assert "8 KiB in 1 regions" in snapshot_diff(cap, 1, 2)._repr_html_()
