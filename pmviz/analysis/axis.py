"""``AddressAxis``: the address axis of a heatmap, with unmapped gaps collapsed.

A 47-bit address space is almost all empty, so the compact axis is the concatenation of the
mapped segments (the union of every VMA the capture saw), each keeping its real size. Positions
on the axis are "compact bytes"; ``to_real`` and ``to_compact`` convert, vectorised.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .._intervals import bridge_gaps, union_columns
from ..capture import Capture
from ..categories import Category
from ..maps import VmaKind
from ..mask import Mask
from ._html import Summary, human_bytes
from ._stream import changes, snapshot_rows

__all__ = ["AddressAxis", "address_axis"]

BAND_DTYPE = np.dtype([("start", "<u8"), ("end", "<u8"), ("kind", "i1")])


@dataclass(frozen=True, eq=False, repr=False)
class AddressAxis(Summary):
    """Mapped segments laid end to end, plus labelled VMA bands.

    Attributes
    ----------
    kind : str
        ``"compact"`` (gaps between segments removed) or ``"linear"`` (one segment).
    seg_start, seg_end : numpy.ndarray
        ``uint64`` real bounds of the segments, sorted and disjoint.
    bands : numpy.ndarray
        ``BAND_DTYPE`` (``start``, ``end``, ``kind``: a ``VmaKind`` or -1): runs of VMAs with
        one label, clipped to the segments.
    labels : numpy.ndarray
        Object array of band labels (``"[heap]"``, ``"libc.so.6"``, ``"anon"``, ``"shadow"``).
    """

    kind: str
    seg_start: np.ndarray
    seg_end: np.ndarray
    bands: np.ndarray
    labels: np.ndarray

    def _rows(self) -> dict[str, str]:
        lo = f"{int(self.seg_start[0]):#x}" if self.seg_start.size else "—"
        hi = f"{int(self.seg_end[-1]):#x}" if self.seg_end.size else "—"
        return {
            "kind": self.kind,
            "length": f"{human_bytes(self.length)} in {self.seg_start.size:,} segment(s), "
            f"{lo}-{hi}",
            "VMA bands": f"{self.bands.size:,}",
        }

    @property
    def seg_pos(self) -> np.ndarray:
        """Compact position (``int64`` bytes) of each segment's start."""
        sizes = (self.seg_end - self.seg_start).astype(np.int64)
        return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

    @property
    def length(self) -> int:
        """Bytes on the axis (mapped bytes, or the range for a linear axis)."""
        return int((self.seg_end - self.seg_start).sum())

    def to_real(self, pos: np.ndarray | int) -> np.ndarray:
        """Real addresses of compact positions (a position on a boundary maps to the next segment)."""
        p = np.asarray(pos, dtype=np.int64)
        if not self.seg_start.size:
            return np.zeros(p.shape, dtype=np.uint64)
        sp = self.seg_pos
        i = np.clip(np.searchsorted(sp, p, side="right") - 1, 0, sp.size - 1)
        real = self.seg_start[i] + (p - sp[i]).astype(np.uint64)
        return np.where(p >= self.length, self.seg_end[-1], real)

    def to_compact(self, addr: np.ndarray | int) -> np.ndarray:
        """Compact positions of real addresses (addresses in a gap map to the next segment)."""
        a = np.asarray(addr, dtype=np.uint64)
        if not self.seg_start.size:
            return np.zeros(a.shape, dtype=np.int64)
        i = np.searchsorted(self.seg_end, a, side="right")
        inside = i < self.seg_start.size
        j = np.minimum(i, self.seg_start.size - 1)
        off = np.where(a > self.seg_start[j], a - self.seg_start[j], 0).astype(np.int64)
        return np.where(inside, self.seg_pos[j] + off, self.length)

    def edges(self, n_bins: int, page_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Page-aligned bin edges: (compact positions, real addresses), ``n_bins + 1`` each.

        Bins hold whole pages: bin ``j`` covers compact pages ``[j*P//n, (j+1)*P//n)``.
        """
        n_pages = self.length // page_size
        n_bins = max(1, min(int(n_bins), n_pages)) if n_pages else 1
        pos = (np.arange(n_bins + 1, dtype=np.int64) * n_pages // n_bins) * page_size
        return pos, self.to_real(pos)

    def band_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Compact ``[start, end)`` positions of the bands."""
        return self.to_compact(self.bands["start"]), self.to_compact(self.bands["end"])


def _all_vmas(capture: Capture) -> np.ndarray:
    """Every VMA of every table (``start``, ``end``, ``kind``), unsorted."""
    tables = [t.array for t in capture.vma_tables if len(t)]
    if not tables:
        return np.empty(0, BAND_DTYPE)
    arr = np.concatenate(tables)
    out = np.empty(arr.size, BAND_DTYPE)
    out["start"], out["end"], out["kind"] = arr["start"], arr["end"], arr["kind"]
    return out


def _label_vmas(capture: Capture) -> tuple[np.ndarray, np.ndarray]:
    """VMAs for labelling: the latest table wins where tables disagree.

    A reservation that later became memory (``---p`` turned ``rw-p``), or a heap that grew,
    is labelled as last seen; VMAs that disappeared keep their old label. One pass per table.
    """
    tables = [t for t in capture.vma_tables if len(t)]
    keep_arr, keep_lab = [], []
    us = ue = np.empty(0, np.uint64)
    for t in tables[::-1]:  # newest first
        a = t.array
        hit = np.zeros(len(t), bool)
        if us.size:
            i = np.searchsorted(ue, a["start"], side="right")
            hit = (i < us.size) & (us[np.minimum(i, us.size - 1)] < a["end"])
        sel = np.flatnonzero(~hit)
        keep_arr.append(a[sel])
        keep_lab.append(np.array([t.label(j) for j in sel.tolist()], dtype=object))
        us, ue = union_columns(np.concatenate([us, a["start"]]), np.concatenate([ue, a["end"]]))
    if not keep_arr:
        return np.empty(0, BAND_DTYPE), np.empty(0, dtype=object)
    arr = np.concatenate(keep_arr)
    labels = np.concatenate(keep_lab)
    out = np.empty(arr.size, BAND_DTYPE)
    out["start"], out["end"], out["kind"] = arr["start"], arr["end"], arr["kind"]
    order = np.lexsort((out["end"], out["start"]))
    return out[order], labels[order]


def _merge_bands(vmas: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of touching/overlapping VMAs with the same label and kind become one band."""
    if not vmas.size:
        return vmas, labels
    reach = np.maximum.accumulate(vmas["end"])
    new = np.ones(vmas.size, dtype=bool)
    new[1:] = (
        (vmas["start"][1:] > reach[:-1])
        | (labels[1:] != labels[:-1])
        | (vmas["kind"][1:] != vmas["kind"][:-1])
    )
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, vmas.size - 1)
    out = vmas[first].copy()
    out["end"] = reach[last]
    # A band never ends beyond the next band's start (a grown heap overlapping an old table).
    out["end"][:-1] = np.minimum(out["end"][:-1], np.maximum(out["start"][1:], out["start"][:-1]))
    return out, labels[first]


def _row_chunks(capture: Capture, regions_mask: Mask | None = None) -> Iterator[np.ndarray]:
    """Rows that ever appear, chunk by chunk: regions (those matching ``regions_mask``) as
    they first appear (``Capture.changes``), then every written set.
    """
    for ch in changes(capture):
        rows = ch.rows[ch.sign > 0]
        yield rows if regions_mask is None else rows[regions_mask.matches(rows["categories"])]
    if capture.has_written:
        for r in snapshot_rows(capture, "written"):
            yield r.rows


def _union_of(capture: Capture, regions_mask: Mask | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The union of every row seen, built chunk by chunk (memory: the union plus a chunk)."""
    s = e = np.empty(0, np.uint64)
    for rows in _row_chunks(capture, regions_mask):
        s, e = union_columns(np.concatenate([s, rows["start"]]), np.concatenate([e, rows["end"]]))
    return s, e


def _span(capture: Capture) -> tuple[int, int]:
    """Lowest start and highest end of any region."""
    lo, hi = [], []
    for rows in _row_chunks(capture):
        if rows.size:
            lo.append(int(rows["start"].min()))
            hi.append(int(rows["end"].max()))
    return (min(lo), max(hi)) if lo else (0, 0)


def _occupied(capture: Capture, min_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Where any page was ever present, swapped or written; gaps below ``min_gap`` kept."""
    s, e = _union_of(capture, Mask(anyof=Category.PRESENT | Category.SWAPPED))
    if min_gap > 0:
        s, e = bridge_gaps(s, e, min_gap - 1)
    return s, e


def _occupied_at_least(capture: Capture, addr_range: tuple[int, int] | None) -> int:
    """Bytes resident or swapped in the last snapshot (inside ``addr_range``): a lower bound
    of the occupied axis's length.
    """
    rows = capture.regions_at(-1).array
    rows = rows[Mask(anyof=Category.PRESENT | Category.SWAPPED).matches(rows["categories"])]
    s, e = rows["start"], rows["end"]
    if addr_range is not None:
        lo, hi = (np.uint64(max(0, int(x))) for x in addr_range)
        s, e = np.maximum(s, lo), np.minimum(e, hi)
    return int(np.maximum(e.astype(np.int64) - s.astype(np.int64), 0).sum())


def _segments(
    capture: Capture,
    kind: str,
    addr_range: tuple[int, int] | None,
    skip_kinds: tuple[VmaKind, ...],
    min_gap: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The axis's address segments (sorted, disjoint) for one concrete kind."""
    if kind == "linear":
        lo, hi = _span(capture) if addr_range is None else addr_range
        s = np.array([lo], np.uint64)
        e = np.array([max(hi, lo)], np.uint64)
    else:
        vmas = _all_vmas(capture)
        if kind == "occupied":
            s, e = _occupied(capture, min_gap)
        elif vmas.size:
            keep = ~np.isin(vmas["kind"], np.array([int(k) for k in skip_kinds], np.int8))
            s, e = union_columns(vmas["start"][keep], vmas["end"][keep])
        else:
            # No maps recorded: the regions themselves tell what is mapped (spec §3.2: the
            # scan reports every page of every VMA it visits).
            s, e = _union_of(capture)
        if addr_range is not None:
            zlo, zhi = (np.uint64(max(0, int(x))) for x in addr_range)
            s, e = np.maximum(s, zlo), np.minimum(e, zhi)
            k = e > s
            s, e = s[k], e[k]
    return s, e


def address_axis(
    capture: Capture,
    *,
    kind: str = "compact",
    addr_range: tuple[int, int] | None = None,
    skip_kinds: tuple[VmaKind, ...] = (VmaKind.GUARD,),
    min_gap: int = 1 << 20,
) -> AddressAxis:
    """Build the address axis of a capture.

    Parameters
    ----------
    capture : Capture
    kind : {"compact", "occupied", "auto", "linear"}
        ``"compact"``: the union of all VMAs seen (without VMA tables: of all regions seen),
        gaps removed. ``"occupied"``: only where some page was ever present, swapped or
        written (gaps under ``min_gap`` kept), for layouts dominated by huge sparse
        reservations such as sanitizer shadow. ``"auto"``: ``"occupied"`` when that is under
        1% of the compact axis, else ``"compact"``. ``"linear"``: ``addr_range`` (default the
        span of all regions) as is.
    addr_range : (int, int), optional
        Zoom: only ``[start, end)`` of the address space.
    skip_kinds : tuple of VmaKind
        VMA kinds left off a compact axis; by default inaccessible reservations (``---p``
        guards, sanitizer shadow gaps), which can be terabytes and never hold a page.
    min_gap : int
        Bytes: on an occupied axis, empty stretches shorter than this stay visible.

    Returns
    -------
    AddressAxis
    """
    kinds = ("compact", "occupied", "auto", "linear")
    if kind not in kinds:
        raise ValueError(f"axis must be one of {kinds}, got {kind!r}")
    if kind == "auto":
        # Compare the segment lengths only; the labelled bands are built once, for the winner.
        s, e = _segments(capture, "compact", addr_range, skip_kinds, min_gap)
        # The occupied axis holds at least what the last snapshot has resident or swapped:
        # when that alone is 1 % of the compact axis, "compact" wins without reading the
        # whole capture (only sanitizer-like layouts need the full pass).
        if _occupied_at_least(capture, addr_range) >= 0.01 * int((e - s).sum()):
            kind = "compact"
        else:
            so, eo = _segments(capture, "occupied", addr_range, skip_kinds, min_gap)
            if int((eo - so).sum()) < 0.01 * int((e - s).sum()):
                kind, s, e = "occupied", so, eo
            else:
                kind = "compact"
    else:
        s, e = _segments(capture, kind, addr_range, skip_kinds, min_gap)
    bands, blabels = _merge_bands(*_label_vmas(capture))
    if bands.size and s.size:
        bands = bands.copy()
        bands["start"] = np.maximum(bands["start"], s[0])
        bands["end"] = np.minimum(bands["end"], e[-1])
        k = bands["end"] > bands["start"]
        # Keep the bands that overlap some segment.
        i = np.searchsorted(e, bands["start"], side="right")
        k &= i < s.size
        k[k] &= bands["end"][k] > s[np.minimum(i[k], s.size - 1)]
        bands, blabels = bands[k], blabels[k]
    return AddressAxis(kind, s.astype(np.uint64), e.astype(np.uint64), bands, blabels)
