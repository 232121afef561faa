"""How sparse a range is, and what that means for the cost of scanning it (spec §1.3, §3.4)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._intervals import concat_aranges
from .._units import human_bytes
from ..capture import Capture
from ..categories import Category
from ..maps import Vmas
from ..mask import Mask
from ..regions import REGION_DTYPE, Regions
from ._html import Summary
from ._select import category_mask, snapshot

__all__ = ["Sparsity", "sparsity", "PAGE_REGION_BYTES", "PAGEMAP_ENTRY_BYTES"]

PAGE_REGION_BYTES = 24  # sizeof(struct page_region), spec §1.3
PAGEMAP_ENTRY_BYTES = 8  # one u64 per page in /proc/PID/pagemap, spec §5


@dataclass(frozen=True, repr=False)
class Sparsity(Summary):
    """Sparsity of one range for one category, and the scan cost it implies.

    Attributes
    ----------
    ranges : numpy.ndarray
        ``(n, 2)`` real ``[start, end)`` ranges measured (one per VMA, or the range asked).
    category : str
    page_size : int
    reserved_bytes : int
        Mapped bytes in the ranges (VMA sizes; the range size without maps).
    matched_bytes : int
        Bytes in the category.
    n_scan_regions : int
        ``page_region`` entries an unfiltered, every-category scan returns for the ranges.
    region_pages : numpy.ndarray
        Pages of each run of the category, merged as the kernel merges (``Mask.apply``).
    hole_pages : numpy.ndarray
        Pages between consecutive runs (interior gaps only).
    vec_len : int
        Output-vector length assumed for the ioctl count.
    """

    ranges: np.ndarray
    category: str
    page_size: int
    reserved_bytes: int
    matched_bytes: int
    n_scan_regions: int
    region_pages: np.ndarray
    hole_pages: np.ndarray
    vec_len: int

    @property
    def n_regions(self) -> int:
        """``page_region`` entries a scan filtered to the category returns."""
        return int(self.region_pages.size)

    @property
    def pages_per_region(self) -> float:
        """Pages described per ``page_region``: the compactness of the region encoding."""
        return float(self.region_pages.sum() / self.n_regions) if self.n_regions else 0.0

    @property
    def density(self) -> float:
        """``matched_bytes / reserved_bytes``."""
        return self.matched_bytes / self.reserved_bytes if self.reserved_bytes else 0.0

    @property
    def region_bytes_out(self) -> int:
        """Bytes the kernel copies out for the filtered scan (24 per region)."""
        return PAGE_REGION_BYTES * self.n_regions

    @property
    def pagemap_bytes_out(self) -> int:
        """Bytes a classic ``/proc/PID/pagemap`` read of the same ranges returns (8 per page)."""
        return PAGEMAP_ENTRY_BYTES * (self.reserved_bytes // self.page_size)

    @property
    def ioctl_calls(self) -> int:
        """``PAGEMAP_SCAN`` calls for the filtered scan with ``vec_len`` entries per call."""
        return max(1, -(-self.n_regions // self.vec_len))

    @property
    def compression(self) -> float:
        """How many times smaller the region answer is than the per-page one."""
        return self.pagemap_bytes_out / max(self.region_bytes_out, 1)

    def size_histogram(self, which: str = "regions") -> tuple[np.ndarray, np.ndarray]:
        """Counts of run (or hole) sizes in power-of-two page bins: ``(counts, edges)``."""
        v = self.region_pages if which == "regions" else self.hole_pages
        if which not in ("regions", "holes"):
            raise ValueError(f"which must be 'regions' or 'holes', got {which!r}")
        top = int(v.max()) if v.size else 1
        edges = 2 ** np.arange(0, max(1, int(np.ceil(np.log2(top + 1)))) + 1)
        counts, _ = np.histogram(v, bins=edges)
        return counts, edges

    def _rows(self) -> dict[str, str]:
        return {
            "ranges": ", ".join(f"{s:#x}-{e:#x}" for s, e in self.ranges.tolist()[:4])
            + (f" … ({len(self.ranges):,} in all)" if len(self.ranges) > 4 else ""),
            "reserved": human_bytes(self.reserved_bytes),
            self.category: f"{human_bytes(self.matched_bytes)} ({100 * self.density:.1f}%)",
            "regions (filtered / unfiltered scan)": f"{self.n_regions:,} / {self.n_scan_regions:,}",
            "pages per page_region": f"{self.pages_per_region:,.1f}",
            "scan output": f"{human_bytes(self.region_bytes_out)} in {self.ioctl_calls:,} "
            f"ioctl(s) vs {human_bytes(self.pagemap_bytes_out)} of pagemap "
            f"({self.compression:,.0f}x)",
        }


def select_ranges(
    vmas: Vmas, vma=None, start: int | None = None, end: int | None = None
) -> np.ndarray:
    """``(n, 2)`` real ranges: the VMAs chosen (index or label), else the mapped parts of
    ``[start, end)`` (one piece per VMA), else ``[start, end)`` itself when there are no maps.
    """
    if vma is not None:
        if isinstance(vma, (int, np.integer)):
            if not -len(vmas) <= vma < len(vmas):
                raise IndexError(f"VMA {vma} out of range for a table of {len(vmas)}")
            sel = np.zeros(len(vmas), bool)
            sel[vma] = True
        else:
            labels = np.array([vmas.label(i) for i in range(len(vmas))], dtype=object)
            sel = (labels == vma) | (vmas.paths == vma)
            if not sel.any():
                raise ValueError(f"no VMA labelled {vma!r}; labels here: {sorted(set(labels))}")
        return np.stack([vmas.start[sel], vmas.end[sel]], axis=1)
    if not len(vmas):
        if start is None or end is None:
            raise ValueError("give start and end (there is no VMA table to take them from)")
        return np.array([[start, end]], dtype=np.uint64)
    lo = np.maximum(vmas.start, np.uint64(0 if start is None else start))
    hi = np.minimum(vmas.end, np.uint64(2**64 - 1 if end is None else end))
    keep = hi > lo
    return np.stack([lo[keep], hi[keep]], axis=1)


def _clip_to(regs: Regions, ranges: np.ndarray) -> Regions:
    """The regions cut to each range, in range order (one vectorised pass, not one per VMA)."""
    a = regs.array
    if not len(ranges) or not a.size:
        return Regions(np.empty(0, REGION_DTYPE), page_size=regs.page_size)
    r0, r1 = ranges[:, 0].astype(np.uint64), ranges[:, 1].astype(np.uint64)
    # Regions of a scan are sorted and disjoint: those overlapping range k are contiguous.
    lo = np.searchsorted(a["end"], r0, side="right")
    hi = np.searchsorted(a["start"], r1, side="left")
    n = np.maximum(hi - lo, 0)
    rng = np.repeat(np.arange(len(ranges)), n)
    out = a[concat_aranges(lo, n)].copy()
    out["start"] = np.maximum(out["start"], r0[rng])
    out["end"] = np.minimum(out["end"], r1[rng])
    return Regions(out[out["end"] > out["start"]], page_size=regs.page_size)


def sparsity(
    data: Capture | Regions,
    category=Category.PRESENT,
    *,
    at: int = -1,
    vmas: Vmas | None = None,
    vma: int | str | None = None,
    start: int | None = None,
    end: int | None = None,
    vec_len: int = 512,
) -> Sparsity:
    """Measure the sparsity of a range or VMA for a category.

    Parameters
    ----------
    data : Capture or Regions
        A capture (snapshot ``at`` is measured) or one unfiltered scan.
    category : category spec or Mask
        What counts as occupied (default ``PRESENT``).
    at : int
        Snapshot of a capture.
    vmas : Vmas, optional
        VMA table for ``Regions`` input (a capture brings its own).
    vma : int or str, optional
        A VMA index, or a label / path such as ``"[heap]"`` or ``"libc.so.6"`` (every VMA
        with it).
    start, end : int, optional
        A range instead (default: everything mapped); only its mapped parts count as
        reserved when a VMA table is known.
    vec_len : int
        Output-vector length of the scan loop being costed (pmviz and CRIU use 512).

    Returns
    -------
    Sparsity
    """
    regs, vmas = snapshot(data, at, vmas)
    mask, label = category_mask(category)
    ranges = select_ranges(vmas, vma, start, end)
    clipped = _clip_to(regs, ranges)
    reserved = int((ranges[:, 1] - ranges[:, 0]).sum())
    hit = mask.apply(clipped)
    page_shift = np.uint64(regs.page_size.bit_length() - 1)
    # Holes lie between runs of one range: unmapped space between VMAs is no hole.
    piece = np.searchsorted(ranges[:, 0], hit.start, side="right")
    same = piece[1:] == np.searchsorted(ranges[:, 1], hit.end[:-1], side="left") + 1
    holes = ((hit.start[1:] - hit.end[:-1]) >> page_shift).astype(np.int64)[same]
    return Sparsity(
        ranges=ranges,
        category=label,
        page_size=regs.page_size,
        reserved_bytes=reserved,
        matched_bytes=hit.size,
        n_scan_regions=len(Mask().apply(clipped)),
        region_pages=hit.page_counts,
        hole_pages=holes,
        vec_len=vec_len,
    )
