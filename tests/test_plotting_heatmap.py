"""Plots assert on artist data (arrays, ticks, labels), never on pixels."""

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
    assert any(np.allclose(line.get_ydata(), 8 * PAGE) for line in ax.get_lines())


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
