"""A lean ``/proc/PID/maps`` reader for the trackers' per-collect VMA check.

``pmviz.read_maps`` builds the full labelled table (kinds, devices, inodes); a tracker reads
maps on every collect and needs only ranges and permissions, so it parses just those and
keeps the raw lines for the rare message that names a path.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._kernel import procfs
from .._kernel.process import ProcessHandle
from .._kernel.procfs import Pid
from ..maps import is_shared_memory_path


class VmaRows(NamedTuple):
    """VMAs as ``(n, 2)`` address pairs, ``S4`` permissions and the raw maps lines."""

    pairs: np.ndarray
    perms: np.ndarray
    lines: list[bytes]

    def path(self, i: int) -> str:
        parts = self.lines[i].split(None, 5)
        return parts[5].decode(errors="replace") if len(parts) > 5 else ""

    def trackable(self) -> np.ndarray:
        """Indices of the VMAs whole-process tracking registers: every writable one (``rw?p``,
        ``rw?s``) except shared mappings of devices and kernel objects.

        Async write-protect registers any memory type (``vma_can_userfault`` allows every
        VMA when WP is the only mode and ``UFFD_FEATURE_WP_ASYNC`` is on, Linux 6.7+), so
        writes through ``MAP_SHARED`` memory -- memfd, POSIX and SysV shm, shared anonymous
        memory, shared files -- are tracked per process: the write-protect bit lives in each
        mapper's own page table, and a page two processes write is in both written sets.
        Shared mappings of devices and kernel objects are never registered
        (:func:`pmviz.maps.is_shared_memory_path`).
        """
        p = self.perms
        writable = np.char.startswith(p, b"rw")
        shared = np.flatnonzero(writable & np.char.endswith(p, b"s"))
        keep = writable & np.char.endswith(p, b"p")
        for i in shared.tolist():  # few: shared writable mappings are rare
            keep[i] = _shared_memory(self.lines[i])
        return np.flatnonzero(keep)


def read_vma_rows(pid: Pid, process: ProcessHandle | None = None) -> VmaRows:
    """Read ``/proc/PID/maps`` (ranges and permissions only); errors as pmviz exceptions.

    With ``process`` (the handle of ``pid``), a process that reused the pid is never read.
    """
    return parse_vma_rows(read_maps_bytes(pid, process))


def read_maps_bytes(pid: Pid, process: ProcessHandle | None = None) -> bytes:
    """The raw ``/proc/PID/maps`` (through ``process`` when given); errors as pmviz's."""
    if process is not None:
        return process.read("maps")
    with procfs.open_fd(pid, "maps") as fd:
        return procfs.read_fd(fd, pid, "maps")


def parse_vma_rows(raw: bytes) -> VmaRows:
    """Ranges and permissions of a raw maps file (a Python loop over its lines)."""
    lines = raw.splitlines()
    bounds: list[int] = []
    perms: list[bytes] = []
    for line in lines:
        span, perm, _ = line.split(b" ", 2)
        lo, _, hi = span.partition(b"-")
        bounds += (int(lo, 16), int(hi, 16))
        perms.append(perm)
    pairs = np.array(bounds, dtype=np.uint64).reshape(-1, 2)
    return VmaRows(pairs, np.array(perms, dtype="S4"), lines)



def _shared_memory(line: bytes) -> bool:
    parts = line.split(None, 5)
    return is_shared_memory_path(parts[5] if len(parts) > 5 else b"")
