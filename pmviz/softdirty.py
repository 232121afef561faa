"""Soft-dirty write tracking (``clear_refs`` = 4 + the soft-dirty bit), where the kernel has it.

The older mechanism CRIU's incremental dumps use: writing ``4`` to ``/proc/PID/clear_refs``
clears every soft-dirty bit of the process and write-protects its PTEs; the next write to a
page sets the bit again (spec §5). It works on any process whose ``clear_refs`` the caller may
write, needs no cooperation from it, but requires ``CONFIG_MEM_SOFT_DIRTY`` — which many
kernels (this project's reference machine included) lack. There the bit is never set, and
:class:`SoftDirtyTracker` refuses to start rather than report nothing; use the uffd-wp
trackers (:class:`pmviz.WriteTracker`, :func:`pmviz.tracking.spawn_tracked_python`).

Reading and clearing are two steps; writes that land in between are lost. For another
process :class:`SoftDirtyTracker` stops it (SIGSTOP) around them, as CRIU freezes its target.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np

from . import _intervals as iv
from ._kernel import pagemap as pm_bits
from ._kernel import pagemap_scan as pms
from ._kernel import procfs
from ._kernel.process import ProcessHandle, read_stat
from ._kernel.procfs import Pid
from .categories import Category
from .errors import Error, NoSuchProcess, UnsupportedKernel
from .features import features, user_address_limit
from .maps import VmaKind, Vmas, read_maps
from .regions import Regions
from .tracking._ranges import as_ranges

__all__ = ["SoftDirtyTracker", "decode_entries", "select_written"]

_WRITTEN = int(Category.WRITTEN)
_SOFT_DIRTY = int(Category.SOFT_DIRTY)
_LOOK = int(
    Category.SOFT_DIRTY
    | Category.PRESENT
    | Category.SWAPPED
    | Category.PFNZERO
    | Category.FILE
    | Category.GUARD
)


def decode_entries(entries: np.ndarray, start: int, *, file_is_data: bool = False) -> Regions:
    """Written pages from classic pagemap entries (bit 55 = soft-dirty), as ``Regions``.

    A page counts when it is soft-dirty and holds data: present (a private mapping's
    page-cache pages, bit 61, were only read: a write turns them anonymous) or swapped (not a
    guard marker). Pure and vectorised.

    Parameters
    ----------
    entries : numpy.ndarray of uint64
        One entry per page, from ``start`` on.
    start : int
        Address of the first entry's page.
    file_is_data : bool
        The mapping is shared, so its page-cache pages are written in place.

    Returns
    -------
    Regions
        Runs of written pages, categories ``WRITTEN``.
    """
    e = np.asarray(entries, dtype=np.uint64)

    def bit(b: int) -> np.ndarray:
        return (e & np.uint64(b)) != 0

    present = bit(pm_bits.PM_PRESENT) & (file_is_data | ~bit(pm_bits.PM_FILE))
    swapped = bit(pm_bits.PM_SWAP) & ~bit(pm_bits.PM_GUARD_REGION)
    written = bit(pm_bits.PM_SOFT_DIRTY) & (present | swapped)
    return Regions(iv.runs_to_regions(written, start, _WRITTEN))


def select_written(regions: np.ndarray, *, file_is_data: bool = False) -> np.ndarray:
    """The ``SOFT_DIRTY`` regions of a ``PAGEMAP_SCAN`` result that hold written data.

    The same rule as :func:`decode_entries`, on scan output that reports ``SOFT_DIRTY``,
    ``PRESENT``, ``SWAPPED``, ``PFNZERO``, ``FILE`` and ``GUARD``: a VMA created since the last
    clear is soft-dirty as a whole (``VM_SOFTDIRTY``), holes and zero pages included, so only
    pages with content count. Returns a ``REGION_DTYPE`` array tagged ``WRITTEN``.
    """
    c = regions["categories"]

    def has(cat: Category) -> np.ndarray:
        return (c & np.uint64(int(cat))) != 0

    hidden = Category.PFNZERO if file_is_data else Category.PFNZERO | Category.FILE
    present = has(Category.PRESENT) & ((c & np.uint64(int(hidden))) == 0)
    swapped = has(Category.SWAPPED) & ~has(Category.GUARD)
    keep = has(Category.SOFT_DIRTY) & (present | swapped)
    return iv.regions_array(regions["start"][keep], regions["end"][keep], _WRITTEN)


class SoftDirtyTracker:
    """Track the pages a process writes through soft-dirty bits (a ``WriteSource``).

    Tracking begins at construction (the first ``clear_refs``). Each :meth:`collect` returns
    the pages written since, then clears again. New VMAs are covered without registration:
    the kernel marks them soft-dirty as a whole, and only their pages with content count.

    Parameters
    ----------
    pid : int or "self"
        The process; writing its ``clear_refs`` needs the same user (or root).
    ranges : optional
        What to track (as in :class:`pmviz.WriteTracker`); ``None`` = every writable VMA of
        memory, private or shared. Note that ``clear_refs`` always clears the whole process.
    backend : {"auto", "ioctl", "pagemap"}
        ``PAGEMAP_SCAN`` with ``PAGE_IS_SOFT_DIRTY``, or the classic pagemap bit 55 (needed
        before Linux 6.7). ``"auto"`` picks the ioctl when the kernel has it.
    freeze : bool
        Stop the process (SIGSTOP/SIGCONT, through a pidfd) while its bits are read and
        cleared, so no write falls between the two. Ignored for this process.
    procfs_root : str
        Where procfs is mounted; tests point it at a recorded tree (then the kernel checks are
        skipped and the classic backend is used).

    Raises
    ------
    UnsupportedKernel
        The kernel lacks ``CONFIG_MEM_SOFT_DIRTY`` (the message names the uffd-wp trackers).
    NoSuchProcess, AccessDenied
        As the names say.
    """

    mechanism = "soft-dirty"

    def __init__(
        self,
        pid: Pid = "self",
        ranges: Any = None,
        *,
        backend: Literal["auto", "ioctl", "pagemap"] = "auto",
        freeze: bool = True,
        procfs_root: str = procfs.PROCFS,
    ) -> None:
        if backend not in ("auto", "ioctl", "pagemap"):
            raise ValueError(f"backend must be 'auto', 'ioctl' or 'pagemap', got {backend!r}")
        self.pid = procfs.normalize_pid(pid)
        self._root = procfs_root
        self._fd = -1
        real = procfs_root == procfs.PROCFS
        if real:
            _require_soft_dirty()
        if backend == "auto":
            backend = "ioctl" if real and features().pagemap_scan else "pagemap"
        self.backend = backend
        self._ranges = None if ranges is None else as_ranges(ranges)
        self._freeze = freeze and real and self.pid not in ("self", os.getpid())
        # held by pidfd: SIGSTOP/SIGCONT can never reach a process that reused the pid
        self._proc = ProcessHandle(int(self.pid)) if self._freeze else None
        self._fd = procfs.open_raw(self.pid, "pagemap", procfs=procfs_root)
        try:
            # VMAs present at the first clear are not new (their VM_SOFTDIRTY is cleared)
            self._known = _vma_keys(read_maps(self.pid, procfs_root=procfs_root))
            self._clear()
        except BaseException:
            self.close()
            raise

    def collect(self) -> Regions:
        """Pages written since the previous collect (or since tracking began), then clear.

        Returns
        -------
        Regions
            Sorted, merged runs, categories ``WRITTEN``.
        """
        if self._fd < 0:
            raise ValueError("collect() on a closed soft-dirty tracker")
        with _frozen(self._proc) if self._proc is not None else contextlib.nullcontext():
            vmas = read_maps(self.pid, procfs_root=self._root)
            parts = [
                self._read(lo, hi, shared)
                for lo, hi, shared in _candidates(vmas, self._ranges, self._known)
            ]
            self._clear()
            self._known = _vma_keys(vmas)
        pairs = [iv.as_pairs(p["start"], p["end"]) for p in parts]
        return Regions(iv.union_regions(pairs, _WRITTEN))

    def close(self) -> None:
        """Stop tracking (closes the pagemap). Idempotent."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        proc = getattr(self, "_proc", None)
        if proc is not None:
            proc.close()

    def __enter__(self) -> SoftDirtyTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def _read(self, lo: int, hi: int, shared: bool) -> np.ndarray:
        if self.backend == "pagemap":
            try:
                entries = pm_bits.read_entries(self._fd, lo, hi)
            except OSError as err:
                raise procfs.translate(err, self.pid, "pagemap") from err
            return decode_entries(entries, lo, file_is_data=shared).array
        try:
            a = pms.scan_range(self._fd, lo, hi, category_mask=_SOFT_DIRTY, return_mask=_LOOK)
        except OSError as err:
            raise procfs.translate(err, self.pid, "pagemap (PAGEMAP_SCAN)") from err
        return select_written(a, file_is_data=shared)

    def _clear(self) -> None:
        # clear_refs "4": clear soft-dirty bits and VM_SOFTDIRTY, write-protect PTEs (spec §5).
        procfs.write_text(self.pid, "clear_refs", "4", self._root)


def _vma_keys(vmas: Vmas) -> set[tuple[int, int, int]]:
    a = vmas.array
    return set(zip(a["start"].tolist(), a["end"].tolist(), a["inode"].tolist()))


def _candidates(
    vmas: Vmas, ranges: np.ndarray | None, known: set[tuple[int, int, int]] | None = None
) -> list[tuple[int, int, bool]]:
    """``(lo, hi, file_is_data)`` per piece to read: present page cache counts as written in
    a shared mapping (written in place), except in one that appeared since the last clear.
    A new VMA is soft-dirty as a whole (``VM_SOFTDIRTY``), so its pages read but never
    written would count too; like uffd-wp tracking of new memory, only anonymous content
    counts there.
    """
    pairs = iv.as_pairs(vmas.start, vmas.end)
    shared = np.char.endswith(vmas.array["perms"], b"s")
    if known is not None:
        a = vmas.array
        keys = zip(a["start"].tolist(), a["end"].tolist(), a["inode"].tolist())
        shared &= np.array([k in known for k in keys], dtype=bool).reshape(shared.shape)
    if ranges is None:
        # as uffd-wp tracking: writable memory, shared included (soft-dirty bits are per PTE
        # too, so each mapper sees its own writes)
        idx = np.flatnonzero(vmas.trackable() & (vmas.kind != VmaKind.VDSO))
        pieces = pairs[idx]
    else:
        pieces, idx = iv.intersect_indexed(pairs, ranges)
    limit = user_address_limit()
    return [
        (lo, min(hi, limit), sh)
        for (lo, hi), sh in zip(pieces.tolist(), shared[idx].tolist())
        if lo < limit  # [vsyscall] lies above what PAGEMAP_SCAN accepts
    ]


def _require_soft_dirty() -> None:
    f = features()
    if f.soft_dirty:
        return
    alt = (
        "this kernel offers uffd-wp tracking instead: pmviz.WriteTracker (this process), "
        "pmviz.tracking.spawn_tracked_python (a Python child), pmviz.track (any process)"
        if "uffd-wp" in f.write_mechanisms
        else f"uffd-wp tracking is not available either ({f.uffd_reason})"
    )
    raise UnsupportedKernel(
        "soft-dirty",
        f"kernel {f.kernel_release} is built without CONFIG_MEM_SOFT_DIRTY: soft-dirty bits are "
        f"never set, so soft-dirty tracking would report nothing; {alt}",
    )


def _state(proc: ProcessHandle) -> str:
    """The scheduler state letter of every thread of the process ('' when gone)."""
    try:
        tids = os.listdir(f"/proc/{proc.pid}/task")
    except OSError:
        return ""
    states = []
    for tid in tids:
        try:
            states.append(read_stat(proc.pid, int(tid)).state)
        except Error:
            continue
    if proc.exited():  # (the pid may name another process by now)
        return ""
    return "".join(states)


@contextlib.contextmanager
def _frozen(proc: ProcessHandle, timeout: float = 2.0) -> Iterator[None]:
    """Keep the process stopped (SIGSTOP) inside the block; leave an already stopped one alone.

    Signals go through the pidfd, so a process that reused the pid is never touched, and
    SIGCONT is sent however the block ends. Residual risk: if pmviz itself is SIGKILLed
    inside the block (a few milliseconds per collect), the target stays stopped until
    someone sends it SIGCONT; a ptrace stop, which the kernel undoes when the tracer dies,
    is not available here (soft-dirty is the mechanism for targets pmviz may not ptrace).
    """
    state = _state(proc)
    if state and set(state) <= {"T", "t"}:
        yield
        return
    proc.send_signal(signal.SIGSTOP)
    try:
        deadline = time.monotonic() + timeout
        while not set(_state(proc)) <= {"T", "t", "Z", "X"}:
            if time.monotonic() > deadline:
                raise Error(f"process {proc.pid} did not stop within {timeout} s of SIGSTOP")
            time.sleep(0.0005)
        yield
    finally:
        with contextlib.suppress(NoSuchProcess):
            proc.send_signal(signal.SIGCONT)
