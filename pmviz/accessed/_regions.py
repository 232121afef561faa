"""Adaptive regions in DAMON's manner: split where samples may disagree, merge where they agree.

DAMON (mm/damon/core.c, ``kdamond_merge_regions`` / ``kdamond_split_regions``) keeps the
number of regions between a minimum and a maximum: neighbours whose access frequencies are
within a threshold merge (their counts add), and while there are few enough regions each is
split in two at a random page so that differences inside it can show up. Every region gets
the same number of samples whatever its size, so the budget follows the structure of the
address space rather than its size. This module does the same on numpy columns.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import _intervals as iv
from .._kernel.pagemap_scan import PAGE_SHIFT
from ._stats import wilson_interval

__all__ = ["RegionSet", "adapt", "cover"]


class RegionSet(NamedTuple):
    """Sorted disjoint page-aligned regions with the probe counts of their last interval."""

    start: np.ndarray  # uint64
    end: np.ndarray  # uint64
    probed: np.ndarray  # int64
    accessed: np.ndarray  # int64

    @classmethod
    def empty(cls) -> RegionSet:
        z = np.empty(0, np.uint64)
        return cls(z, z, np.empty(0, np.int64), np.empty(0, np.int64))


def cover(old: RegionSet, mapped_start: np.ndarray, mapped_end: np.ndarray) -> RegionSet:
    """``old`` cut to the mapped ranges, plus the mapped ranges no region covered (count 0)."""
    mapped = iv.as_pairs(mapped_start, mapped_end)
    pieces, idx = iv.intersect_indexed(iv.as_pairs(old.start, old.end), mapped)
    new = iv.subtract(mapped, pieces) if len(pieces) else mapped
    start = np.concatenate([pieces[:, 0], new[:, 0]]).astype(np.uint64)
    end = np.concatenate([pieces[:, 1], new[:, 1]]).astype(np.uint64)
    probed = np.concatenate([old.probed[idx], np.zeros(len(new), np.int64)])
    accessed = np.concatenate([old.accessed[idx], np.zeros(len(new), np.int64)])
    o = np.argsort(start, kind="stable")
    return RegionSet(start[o], end[o], probed[o], accessed[o])


def _merge(r: RegionSet, threshold: float, max_bytes: int) -> RegionSet:
    """Join touching neighbours whose sampled frequencies differ by at most ``threshold``."""
    n = len(r.start)
    if n < 2:
        return r
    with np.errstate(invalid="ignore", divide="ignore"):
        freq = r.accessed / r.probed
    known = r.probed > 0
    # Neighbours agree when their frequencies are within the threshold or their samples
    # cannot tell them apart (95 % Wilson intervals overlap): a few probes per region
    # rarely separate anything, so such regions pool their samples instead of fragmenting.
    lo, hi = wilson_interval(r.accessed, r.probed)
    close = (np.abs(freq[1:] - freq[:-1]) <= threshold) | (
        (lo[1:] <= hi[:-1]) & (lo[:-1] <= hi[1:])
    )
    join = (r.start[1:] == r.end[:-1]) & known[1:] & known[:-1] & close
    head = np.ones(n, bool)
    head[1:] = ~join
    group = np.cumsum(head) - 1
    # A group may not grow beyond max_bytes (DAMON's size limit): cut it where the running
    # size since the group's first region would pass the limit.
    size = (r.end - r.start).astype(np.int64)
    run = np.cumsum(size)
    first = np.flatnonzero(head)
    base = (run - size)[first][group]
    group = group * (1 << 20) + (run - base - 1) // max(max_bytes, 1)
    _, group = np.unique(group, return_inverse=True)
    m = int(group.max()) + 1
    starts = np.full(m, np.iinfo(np.uint64).max, np.uint64)
    np.minimum.at(starts, group, r.start)
    ends = np.zeros(m, np.uint64)
    np.maximum.at(ends, group, r.end)
    return RegionSet(
        starts,
        ends,
        np.bincount(group, r.probed, m).astype(np.int64),
        np.bincount(group, r.accessed, m).astype(np.int64),
    )


def _split(r: RegionSet, rng: np.random.Generator) -> RegionSet:
    """Split every region of two pages or more in two at a random page (10 %-90 %)."""
    pages = ((r.end - r.start) >> np.uint64(PAGE_SHIFT)).astype(np.int64)
    can = pages >= 2
    frac = rng.uniform(0.1, 0.9, len(pages))
    cut_pages = np.clip(np.rint(pages * frac).astype(np.int64), 1, np.maximum(pages - 1, 1))
    cut = r.start + (cut_pages.astype(np.uint64) << np.uint64(PAGE_SHIFT))
    start = np.concatenate([r.start, cut[can]])
    end = np.concatenate([np.where(can, cut, r.end), r.end[can]])
    probed = np.concatenate([r.probed, r.probed[can]])
    accessed = np.concatenate([r.accessed, r.accessed[can]])
    o = np.argsort(start, kind="stable")
    return RegionSet(start[o], end[o], probed[o], accessed[o])


def adapt(
    r: RegionSet,
    *,
    min_regions: int,
    max_regions: int,
    threshold: float,
    rng: np.random.Generator,
) -> RegionSet:
    """One DAMON-style adaptation step: merge agreeing neighbours, then split if few enough.

    Merging never leaves a region larger than ``total / min_regions`` bytes; splitting runs
    while the count is at most ``max_regions / 2`` (so it stays below ``max_regions``).
    """
    if not len(r.start):
        return r
    total = int((r.end - r.start).sum())
    r = _merge(r, threshold, max(total // max(min_regions, 1), 1))
    while len(r.start) <= max_regions // 2:
        before = len(r.start)
        r = _split(r, rng)
        if len(r.start) == before or len(r.start) >= min_regions:
            break
    return r
