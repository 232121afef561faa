"""``heatmap_grid``: exact time x address coverage of a page category, like ``numpy.histogram2d``."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..capture import Capture
from ._intervals import prefix_coverage
from ._select import CategoryArg, resolve
from .axis import AddressAxis, address_axis

__all__ = ["HeatmapGrid", "heatmap_grid", "snapshot_cells", "bin_address"]


class HeatmapGrid(NamedTuple):
    """The result of ``heatmap_grid``.

    Attributes
    ----------
    grid : numpy.ndarray
        ``float64`` ``(n_time_bins, n_addr_bins)``: the fraction of each bin's pages in the
        category, time-weighted over the bin; NaN where no snapshot covers the time bin.
    time_edges : numpy.ndarray
        ``n_time_bins + 1`` times in seconds since the first snapshot.
    addr_edges : numpy.ndarray
        ``n_addr_bins + 1`` real addresses (``uint64``) where the address bins start.
    addr_pos : numpy.ndarray
        The same edges as compact positions (bytes along ``axis``); plots use these.
    axis : AddressAxis
        The address axis: segments (for unmapped gaps) and labelled VMA bands.
    category : str
        What was counted, for titles and legends.
    """

    grid: np.ndarray
    time_edges: np.ndarray
    addr_edges: np.ndarray
    addr_pos: np.ndarray
    axis: AddressAxis
    category: str


def snapshot_cells(capture: Capture) -> np.ndarray:
    """``n + 1`` times (s): snapshot ``i`` is drawn over ``[cells[i], cells[i + 1])``.

    The last snapshot lasts one recording interval (``meta.interval_ns``, else the median gap,
    else one second).
    """
    t = capture.times
    if not t.size:
        return np.zeros(1)
    return np.append(t, t[-1] + interval_s(capture))


def interval_s(capture: Capture) -> float:
    """Seconds between snapshots: ``meta.interval_ns``, else the median gap, else one second."""
    if capture.meta.interval_ns > 0:
        return capture.meta.interval_ns / 1e9
    t = capture.times
    gap = float(np.median(np.diff(t))) if t.size > 1 else 0.0
    return gap if gap > 0 else 1.0


def bin_address(
    regions: np.ndarray,
    offsets: np.ndarray,
    axis: AddressAxis,
    addr_real: np.ndarray,
    *,
    select=None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Bytes of selected regions per address bin, per row: ``(n_rows, len(addr_real) - 1)``.

    Only bytes inside the axis segments count: a region in a gap (a skipped guard reservation)
    is left out rather than added to the neighbouring bin.
    """
    seg_s, seg_e = axis.seg_start, axis.seg_end
    pts = np.concatenate([addr_real, seg_s, seg_e]).astype(np.uint64)
    uniq, inv = np.unique(pts, return_inverse=True)
    c = prefix_coverage(regions, offsets, uniq, select=select, rows=rows)
    ne = addr_real.size
    at_edge = c[:, inv[:ne]]
    if seg_s.size > 1:
        # Coverage inside the gaps, cumulated; no edge lies strictly inside a gap.
        gap = c[:, inv[ne + 1 : ne + seg_s.size]] - c[:, inv[ne + seg_s.size : -1]]
        gap_cum = np.concatenate([np.zeros((c.shape[0], 1), np.int64), np.cumsum(gap, 1)], 1)
        k = np.searchsorted(seg_s[1:], addr_real, side="right")
        at_edge = at_edge - gap_cum[:, k]
    return np.diff(at_edge, axis=1)


def heatmap_grid(
    capture: Capture,
    category: CategoryArg = "present",
    *,
    time_bins: int | None = None,
    addr_bins: int = 512,
    addr_range: tuple[int, int] | None = None,
    time_range: tuple[float | None, float | None] | None = None,
    axis: str | AddressAxis = "compact",
) -> HeatmapGrid:
    """Bin a capture into a time x address grid of the fraction of pages in a category.

    Coverage is exact: a region partly inside a bin contributes exactly its overlap, and a
    time bin averages the snapshots that cover it weighted by how long each does (snapshot
    ``i`` holds from its time to the next snapshot's; see ``snapshot_cells``). Column ``i`` of
    the written sets holds the pages written in the interval ending with snapshot ``i``.

    Parameters
    ----------
    capture : Capture
    category : "written", Category, int, str or Mask
        ``"written"`` reads the write-tracking sets; a category, bit set or name (``"present"``,
        ``"swapped|file"``) counts pages having all those bits; a ``Mask`` counts the pages it
        matches (``Mask.matches``), e.g. CRIU's dump mask.
    time_bins : int, optional
        Equal-width time bins; default one bin per snapshot.
    addr_bins : int
        Address bins (fewer if the axis has fewer pages); each holds whole pages.
    addr_range : (int, int), optional
        Address zoom ``[start, end)``.
    time_range : (float, float), optional
        Time zoom in seconds since the first snapshot (either end may be None).
    axis : {"compact", "occupied", "auto", "linear"} or AddressAxis
        ``"compact"`` collapses unmapped gaps; ``"occupied"`` also collapses stretches where
        no page was ever present, swapped or written (sanitizer shadow); ``"auto"`` picks
        between those two; ``"linear"`` spans ``addr_range`` as is (see ``address_axis``).

    Returns
    -------
    HeatmapGrid

    Examples
    --------
    >>> import pmviz
    >>> cap = pmviz.open("sample_data/numpy-workload.pmviz")  # doctest: +SKIP
    >>> g = heatmap_grid(cap, "written", addr_bins=256)  # doctest: +SKIP
    >>> g.grid.shape  # one row per snapshot, one column per address bin  # doctest: +SKIP
    (47, 256)
    """
    if not capture.n_snapshots:
        raise ValueError("the capture has no snapshots; there is nothing to bin")
    src = resolve(capture, category)
    ax = (
        axis
        if isinstance(axis, AddressAxis)
        else address_axis(capture, kind=axis, addr_range=addr_range)
    )
    if addr_bins < 1:
        raise ValueError(f"addr_bins must be >= 1, got {addr_bins}")
    pos, real = ax.edges(addr_bins, capture.page_size)
    width = np.diff(pos).astype(np.float64)  # bytes per address bin

    cells = snapshot_cells(capture)
    t0 = cells[0] if time_range is None or time_range[0] is None else float(time_range[0])
    t1 = cells[-1] if time_range is None or time_range[1] is None else float(time_range[1])
    if not t1 > t0:
        raise ValueError(f"time_range must have start < end, got ({t0}, {t1})")
    if time_bins is None:
        tedges = np.concatenate([[t0], cells[(cells > t0) & (cells < t1)], [t1]])
    else:
        if time_bins < 1:
            raise ValueError(f"time_bins must be >= 1, got {time_bins}")
        tedges = np.linspace(t0, t1, int(time_bins) + 1)
    # Only the snapshots whose cell overlaps the time range are binned.
    rows = np.flatnonzero((cells[1:] > t0) & (cells[:-1] < t1))
    if rows.size:
        counts = bin_address(src.regions, src.offsets, ax, real, select=src.select, rows=rows)
    else:
        counts = np.zeros((0, width.size), np.int64)
    grid = _time_average(
        counts.astype(np.float64), cells[rows[0] : rows[-1] + 2] if rows.size else cells[:1], tedges
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        grid /= width[None, :]
    return HeatmapGrid(grid, tedges, real, pos, ax, src.label)


def _time_average(values: np.ndarray, cells: np.ndarray, tedges: np.ndarray) -> np.ndarray:
    """Time-weighted mean of step-function rows over each time bin (NaN where not covered).

    Row ``i`` holds over ``[cells[i], cells[i + 1])``; the integral up to ``t`` is piecewise
    linear, so bin means are differences of it at the bin edges.
    """
    n = values.shape[0]
    if not n:
        return np.full((tedges.size - 1, values.shape[1]), np.nan)
    dur = np.diff(cells)
    integral = np.zeros((n + 1, values.shape[1]))
    np.cumsum(values * dur[:, None], axis=0, out=integral[1:])

    def at(t: np.ndarray) -> np.ndarray:
        tc = np.clip(t, cells[0], cells[-1])
        i = np.clip(np.searchsorted(cells, tc, side="right") - 1, 0, n - 1)
        return integral[i] + (tc - cells[i])[:, None] * values[i]

    covered = np.diff(np.clip(tedges, cells[0], cells[-1]))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.diff(at(tedges), axis=0) / covered[:, None]
    out[covered <= 0] = np.nan
    return out
