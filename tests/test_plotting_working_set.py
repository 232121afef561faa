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
