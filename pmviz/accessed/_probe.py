"""``accessed="probe"``: sample accesses by paging pages out and seeing which come back.

Every :meth:`AccessProbe.collect` (1) scans the target with ``PAGEMAP_SCAN``, (2) counts
which of the pages paged out at the previous collect are ``PRESENT`` again (the target
touched them: a read or a write faulted them back in), (3) adapts the regions
(:mod:`._regions`), and (4) pages out a new random sample of resident pages from outside
with ``process_madvise(pidfd, ..., MADV_PAGEOUT)``, checking with a second scan which ones
really left (a page mapped by other processes, locked, or part of a huge page stays).

This is sampling with a price, like DAMON's sampling or the proactive reclaim of Senpai/TMO:
every probed page the target touches costs it a refault (a swap-in for anonymous memory, a
page-cache read for file pages). The budget bounds it: at most ``pages_per_s`` pages per
second and at most ``max_fraction`` of the resident probeable pages per interval.

Not probed: huge (PMD-mapped) pages, whose pageout would split them (on 6.18 a 2 MiB-aligned
file mapping can be PMD-mapped too); the shared zero page; with ``anon=False``, anything but
``FILE`` pages. Anonymous, shmem and memfd pages go to swap when paged out: without a swap
device they stay, and the check scan drops them from the sample. Dirty page cache is not
reclaimed by ``MADV_PAGEOUT`` (only kswapd writes file folios back) and stays likewise. File pages
have one bias: a read fault maps the neighbouring page-cache pages too (fault-around,
``fault_around_bytes``) and readahead may bring a probed neighbour back, so a probed file
page next to an accessed one can read as accessed.
"""

from __future__ import annotations

import errno
import math
import os
import time

import numpy as np

from .._intervals import union_columns
from .._kernel import madvise, procfs
from .._kernel.closing import Closing
from .._kernel.pagemap_scan import PAGE_SHIFT, PAGE_SIZE
from .._kernel.procfs import Pid
from .._kernel.sysinfo import swap_total_bytes
from ..categories import Category as C
from ..errors import AccessDenied, Error, NoSuchProcess, UnsupportedKernel
from ..mask import Mask
from ..regions import Regions
from ..scanning import Pagemap
from ._regions import RegionSet, adapt, cover
from ._samples import PROBED_DTYPE, ProbeSample

__all__ = ["AccessProbe", "swap_active"]

_PRESENT = Mask(require=C.PRESENT)
_SHIFT = np.uint64(PAGE_SHIFT)


def swap_active() -> bool:
    """Whether a swap device or file is on (``sysinfo`` reports swap space)."""
    try:
        return swap_total_bytes() > 0
    except OSError:
        return False


def _inside(addr: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Which addresses lie in the sorted disjoint ``[start, end)`` runs."""
    j = np.searchsorted(start, addr, side="right") - 1
    jc = np.maximum(j, 0)
    return (j >= 0) & (addr < end[jc]) if len(start) else np.zeros(len(addr), bool)


def _runs(addr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted page addresses as ``(starts, lengths)`` of contiguous runs."""
    if not len(addr):
        return addr, addr
    head = np.ones(len(addr), bool)
    head[1:] = np.diff(addr) != np.uint64(PAGE_SIZE)
    first = np.flatnonzero(head)
    n = np.diff(np.append(first, len(addr)))
    return addr[first], n.astype(np.uint64) << _SHIFT


class AccessProbe(Closing):
    """Estimate which pages a process accesses by paging out a random sample (see module doc).

    Creating it pages out the first sample; each :meth:`collect` reports what came back and
    pages out the next.

    Parameters
    ----------
    pid : int
        The target (not this process: it would fault its own probes back while scanning).
    pages_per_s : float
        Budget: probes per second of elapsed time (default 4096 pages = 16 MiB/s).
    max_fraction : float
        Budget cap per interval: at most this fraction of the probeable resident pages.
    interval : float
        Seconds expected until the first :meth:`collect` (sizes the first sample).
    min_regions, max_regions : int
        Bounds on the number of adaptive regions (DAMON's defaults: 10 and 1000).
    merge_threshold : float
        Neighbours whose sampled access fractions differ by at most this merge.
    anon : bool
        Probe private anonymous memory too (needs swap). ``False`` probes only ``FILE``
        pages: clean page cache of regular files pages out without swap (shmem and memfd
        pages need swap; without it they stay and are dropped from the sample).
    seed : int, optional
        For the random sample.

    Raises
    ------
    UnsupportedKernel
        ``anon=True`` without a swap device (the message says how to add one or to pass
        ``anon=False``), or no ``process_madvise``/``MADV_PAGEOUT`` (Linux < 5.10).
    AccessDenied
        ``process_madvise`` on another process needs PTRACE_MODE_READ and CAP_SYS_NICE.
    NoSuchProcess

    Notes
    -----
    Estimates: a region's accessed fraction is ``accessed_pages / probed_pages`` of its
    sample, with a Wilson 95 % interval (:func:`wilson_interval`); multiplied by the region's
    resident pages it estimates the accessed bytes. A probe touched between the pageout and
    the check scan right after it is dropped from the sample (it never left), which biases
    the hottest pages slightly low. Reads of a paged-out page refault it without making it
    written: write tracking (uffd-wp) stays exact (``tests/test_accessed_probe.py``).
    """

    mechanism = "probe"

    def __init__(
        self,
        pid: Pid,
        *,
        pages_per_s: float = 4096,
        max_fraction: float = 0.02,
        interval: float = 1.0,
        min_regions: int = 10,
        max_regions: int = 1000,
        merge_threshold: float = 0.1,
        anon: bool = True,
        seed: int | None = None,
    ) -> None:
        pid = procfs.normalize_pid(pid)
        if pid == "self" or pid == os.getpid():
            raise ValueError("AccessProbe needs another process: scanning would refault our own")
        if not (pages_per_s > 0 and 0 < max_fraction <= 1 and interval > 0):
            raise ValueError(
                "need pages_per_s > 0, 0 < max_fraction <= 1 and interval > 0, got "
                f"{pages_per_s}, {max_fraction}, {interval}"
            )
        if not 1 <= min_regions <= max_regions:
            raise ValueError(
                f"need 1 <= min_regions <= max_regions, got {min_regions}, {max_regions}"
            )
        if anon and not swap_active():
            raise UnsupportedKernel(
                "swap",
                "probing private anonymous memory pages it out, which needs a swap device and "
                "none is on (/proc/swaps is empty): add one (as root: `fallocate -l 1G /swapfile "
                "&& chmod 600 /swapfile && mkswap /swapfile && swapon /swapfile`), or pass "
                "anon=False to probe only file-backed pages",
            )
        self.pid = int(pid)
        self.pages_per_s = float(pages_per_s)
        self.max_fraction = float(max_fraction)
        self.min_regions, self.max_regions = int(min_regions), int(max_regions)
        self.merge_threshold = float(merge_threshold)
        self._mask = (
            Mask(require=C.PRESENT, exclude=C.PFNZERO | C.HUGE)
            if anon
            else Mask(require=C.PRESENT | C.FILE, exclude=C.PFNZERO | C.HUGE)
        )
        self._rng = np.random.default_rng(seed)
        self._regions = RegionSet.empty()
        self._probes = np.empty(0, np.uint64)
        self._probe_region = np.empty(0, np.int64)
        self._resident = np.empty(0, np.int64)
        self.refaults = 0
        """Probes the target faulted back in so far (each cost it one refault)."""
        self.probed_total = 0
        self._pidfd = -1
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except OSError as err:
            raise procfs.translate(err, self.pid, "pidfd") from err
        self._pm = Pagemap(self.pid)
        self._t_probe = time.monotonic_ns()
        self._probe(self._scan(), interval)

    # -- one round ------------------------------------------------------------------------
    def collect(self, scan: Regions | None = None) -> ProbeSample:
        """What came back of the last sample, per region; then page out the next sample.

        Parameters
        ----------
        scan : Regions, optional
            A full scan of the target taken just now (every page, ``PRESENT``, ``FILE``,
            ``HUGE`` and ``PFNZERO`` reported), e.g. the recorder's snapshot: saves a scan.

        Returns
        -------
        ProbeSample
            Rows: the regions the probes were chosen in, their probeable resident pages
            then, the probes that left, and how many of those are present again now.
        """
        if self._pidfd < 0:
            raise ValueError("this AccessProbe is closed")
        full = self._scan() if scan is None else scan.array
        now = time.monotonic_ns()
        present = full[_PRESENT.matches(full["categories"])]
        back = _inside(self._probes, present["start"], present["end"])
        r = self._regions
        m = len(r.start)
        probed = np.bincount(self._probe_region, minlength=m).astype(np.int64)
        accessed = np.bincount(self._probe_region[back], minlength=m).astype(np.int64)
        rows = np.empty(m, PROBED_DTYPE)
        rows["start"], rows["end"] = r.start, r.end
        rows["resident_pages"] = self._resident
        rows["probed_pages"], rows["accessed_pages"] = probed, accessed
        rows["interval_ns"] = now - self._t_probe
        self.refaults += int(back.sum())
        sample = ProbeSample(now, rows, now - self._t_probe)
        self._regions = RegionSet(r.start, r.end, probed, accessed)
        self._t_probe = now
        self._probe(full, sample.interval_ns / 1e9)
        return sample

    def _scan(self, start: int | None = None, end: int | None = None, mask: Mask | None = None):
        try:
            return self._pm.scan(start, end, mask=mask).array
        except NoSuchProcess:
            raise
        except Error as err:
            raise Error(f"AccessProbe of process {self.pid}: {err}") from err

    def _probe(self, full: np.ndarray, seconds: float) -> None:
        """Adapt the regions to this scan and page out a new sample in them."""
        mapped_s, mapped_e = union_columns(full["start"], full["end"])
        regions = cover(self._regions, mapped_s, mapped_e)
        regions = adapt(
            regions,
            min_regions=self.min_regions,
            max_regions=self.max_regions,
            threshold=self.merge_threshold,
            rng=self._rng,
        )
        ok = full[self._mask.matches(full["categories"])]
        s, e = ok["start"], ok["end"]
        n = ((e - s) >> _SHIFT).astype(np.int64)
        cum = np.concatenate([[0], np.cumsum(n)])

        def rank(addr: np.ndarray) -> np.ndarray:  # probeable pages below each address
            j = np.searchsorted(s, addr, side="right") - 1
            jc = np.maximum(j, 0)
            inside = np.where(addr > s[jc], (addr - s[jc]) >> _SHIFT, 0).astype(np.int64)
            return np.where(j >= 0, cum[jc] + np.minimum(inside, n[jc]), 0)

        lo, hi = (rank(regions.start), rank(regions.end)) if len(s) else (None, None)
        resident = (hi - lo) if lo is not None else np.zeros(len(regions.start), np.int64)
        total = int(resident.sum())
        budget = int(min(self.pages_per_s * seconds, self.max_fraction * total))
        probes = np.empty(0, np.uint64)
        owner = np.empty(0, np.int64)
        if budget > 0 and len(regions.start) and lo is not None:
            # The same number of probes in every region with resident pages (DAMON's one
            # sample per region), never more than it has pages.
            per = np.minimum(resident, math.ceil(budget / max(int((resident > 0).sum()), 1)))
            owner = np.repeat(np.arange(len(per)), per)
            ranks = lo[owner] + (self._rng.random(len(owner)) * resident[owner]).astype(np.int64)
            ranks, first = np.unique(ranks, return_index=True)  # drop repeated draws
            owner = owner[first]
            j = np.searchsorted(cum, ranks, side="right") - 1
            probes = s[j] + ((ranks - cum[j]).astype(np.uint64) << _SHIFT)
            probes, owner = self._page_out(probes, owner)
        self._regions = regions
        self._resident = resident.astype(np.int64)
        self._probes, self._probe_region = probes, owner
        self.probed_total += len(probes)

    def _page_out(self, probes: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        starts, lengths = _runs(probes)
        try:
            madvise.process_madvise(self._pidfd, starts, lengths, madvise.MADV_PAGEOUT)
        except OSError as err:
            raise self._translate(err) from err
        # Keep the probes that really left: pageout skips pages mapped by other processes,
        # locked pages and pages under writeback.
        still = self._scan(int(probes[0]), int(probes[-1]) + PAGE_SIZE, _PRESENT)
        gone = ~_inside(probes, still["start"], still["end"])
        return probes[gone], owner[gone]

    def _translate(self, err: OSError) -> Error:
        if err.errno == errno.EPERM:
            return AccessDenied(
                self.pid,
                f"process_madvise(MADV_PAGEOUT) on process {self.pid} was refused: paging out "
                "another process's memory needs PTRACE_MODE_READ access to it and CAP_SYS_NICE "
                "(run that one command with sudo, or record with accessed='vma', which needs neither)",
            )
        if err.errno in (errno.ENOSYS, errno.EINVAL):
            return UnsupportedKernel(
                "process_madvise",
                f"process_madvise(MADV_PAGEOUT) is not available ({os.strerror(err.errno)}); "
                "it needs Linux >= 5.10 with CONFIG_ADVISE_SYSCALLS",
            )
        return procfs.translate(err, self.pid, "process_madvise")

    def close(self) -> None:
        """Close the pidfd and the pagemap (idempotent); paged-out probes stay out."""
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1
        pm = getattr(self, "_pm", None)
        if pm is not None:
            pm.close()

