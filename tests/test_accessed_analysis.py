"""Analyses and plots of access samples (synthetic series with known answers)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import pmviz  # noqa: E402
from pmviz.accessed import PROBED_DTYPE, REFERENCED_DTYPE, AccessSample, ProbeSample  # noqa: E402
from pmviz.analysis.accessed import (  # noqa: E402
    AccessSeries,
    access_heatmap_grid,
    access_idle_age,
    accessed_wss,
    read_mostly,
)
from pmviz.capture import Capture, CaptureMeta  # noqa: E402
from pmviz.categories import Category as C  # noqa: E402
from pmviz.maps import VMA_DTYPE, Vmas  # noqa: E402
from pmviz.plotting.accessed import (  # noqa: E402
    access_heatmap,
    access_idle_histogram,
    accessed_wss_lines,
)

P = 4096
MiB = 1 << 20
# three VMAs of 1 MiB: A, B, C
BOUNDS = [(0x10000000, 0x10100000), (0x20000000, 0x20100000), (0x30000000, 0x30100000)]


def _vma_sample(t, referenced, resident=(MiB, MiB, MiB)):
    rows = np.zeros(3, REFERENCED_DTYPE)
    rows["start"] = [b[0] for b in BOUNDS]
    rows["end"] = [b[1] for b in BOUNDS]
    rows["referenced_bytes"] = referenced
    rows["resident_bytes"] = resident
    return AccessSample(t, rows)


def _series():
    # A referenced only at sample 0, B at sample 2 (half of it), C never
    return AccessSeries.from_samples(
        [
            _vma_sample(0, [MiB, 0, 0]),
            _vma_sample(10**8, [0, 0, 0]),
            _vma_sample(2 * 10**8, [0, MiB // 2, 0]),
        ]
    )


def _capture():
    vm = np.zeros(3, VMA_DTYPE)
    vm["start"] = [b[0] for b in BOUNDS]
    vm["end"] = [b[1] for b in BOUNDS]
    vm["perms"] = b"rw-p"
    vmas = Vmas(vm, ["a", "b", "c"])
    res = pmviz.Regions.from_arrays([b[0] for b in BOUNDS], [b[1] for b in BOUNDS], C.PRESENT)
    snaps = []
    for i, w in enumerate([[(0x10000000, 0x10000000 + 4 * P)], [], [(0x20000000, 0x20000000 + P)]]):
        wr = pmviz.Regions.from_arrays([a for a, _ in w], [b for _, b in w], C.WRITTEN)
        snaps.append((i * 10**8, res, wr, vmas if i == 0 else None))
    return Capture.from_snapshots(CaptureMeta(interval_ns=10**8), snaps)


def test_series_totals_and_probe_bounds():
    s = _series()
    assert s.accessed_bytes().tolist() == [MiB, 0, MiB // 2]
    assert s.resident_bytes().tolist() == [3 * MiB] * 3
    rows = np.zeros(2, PROBED_DTYPE)
    rows["start"], rows["end"] = [0, 100 * P], [100 * P, 200 * P]
    rows["resident_pages"] = [100, 100]
    rows["probed_pages"] = [10, 0]
    rows["accessed_pages"] = [5, 0]
    ps = AccessSeries.from_samples([ProbeSample(0, rows, 10**8)])
    est, lo, hi = ps.accessed_bytes(bounds=True)
    assert est[0] == 50 * P  # half of region 0; region 1 unprobed counts 0
    assert lo[0] == pytest.approx(0.2366 * 100 * P, rel=1e-3)
    assert hi[0] == pytest.approx(0.7634 * 100 * P, rel=1e-3)
    with pytest.raises(ValueError, match="both kinds"):
        AccessSeries.from_samples([_vma_sample(0, [0, 0, 0]), ProbeSample(0, rows, 1)])


def test_accessed_wss_with_capture():
    w = accessed_wss(_series(), _capture())
    assert w.accessed.tolist() == [MiB, 0, MiB // 2]
    assert w.resident.tolist() == [3 * MiB] * 3
    assert w.written.tolist() == [4 * P, 0, P]
    assert "Accessed" in w._repr_html_()


def test_idle_age():
    a = access_idle_age(_series(), at=-1)
    # B last accessed 0 samples ago, A 2 samples ago, C never (resident bytes of sample 2)
    assert a.bytes.tolist() == [MiB, 0, MiB]
    assert a.never == MiB
    assert a.interval_s == pytest.approx(0.1)


def test_heatmap_grid_fractions_on_the_capture_axis():
    cap = _capture()
    g = access_heatmap_grid(_series(), cap, addr_bins=3)
    assert g.grid.shape == (3, 3)
    assert g.category == "accessed"
    # the compact axis is the three VMAs laid end to end: one bin each
    assert np.allclose(g.grid, [[1, 0, 0], [0, 0, 0], [0, 0.5, 0]])
    g2 = access_heatmap_grid(_series(), addr_bins=3)  # the series' own axis
    assert np.allclose(g2.grid, g.grid)


def test_read_mostly_table():
    rm = read_mostly(_series(), _capture())
    assert rm.labels == ["a", "b", "c"]
    assert rm.referenced.tolist() == [MiB / 3, MiB / 6, 0]
    assert rm.written.tolist() == pytest.approx([4 * P / 3, P / 3, 0])
    assert rm.read_only.tolist() == pytest.approx([(MiB - 4 * P) / 3, (MiB / 2 - P) / 3, 0])
    html = rm._repr_html_()
    assert "Read-mostly" in html and html.index(">a<") < html.index(">b<")
    assert np.isnan(read_mostly(_series()).written).all()  # no capture: written unknown


def test_plots_return_their_artists():
    fig, axes = plt.subplots(1, 3)
    try:
        arts = accessed_wss_lines(accessed_wss(_series(), _capture()), ax=axes[0])
        assert arts[0].get_ydata().tolist() == [MiB, 0, MiB // 2]
        assert [a.get_label() for a in arts] == ["accessed (vma)", "written", "resident"]
        bars = access_idle_histogram(_series(), ax=axes[1])
        assert [b.get_height() for b in bars] == [MiB, 0, MiB, MiB]
        mesh = access_heatmap(access_heatmap_grid(_series(), _capture(), addr_bins=3), ax=axes[2])
        assert np.allclose(mesh.get_array().reshape(3, 3), [[1, 0, 0], [0, 0, 0.5], [0, 0, 0]])
    finally:
        plt.close(fig)


def _probe_series():
    samples = []
    for i, acc in enumerate([[10, 0], [0, 0], [5, 0]]):
        rows = np.zeros(2, PROBED_DTYPE)
        rows["start"] = [BOUNDS[0][0], BOUNDS[1][0]]
        rows["end"] = [BOUNDS[0][1], BOUNDS[1][1]]
        rows["resident_pages"] = 256  # all of each 1 MiB range
        rows["probed_pages"] = 10
        rows["accessed_pages"] = acc
        samples.append(ProbeSample(i * 10**8, rows, 10**8))
    return AccessSeries.from_samples(samples)


def test_probe_series_analyses():
    s = _probe_series()
    est, lo, hi = s.accessed_bytes(bounds=True)
    assert est.tolist() == [MiB, 0, MiB // 2]
    assert (lo <= est).all() and (est <= hi).all() and hi[1] > 0  # 0/10 still has an upper bound
    a = access_idle_age(s)
    assert a.bytes.tolist() == [MiB, 0, 0] and a.never == MiB
    g = access_heatmap_grid(s, _capture(), addr_bins=3)
    assert np.allclose(g.grid, [[1, 0, 0], [0, 0, 0], [0.5, 0, 0]])
    assert "pages probed / came back" in s._repr_html_()
    with pytest.raises(ValueError, match="kind 'vma'"):
        read_mostly(s)
