"""Exact, page-granular write tracking: which pages did a process write, and when?

Mechanisms (``WriteSource.mechanism``):

``"uffd-wp"``
    userfaultfd async write-protect + ``PM_SCAN_WP_MATCHING`` get-and-clear (spec §3.8, §4),
    Linux >= 6.7. :class:`WriteTracker` tracks this process, :func:`spawn_tracked_python`
    a Python child, :class:`UffdTracker` any process whose uffd this process holds, and
    :func:`harvest_written` is the bare cross-process get-and-clear.
``"soft-dirty"``
    ``clear_refs`` + the soft-dirty bit, where ``CONFIG_MEM_SOFT_DIRTY`` is set:
    :class:`pmviz.softdirty.SoftDirtyTracker`.

In tracked memory the kernel reports armed-but-empty pages as SWAPPED (spec gotcha 9); pass
snapshots through :func:`pmviz.swapped.resolve_swapped` before showing swap.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from .. import _intervals as iv
from .._kernel.procfs import Pid
from ..categories import Category
from ..errors import UnsupportedKernel
from ..features import features, user_address_limit
from ..regions import Regions
from ..scanning import Pagemap
from ._engine import SkippedRange, UffdTracker, as_ranges, harvest_span, open_uffd
from .child import TrackedChild, spawn_tracked_python

__all__ = [
    "WriteSource",
    "WriteTracker",
    "UffdTracker",
    "TrackedChild",
    "SkippedRange",
    "harvest_written",
    "spawn_tracked_python",
    "as_ranges",
]

_WRITTEN = int(Category.WRITTEN)


@runtime_checkable
class WriteSource(Protocol):
    """Anything that reports the pages a process wrote, interval by interval.

    Attributes
    ----------
    mechanism : str
        ``"uffd-wp"`` or ``"soft-dirty"``.
    pid : int or "self"
        The tracked process.

    Notes
    -----
    ``collect()`` returns the pages written since the previous ``collect()``; the first one
    counts from the moment tracking began, never "everything present". Harvest and re-arm
    are one step, and VMAs that appeared since the last call are picked up. Every returned
    region has categories ``WRITTEN``. ``close()`` is idempotent.
    """

    mechanism: str
    pid: int | str

    def collect(self) -> Regions: ...

    def close(self) -> None: ...


class WriteTracker(UffdTracker):
    """Track which pages of *this* process are written (a context manager).

    Tracking begins when the tracker is created: it creates a userfaultfd with
    ``WP_ASYNC | WP_UNPOPULATED``, registers the ranges and write-protects them. Writes never
    block (async mode), so it is safe to track the memory the Python runtime itself uses.

    Parameters
    ----------
    ranges : optional
        ``None`` (default): every writable VMA of memory of this process, private or shared
        (memfd, shm, shared files; not device or kernel-object mappings), including VMAs
        that appear later (new mmaps, heap growth, thread stacks). Otherwise what to track: a
        numpy array or other buffer, a ``(start, end)`` tuple, a ``Regions``/``Vmas``, or an
        iterable of tuples and buffers; VMAs that appear later inside these ranges are
        picked up too. Buffers cover the whole pages their bytes lie on.

    Attributes
    ----------
    registered : Regions
        What is registered and harvested now.
    skipped : list of SkippedRange
        VMAs that could not be registered (e.g. owned by another userfaultfd), and why.

    Raises
    ------
    UnsupportedKernel
        No PAGEMAP_SCAN or no async write-protect (Linux < 6.7): the message names the
        soft-dirty fallback.
    AccessDenied
        userfaultfd is refused (``vm.unprivileged_userfaultfd``, /dev/userfaultfd).

    Notes
    -----
    A page is reported iff it was written since the previous ``collect()`` and still holds
    data when the harvest runs. So writes to memory discarded before the harvest
    (``munmap``, ``MADV_DONTNEED``) are not reported; the kernel reports a discarded anonymous
    page as written (spec §3.8), pmviz does not, and re-arms it so later collects stay exact.
    Memory that became trackable during the interval (a new mapping, heap growth, a VMA
    moved by ``mremap``, which drops the registration) is reported by content: its present
    anonymous pages other than the zero page, and its swapped pages. Shared memory is
    tracked per mapper: a write through this process's mapping is in its written set, a
    write by another process to the same page is not (the write-protect bit is in each
    process's own page table). A written shared page that the kernel drops from this
    process's page table before the harvest (reclaim of shmem or page cache) reads as
    unmapped then, and is not reported. Memory another userfaultfd registered is left alone
    and listed in ``skipped``.

    Cost per collect: a maps read (whole-process mode only; a recorder hands over its own
    with ``collect(maps=...)``), one scan to find new VMAs, one
    ``PM_SCAN_WP_MATCHING`` scan through the kernel's WRITTEN fast path, and one plain scan of
    just the written pages (see ``benchmarks/RESULTS-tracking.md``).

    Examples
    --------
    Which pages does ``np.sort`` write?

    >>> import numpy as np
    >>> import pmviz
    >>> a = np.random.default_rng(0).random(1 << 20)   # 8 MiB
    >>> with pmviz.WriteTracker(a) as tracker:
    ...     a.sort()
    ...     written = tracker.collect()
    >>> written.n_pages == tracker.registered.n_pages  # every page the array lies on
    True
    """

    def __init__(self, ranges: Any = None) -> None:
        f = features()
        if not f.pagemap_scan:
            raise UnsupportedKernel(
                "PAGEMAP_SCAN",
                f"kernel {f.kernel_release} has no PAGEMAP_SCAN (needs Linux >= 6.7); "
                "write tracking falls back to soft-dirty (pmviz.softdirty) where "
                "CONFIG_MEM_SOFT_DIRTY is set",
            )
        super().__init__("self", open_uffd(), ranges, owns_fd=True)

    def __enter__(self) -> WriteTracker:
        return self


def harvest_written(pid: Pid | Pagemap, ranges: Any = None) -> Regions:
    """Get-and-clear the written pages of a process whose memory is registered for async WP.

    One ``PM_SCAN_WP_MATCHING`` scan with ``category_mask = return_mask = WRITTEN``
    through ``/proc/PID/pagemap`` (spec §4 step 5): it reports the pages written since the
    last harvest and write-protects them again, atomically per page table. It works on
    another process's pagemap (PTRACE_MODE_READ), so a recorder can harvest a process that
    registered its own memory. Only async-WP registered VMAs take part; others are skipped by
    the kernel (spec §3.2). It does not register anything: see :class:`UffdTracker`.

    Parameters
    ----------
    pid : int, "self" or Pagemap
        The process, or an open :class:`pmviz.Pagemap` of it (cheaper when repeated).
    ranges : optional
        Where to harvest (as in :class:`WriteTracker`); ``None`` = the whole address space.

    Returns
    -------
    Regions
        Sorted, merged runs, categories ``WRITTEN``.

    Raises
    ------
    NoSuchProcess, AccessDenied, UnsupportedKernel
    """
    if isinstance(pid, Pagemap):
        return _harvest(pid, ranges)
    with Pagemap(pid) as pm:
        return _harvest(pm, ranges)


def _harvest(pm: Pagemap, ranges: Any) -> Regions:
    if not features().pagemap_scan:
        raise UnsupportedKernel("PAGEMAP_SCAN", "harvest_written needs PAGEMAP_SCAN (Linux >= 6.7)")
    spans = [(0, user_address_limit())] if ranges is None else as_ranges(ranges).tolist()
    parts = [harvest_span(pm.fd, lo, hi, pm.pid) for lo, hi in spans]
    return Regions(iv.union_regions(parts, _WRITTEN))
