"""heatmap_grid: exact coverage against hand-computed answers and a per-page reference."""

import numpy as np
import pytest
from synthetic import BASE, HEAP, PAGE, P, S, W, regions, two_vma_capture, vmas

from pmviz._intervals import set_op, union_columns
from pmviz.analysis._intervals import prefix_coverage
from pmviz.analysis.axis import address_axis
from pmviz.analysis.heatmap import heatmap_grid, snapshot_cells
from pmviz.capture import Capture, CaptureMeta
from pmviz.maps import VmaKind
from pmviz.mask import Mask
from pmviz.regions import Regions


def test_compact_axis_collapses_the_gap_and_labels_bands():
    cap = two_vma_capture()
    ax = address_axis(cap)
    assert ax.seg_start.tolist() == [HEAP, BASE]
    assert ax.length == 16 * PAGE
    assert ax.labels.tolist() == ["[heap]", "anon"]
    assert ax.to_real(np.array([0, 8 * PAGE, 9 * PAGE, 16 * PAGE])).tolist() == [
        HEAP,
        BASE,
        BASE + PAGE,
        BASE + 8 * PAGE,
    ]
    assert ax.to_compact(np.array([HEAP + PAGE, BASE + 2 * PAGE])).tolist() == [PAGE, 10 * PAGE]


def test_present_grid_by_hand():
    g = heatmap_grid(two_vma_capture(), "present", addr_bins=4)
    # Bins: heap pages 0-4, 4-8, anon pages 0-4, 4-8; one time bin per snapshot.
    expected = [[1, 0, 0, 0], [1, 1, 0.5, 0], [1, 1, 0.5, 0], [0.5, 0, 1, 0]]
    np.testing.assert_array_equal(g.grid, expected)
    np.testing.assert_array_equal(g.time_edges, [0, 1, 2, 3, 4])
    assert g.addr_edges.tolist() == [HEAP, HEAP + 4 * PAGE, BASE, BASE + 4 * PAGE, BASE + 8 * PAGE]
    assert g.category == "present"


def test_written_grid_and_partial_page_bins():
    g = heatmap_grid(two_vma_capture(), "written", addr_bins=16)
    assert g.grid.shape == (4, 16)
    np.testing.assert_array_equal(g.grid[2], [1] + [0] * 9 + [1, 1] + [0] * 4)
    # 3 bins over 16 compact pages: edges 0, 5, 10, 16. Bin 1 spans the collapsed gap:
    # heap pages 5-8 and anon pages 0-2. Snapshot 3: heap 0-2 and anon 0-4 present.
    g3 = heatmap_grid(two_vma_capture(), "present", addr_bins=3)
    np.testing.assert_allclose(g3.grid[1], [1, 1, 0])
    np.testing.assert_allclose(g3.grid[3], [2 / 5, 2 / 5, 2 / 6])
    assert np.diff(g3.addr_pos).tolist() == [5 * PAGE, 5 * PAGE, 6 * PAGE]


def test_time_bins_are_time_weighted():
    g = heatmap_grid(two_vma_capture(), "present", addr_bins=2, time_bins=2, time_range=(0.5, 3))
    np.testing.assert_allclose(g.time_edges, [0.5, 1.75, 3])
    np.testing.assert_allclose(g.grid, [[0.8, 0.15], [1.0, 0.25]])
    beyond = heatmap_grid(
        two_vma_capture(), "present", addr_bins=2, time_bins=2, time_range=(-4, 0)
    )
    assert np.isnan(beyond.grid).all()


def test_mask_category_and_linear_axis():
    cap = two_vma_capture()
    crIU = Mask(anyof=P | S, exclude="FILE|PFNZERO")
    g = heatmap_grid(cap, crIU, addr_bins=2)
    np.testing.assert_allclose(g.grid[:, 1], [0, 2 / 8, 4 / 8, 4 / 8])
    lin = heatmap_grid(
        cap, "swapped", axis="linear", addr_range=(BASE, BASE + 8 * PAGE), addr_bins=4
    )
    np.testing.assert_array_equal(lin.grid[:, 0], [0, 0, 1, 0])
    assert lin.axis.kind == "linear"


def test_regions_in_a_skipped_guard_do_not_leak_into_neighbours():
    table = vmas(
        (BASE, BASE + 4 * PAGE, "rw-p", VmaKind.ANON, ""),
        (BASE + 4 * PAGE, BASE + 8 * PAGE, "---p", VmaKind.GUARD, ""),
        (BASE + 8 * PAGE, BASE + 12 * PAGE, "rw-p", VmaKind.ANON, ""),
    )
    r = regions((0, 12, 0))  # the scan merges across VMAs (spec gotcha 16)
    cap = Capture.from_snapshots(CaptureMeta(), [(0, r, None, table)])
    g = heatmap_grid(cap, Mask(exclude=P), addr_bins=2)
    np.testing.assert_array_equal(g.grid, [[1.0, 1.0]])
    assert g.axis.length == 8 * PAGE


def test_bad_arguments():
    cap = two_vma_capture()
    with pytest.raises(ValueError, match="addr_bins"):
        heatmap_grid(cap, addr_bins=0)
    with pytest.raises(ValueError, match="axis"):
        heatmap_grid(cap, axis="log")
    with pytest.raises(TypeError, match="category"):
        heatmap_grid(cap, 3.5)
    no_w = Capture.from_snapshots(CaptureMeta(), [(0, regions((0, 1, P)), None, None)])
    with pytest.raises(ValueError, match="write tracking"):
        heatmap_grid(no_w, "written")


def _random_capture(rng, n_snap=9, span=300):
    snaps = []
    for i in range(n_snap):
        cuts = np.unique(rng.integers(0, span, size=rng.integers(2, 40)))
        runs = [
            (int(a), int(b), int(rng.choice([0, P | W, S | W, P, W])))
            for a, b in zip(cuts[:-1], cuts[1:])
            if rng.random() < 0.8
        ]
        snaps.append((i * 10**8 + int(rng.integers(0, 10**7)), regions(*runs), None, None))
    return Capture.from_snapshots(CaptureMeta(), snaps)


@pytest.mark.parametrize("seed", range(5))
def test_grid_matches_per_page_rasterisation(seed):
    rng = np.random.default_rng(seed)
    cap = _random_capture(rng)
    nb = int(rng.integers(1, 50))
    g = heatmap_grid(cap, "present", addr_bins=nb, axis="linear")
    lo = int(g.addr_edges[0])
    n_pages = (int(g.addr_edges[-1]) - lo) // PAGE
    ref = np.zeros((cap.n_snapshots, n_pages))
    for i in range(cap.n_snapshots):  # the naive reference: paint every page
        for s, e, c in cap.regions_at(i).array.tolist():
            if c & P:
                ref[i, (s - lo) // PAGE : (e - lo) // PAGE] = 1
    pos = (g.addr_pos // PAGE).astype(int)
    expected = np.add.reduceat(ref, pos[:-1], axis=1) / np.diff(pos)
    np.testing.assert_allclose(g.grid, expected)
    assert np.diff(snapshot_cells(cap)).min() > 0


def test_interval_helpers():
    s, e = union_columns(np.array([5, 1, 3, 10]), np.array([6, 3, 4, 12]))
    assert s.tolist() == [1, 5, 10] and e.tolist() == [4, 6, 12]
    a = (np.array([0, 10], np.uint64), np.array([5, 20], np.uint64))
    b = (np.array([3], np.uint64), np.array([12], np.uint64))
    got = set_op(a, b, lambda x, y: y & ~x)
    assert [v.tolist() for v in got] == [[5], [10]]
    r = regions((0, 2, P), (4, 8, 0)).array
    c = prefix_coverage(
        r,
        np.array([0, 2]),
        np.array([BASE + PAGE, BASE + 5 * PAGE, 2**64 - 1], np.uint64),
        select=Mask(require=P),
    )
    assert (c // PAGE).tolist() == [[1, 2, 2]]


def test_category_spellings_agree():
    cap = two_vma_capture()
    ref = heatmap_grid(cap, "present", addr_bins=4).grid
    for spec in ("resident", P, {P}, [P], int(P), Mask(require=P)):
        np.testing.assert_array_equal(heatmap_grid(cap, spec, addr_bins=4).grid, ref)
    assert heatmap_grid(cap, "zero-page", addr_bins=4).category == "pfnzero"


def test_analysis_does_not_import_matplotlib():
    import subprocess
    import sys

    code = "import sys, pmviz.analysis; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("chunk", [1, 7, 1 << 17])
@pytest.mark.parametrize("threads", [1, 2])
def test_prefix_coverage_chunks_and_threads_agree_with_a_loop(monkeypatch, chunk, threads):
    import pmviz.analysis._intervals as iv

    monkeypatch.setattr(iv, "_CHUNK_REGIONS", chunk)
    monkeypatch.setattr(iv, "_local", __import__("threading").local())
    rng = np.random.default_rng(chunk + threads)
    cap = _random_capture(rng, n_snap=23)
    pts = np.sort(rng.integers(BASE - PAGE, BASE + 301 * PAGE, 25)).astype(np.uint64)
    sel = Mask(require=P)
    got = prefix_coverage(cap.regions, cap.region_offsets, pts, select=sel, threads=threads)
    for i in range(cap.n_snapshots):
        want = np.zeros(pts.size, np.int64)
        for s, e, c in cap.regions_at(i).array.tolist():
            if c & P:
                want += np.clip(pts.astype(np.int64), s, e) - s
        assert got[i].tolist() == want.tolist()
    rows = np.array([2, 3, 9, 22])
    two_d = prefix_coverage(
        cap.regions,
        cap.region_offsets,
        np.tile(pts, (4, 1)),
        rows=rows,
        select=sel,
        threads=threads,
    )
    assert (two_d == got[rows]).all()


def test_cells_not_mapped_at_that_time_are_nan_not_zero():
    """A VMA that appears later reads as unmapped (NaN) before, not as 0 % of its pages."""
    heap = (HEAP, HEAP + 8 * PAGE, "rw-p", VmaKind.HEAP, "[heap]")
    anon = (BASE, BASE + 8 * PAGE, "rw-p", VmaKind.ANON, "")
    h = regions((0, 8, P), base=HEAP)
    snaps = [
        (0, h, None, vmas(heap)),
        (10**9, Regions.concat([h, regions((0, 8, 0))]), None, vmas(heap, anon)),
        (2 * 10**9, Regions.concat([h, regions((0, 4, P), (4, 8, 0))]), None, vmas(heap, anon)),
    ]
    cap = Capture.from_snapshots(CaptureMeta(interval_ns=10**9), snaps)
    g = heatmap_grid(cap, "present", addr_bins=2)
    assert np.isnan(g.grid[0, 1]) and g.grid[0, 0] == 1
    np.testing.assert_array_equal(g.grid[1:], [[1, 0], [1, 0.5]])
    np.testing.assert_array_equal(g.mapped, [[1, 0], [1, 1], [1, 1]])
    # Half of a time bin mapped: the fraction is of the bin's pages, the cell is not NaN.
    g2 = heatmap_grid(cap, "present", addr_bins=2, time_bins=1, time_range=(0.5, 1.5))
    np.testing.assert_allclose(g2.mapped, [[1, 0.5]])
    np.testing.assert_allclose(g2.grid, [[1, 0]])


def test_absurd_bin_counts_are_refused_before_allocating():
    with pytest.raises(ValueError, match="fewer bins"):
        heatmap_grid(two_vma_capture(), "present", time_bins=1_000_000_000, addr_bins=4)


def test_pages_outside_the_vma_table_are_not_hidden_as_unmapped():
    heap = (HEAP, HEAP + 8 * PAGE, "rw-p", VmaKind.HEAP, "[heap]")
    r = Regions.concat([regions((0, 8, P), base=HEAP), regions((0, 8, P))])  # anon: no VMA
    cap = Capture.from_snapshots(CaptureMeta(interval_ns=10**9), [(0, r, None, vmas(heap))])
    g = heatmap_grid(cap, "present", axis="linear", addr_range=(BASE, BASE + 8 * PAGE), addr_bins=2)
    assert g.mapped.tolist() == [[0, 0]] and g.grid.tolist() == [[1, 1]]
