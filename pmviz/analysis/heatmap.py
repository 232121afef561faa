"""``heatmap_grid``: exact time x address coverage of a page category, like ``numpy.histogram2d``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .._intervals import take_rows
from ..capture import Capture, Changes
from ..maps import Vmas
from ..regions import REGION_DTYPE
from ._html import human_bytes, table, text
from ._intervals import prefix_coverage
from ._select import Between, CategoryArg, Source, phase, resolve
from ._stream import changes, chunks, row_chunks, split_bins, to_compact
from .axis import AddressAxis, address_axis

__all__ = ["HeatmapGrid", "heatmap_grid", "heatmap_grids", "snapshot_cells", "bin_address"]


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
    mapped : numpy.ndarray or None
        ``(n_time_bins, n_addr_bins)``: the fraction of each cell mapped (inside a VMA of the
        table in force), time-weighted; ``grid`` is NaN where it is 0 ("not mapped at that
        time", never "0 % of pages"). ``None`` for a capture without VMA tables.
    """

    grid: np.ndarray
    time_edges: np.ndarray
    addr_edges: np.ndarray
    addr_pos: np.ndarray
    axis: AddressAxis
    category: str
    mapped: np.ndarray | None = None

    def _rows(self) -> dict[str, str]:
        finite = np.isfinite(self.grid)
        t = self.time_edges
        return {
            "category": self.category,
            "bins": f"{self.grid.shape[0]:,} time x {self.grid.shape[1]:,} address",
            "time": f"{t[0]:.3f} - {t[-1]:.3f} s" if t.size else "—",
            "address axis": f"{self.axis.kind}, {human_bytes(self.axis.length)} in "
            f"{self.axis.seg_start.size:,} segment(s), {self.axis.bands.size:,} VMA band(s)",
            "mean fraction": f"{np.nanmean(self.grid):.1%}" if finite.any() else "—",
            "unmapped cells": f"{int((~finite).sum()):,} of {self.grid.size:,}",
        }

    def __repr__(self) -> str:
        return text("HeatmapGrid", self._rows())

    def _repr_html_(self) -> str:
        return table("HeatmapGrid", self._rows())


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
    between: Between = None,
) -> HeatmapGrid:
    """Bin a capture into a time x address grid of the fraction of pages in a category.

    Coverage is exact: a region partly inside a bin contributes exactly its overlap, and a
    time bin averages the snapshots that cover it weighted by how long each does (snapshot
    ``i`` holds from its time to the next snapshot's; see ``snapshot_cells``). Column ``i`` of
    the written sets holds the pages written in the interval ending with snapshot ``i``.

    The capture is read as changes (``Capture.changes``; written sets by chunk): a region
    that stays from one snapshot to the next costs nothing, and memory is the grid plus one
    chunk, however many snapshots there are.

    Parameters
    ----------
    capture : Capture
    category : "written", Category, int, str or Mask
        ``"written"`` reads the write-tracking sets; a category, bit set or name (``"present"``,
        ``"swapped|file"``) counts pages having all those bits; a ``Mask`` counts the pages it
        matches (``Mask.matches``), e.g. CRIU's dump mask.
    time_bins : int, optional
        Equal-width time bins; default one bin per snapshot. Time x address bins are
        limited to what 2 GiB of grids holds (``ValueError`` beyond: an image shows a few
        thousand bins a side).
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
    between : (str, str), optional
        Only the phase from one mark to another (``Capture.between``), e.g.
        ``("fill", "sort")``.

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
    capture = phase(capture, between)
    return heatmap_grids(
        capture,
        [category],
        time_bins=time_bins,
        addr_bins=addr_bins,
        addr_range=addr_range,
        time_range=time_range,
        axis=axis,
    )[0]


def heatmap_grids(
    capture: Capture,
    categories: Sequence[CategoryArg],
    *,
    time_bins: int | None = None,
    addr_bins: int = 512,
    addr_range: tuple[int, int] | None = None,
    time_range: tuple[float | None, float | None] | None = None,
    axis: str | AddressAxis = "compact",
    between: Between = None,
) -> list[HeatmapGrid]:
    """``heatmap_grid`` of several categories on one axis, reading the capture once.

    The region changes are replayed once for every region category, the written sets read
    once; the arguments are those of :func:`heatmap_grid`.
    between : (str, str), optional
        Only the phase from one mark to another (``Capture.between``), e.g.
        ``("fill", "sort")``.

    Returns
    -------
    list of HeatmapGrid
        One per category, in order.
    """
    capture = phase(capture, between)
    if not capture.n_snapshots:
        raise ValueError("the capture has no snapshots; there is nothing to bin")
    _check_bins("addr_bins", addr_bins)
    if time_bins is not None:
        _check_bins("time_bins", time_bins)
    srcs = [resolve(capture, c) for c in categories]
    ax = (
        axis
        if isinstance(axis, AddressAxis)
        else address_axis(capture, kind=axis, addr_range=addr_range)
    )
    pos, real = ax.edges(addr_bins, capture.page_size)
    width = np.diff(pos).astype(np.float64)  # bytes per address bin

    cells = snapshot_cells(capture)
    t0 = cells[0] if time_range is None or time_range[0] is None else float(time_range[0])
    t1 = cells[-1] if time_range is None or time_range[1] is None else float(time_range[1])
    if not t1 > t0:
        raise ValueError(f"time_range must have start < end, got ({t0}, {t1})")
    n_time = (
        int(time_bins) if time_bins is not None else int(((cells > t0) & (cells < t1)).sum()) + 1
    )
    cells_n = n_time * width.size * (len(srcs) + 3)  # grids + accumulators
    if cells_n > _MAX_CELLS:
        raise ValueError(
            f"{n_time:,} time x {width.size:,} address bins need "
            f"{cells_n * 8 / 2**30:,.1f} GiB; ask for fewer bins (an image shows a few "
            "thousand a side: time_bins=2000)"
        )
    if time_bins is None:
        tedges = np.concatenate([[t0], cells[(cells > t0) & (cells < t1)], [t1]])
    else:
        tedges = np.linspace(t0, t1, int(time_bins) + 1)
    # Only the snapshots whose cell overlaps the time range are read.
    rows = np.flatnonzero((cells[1:] > t0) & (cells[:-1] < t1))
    if not rows.size:
        grids = [np.full((tedges.size - 1, width.size), np.nan) for _ in srcs]
    else:
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        accs = [_TimeGrid(tedges, cells, lo, hi, pos, ax) for _ in srcs]
        held = [acc for src, acc in zip(srcs, accs) if src.what == "written"]
        if held:
            _replay_written(capture, lo, hi, held, ax, real)
        pairs = [(src, acc) for src, acc in zip(srcs, accs) if src.what == "regions"]
        if pairs:
            _replay_regions(capture, lo, hi, pairs, ax, real)
        grids = [acc.mean() for acc in accs]
    mapped = _mapped(capture, rows, tedges, cells, pos, ax)
    out = []
    with np.errstate(invalid="ignore", divide="ignore"):
        if mapped is not None:
            unmapped = mapped < 0.5  # less than a byte mapped on average: not mapped
            mapped /= width[None, :]
        for src, grid in zip(srcs, grids):
            grid /= width[None, :]
            if mapped is not None:
                # Pages counted outside the VMA table (a scan and a maps read a moment apart)
                # are data, never hidden as unmapped.
                grid[unmapped & ~(grid > 0)] = np.nan
            out.append(HeatmapGrid(grid, tedges, real, pos, ax, src.label, mapped))
    return out


_MAX_CELLS = 1 << 28
"""Float cells (grids and accumulators) one call may allocate: 2 GiB."""


def _replay_regions(
    capture: Capture,
    lo: int,
    hi: int,
    pairs: list[tuple[Source, _TimeGrid]],
    axis: AddressAxis,
    real: np.ndarray,
) -> None:
    """Feed the region rows of snapshots ``lo .. hi-1`` to each accumulator.

    Each run of snapshots is read the cheaper way its stored form allows (all give the same
    bytes per bin, exactly):

    * as changes (``Capture.changes``), the usual case: a row that stays costs nothing;
    * a keyframe among them as its whole snapshot, binned densely (one ``searchsorted`` of
      the bin edges) and fed as the difference to the accumulator's bytes per bin: its row
      changes would need the snapshot before it rebuilt and diffed, a sort of everything
      that changed since the previous keyframe;
    * runs of consecutive keyframes (the capture stores one when a snapshot's changes
      outgrow it: categories flipping everywhere) as dense chunks (``Capture.chunks``).
    """

    def feed(ch: Changes) -> None:
        n_snap = max(1, int(np.count_nonzero(np.diff(ch.snapshot))) + 1) if ch.rows.size else 1
        if ch.rows.size > _DENSE_CHANGES * real.size * n_snap and _feed_dense(
            ch, pairs, axis, real
        ):
            return
        for src, acc in pairs:
            sel = src.select.matches(ch.rows["categories"]) if src.select else ...
            acc.add(ch.rows[sel], ch.snapshot[sel], ch.sign[sel])

    keys = np.asarray(capture.keyframes, np.int64)
    for a, b, dense in _runs(keys, lo, hi):
        if dense:
            for first, sub in chunks(capture, slice(a, b)):
                for src, acc in pairs:
                    counts = bin_address(
                        sub.regions, sub.region_offsets, axis, real, select=src.select
                    )
                    acc.add_dense(first, counts)
            continue
        for ch in changes(capture, slice(a, b), whole_keyframes=True):
            # The run's first snapshot and its keyframes come whole: fed as the difference of
            # their bytes per bin to the accumulator's.
            whole_at = ch.first
            if ch.first == a:  # the first chunk starts with snapshot a, whole
                cut = int(np.searchsorted(ch.snapshot, a, side="right"))
                whole_rows = ch.rows[:cut]
                ch = Changes(a + 1, ch.end, ch.snapshot[cut:], ch.rows[cut:], ch.sign[cut:])
            elif ch.end == ch.first + 1 and ch.first in keys:
                whole_rows, ch = ch.rows, ch._replace(snapshot=ch.snapshot[:0])
            else:
                whole_rows = None
            if whole_rows is not None:
                for src, acc in pairs:
                    acc.add_dense(whole_at, _bin_rows(whole_rows, axis, real, src, acc)[None, :])
            if ch.snapshot.size:
                feed(ch)


_DENSE_CHANGES = 1.0
"""Change rows per snapshot, per address-bin edge, above which a snapshot's changes are binned
as two dense sets (appearing, disappearing: one ``searchsorted`` of the edges each) rather than
row by row. Measured on stored 10^9-row captures, 1,000 address bins: at 400 change rows per
snapshot row by row took 0.97 s and densely 2.2 s; at 4,000 rows, 1.11 s and 1.01 s."""


def _feed_dense(
    ch: Changes, pairs: list[tuple[Source, _TimeGrid]], axis: AddressAxis, real: np.ndarray
) -> bool:
    """Bin each snapshot's appearing and disappearing rows of ``ch`` densely; ``False`` (and
    nothing fed) unless each of those sets is sorted and disjoint, as a scan's subsets are.
    """
    sets = []
    for part in (ch.sign > 0, ch.sign < 0):  # a mask keeps each snapshot's order by start
        idx = np.flatnonzero(part)
        rows, snap = take_rows(ch.rows, idx), ch.snapshot[idx]
        heads = np.flatnonzero(np.diff(snap, prepend=-1)) if snap.size else snap[:0]
        off = np.append(heads, snap.size)
        if not _sorted_disjoint(rows, off):
            return False
        sets.append((rows, off, snap[heads]))
    snaps = np.union1d(sets[0][2], sets[1][2])
    for src, acc in pairs:
        d = np.zeros((snaps.size, real.size - 1))
        for (rows, off, at), sign in zip(sets, (1, -1)):
            if at.size:
                counts = bin_address(rows, off, axis, real, select=src.select)
                d[np.searchsorted(snaps, at)] += sign * counts  # one row per snapshot: no add.at
        acc.add_deltas(snaps, d)
    return True


def _bin_rows(
    rows: np.ndarray, axis: AddressAxis, real: np.ndarray, src: Source, acc: _TimeGrid
) -> np.ndarray:
    """Bytes of one snapshot's selected ``rows`` per address bin (any order, any overlap)."""
    if _sorted_disjoint(rows, np.array([0, rows.size])):
        return bin_address(rows, np.array([0, rows.size]), axis, real, select=src.select)[0]
    sel = src.select.matches(rows["categories"]) if src.select else ...
    return acc.bytes_per_bin(rows[sel])


def _replay_written(
    capture: Capture, lo: int, hi: int, accs: list[_TimeGrid], axis: AddressAxis, real: np.ndarray
) -> None:
    """Feed the written sets of snapshots ``lo .. hi-1`` (each holds over its own cell only).

    A chunk whose sets are sorted and disjoint (as the kernel reports them) is binned as dense
    snapshots (one ``searchsorted`` of the bin edges per snapshot); any other as rows that
    appear at their snapshot and disappear at the next. Either way the chunk's last set is
    gone at the next snapshot, so chunks read either way join up.
    """
    for first, rows, off in row_chunks(capture, "written", slice(lo, hi)):
        n = off.size - 1
        if _sorted_disjoint(rows, off):
            counts = bin_address(rows, off, axis, real)
            if first + n < hi:
                counts = np.concatenate([counts, np.zeros((1, counts.shape[1]), counts.dtype)])
            for acc in accs:
                acc.add_dense(first, counts)
        else:
            snap = np.repeat(np.arange(first, first + n, dtype=np.int64), np.diff(off))
            for acc in accs:
                acc.add_held(rows, snap)


def _sorted_disjoint(rows: np.ndarray, off: np.ndarray) -> bool:
    """Every snapshot's rows sorted by start and not overlapping (``prefix_coverage``'s input)."""
    if rows.size < 2:
        return True
    ok = rows["start"][1:] >= rows["end"][:-1]
    heads = off[1:-1]
    ok[heads[(heads > 0) & (heads < rows.size)] - 1] = True  # a snapshot's first row
    return bool(ok.all())


def _runs(keyframes: np.ndarray, lo: int, hi: int) -> list[tuple[int, int, bool]]:
    """``[a, b)`` runs of ``lo .. hi-1`` and whether to read each as dense snapshots.

    Dense: a keyframe followed by another keyframe (the first snapshot read counts as one: it
    comes whole either way), and the last snapshot if it ends such a run. A run read as
    changes starts at ``lo`` or at a keyframe, so it starts from a whole snapshot.
    """
    n = hi - lo
    keys = np.asarray(keyframes, np.int64)
    ext = np.zeros(n + 1, bool)
    ext[keys[(keys >= lo) & (keys < hi)] - lo] = True
    ext[0] = True
    dense = ext[:-1] & ext[1:]
    if n > 1 and ext[n - 1] and ext[n - 2]:
        dense[n - 1] = True  # nothing follows: the run ends dense
    cuts = np.flatnonzero(np.diff(dense)) + 1
    bounds = [0, *cuts.tolist(), n]
    return [(lo + x, lo + y, bool(dense[x])) for x, y in zip(bounds, bounds[1:])]


def _mapped(
    capture: Capture,
    rows: np.ndarray,
    tedges: np.ndarray,
    cells: np.ndarray,
    pos: np.ndarray,
    ax: AddressAxis,
) -> np.ndarray | None:
    """Mean mapped bytes per cell, from the VMA tables (changes only where a table changes)."""
    tables = capture.vma_tables
    if not rows.size or not any(len(t) for t in tables):
        return None
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    acc = _TimeGrid(tedges, cells, lo, hi, pos, ax)
    idx = capture.vma_index[lo:hi]
    switch = np.flatnonzero(np.diff(idx, prepend=-1))  # the first snapshot of each table run
    prev = np.empty(0, REGION_DTYPE)
    for k in switch.tolist():  # per VMA-table change, not per snapshot
        cur = _as_rows(tables[int(idx[k])])
        both = np.concatenate([prev, cur])
        sign = np.concatenate([-np.ones(prev.size, np.int8), np.ones(cur.size, np.int8)])
        # VMAs in both tables cancel: only what was mapped or unmapped is replayed.
        o = np.lexsort((both["end"], both["start"]))
        both, sign = both[o], sign[o]
        same = np.zeros(both.size, bool)
        if both.size > 1:
            eq = (both["start"][1:] == both["start"][:-1]) & (both["end"][1:] == both["end"][:-1])
            eq &= sign[1:] != sign[:-1]
            same[1:] |= eq
            same[:-1] |= eq
        acc.add(both[~same], np.full(int((~same).sum()), lo + k, np.int64), sign[~same])
        prev = cur
    return acc.mean()


def _as_rows(vmas: Vmas) -> np.ndarray:
    out = np.zeros(len(vmas), REGION_DTYPE)
    out["start"], out["end"] = vmas.start, vmas.end
    return out


def _check_bins(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


class _TimeGrid:
    """Time-weighted mean bytes per (time bin, address bin), fed with region changes.

    A change of ``d`` bytes in address bin ``j`` at time ``tau`` inside time bin ``k`` adds
    ``d`` to the mean of every later time bin and ``d * (b1 - tau) / (b1 - b0)`` to bin ``k``
    (the part of ``[b0, b1)`` it lasts). So ``mean = exclusive_cumsum(whole) + part``, where
    ``whole[k, j]`` sums the changes inside bin ``k`` and ``part[k, j]`` their weighted share:
    a cell nothing changed in costs nothing until the final cumulative sum. Time bins are
    clipped to the cells of the snapshots read (``[cells[lo], cells[hi])``); bins outside
    them are NaN.
    """

    def __init__(
        self,
        tedges: np.ndarray,
        cells: np.ndarray,
        lo: int,
        hi: int,
        pos: np.ndarray,
        axis: AddressAxis,
    ) -> None:
        self.cells = cells
        self.hi = hi
        self.pos = pos
        self.seg = (axis.seg_start, axis.seg_end, axis.seg_pos)
        n_t, self.nb = tedges.size - 1, pos.size - 1
        self.b0 = np.maximum(tedges[:-1], cells[lo])
        self.b1 = np.minimum(tedges[1:], cells[hi])
        self.tedges = tedges
        self.whole = np.zeros((n_t, self.nb))
        self.part = np.zeros((n_t, self.nb))
        self.state = np.zeros(self.nb)
        """Bytes per address bin of the last snapshot fed (exact: integers below 2**53)."""

    def bytes_per_bin(self, rows: np.ndarray) -> np.ndarray:
        """Bytes of ``rows`` per address bin (``float64``), cut at segments and bin edges."""
        ps, pe, _ = to_compact(rows["start"], rows["end"], *self.seg)
        j, nbytes, _ = split_bins(ps, pe, self.pos)
        return np.bincount(j, nbytes.astype(np.float64), minlength=self.nb)

    def add_held(self, rows: np.ndarray, snap: np.ndarray) -> None:
        """Rows that hold over their own snapshot's cell only (written sets)."""
        nxt = snap + 1 < self.hi
        both = np.concatenate([rows, rows[nxt]])
        when = np.concatenate([snap, snap[nxt] + 1])
        sign = np.concatenate([np.ones(snap.size, np.int8), -np.ones(int(nxt.sum()), np.int8)])
        self.add(both, when, sign)

    def add(self, rows: np.ndarray, snap: np.ndarray, sign: np.ndarray) -> None:
        """Rows that appear (``sign`` +1) or disappear (-1) at snapshots ``snap``."""
        ps, pe, r = to_compact(rows["start"], rows["end"], *self.seg)
        j, nbytes, piece = split_bins(ps, pe, self.pos)
        if not j.size:
            return
        src = r[piece]
        # Time bin and share of it per snapshot, computed once per snapshot, not per row.
        s = snap[src]
        s0 = int(s.min())
        tau = self.cells[s0 : int(s.max()) + 1]
        k_s = np.searchsorted(self.tedges, tau, side="right") - 1
        inside_s = k_s < self.b0.size
        k_s = np.minimum(np.maximum(k_s, 0), self.b0.size - 1)  # before the first bin: its start
        b0, b1 = self.b0[k_s], self.b1[k_s]
        dur = b1 - b0
        with np.errstate(invalid="ignore", divide="ignore"):
            frac_s = np.where(dur > 0, (b1 - np.maximum(tau, b0)) / dur, 0.0)
        s -= s0
        inside = inside_s[s]
        if not inside.all():
            s, j, nbytes, src = s[inside], j[inside], nbytes[inside], src[inside]
        if not j.size:
            return
        k, frac = k_s[s], frac_s[s]
        delta = (nbytes * sign[src]).astype(np.float64)
        self.state += np.bincount(j, delta, minlength=self.nb)
        kmin, kmax = int(k.min()), int(k.max())
        n = (kmax - kmin + 1) * self.nb
        flat = (k - kmin) * self.nb + j
        shape = (kmax - kmin + 1, self.nb)
        self.whole[kmin : kmax + 1] += np.bincount(flat, delta, minlength=n).reshape(shape)
        self.part[kmin : kmax + 1] += np.bincount(flat, delta * frac, minlength=n).reshape(shape)

    def add_dense(self, first: int, counts: np.ndarray) -> None:
        """Bytes per address bin of consecutive snapshots ``first, first + 1, ...`` (dense).

        For captures where most rows change every snapshot: each snapshot's difference to the
        previous one is a change of every bin.
        """
        if not counts.shape[0]:
            return
        c = counts.astype(np.float64)
        d = np.diff(c, axis=0, prepend=self.state[None, :])
        self.state = c[-1].copy()
        self._add_steps(np.arange(first, first + c.shape[0]), d)

    def add_deltas(self, snaps: np.ndarray, d: np.ndarray) -> None:
        """Changes of bytes per address bin ``d[i]`` at snapshots ``snaps`` (increasing)."""
        if not snaps.size:
            return
        self.state = self.state + d.sum(axis=0)
        self._add_steps(snaps, d)

    def _add_steps(self, snaps: np.ndarray, d: np.ndarray) -> None:
        tau = self.cells[snaps]
        k = np.maximum(np.searchsorted(self.tedges, tau, side="right") - 1, 0)
        inside = k < self.b0.size
        k, tau, d = k[inside], tau[inside], d[inside]
        if not k.size:
            return
        b0, b1 = self.b0[k], self.b1[k]
        dur = b1 - b0
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(dur > 0, (b1 - np.maximum(tau, b0)) / dur, 0.0)
        # k is nondecreasing: sum the snapshots of each time bin with one reduceat.
        starts = np.flatnonzero(np.diff(k, prepend=-1))
        kk = k[starts]
        self.whole[kk] += np.add.reduceat(d, starts, axis=0)
        self.part[kk] += np.add.reduceat(d * frac[:, None], starts, axis=0)

    def mean(self) -> np.ndarray:
        """Mean bytes per bin over each time bin (NaN where no snapshot read covers it)."""
        before = np.cumsum(self.whole, axis=0)
        before[1:] = before[:-1].copy()
        before[:1] = 0.0
        out = before + self.part
        out[self.b1 <= self.b0] = np.nan
        return out
