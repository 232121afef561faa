"""Swap versus markers: in write-tracked memory, report only really swapped pages as SWAPPED.

The kernel reports every non-present, non-none PTE as ``SWAPPED`` — real swap entries, but
also the uffd-wp markers that arming installs in empty pages (spec §3.5, gotcha 9). In a
tracked process most armed-but-untouched memory is such markers, so without this step a
heatmap would paint it as swap. ``PAGEMAP_SCAN`` cannot tell the two apart; the classic
pagemap entry can: a marker is a swap entry of type 31 (observed ``0x420000000000003f``,
spec §5), a real swap entry carries the index of a swap device.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from . import _intervals as iv
from ._kernel import pagemap, procfs
from ._kernel.pagemap_scan import PAGE_SHIFT, PAGE_SIZE
from ._kernel.procfs import Pid
from ._kernel.sysinfo import swap_total_bytes
from .categories import Category
from .errors import PmvizWarning
from .features import features
from .regions import Regions
from .scanning import Pagemap

__all__ = ["resolve_swapped", "is_marker", "is_swap_entry", "real_swap_pairs"]

_SWAPPED = np.uint64(int(Category.SWAPPED))
# A swapped page that is WRITTEN has no uffd-wp bit, so it cannot be a marker; a GUARD page
# is a guard marker, already told apart by the kernel.
_NOT_AMBIGUOUS = np.uint64(int(Category.WRITTEN | Category.GUARD))

EntryReader = Callable[[int, int], np.ndarray]


def is_marker(entries: np.ndarray) -> np.ndarray:
    """Which classic pagemap entries are PTE markers rather than swap (pure, vectorised).

    A PTE marker (uffd-wp, guard, poisoned) is a non-present swap entry of type 31, which is
    never a swap device (``MAX_SWAPFILES`` <= 32 minus the special types). Needs the type
    bits, which the kernel shows only to CAP_SYS_ADMIN (spec §5).

    Parameters
    ----------
    entries : numpy.ndarray of uint64
        Classic ``/proc/PID/pagemap`` entries.

    Returns
    -------
    numpy.ndarray of bool
    """
    e = np.asarray(entries, dtype=np.uint64)
    swap = (e & np.uint64(pagemap.PM_SWAP | pagemap.PM_PRESENT)) == np.uint64(pagemap.PM_SWAP)
    kind = e & np.uint64(pagemap.PM_SWAP_TYPE_MASK)
    return swap & (kind == np.uint64(pagemap.MARKER_SWAP_TYPE))


def is_swap_entry(entries: np.ndarray) -> np.ndarray:
    """Which classic pagemap entries are real swap entries: non-present, swap, not a marker."""
    e = np.asarray(entries, dtype=np.uint64)
    swap = (e & np.uint64(pagemap.PM_SWAP | pagemap.PM_PRESENT)) == np.uint64(pagemap.PM_SWAP)
    return swap & ~is_marker(e)


def resolve_swapped(pid_or_pagemap: Pid | Pagemap, regions: Regions) -> Regions:
    """Clear ``SWAPPED`` on the pages that are uffd-wp markers, not swap.

    Only regions that are ``SWAPPED`` but neither ``WRITTEN`` nor ``GUARD`` are ambiguous;
    the cost is proportional to their pages (nothing at all when there are none, and only a
    ``sysinfo`` call when no swap device is on, since then no page can be swapped).
    Ambiguous regions are split where markers and real swap entries alternate. A page keeps
    SWAPPED only if its pagemap entry, read right after the scan, is a real swap entry (so a
    marker page written in between does not turn into swap).

    Parameters
    ----------
    pid_or_pagemap : int, "self" or Pagemap
        The process the regions were scanned from, or its open :class:`pmviz.Pagemap`
        (the recorder's, to avoid reopening).
    regions : Regions
        A scan of that process that reports at least SWAPPED and WRITTEN (any full scan).

    Returns
    -------
    Regions
        The same regions (the same object when nothing was ambiguous) with SWAPPED only on
        really swapped pages; adjacent regions that became equal are merged.

    Warns
    -----
    PmvizWarning
        Swap is in use, but the swap type bits are hidden (no CAP_SYS_ADMIN): ambiguous pages
        keep SWAPPED.

    Examples
    --------
    >>> import pmviz
    >>> from pmviz.swapped import resolve_swapped
    >>> with pmviz.Pagemap("self") as pm:
    ...     snapshot = resolve_swapped(pm, pm.scan())
    """
    a = regions.array
    ambiguous = _ambiguous(a)
    if not ambiguous.any():
        return regions
    if not _swap_in_use():
        # No swap device: no page can be on swap, so every ambiguous page is a marker.
        return _all_markers(regions, ambiguous)
    if not features().pfn_visible:
        return _without_type_bits(pid_or_pagemap, regions, ambiguous)
    if isinstance(pid_or_pagemap, Pagemap):
        return _resolve(regions, ambiguous, _reader(pid_or_pagemap.fd))
    with procfs.open_fd(procfs.normalize_pid(pid_or_pagemap), "pagemap") as fd:
        return _resolve(regions, ambiguous, _reader(fd))


def markers_only() -> bool:
    """Whether no swap device is on: then every ambiguous page is a marker, and resolving a
    scan depends on the scan alone (two identical scans resolve identically).
    """
    return not _swap_in_use()


def _ambiguous(a: np.ndarray) -> np.ndarray:
    """SWAPPED but neither WRITTEN nor GUARD: the rows a marker may hide in (one mask test)."""
    return (a["categories"] & (_SWAPPED | _NOT_AMBIGUOUS)) == _SWAPPED


def resolve_rows(pagemap: Pagemap, rows: np.ndarray) -> np.ndarray:
    """:func:`resolve_swapped` of a ``REGION_DTYPE`` scan that the caller owns (the recorder's
    scan buffer): the same result, computed in place where possible.

    Without swap in use (the common case) the ambiguous rows lose SWAPPED in place and only
    their boundaries are checked for neighbours that became equal, so the cost follows the
    ambiguous rows, not the whole scan; ``rows`` itself is returned when nothing merged.
    Otherwise this is :func:`resolve_swapped` (a new array). ``rows`` is modified either way.
    """
    ambiguous = _ambiguous(rows)
    idx = np.flatnonzero(ambiguous)
    if not len(idx):
        return rows
    if not rows.flags.c_contiguous:
        rows = rows.copy()
    if _swap_in_use():
        if not features().pfn_visible:
            regions = Regions._trusted(rows)
            return _without_type_bits(pagemap, regions, ambiguous).array
        return _resolve_array(rows, ambiguous, _reader(pagemap.fd), PAGE_SIZE)
    _clear_swapped(rows, idx)
    return _merge_around(rows, idx)


def _words(rows: np.ndarray) -> np.ndarray:
    """A contiguous ``REGION_DTYPE`` array as its words: row ``i`` is ``[3i, 3i + 3)``.

    ``np.take``/``np.put`` on these are several times faster than indexing the strided
    fields (``np.take`` on a strided field copies the whole column first).
    """
    return rows.view(np.uint64)


def _clear_swapped(rows: np.ndarray, idx: np.ndarray) -> None:
    """Clear SWAPPED in place on the rows at ``idx`` (``rows`` contiguous)."""
    w = _words(rows)
    k = idx * 3 + 2
    np.put(w, k, np.take(w, k) & ~_SWAPPED)


def _merge_around(rows: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Merge the rows at ``idx`` with touching neighbours of equal categories.

    What :func:`pmviz._intervals.merge_equal_neighbours` does to the whole array when only
    the rows at ``idx`` (sorted) changed: the kernel merged every other pair already (spec
    §3.4). Categories are compared first, addresses only where they are equal (rare).
    ``rows`` must be contiguous.
    """
    n = len(rows)
    if not len(idx):
        return rows
    w = _words(rows)
    i3 = idx * 3
    at = np.take(w, i3 + 2)
    # categories of the row before (3i - 1) and after (3i + 5); row -1 / n are masked out
    left = idx[(at == np.take(w, i3 - 1, mode="clip")) & (idx >= 1)]
    right = idx[(at == np.take(w, i3 + 5, mode="clip")) & (idx + 1 < n)] + 1
    joins = np.concatenate([left, right])  # rows that may continue the row before them
    joins = joins[np.take(w, joins * 3) == np.take(w, joins * 3 - 2)]  # start == end before
    if not len(joins):
        return rows
    head = np.ones(n, bool)
    head[joins] = False
    first = np.flatnonzero(head)
    last = np.empty(len(first), np.intp)
    last[:-1] = first[1:] - 1
    last[-1] = n - 1
    out = np.take(rows, first)
    out["end"] = np.take(w, last * 3 + 1)
    return out


def _reader(fd: int) -> EntryReader:
    return lambda start, end: pagemap.read_entries(fd, start, end)


def real_swap_pairs(fd: int, regions: np.ndarray) -> np.ndarray:
    """Of the pages in ``regions`` (a ``REGION_DTYPE`` array of non-present SWAPPED pages),
    those on a swap device, as ``(n, 2)`` address pairs. Used by write tracking to tell
    written-then-swapped pages from re-armed empty ones. Without the swap type bits (no
    CAP_SYS_ADMIN) it cannot tell and keeps them all.
    """
    if not len(regions) or not _swap_in_use():
        return np.empty((0, 2), dtype=np.uint64)
    if not features().pfn_visible:
        return iv.as_pairs(regions["start"], regions["end"])
    entries = _entries(_reader(fd), regions)
    addrs, _ = iv.page_addresses(regions)
    real = addrs[is_swap_entry(entries)]
    return iv.union(iv.as_pairs(real, real + np.uint64(PAGE_SIZE)))


# Regions closer than this are read in one pread: reading the entries of a short gap costs
# less than another syscall (with a million small regions, one pread each took seconds).
_READ_GAP = 512 << PAGE_SHIFT


def _entries(read: EntryReader, regions: np.ndarray) -> np.ndarray:
    """The pagemap entries of every page of ``regions``, in region order (page by page)."""
    if not len(regions):
        return np.empty(0, dtype=np.uint64)
    s, e = regions["start"], regions["end"]
    if len(regions) > 1 and not (s[1:] >= e[:-1]).all():  # (unsorted: one pread each)
        parts = [read(a, b) for a, b in zip(s.tolist(), e.tolist())]
        return np.concatenate(parts)
    cs, ce = iv.bridge_gaps(s, e, _READ_GAP)
    parts = [read(a, b) for a, b in zip(cs.tolist(), ce.tolist())]
    got = parts[0] if len(parts) == 1 else np.concatenate(parts)
    # where each cluster's entries start in `got`, then each page's index
    shift = np.uint64(PAGE_SHIFT)
    base = np.zeros(len(cs), np.int64)
    np.cumsum(((ce - cs) >> shift)[:-1].astype(np.int64), out=base[1:])
    addrs, _ = iv.page_addresses(regions)
    cluster = np.searchsorted(cs, addrs, side="right") - 1
    return got[base[cluster] + ((addrs - cs[cluster]) >> shift).astype(np.int64)]


def _resolve(regions: Regions, ambiguous: np.ndarray, read: EntryReader) -> Regions:
    """Clear SWAPPED on the ambiguous pages whose entry is not a real swap entry."""
    out = _resolve_array(regions.array.copy(), ambiguous, read, regions.page_size)
    return Regions._trusted(out, page_size=regions.page_size)


def _resolve_array(
    a: np.ndarray, ambiguous: np.ndarray, read: EntryReader, page: int
) -> np.ndarray:
    """:func:`_resolve` on an array it may change in place (vectorised per page).

    A region whose pages are all markers loses SWAPPED in place, one whose pages are all on
    swap keeps it; only regions that mix both are split page by page (rare: it takes part of
    an armed range paged out).
    """
    idx = np.flatnonzero(ambiguous)
    amb = np.take(a, idx)
    entries = _entries(read, amb)
    if not len(entries):
        return a
    # Keep SWAPPED only where a swap entry is still there: a marker page written (so made
    # present) between the scan and this read was never on swap either.
    swap = is_swap_entry(entries)
    counts = ((amb["end"] - amb["start"]) // np.uint64(page)).astype(np.int64)
    ends = np.cumsum(counts)
    seen = np.concatenate([[0], np.cumsum(swap, dtype=np.int64)])
    n_swap = seen[ends] - seen[ends - counts]
    clear = idx[n_swap == 0]
    _clear_swapped(a, clear)
    mixed = (n_swap > 0) & (n_swap < counts)
    if not mixed.any():
        return _merge_around(a, clear)
    pages = np.repeat(mixed, counts)
    m = amb[mixed]
    addrs, owner = iv.page_addresses(m)
    cats = m["categories"][owner]
    cats = np.where(swap[pages], cats, cats & ~_SWAPPED)
    split = iv.regions_array(*iv.merge_runs(addrs, addrs + np.uint64(page), cats))
    keep = np.ones(len(a), bool)
    keep[idx[mixed]] = False
    out = np.concatenate([a[keep], split])
    out = out[np.argsort(out["start"], kind="stable")]
    return iv.merge_equal_neighbours(out)


def _without_type_bits(
    pid_or_pagemap: Pid | Pagemap, regions: Regions, ambiguous: np.ndarray
) -> Regions:
    """Without CAP_SYS_ADMIN the swap type is hidden; the process's swap total still tells
    whether any page of it is on swap at all.
    """
    pid = pid_or_pagemap.pid if isinstance(pid_or_pagemap, Pagemap) else pid_or_pagemap
    pid = procfs.normalize_pid(pid)
    if _swap_kib(pid) == 0:
        return _all_markers(regions, ambiguous)
    warnings.warn(
        f"process {pid} has pages on swap, and telling them from uffd-wp markers needs the "
        "swap type bits of /proc/PID/pagemap, shown only with CAP_SYS_ADMIN: armed-but-empty "
        "pages stay marked SWAPPED",
        PmvizWarning,
        stacklevel=3,
    )
    return regions


def _all_markers(regions: Regions, ambiguous: np.ndarray) -> Regions:
    """Clear SWAPPED on every ambiguous region (none of their pages can be on swap)."""
    out = regions.array.copy()
    idx = np.flatnonzero(ambiguous)
    _clear_swapped(out, idx)
    return Regions(_merge_around(out, idx), page_size=regions.page_size)


def _swap_in_use() -> bool:
    try:
        return swap_total_bytes() > 0
    except OSError:
        return True  # unknown: take the exact path


def _swap_kib(pid: int | str) -> int:
    for line in procfs.read_text(pid, "smaps_rollup").splitlines():
        if line.startswith("Swap:"):
            return int(line.split()[1])
    return 0
