"""The get-and-clear step: which pages were written, and which of them still hold data.

Two scans (spec §3.7, §3.8):

1. ``PM_SCAN_WP_MATCHING`` with ``category_mask = return_mask = WRITTEN`` over the range: the
   kernel's fast path, about ten times cheaper per page than any other mask, reports the pages
   that lost their write protection since the last harvest and protects them again, atomically
   per page table.
2. A plain scan of just the pages step 1 reported, to keep those that hold data. ``WRITTEN``
   only means "not write-protected" (gotcha 7): a write unprotects a page, but so does
   ``MADV_DONTNEED`` — anonymous zaps leave an unprotected ``pte_none`` (spec §3.8) — and a
   read after it maps the zero page. Those pages hold nothing written; step 1 re-armed them
   (they read as uffd-wp markers, i.e. SWAPPED, now), and step 2 drops them. Really swapped
   pages (written, then paged out) are told from markers by their swap type.

A page is therefore reported iff it was written since the last harvest and still holds data when
the harvest runs; writes to memory discarded before (munmap, DONTNEED) are gone with it.
"""

from __future__ import annotations

import numpy as np

from .. import _intervals as iv
from .. import swapped as sw
from .._kernel import pagemap_scan as pms
from .._kernel import procfs
from .._kernel.procfs import Pid
from ..categories import Category

_WRITTEN = int(Category.WRITTEN)
_PRESENT = int(Category.PRESENT)
_SWAPPED = int(Category.SWAPPED)
_PFNZERO = int(Category.PFNZERO)
_FILE = int(Category.FILE)
_GUARD = int(Category.GUARD)
_WPALLOWED = int(Category.WPALLOWED)
_CONTENT = _PRESENT | _SWAPPED | _PFNZERO | _FILE
# Written runs closer than this are checked in one scan: walking a short gap is cheaper than
# another syscall.
_CLUSTER_GAP = 2048 << pms.PAGE_SHIFT


def scan(fd: int, lo: int, hi: int, pid: Pid, **fields: int) -> np.ndarray:
    try:
        return pms.scan_range(fd, lo, hi, **fields)
    except OSError as err:
        raise procfs.translate(err, pid, "pagemap (PAGEMAP_SCAN)") from err


def harvest_span(fd: int, lo: int, hi: int, pid: Pid, *, file_is_data: bool = True) -> np.ndarray:
    """Get-and-clear ``[lo, hi)``; the written pages that hold data, as sorted disjoint pairs.

    ``file_is_data=False`` also drops present page-cache pages: right for memory registered
    just now, where every page reads WRITTEN and a private file page that was only read is
    still page cache (a write turns it anonymous, gotcha 14).
    """
    written = scan(
        fd, lo, hi, pid, flags=pms.PM_SCAN_WP_MATCHING, category_mask=_WRITTEN, return_mask=_WRITTEN
    )
    pairs = iv.as_pairs(written["start"], written["end"])
    if not len(pairs):
        return pairs
    return keep_data(fd, pairs, pid, file_is_data)


def keep_data(fd: int, written: np.ndarray, pid: Pid, file_is_data: bool) -> np.ndarray:
    """The parts of the ``written`` pairs whose pages hold data now (see the module doc)."""
    clusters = iv.bridge_gaps(written[:, 0], written[:, 1], _CLUSTER_GAP)
    content = np.concatenate(
        [
            scan(fd, lo, hi, pid, category_anyof_mask=_PRESENT | _SWAPPED, return_mask=_CONTENT)
            for lo, hi in zip(clusters[0].tolist(), clusters[1].tolist())
        ]
    )
    c = content["categories"]
    hidden = _PFNZERO if file_is_data else _PFNZERO | _FILE
    present = (c & _PRESENT != 0) & (c & hidden == 0)
    if not len(content):
        # Nothing written holds data any more: the process unmapped or discarded it between
        # the get-and-clear and this scan (a race with the target, which runs meanwhile).
        return written[:0]
    if present.all() and (content["start"][1:] == content["end"][:-1]).all():
        # Every page from the first written one to the last holds data: nothing to drop.
        if content["start"][0] <= written[0, 0] and content["end"][-1] >= written[-1, 1]:
            return written
    swapped = (c & (_SWAPPED | _PRESENT) == _SWAPPED) & (c & _GUARD == 0)
    data = [iv.as_pairs(content["start"][present], content["end"][present])]
    if swapped.any():
        data.append(_really_swapped(fd, content[swapped], pid))
    return iv.intersect(written, iv.union(np.concatenate(data)))


def _really_swapped(fd: int, swapped: np.ndarray, pid: Pid) -> np.ndarray:
    """Of pages reading SWAPPED just after re-arming, those on a swap device, not markers."""
    try:
        return sw.real_swap_pairs(fd, swapped)
    except OSError as err:
        raise procfs.translate(err, pid, "pagemap") from err


def scan_unregistered(fd: int, lo: int, hi: int, pid: Pid) -> np.ndarray:
    """Spans of ``[lo, hi)`` whose VMAs carry no async-WP registration.

    ``category_mask = category_inverted = WPALLOWED`` makes the kernel skip registered VMAs
    whole, without walking them (spec §3.2 step 5); ``return_mask = 0`` merges each
    unregistered span into one region (§3.4).
    """
    return scan(
        fd, lo, hi, pid, category_inverted=_WPALLOWED, category_mask=_WPALLOWED, return_mask=0
    )
