"""Plots assert on artist data (arrays, ticks, labels), never on pixels."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PolyCollection  # noqa: E402
from synthetic import PAGE, two_vma_capture  # noqa: E402

import pmviz.analysis as pa  # noqa: E402
import pmviz.plotting as pp  # noqa: E402


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_heatmap_from_capture_draws_the_grid(ax):
    cap = two_vma_capture()
    mesh = pp.heatmap(cap, "present", ax=ax, addr_bins=4)
    g = pa.heatmap_grid(cap, "present", addr_bins=4)
    np.testing.assert_array_equal(np.asarray(mesh.get_array()).reshape(4, 4), g.grid.T)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "0x5555_0000_0000" and "0x7f00_0000_0000" in labels
    texts = {t.get_text() for t in ax.texts}
    assert {"[heap]", "anon"} <= texts
    assert ax.get_title() == "present pages"
    # The collapsed gap is marked at the segment boundary.
    gaps = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(gaps) == 1 and [seg[0][1] for seg in gaps[0].get_segments()] == [8 * PAGE]


def test_heatmap_uses_current_axes_and_forwards_kwargs():
    fig, ax = plt.subplots()
    g = pa.heatmap_grid(two_vma_capture(), "written", addr_bins=16)
    mesh = pp.heatmap(g, colorbar=False, alpha=0.5, cmap="magma")
    assert mesh.axes is ax and mesh.get_alpha() == 0.5
    assert mesh.get_cmap().name.startswith("magma")
    plt.close(fig)
    with pytest.raises(TypeError, match="HeatmapGrid"):
        pp.heatmap(np.zeros((2, 2)))


def test_composite_heatmap_layers_and_legend(ax):
    mesh = pp.composite_heatmap(two_vma_capture(), ax=ax, addr_bins=4)
    assert set(mesh.pmviz_fractions) == {"written", "present", "swapped"}
    rgba = np.asarray(mesh.get_array()).reshape(4, 4, 4)  # addr x time x RGBA
    # Snapshot 0, heap pages 0-4: written (top layer) fully -> pure written red.
    np.testing.assert_allclose(rgba[0, 0, :3], matplotlib.colors.to_rgb("#d62728"))
    # Snapshot 0, anon: nothing -> white.
    np.testing.assert_allclose(rgba[2, 0, :3], [1, 1, 1])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["written", "present", "swapped"]


def test_address_ticks_are_aligned_and_inside():
    ax_ = pa.address_axis(two_vma_capture())
    ticks = pp.address_ticks(ax_, 0, ax_.length)
    real = ax_.to_real(ticks.astype(np.int64))
    assert (real % 0x1000 == 0).all() and 0 in ticks


def _many_vma_capture(n_vmas=50_000):
    """``n_vmas`` one-page VMAs with one-page gaps, kinds and names alternating (no merging)."""
    from synthetic import BASE

    from pmviz.capture import Capture, CaptureMeta
    from pmviz.maps import VMA_DTYPE, VmaKind, Vmas
    from pmviz.regions import REGION_DTYPE, Regions

    start = BASE + np.arange(n_vmas, dtype=np.uint64) * np.uint64(2 * PAGE)
    t = np.zeros(n_vmas, VMA_DTYPE)
    t["start"], t["end"] = start, start + np.uint64(PAGE)
    t["kind"] = np.where(np.arange(n_vmas) % 2, int(VmaKind.FILE), int(VmaKind.ANON))
    t["perms"] = b"rw-p"
    names = [
        f"/usr/lib/python3/_multiarray_umath_{i}.cpython-311-x86_64-linux-gnu.so" if i % 2 else ""
        for i in range(n_vmas)
    ]
    r = np.zeros(n_vmas, REGION_DTYPE)
    r["start"], r["end"], r["categories"] = t["start"], t["end"], 8
    regs = Regions(r)
    return Capture.from_snapshots(
        CaptureMeta(interval_ns=10**8), [(i * 10**8, regs, None, Vmas(t, names)) for i in range(3)]
    )


def test_50k_vmas_draw_a_bounded_number_of_artists():
    """The band strip and labels are bounded by the pixels, not by the VMA count."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from pmviz.plotting.heatmap import _label_budget, _strip_rows

    cap = _many_vma_capture()
    fig = Figure(figsize=(12, 7), layout="constrained")
    ax = fig.add_subplot()
    pp.heatmap(cap, "present", ax=ax)
    assert pa.address_axis(cap).bands.size == 50_000  # every VMA its own band
    strips = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(strips) == 1 and len(strips[0].get_paths()) <= _strip_rows(ax)
    assert not [p for p in ax.patches if isinstance(p, Rectangle)]
    assert 0 < len(ax.texts) <= _label_budget(ax) <= 7 * 72 / 7
    assert all(len(t.get_text()) <= 20 for t in ax.texts)
    pp.composite_heatmap(cap, ax=fig.add_subplot())  # the composite too


def test_short_labels_keep_start_and_extension():
    from pmviz.plotting.heatmap import short_label

    assert short_label("_multiarray_umath.cpython-311-x86_64-linux-gnu.so") == (
        "_multiarray_umath.so"
    )
    assert short_label("libsomething-very-long-name-here.so.6") == "libsomething-very….6"
    assert short_label("[heap]") == "[heap]"
    assert len(short_label("x" * 100)) == 20


def test_unmapped_cells_use_the_unmapped_colour_with_a_legend_entry(ax):
    from synthetic import BASE, HEAP, P, regions, vmas

    from pmviz.capture import Capture, CaptureMeta
    from pmviz.maps import VmaKind
    from pmviz.plotting._style import UNMAPPED_COLOR as _UNMAPPED_COLOR
    from pmviz.plotting._style import UNMAPPED_LABEL as _UNMAPPED_LABEL
    from pmviz.regions import Regions

    heap = (HEAP, HEAP + 8 * PAGE, "rw-p", VmaKind.HEAP, "[heap]")
    anon = (BASE, BASE + 8 * PAGE, "rw-p", VmaKind.ANON, "")
    h = regions((0, 8, P), base=HEAP)
    cap = Capture.from_snapshots(
        CaptureMeta(interval_ns=10**9),
        [
            (0, h, None, vmas(heap)),
            (10**9, Regions.concat([h, regions((0, 8, 0))]), None, vmas(heap, anon)),
        ],
    )
    mesh = pp.heatmap(cap, "present", ax=ax, addr_bins=2)
    assert mesh.get_cmap().get_bad().tolist() == list(matplotlib.colors.to_rgba(_UNMAPPED_COLOR))
    arr = mesh.get_array()
    assert arr.mask.tolist() == [[False, False], [True, False]]  # anon before it was mapped
    legends = [c.get_legend() for c in ax.figure.axes if c.get_legend() is not None]
    assert any(_UNMAPPED_LABEL in [t.get_text() for t in leg.get_texts()] for leg in legends)
    fig2, ax2 = plt.subplots()
    comp = pp.composite_heatmap(cap, ax=ax2, addr_bins=2)
    rgba = np.asarray(comp.get_array()).reshape(2, 2, 4)
    np.testing.assert_allclose(rgba[1, 0, :3], matplotlib.colors.to_rgb(_UNMAPPED_COLOR))
    np.testing.assert_allclose(rgba[1, 1, :3], [1, 1, 1])  # mapped, nothing present: white
    assert _UNMAPPED_LABEL in [t.get_text() for t in ax2.get_legend().get_texts()]
    plt.close(fig2)


def test_marks_are_drawn_on_the_time_axis(ax):
    from pmviz.capture import Mark

    cap = two_vma_capture()
    cap.marks = [Mark(int(cap.time_ns[0]) + 1_500_000_000, "sort"), Mark(10**18, "far")]
    pp.heatmap(cap, "present", ax=ax, addr_bins=4)
    assert [t.get_text().strip() for t in ax.texts if t.get_rotation() == 90] == ["sort"]


def test_heatmaps_name_the_capture_objects(ax):
    from synthetic import BASE

    cap = two_vma_capture()
    cap.meta.extra["names"] = [
        {"start": BASE, "end": BASE + 8 * PAGE, "label": "a: float64[4_096]"}
    ]
    pp.heatmap(cap, "present", ax=ax, addr_bins=4)
    texts = {t.get_text() for t in ax.texts}
    assert "a: float64[4_096]" in texts and "anon" not in texts  # the object stands in for it
    ax.clear()
    pp.composite_heatmap(cap, ax=ax, addr_bins=4)
    assert "a: float64[4_096]" in {t.get_text() for t in ax.texts}
    ax.clear()
    pp.heatmap(cap, "present", ax=ax, addr_bins=4, names=None)
    assert "a: float64[4_096]" not in {t.get_text() for t in ax.texts}
    with pytest.raises(ValueError, match="names must be"):
        pp.heatmap(cap, "present", ax=ax, addr_bins=4, names="all")
