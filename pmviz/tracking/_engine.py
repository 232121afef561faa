"""``UffdTracker``: exact written-page sets of one process through userfaultfd async WP.

The mechanism (spec §3.8, §4): every tracked VMA is registered in WP mode on a uffd created
with ``UFFD_FEATURE_WP_ASYNC`` and write-protected ("armed"). A write to an armed page is
resolved by the kernel without blocking, by clearing the page's uffd-wp bit, so the page
reports ``WRITTEN`` in ``PAGEMAP_SCAN``. A ``PM_SCAN_WP_MATCHING`` scan with
``category_mask = return_mask = WRITTEN`` reports exactly those pages and arms them again in
the same page-table walk: harvest and re-arm are one atomic step per page table.

Both ioctls act on the *uffd's* mm and on the *pagemap's* process, not on the caller's: the
same code tracks this process (``WriteTracker``) or another one whose uffd this process holds
(a child that handed it over, or an injected one).
"""

from __future__ import annotations

import errno
import os
import threading
import weakref
from typing import Any, NamedTuple

import numpy as np

from .. import _intervals as iv
from .._kernel import pagemap_scan as pms
from .._kernel import procfs, uffd
from .._kernel.process import ProcessHandle
from .._kernel.procfs import Pid
from ..categories import Category
from ..errors import AccessDenied, Error, UnsupportedKernel
from ..regions import Regions
from ._harvest import harvest_span, scan, scan_unregistered
from ._maps import VmaRows, parse_vma_rows, read_maps_bytes, read_vma_rows
from ._ranges import as_ranges

__all__ = ["UffdTracker", "SkippedRange", "open_uffd", "as_ranges", "MAX_VMA_BYTES"]

# Arming write-protects holes too (WP_UNPOPULATED installs a marker per page), which allocates
# a page table for every 2 MiB of a VMA (size / 512 bytes) whether or not it holds data: a
# sanitizer's 16 TiB shadow or a huge MAP_NORESERVE reservation would need gigabytes of kernel
# memory and can bring the whole machine into OOM (seen here: 9.9 GB of page tables).
MAX_VMA_BYTES = 16 << 30

_WRITTEN = int(Category.WRITTEN)
_WPALLOWED = int(Category.WPALLOWED)


class SkippedRange(NamedTuple):
    """A VMA (part) that could not be registered for tracking, and why."""

    start: int
    end: int
    path: str
    reason: str


_UNWALKED = "a VM_PFNMAP/VM_IO mapping (such as [vvar]): no pages for PAGEMAP_SCAN to track"
_REGISTER_ERRORS = {
    errno.EBUSY: "registered by another userfaultfd",
    errno.EPERM: "not writable through this mapping (no VM_MAYWRITE)",
    errno.EINVAL: "the kernel cannot write-protect this VMA (special mapping, or a hugetlb "
    "range not aligned to its huge page size)",
}


def open_uffd() -> int:
    """Create a userfaultfd with async write-protect (spec §4 steps 1-2) or raise clearly.

    Returns
    -------
    int
        The file descriptor (``O_CLOEXEC | O_NONBLOCK``); the caller owns it.

    Raises
    ------
    UnsupportedKernel
        No userfaultfd, or no ``UFFD_FEATURE_WP_ASYNC`` (Linux < 6.7).
    AccessDenied
        userfaultfd is refused to this user.
    """
    try:
        fd = uffd.create()
    except OSError as err:
        if err.errno == errno.ENOSYS:
            raise UnsupportedKernel(
                "userfaultfd",
                "this kernel has no userfaultfd (CONFIG_USERFAULTFD=n); write tracking needs "
                "it, or soft-dirty (pmviz.softdirty) where CONFIG_MEM_SOFT_DIRTY=y",
            ) from err
        if err.errno in (errno.EPERM, errno.EACCES):
            raise AccessDenied(
                None,
                "userfaultfd() refused: allow it with `sysctl vm.unprivileged_userfaultfd=1`, "
                "give this user read-write access to /dev/userfaultfd, or run with "
                "CAP_SYS_PTRACE",
            ) from err
        raise Error(f"userfaultfd(): {os.strerror(err.errno or 0)}") from err
    try:
        supported = uffd.api(fd, uffd.WANTED_FEATURES)
    except OSError as err:
        os.close(fd)
        raise UnsupportedKernel(
            "uffd-wp-async",
            f"UFFDIO_API with UFFD_FEATURE_WP_ASYNC failed ({os.strerror(err.errno or 0)}): "
            f"kernel {os.uname().release} lacks async write-protect (needs Linux >= 6.7 with "
            "CONFIG_PTE_MARKER_UFFD_WP); use soft-dirty tracking (pmviz.softdirty) where "
            "CONFIG_MEM_SOFT_DIRTY is set",
        ) from err
    if not supported & uffd.UFFD_FEATURE_WP_ASYNC:  # pragma: no cover - kernels < 6.7
        os.close(fd)
        raise UnsupportedKernel(
            "uffd-wp-async",
            "the kernel does not offer UFFD_FEATURE_WP_ASYNC (needs Linux >= 6.7); use "
            "soft-dirty tracking (pmviz.softdirty) where CONFIG_MEM_SOFT_DIRTY is set",
        )
    return fd


# Live trackers by process: a tracker must not consume another one's write-protect state.
_LIVE: dict[int | str, weakref.WeakSet[UffdTracker]] = {}


def _pid_key(pid: int | str) -> int | str:
    return os.getpid() if pid == "self" else pid


def _live_trackers(pid: int | str) -> list[UffdTracker]:
    return list(_LIVE.get(_pid_key(pid), ()))


class UffdTracker:
    """Write tracking of one process through a uffd this process holds (``WriteSource``).

    Most users want :class:`pmviz.WriteTracker` (this process) or
    :func:`pmviz.tracking.spawn_tracked_python` (a Python child); this class is the engine
    under both, public for trackers that obtain another process's uffd some other way (for
    example by syscall injection and ``pidfd_getfd``).

    Construction registers every candidate VMA on ``uffd_fd`` and arms it: tracking begins
    then. Each :meth:`collect` first registers VMAs that appeared since (new mmaps, heap
    growth, a VMA that ``mremap`` moved, which the kernel unregisters), then harvests.

    Parameters
    ----------
    pid : int or "self"
        The process whose memory ``uffd_fd`` belongs to.
    uffd_fd : int
        A userfaultfd of that process's mm, ``UFFDIO_API`` done with WP_ASYNC.
    ranges : optional
        What to track (see :func:`pmviz.tracking.as_ranges`); ``None`` = every writable VMA
        of memory, private or shared (``VmaRows.trackable``), now and later.
    owns_fd : bool
        Close ``uffd_fd`` in :meth:`close` (closing drops all write-protect state).
    max_vma_bytes : int or None
        With ``ranges=None``, VMAs larger than this are not tracked but listed in
        :attr:`skipped` (arming costs ``size / 512`` bytes of page tables, data or not).
        ``None`` tracks every VMA whatever its size. Explicit ``ranges`` are always tracked.
    process : ProcessHandle, optional
        The handle of ``pid`` (another process): its maps and pagemap are opened through it,
        so a process that reused the pid is never touched.
    """

    mechanism = "uffd-wp"
    takes_maps = True  # collect(maps=...) reuses the caller's maps read

    def __init__(
        self,
        pid: Pid,
        uffd_fd: int,
        ranges: Any = None,
        *,
        owns_fd: bool = True,
        max_vma_bytes: int | None = MAX_VMA_BYTES,
        process: ProcessHandle | None = None,
    ):
        self.pid = procfs.normalize_pid(pid)
        self._process = process  # (another process: identity-checked /proc access)
        self.max_vma_bytes = max_vma_bytes
        self._uffd = uffd_fd
        self._owns_fd = owns_fd
        self._pagemap_fd = -1
        self._closed = False
        self._lock = threading.Lock()
        self._registered = np.empty((0, 2), dtype=np.uint64)
        self._skipped: dict[tuple[int, int], SkippedRange] = {}
        self._foreign: list[SkippedRange] = []
        self._maps_cache: tuple[bytes, VmaRows] | None = None
        # (maps, hull, unregistered memory) after a _track_new that settled every candidate
        self._steady: tuple[VmaRows, np.ndarray, np.ndarray] | None = None
        self._spans: tuple[tuple[Any, ...], list[list[int]]] | None = None  # harvest spans
        try:
            self._ranges = None if ranges is None else as_ranges(ranges)
            self._pagemap_fd = (
                procfs.open_raw(self.pid, "pagemap") if process is None else process.open("pagemap")
            )
            self._track_new(first=True)
            _LIVE.setdefault(_pid_key(self.pid), weakref.WeakSet()).add(self)
        except BaseException:
            self._release()
            raise

    # -- public -------------------------------------------------------------------------------
    @property
    def registered(self) -> Regions:
        """Address ranges this tracker registered (WPALLOWED) and harvests."""
        r = self._registered
        return Regions(iv.regions_array(r[:, 0], r[:, 1], _WPALLOWED))

    @property
    def skipped(self) -> list[SkippedRange]:
        """VMAs that could not be registered (e.g. owned by another uffd), with the reason."""
        return sorted([*self._skipped.values(), *self._foreign])

    @property
    def closed(self) -> bool:
        return self._closed

    def collect(self, *, maps: bytes | None = None, scan_repeats: bool = False) -> Regions:
        """Pages written since the previous collect (or since tracking began), then re-arm.

        Parameters
        ----------
        maps : bytes, optional
            The target's ``/proc/PID/maps`` read just now by the caller (a recorder reads it
            for each snapshot anyway): used instead of reading it again.
        scan_repeats : bool
            The caller's full scan of the process (every category, taken since the previous
            collect) repeats, byte for byte, the one it took before the previous collect.
            Every byte of a VMA is in such a scan with its ``WPALLOWED`` bit, so no VMA lost
            or gained a registration in between: with unchanged ``maps`` too, the kernel
            scan for unregistered memory is skipped (a VMA replaced in place after the
            caller's scan is found at the next collect, its content then reported).

        Returns
        -------
        Regions
            Sorted, merged ``[start, end)`` runs, every one with categories ``WRITTEN``.

        Raises
        ------
        NoSuchProcess
            The tracked process has exited.
        ValueError
            The tracker is closed.
        """
        with self._lock:
            if self._closed:
                raise ValueError("collect() on a closed write tracker")
            parts = self._track_new(first=False, maps=maps, scan_repeats=scan_repeats)
            parts += self._harvest_registered()
            return Regions(iv.union_regions(parts, _WRITTEN))

    def close(self) -> None:
        """Stop tracking: unregister, close the uffd (if owned) and the pagemap. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._unregister_all()
            finally:
                self._release()

    def __enter__(self) -> UffdTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._closed:
                self._closed = True
                self._release()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.registered.n_pages} pages registered"
        return f"<{type(self).__name__} pid={self.pid} {self.mechanism} {state}>"

    # -- internals ------------------------------------------------------------------------------
    def _candidates(self, vmas: VmaRows) -> tuple[np.ndarray, np.ndarray]:
        """Memory that should be tracked now, as pairs plus the VMA index of each."""
        if self._ranges is not None:
            return iv.intersect_indexed(vmas.pairs, self._ranges)
        idx = vmas.trackable()
        pairs = vmas.pairs[idx]
        if self.max_vma_bytes is not None:
            big = (pairs[:, 1] - pairs[:, 0]) > self.max_vma_bytes
            for (lo, hi), i in zip(pairs[big].tolist(), idx[big].tolist()):
                self._skipped[(lo, hi)] = SkippedRange(
                    lo,
                    hi,
                    vmas.path(i),
                    f"larger than max_vma_bytes={self.max_vma_bytes:#x}: arming it would "
                    f"allocate {(hi - lo) >> 9 >> 20} MiB of page tables",
                )
            pairs, idx = pairs[~big], idx[~big]
        return pairs, idx

    def _read_vmas(self, raw: bytes | None = None) -> VmaRows:
        """The target's VMAs (from ``raw`` maps when given); parsed again only when the maps
        file changed (each collect reads it, and a steady process's maps repeat byte for
        byte).
        """
        if not raw:
            # (empty maps from the caller: a process exiting, its mm gone; our own read
            # tells that apart and raises NoSuchProcess)
            raw = read_maps_bytes(self.pid, self._process)
        cached = self._maps_cache
        if cached is not None and cached[0] == raw:
            return cached[1]
        vmas = parse_vma_rows(raw)
        self._maps_cache = (raw, vmas)
        return vmas

    def _unregistered(self, spans: np.ndarray) -> np.ndarray:
        """The parts of ``spans`` whose VMAs carry no async-WP registration (any uffd's).

        ``category_mask = category_inverted = WPALLOWED`` makes the kernel skip registered
        VMAs whole, without walking them (spec §3.2 step 5), so this costs little once
        everything is registered; ``return_mask = 0`` merges each unregistered span into one
        region (§3.4).
        """
        found = [scan_unregistered(self._pagemap_fd, lo, hi, self.pid) for lo, hi in spans.tolist()]
        if not found:
            return np.empty((0, 2), dtype=np.uint64)
        a = np.concatenate(found)
        return iv.as_pairs(a["start"], a["end"])

    def _nothing_new_in_ranges(self, ranges: np.ndarray) -> bool:
        """Ranges mode: one scan per range tells whether anything there is unregistered, so
        maps need not be read at all when nothing is (the common case).
        """
        free = self._unregistered(ranges)
        if not len(free):
            return True
        known = np.array(list(self._skipped), dtype=np.uint64).reshape(-1, 2)
        return not len(iv.subtract(free, iv.union(known)))

    def _track_new(
        self, *, first: bool, maps: bytes | None = None, scan_repeats: bool = False
    ) -> list[np.ndarray]:
        """Register and arm candidate memory not registered yet; on later calls, return the
        pages that hold data in it (written since it appeared, as far as can be known).
        """
        if not first and self._ranges is not None and self._nothing_new_in_ranges(self._ranges):
            return []
        vmas = self._read_vmas(maps)
        steady, self._steady = self._steady, None
        if steady is not None and steady[0] is vmas:
            # The maps did not change since the last call, which left every candidate
            # registered or skipped: if the unregistered memory is exactly what that call
            # left, nothing appeared (a VMA replaced in place reads unregistered), and this
            # call would redo the same bookkeeping to register nothing.
            if scan_repeats or np.array_equal(self._unregistered(steady[1]), steady[2]):
                self._steady = steady
                return []
        self._registered = iv.intersect(self._registered, iv.union(vmas.pairs))
        cand, vma_index = self._candidates(vmas)
        if not len(cand):
            self._foreign = []
            return []
        # One scan over the hull: unregistered VMAs between candidates are walked too, which
        # costs less than a syscall per candidate span.
        hull = np.array([[cand[0, 0], cand[-1, 1]]], dtype=np.uint64)
        free = self._unregistered(hull)
        todo, which = iv.intersect_indexed(cand, free)
        self._note_foreign(iv.subtract(iv.subtract(iv.union(cand), free), self._registered), vmas)
        # Candidates neither free nor registered are skipped by the kernel's walk (spec §3.2
        # step 3): VM_PFNMAP/VM_IO mappings such as [vvar]. There is nothing to track there.
        found: list[np.ndarray] = []
        done = []
        settled = True  # every candidate ends up registered or skipped
        for (lo, hi), i in zip(todo.tolist(), vma_index[which].tolist()):
            if (lo, hi) in self._skipped:
                continue
            try:
                uffd.register_wp(self._uffd, lo, hi - lo)
            except OSError as err:
                self._note_skip(lo, hi, vmas.path(i), err)
                settled = settled and (lo, hi) in self._skipped
                continue
            done.append((lo, hi))
            if first:
                try:
                    pms.arm(self._pagemap_fd, lo, hi)
                except OSError as err:
                    raise procfs.translate(err, self.pid, "pagemap (PAGEMAP_SCAN)") from err
            else:
                # Everything in a VMA registered just now reads WRITTEN; only its content
                # can tell what was written since it appeared. Present FILE pages are page
                # cache that was only read (a private file page turns anonymous on its
                # first write, gotcha 14).
                found.append(harvest_span(self._pagemap_fd, lo, hi, self.pid, file_is_data=False))
        new = np.array(done, dtype=np.uint64).reshape(-1, 2)
        if done:
            self._registered = iv.union(np.concatenate([self._registered, new]))
        if settled:
            self._steady = (vmas, hull, iv.subtract(free, iv.union(new)))
        return found

    def _harvest_registered(self) -> list[np.ndarray]:
        """Get-and-clear everything registered, with as few scans as is safe.

        Unregistered VMAs are skipped whole by a WP_MATCHING scan (spec §3.2), so one scan
        over the hull of our registrations is enough — except where memory in that hull is
        registered by another uffd: its write-protect state is not ours to consume. The
        hull is cut around such memory (seen among our candidates, or registered by another
        live tracker of the same process) and the result clipped to our registrations.
        """
        reg = self._registered
        if not len(reg):
            return []
        others = [t._registered for t in _live_trackers(self.pid) if t is not self]
        # (the spans change only with these inputs: reuse them while they are the same objects)
        key = (reg, self._foreign, *others)
        cached = self._spans
        same = cached is not None and len(cached[0]) == len(key)
        if cached is not None and same and all(a is b for a, b in zip(cached[0], key)):
            spans = cached[1]
        else:
            avoid = [
                iv.as_pairs(
                    np.array([f.start for f in self._foreign], dtype=np.uint64),
                    np.array([f.end for f in self._foreign], dtype=np.uint64),
                )
            ]
            hull = reg[[0, -1], [0, 1]].reshape(1, 2)
            spans = iv.subtract(hull, iv.union(np.concatenate(avoid + others))).tolist()
            self._spans = (key, spans)
        parts = [harvest_span(self._pagemap_fd, lo, hi, self.pid) for lo, hi in spans]
        if not parts:
            return []
        got = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if not len(got):
            return []
        return [iv.intersect(got, reg)]

    def _note_foreign(self, pieces: np.ndarray, vmas: VmaRows) -> None:
        """Classify candidate memory that is not free and not ours (both rare): registered by
        some other userfaultfd, or a VM_PFNMAP/VM_IO mapping the kernel's walk skips.
        """
        self._foreign = []
        if not len(pieces):
            return
        found = [
            scan(self._pagemap_fd, lo, hi, self.pid, category_mask=_WPALLOWED, return_mask=0)
            for lo, hi in pieces.tolist()
        ]
        a = np.concatenate(found)
        taken = iv.union(iv.as_pairs(a["start"], a["end"]))
        for part, reason in (
            (iv.intersect(pieces, taken), _REGISTER_ERRORS[errno.EBUSY]),
            (iv.subtract(pieces, taken), _UNWALKED),
        ):
            part = iv.intersect(part, vmas.pairs)  # one entry per VMA
            idx = np.searchsorted(vmas.pairs[:, 0], part[:, 0], side="right") - 1
            self._foreign += [
                SkippedRange(lo, hi, vmas.path(i), reason)
                for (lo, hi), i in zip(part.tolist(), idx.tolist())
            ]

    def _note_skip(self, lo: int, hi: int, path: str, err: OSError) -> None:
        # A VMA that vanished between reading maps and registering is not a skip: whatever
        # replaces it is picked up at the next collect.
        try:
            still = read_vma_rows(self.pid, self._process).pairs
        except Error:
            return
        if not ((still[:, 0] <= lo) & (still[:, 1] >= hi)).any():
            return
        reason = _REGISTER_ERRORS.get(err.errno or 0, os.strerror(err.errno or 0))
        self._skipped[(lo, hi)] = SkippedRange(lo, hi, path, reason)

    def _unregister_all(self) -> None:
        if self._uffd < 0 or not len(self._registered):
            return
        try:
            vmas = read_vma_rows(self.pid, self._process)
        except Error:
            return  # the process is gone, and with it every registration
        pieces = iv.intersect(self._registered, vmas.pairs)
        for lo, hi in pieces.tolist():
            try:
                uffd.unregister(self._uffd, lo, hi - lo)
            except OSError:
                pass  # changed under us; closing the uffd below drops it anyway (spec §3.8)

    def _release(self) -> None:
        _LIVE.get(_pid_key(self.pid), weakref.WeakSet()).discard(self)
        if self._pagemap_fd >= 0:
            os.close(self._pagemap_fd)
            self._pagemap_fd = -1
        if self._owns_fd and self._uffd >= 0:
            os.close(self._uffd)
        self._uffd = -1
