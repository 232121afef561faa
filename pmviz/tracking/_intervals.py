"""Vectorised interval arithmetic on page ranges (no Python loop per page or per region)."""

from __future__ import annotations

import numpy as np

from .._kernel.pagemap_scan import PAGE_SHIFT, PAGE_SIZE, REGION_DTYPE

_EMPTY = np.empty((0, 2), dtype=np.uint64)


def as_pairs(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Stack two address arrays into an ``(n, 2)`` ``uint64`` array."""
    out = np.empty((len(starts), 2), dtype=np.uint64)
    out[:, 0] = starts
    out[:, 1] = ends
    return out


def union(pairs: np.ndarray) -> np.ndarray:
    """Merge overlapping or touching ``[start, end)`` pairs into sorted disjoint ones."""
    if len(pairs) <= 1 or (pairs[1:, 0] > pairs[:-1, 1]).all():
        # Already sorted, disjoint and not touching: the kernel's own output is.
        return pairs[pairs[:, 1] > pairs[:, 0]]
    pairs = pairs[pairs[:, 1] > pairs[:, 0]]
    if len(pairs) <= 1:
        return pairs
    pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]
    reach = np.maximum.accumulate(pairs[:, 1])
    # A new group starts where a pair begins beyond everything before it reaches.
    first = np.ones(len(pairs), dtype=bool)
    first[1:] = pairs[1:, 0] > reach[:-1]
    last = np.append(first[1:], True)
    return as_pairs(pairs[first, 0], reach[last])


def intersect(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection of two sets of sorted disjoint pairs, as sorted disjoint pairs."""
    return intersect_indexed(a, b)[0]


def intersect_indexed(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`intersect`, plus for each piece the index of the ``a`` pair it came from."""
    if not len(a) or not len(b):
        return _EMPTY.copy(), np.empty(0, dtype=np.int64)
    if len(b) == 1:  # clipping to one span: no search needed
        out = a.copy()
        np.maximum(out[:, 0], b[0, 0], out=out[:, 0])
        np.minimum(out[:, 1], b[0, 1], out=out[:, 1])
        keep = np.flatnonzero(out[:, 1] > out[:, 0])
        return out[keep], keep
    # For each pair of a, the b pairs it can overlap form a contiguous index range.
    lo = np.searchsorted(b[:, 1], a[:, 0], side="right")
    hi = np.searchsorted(b[:, 0], a[:, 1], side="left")
    counts = np.maximum(hi - lo, 0)
    ai = np.repeat(np.arange(len(a)), counts)
    bi = (
        np.arange(counts.sum())
        - np.repeat(np.cumsum(counts) - counts, counts)
        + np.repeat(lo, counts)
    )
    out = as_pairs(np.maximum(a[ai, 0], b[bi, 0]), np.minimum(a[ai, 1], b[bi, 1]))
    nonempty = out[:, 1] > out[:, 0]
    return out[nonempty], ai[nonempty]


def subtract(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a`` minus ``b`` for sorted disjoint pairs."""
    if not len(a):
        return _EMPTY.copy()
    if not len(b):
        return a.copy()
    # a \ b = a ∩ complement(b); the complement of b within the hull of a.
    lo = min(int(a[0, 0]), int(b[0, 0]))
    hi = max(int(a[-1, 1]), int(b[-1, 1]))
    comp = as_pairs(
        np.concatenate(([lo], b[:, 1])).astype(np.uint64),
        np.concatenate((b[:, 0], [hi])).astype(np.uint64),
    )
    return intersect(a, comp[comp[:, 1] > comp[:, 0]])


def page_align(pairs: np.ndarray) -> np.ndarray:
    """Round starts down and ends up to whole pages."""
    mask = np.uint64(PAGE_SIZE - 1)
    out = pairs.copy()
    out[:, 0] &= ~mask
    out[:, 1] = (out[:, 1] + mask) & ~mask
    return out


def regions_array(starts: np.ndarray, ends: np.ndarray, categories: int | np.ndarray) -> np.ndarray:
    """A ``REGION_DTYPE`` array from parallel columns."""
    a = np.empty(len(starts), dtype=REGION_DTYPE)
    a["start"] = starts
    a["end"] = ends
    a["categories"] = categories
    return a


def union_regions(pair_arrays: list[np.ndarray], categories: int) -> np.ndarray:
    """Union of ``(n, 2)`` pair arrays as one sorted, merged region array tagged ``categories``."""
    parts = [p for p in pair_arrays if len(p)]
    if not parts:
        return np.empty(0, dtype=REGION_DTYPE)
    merged = union(parts[0] if len(parts) == 1 else np.concatenate(parts))
    return regions_array(merged[:, 0], merged[:, 1], categories)


def merge_equal_neighbours(a: np.ndarray) -> np.ndarray:
    """Merge adjacent regions with equal categories (the kernel's output invariant, spec §3.4)."""
    if len(a) <= 1:
        return a
    keep = np.ones(len(a), dtype=bool)
    keep[1:] = (a["start"][1:] != a["end"][:-1]) | (a["categories"][1:] != a["categories"][:-1])
    if keep.all():
        return a
    group_last = np.append(keep[1:], True)
    return regions_array(a["start"][keep], a["end"][group_last], a["categories"][keep])


def runs_to_regions(flags: np.ndarray, start: int, categories: int) -> np.ndarray:
    """Regions covering the ``True`` runs of a per-page boolean array that begins at ``start``."""
    edges = np.diff(np.concatenate(([0], flags.view(np.int8), [0])).astype(np.int8))
    first = np.flatnonzero(edges == 1).astype(np.uint64)
    stop = np.flatnonzero(edges == -1).astype(np.uint64)
    base = np.uint64(start)
    shift = np.uint64(PAGE_SHIFT)
    return regions_array(base + (first << shift), base + (stop << shift), categories)


def page_addresses(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-page addresses of regions ``a`` and, per page, the index of its region."""
    shift = np.uint64(PAGE_SHIFT)
    counts = ((a["end"] - a["start"]) >> shift).astype(np.int64)
    owner = np.repeat(np.arange(len(a)), counts)
    within = np.arange(counts.sum(), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return a["start"][owner] + (within.astype(np.uint64) << shift), owner
