"""Working-set, sparsity, Hilbert, diff and pre-copy plots: artists carry the analysis data."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from synthetic import PAGE, two_vma_capture  # noqa: E402

import pmviz.analysis as pa  # noqa: E402
import pmviz.plotting as pp  # noqa: E402


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_stacked_working_set(ax):
    polys = pp.working_set(two_vma_capture(), ax=ax)
    assert [p.get_label() for p in polys] == ["anon", "heap"]
    # The top of the stack is the total resident bytes: max y of the heap layer.
    top = polys[-1].get_paths()[0].vertices[:, 1].max()
    assert top == 10 * PAGE
    with pytest.raises(ValueError, match="metric"):
        pp.working_set(two_vma_capture(), ax=ax, metric="dirty")


def test_wss_lines(ax):
    lines = pp.wss(pa.wss_curve(two_vma_capture(), windows=(1, 2)), ax=ax)
    assert (lines[0].get_ydata() // PAGE).tolist() == [4, 6, 3, 1]
    assert (lines[1].get_ydata() // PAGE).tolist() == [4, 10, 9, 3]
    assert lines[1].get_label().startswith("2 intervals")


def test_idle_histogram(ax):
    bars = pp.idle_histogram(two_vma_capture(), ax=ax)
    assert [b.get_height() // PAGE for b in bars] == [1, 2, 2, 1, 0]
    assert ax.get_xticklabels()[-1].get_text() == "never"


def test_temperature_sparsity_hilbert_diff_precopy(ax):
    cap = two_vma_capture()
    cold, warm, hot = pp.temperature_bars(pa.temperature(cap), ax=ax)
    # Largest VMA drawn on top: y order is [heap] (2 pages), anon (4 pages).
    assert [b.get_width() // PAGE for b in hot] == [1, 0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["[heap]", "anon"]
    ax.clear()
    bars = pp.size_histogram(pa.sparsity(cap, at=1), ax=ax, which="regions")
    assert [b.get_height() for b in bars[0]] == [0, 1, 0, 1]  # runs of 2 and 8 pages
    ax.clear()
    im = pp.hilbert(cap, ["present"], ax=ax, at=3, vma="[heap]")
    assert im.get_array().shape == (2, 2, 3)
    np.testing.assert_allclose(im.get_array()[0, 0], matplotlib.colors.to_rgb("#1f77b4"))
    ax.clear()
    mesh = pp.diff(pa.snapshot_diff(cap, 1, 2), ax=ax, addr_bins=4, colorbar=False)
    np.testing.assert_array_equal(
        np.asarray(mesh.get_array()).reshape(4, 5)[:, 4], [0.25, 0, 0.5, 0]
    )
    ax.clear()
    est = pa.precopy_estimate(cap, bandwidth=64 * PAGE, downtime=0.01)
    bars = pp.precopy(est, ax=ax)
    assert [b.get_height() for b in bars] == est.round_bytes.tolist()
    assert ax.get_xticklabels()[-1].get_text() == "stop&copy"
    assert "converged" in ax.get_title()


def test_size_histogram_labels_every_hole_bin_in_bytes(ax):
    # Runs of 1 and 2 pages, holes of up to 1000 pages: the hole bins reach far beyond the
    # run bins, and each of them has a label (it used to stop at the runs' last bin).
    sp = pa.Sparsity(
        ranges=np.array([[0, 1 << 30]], dtype=np.uint64),
        category="present",
        page_size=PAGE,
        reserved_bytes=1 << 30,
        matched_bytes=3 * PAGE,
        n_scan_regions=5,
        region_pages=np.array([1, 2, 1]),
        hole_pages=np.array([3, 1000]),
        vec_len=512,
    )
    runs, holes = pp.size_histogram(sp, ax=ax)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert len(labels) == len(holes) == 10  # 1 .. 1023 pages: 10 power-of-two bins
    assert labels[:3] == ["4 KiB", "8 KiB", "16 KiB"] and labels[-1] == "2 MiB"
    assert [b.get_height() for b in holes][-1] == 1  # the 1000-page hole: 512-1023 pages
    assert sum(b.get_height() for b in runs) == 3


def test_hilbert_has_a_legend_and_axis_text(ax):
    im = pp.hilbert(two_vma_capture(), ["present"], ax=ax, at=3, vma="[heap]")
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["present", "no page (empty cell)"]
    assert "Hilbert curve" in ax.get_xlabel() and "bottom left" in ax.get_xlabel()
    assert {t.get_text() for t in ax.texts} == {"start", "end"}
    assert im.get_array().shape[:2] == (2, 2)


def test_diff_colormap_reads_like_the_other_heatmaps(ax):
    from pmviz.plotting._style import UNMAPPED_COLOR

    mesh = pp.diff(pa.snapshot_diff(two_vma_capture(), 1, 2), ax=ax, addr_bins=4)
    cm = mesh.get_cmap()
    # 0 dark, 1 bright, as inferno/viridis in pp.heatmap (it used to be magma_r: 0 bright).
    lum = [np.dot(cm(v)[:3], [0.299, 0.587, 0.114]) for v in (0.0, 1.0)]
    assert lum[0] < 0.1 < 0.8 < lum[1]
    np.testing.assert_allclose(cm.get_bad(), matplotlib.colors.to_rgba(UNMAPPED_COLOR))


def test_precopy_title_names_the_byte_rate_and_the_link_once(ax):
    est = pa.precopy_estimate(two_vma_capture(), bandwidth=1e9 / 8, downtime=0.01)
    pp.precopy(est, ax=ax, nominal_bits=1e9)
    title = ax.get_title()
    assert title.startswith("pre-copy at 119 MiB/s (1 Gbit/s)\n")
    assert title.count("bit/s") == 1
    assert all(len(line) <= 40 for line in title.splitlines()), title


def test_human_rate_and_unmapped_colormap():
    from pmviz.plotting._style import UNMAPPED_COLOR, fraction_cmap, human_rate

    assert human_rate(1e9 / 8, nominal_bits=1e9) == "119 MiB/s (1 Gbit/s)"
    assert human_rate(100e6 / 8, nominal_bits=100e6) == "11.9 MiB/s (100 Mbit/s)"
    assert human_rate(10e9 / 8, nominal_bits=10e9) == "1.16 GiB/s (10 Gbit/s)"
    assert human_rate(512) == "512 B/s"
    for name in (None, "viridis", "magma"):
        cm = fraction_cmap(name, category="written")
        assert cm(np.nan) == matplotlib.colors.to_rgba(UNMAPPED_COLOR)
        assert cm(0.0) != cm(np.nan)


def test_hilbert_paints_unmapped_cells_in_the_unmapped_colour(ax):
    from synthetic import HEAP

    from pmviz.plotting._style import UNMAPPED_COLOR

    # The heap (8 pages) then 8 pages of nothing mapped: 16 pages on a 4x4 curve. Snapshot 3:
    # heap pages 0-1 present, 2-7 mapped but empty.
    im = pp.hilbert(
        two_vma_capture(), ["present"], ax=ax, at=3, start=HEAP, end=HEAP + 16 * PAGE, order=2
    )
    x, y = pa.hilbert_d2xy(2, np.arange(16))
    colours = im.get_array()[y, x]
    np.testing.assert_allclose(colours[:2], [matplotlib.colors.to_rgb("#1f77b4")] * 2)
    np.testing.assert_allclose(colours[2:8], np.ones((6, 3)))  # mapped, no page: white
    np.testing.assert_allclose(colours[8:], [matplotlib.colors.to_rgb(UNMAPPED_COLOR)] * 8)
    assert [t.get_text() for t in ax.get_legend().get_texts()][-1] == "not mapped"


def test_idle_histogram_groups_long_captures_into_bars_the_pixels_can_show():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pmviz.analysis.working_set import IdleTime
    from pmviz.plotting.working_set import idle_histogram

    n = 10_000
    it = IdleTime(n - 1, np.arange(n), np.full(n, 4096, np.int64), 8192, 0.1)
    fig, ax = plt.subplots()
    try:
        bars = idle_histogram(it, ax=ax, max_bars=200)
        heights = [b.get_height() for b in bars]
        assert len(bars) == 200 + 1  # 50 intervals per bar, then "never"
        assert sum(heights[:-1]) == n * 4096 and heights[-1] == 8192
        assert "50 per bar" in ax.get_xlabel()
    finally:
        plt.close(fig)


def test_time_axis_plots_draw_the_capture_marks():
    from pmviz.capture import Mark
    from pmviz.plotting._marks import MARK_COLOR

    cap = two_vma_capture()
    t0 = int(cap.time_ns[0])
    cap.marks = [Mark(t0 + 500_000_000, "fill"), Mark(t0 + 2_500_000_000, "sort")]
    for plot in (pp.working_set, pp.wss):
        fig, ax = plt.subplots()
        try:
            plot(cap, ax=ax)
            lines = [ln for ln in ax.lines if ln.get_color() == MARK_COLOR]
            assert sorted(ln.get_xdata()[0] for ln in lines) == [0.5, 2.5]
            assert {t.get_text() for t in ax.texts} >= {"fill", "sort"}
            ax.clear()
            plot(pa.working_set_size(cap) if plot is pp.working_set else pa.wss_curve(cap), ax=ax)
            assert not ax.texts  # an analysis result has no marks
        finally:
            plt.close(fig)
