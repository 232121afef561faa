"""One snapshot of an address range laid out along a Hilbert curve (neighbours stay close)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..capture import Capture
from ..regions import Regions
from ._html import human_bytes, table, text
from ._intervals import prefix_coverage
from ._select import CategoryArg, category_mask
from .sparsity import select_ranges

__all__ = ["hilbert_d2xy", "HilbertMap", "hilbert_map"]


def hilbert_d2xy(order: int, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell coordinates of distances ``d`` along a Hilbert curve of side ``2**order``.

    The classic iterative algorithm, vectorised over ``d`` (one pass per level, not per cell).
    """
    d = np.asarray(d, dtype=np.int64)
    x = np.zeros_like(d)
    y = np.zeros_like(d)
    t = d.copy()
    s = 1
    while s < (1 << order):
        rx = 1 & (t // 2)
        ry = 1 & (t ^ rx)
        # Rotate the quadrant.
        flip = (ry == 0) & (rx == 1)
        x = np.where(flip, s - 1 - x, x)
        y = np.where(flip, s - 1 - y, y)
        swap = ry == 0
        x, y = np.where(swap, y, x), np.where(swap, x, y)
        x += s * rx
        y += s * ry
        t //= 4
        s *= 2
    return x, y


class HilbertMap(NamedTuple):
    """``image[y, x]``: fraction of the cell's pages in the category; cell ``k`` holds pages
    ``[edges[k], edges[k + 1])`` of the range (``edges`` are real addresses).
    """

    image: np.ndarray
    order: int
    edges: np.ndarray
    start: int
    end: int
    category: str

    def _rows(self) -> dict[str, str]:
        side = 1 << self.order
        cell = int(self.edges[1] - self.edges[0]) if self.edges.size > 1 else 0
        return {
            "range": f"{self.start:#x}-{self.end:#x} ({human_bytes(self.end - self.start)})",
            "cells": f"{side} x {side}, about {human_bytes(cell)} each",
            self.category: f"{float(self.image.mean()):.1%} of the range, "
            f"{int((self.image > 0).sum()):,} cells touched",
        }

    def __repr__(self) -> str:
        return text("HilbertMap", self._rows())

    def _repr_html_(self) -> str:
        return table("HilbertMap", self._rows())


def hilbert_map(
    data: Capture | Regions,
    category: CategoryArg = "present",
    *,
    at: int = -1,
    vma: int | str | None = None,
    start: int | None = None,
    end: int | None = None,
    order: int | None = None,
) -> HilbertMap:
    """Lay one snapshot of ``[start, end)`` on a ``2**order`` square Hilbert curve.

    Parameters
    ----------
    data : Capture or Regions
        A capture (snapshot ``at``) or one scan.
    category : category spec or Mask
    vma : int or str, optional
        Draw the span of this VMA (index) or of every VMA with this label (``"[heap]"``);
        needs a capture.
    start, end : int, optional
        The range (default: the snapshot's whole span).
    order : int, optional
        Side ``2**order`` cells (default: the largest up to 8 with at least a page per cell).

    Returns
    -------
    HilbertMap
    """
    regs = data.regions_at(at) if isinstance(data, Capture) else data
    if vma is not None:
        if not isinstance(data, Capture):
            raise TypeError("vma= needs a Capture (its VMA table names the VMAs)")
        r = select_ranges(data.vmas_at(at), vma)
        start, end = int(r[:, 0].min()), int(r[:, 1].max())
    a = regs.array
    ps = regs.page_size
    lo = int(a["start"].min()) if start is None and a.size else (start or 0)
    hi = int(a["end"].max()) if end is None and a.size else (end or lo)
    n_pages = max(0, (hi - lo) // ps)
    if order is None:
        order = int(min(8, np.floor(np.log(max(n_pages, 1)) / np.log(4))))
    if order < 0 or (1 << (2 * order)) > max(n_pages, 1):
        raise ValueError(f"order {order} needs {4**order} pages; the range has {n_pages}")
    cells = 1 << (2 * order)
    edges = np.uint64(lo) + (
        np.arange(cells + 1, dtype=np.uint64) * np.uint64(n_pages) // np.uint64(cells)
    ) * np.uint64(ps)
    mask, label = category_mask(category)
    c = prefix_coverage(a, np.array([0, a.size]), edges, select=mask)[0]
    frac = np.diff(c) / np.diff(edges).astype(np.float64)
    x, y = hilbert_d2xy(order, np.arange(cells))
    img = np.zeros((1 << order, 1 << order))
    img[y, x] = frac
    return HilbertMap(img, order, edges, lo, lo + n_pages * ps, label)
