"""``AddressAxis``: the address axis of a heatmap, with unmapped gaps collapsed.

A 47-bit address space is almost all empty, so the compact axis is the concatenation of the
mapped segments (the union of every VMA the capture saw), each keeping its real size. Positions
on the axis are "compact bytes"; ``to_real`` and ``to_compact`` convert, vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..capture import Capture
from ..maps import VmaKind, Vmas
from ._intervals import union

__all__ = ["AddressAxis", "address_axis"]

BAND_DTYPE = np.dtype([("start", "<u8"), ("end", "<u8"), ("kind", "i1")])


@dataclass(frozen=True, eq=False)
class AddressAxis:
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


def _all_vmas(capture: Capture) -> tuple[np.ndarray, np.ndarray]:
    """Every VMA of every table (duplicates dropped), sorted by start, with labels."""
    tables = [t for t in capture.vma_tables if len(t)]
    if not tables:
        return np.empty(0, BAND_DTYPE), np.empty(0, dtype=object)
    arr = np.concatenate([t.array for t in tables])
    # One label per VMA; a per-VMA loop (the tables have hundreds of rows, not millions).
    labels = np.array([t.label(i) for t in tables for i in range(len(t))], dtype=object)
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


def address_axis(
    capture: Capture,
    *,
    kind: str = "compact",
    addr_range: tuple[int, int] | None = None,
    skip_kinds: tuple[VmaKind, ...] = (VmaKind.GUARD,),
) -> AddressAxis:
    """Build the address axis of a capture.

    Parameters
    ----------
    capture : Capture
    kind : {"compact", "linear"}
        ``"compact"``: the union of all VMAs seen (without VMA tables: of all regions seen),
        gaps removed. ``"linear"``: ``addr_range`` (default the span of all regions) as is.
    addr_range : (int, int), optional
        Zoom: only ``[start, end)`` of the address space.
    skip_kinds : tuple of VmaKind
        VMA kinds left off a compact axis; by default inaccessible reservations (``---p``
        guards, sanitizer shadow gaps), which can be terabytes and never hold a page.

    Returns
    -------
    AddressAxis
    """
    if kind not in ("compact", "linear"):
        raise ValueError(f"axis must be 'compact' or 'linear', got {kind!r}")
    vmas, labels = _all_vmas(capture)
    if kind == "linear" or not vmas.size:
        parts = [capture.regions]
        if capture.written is not None:
            parts.append(capture.written)
        regs = np.concatenate(parts)
        regs = regs[regs["end"] > regs["start"]]
    if kind == "linear":
        if addr_range is None:
            if regs.size:
                addr_range = (int(regs["start"].min()), int(regs["end"].max()))
            else:
                addr_range = (0, 0)
        s = np.array([addr_range[0]], np.uint64)
        e = np.array([max(addr_range[1], addr_range[0])], np.uint64)
    else:
        if vmas.size:
            keep = ~np.isin(vmas["kind"], np.array([int(k) for k in skip_kinds], np.int8))
            s, e = union(vmas["start"][keep], vmas["end"][keep])
        else:
            # No maps recorded: the regions themselves tell what is mapped (spec §3.2: the
            # scan reports every page of every VMA it visits). Runs first, to keep the sort small.
            st, en = regs["start"], regs["end"]
            run = np.ones(st.size, dtype=bool)
            run[1:] = st[1:] != en[:-1]
            first = np.flatnonzero(run)
            last = np.append(first[1:] - 1, st.size - 1)
            s, e = union(st[first], en[last])
        if addr_range is not None:
            lo, hi = (np.uint64(max(0, int(x))) for x in addr_range)
            s, e = np.maximum(s, lo), np.minimum(e, hi)
            k = e > s
            s, e = s[k], e[k]
    bands, blabels = _merge_bands(vmas, labels)
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


def vma_table_union(tables: list[Vmas]) -> Vmas:
    """All VMAs of several tables in one (for labelling)."""
    tables = [t for t in tables if len(t)]
    if not tables:
        return Vmas()
    arr = np.concatenate([t.array for t in tables])
    paths = np.concatenate([t.paths for t in tables])
    order = np.argsort(arr["start"], kind="stable")
    return Vmas(arr[order], list(paths[order]))
