"""``accessed="vma"``: per-VMA referenced bytes via ``clear_refs`` + ``smaps``.

Writing ``1`` to ``/proc/PID/clear_refs`` clears the accessed (young) bit of every page table
entry of the process and the referenced flag of its pages; ``Referenced:`` in
``/proc/PID/smaps`` then counts, per VMA, the resident bytes whose accessed bit the hardware
set again, i.e. touched (read or written) since the clear (Documentation/filesystems/proc.rst,
"clear_refs" and "smaps"). Exact per VMA as long as nothing else ages the pages in between
(reclaim, DAMON, idle page tracking also clear the bit); no per-page detail.

Costs, both real (see ``benchmarks/RESULTS-accessed.md``):

- the ``smaps`` walk visits every page table entry of every VMA: its time grows with resident
  memory (cAdvisor's ``referenced_bytes`` caused latency spikes on terabyte hosts);
- clearing the accessed bits perturbs LRU aging: reclaim then sees recently used pages as
  idle until they are touched again.
"""

from __future__ import annotations

import os
import re
import time

import numpy as np

from .._kernel import procfs
from .._kernel.closing import Closing
from .._kernel.procfs import Pid
from ..errors import Error, UnsupportedKernel
from ._samples import REFERENCED_DTYPE, AccessSample

__all__ = ["VmaReferenced", "parse_smaps"]

# Anchored on a literal "\n" rather than on ``^`` with re.M: the engine then searches for
# the literal, and the three scans of a 38 MiB smaps (50,000 VMAs) take 26-52 ms, not ~210.
_HEADER = re.compile(rb"\n([0-9a-f]+)-([0-9a-f]+) ")
_RSS = re.compile(rb"\nRss: +(\d+) kB")
_REFERENCED = re.compile(rb"\nReferenced: +(\d+) kB")


def parse_smaps(text: bytes) -> np.ndarray:
    """Rows (``REFERENCED_DTYPE``) of the text of a ``/proc/PID/smaps`` file.

    Three literal-anchored regular expressions over the whole file instead of a Python
    statement per line: 50,000 VMAs (38 MiB of text) parse in about 0.15 s here.

    Raises
    ------
    pmviz.Error
        When the file does not have one ``Rss:`` and one ``Referenced:`` line per VMA.
    """
    text = b"\n" + text  # the first header line has no newline before it
    heads = _HEADER.findall(text)
    rss = _RSS.findall(text)
    ref = _REFERENCED.findall(text)
    if not (len(heads) == len(rss) == len(ref)):
        raise Error(
            f"smaps has {len(heads)} VMAs but {len(rss)} Rss and {len(ref)} Referenced lines"
        )
    n = len(heads)
    out = np.empty(n, REFERENCED_DTYPE)
    # int(x, 16) per address measured faster than a vectorised nibble decode (13 ms against
    # 61 ms for 50,000 VMAs); the decimal columns convert in one numpy cast each.
    out["start"] = np.fromiter((int(h[0], 16) for h in heads), np.uint64, n)
    out["end"] = np.fromiter((int(h[1], 16) for h in heads), np.uint64, n)
    out["resident_bytes"] = np.array(rss, dtype="S20").astype(np.int64) << 10
    out["referenced_bytes"] = np.array(ref, dtype="S20").astype(np.int64) << 10
    return out


class VmaReferenced(Closing):
    """Bytes each VMA of a process referenced between calls of :meth:`collect`.

    Creating it clears the accessed bits (the first :meth:`collect` counts from then); every
    :meth:`collect` reads ``smaps`` and clears them again.

    Parameters
    ----------
    pid : int or "self"
        The process.
    procfs_root : str
        Where procfs is mounted.

    Raises
    ------
    AccessDenied
        ``clear_refs`` is writable only by the process's owner (mode 0200; the files of a
        non-dumpable process belong to root) or with CAP_DAC_OVERRIDE; ``smaps`` needs
        PTRACE_MODE_READ (same user, or CAP_SYS_PTRACE).
    NoSuchProcess
    UnsupportedKernel
        No ``clear_refs`` (``CONFIG_PROC_PAGE_MONITOR`` off).

    Notes
    -----
    A page touched between the ``smaps`` read and the clear that follows it is lost to both
    intervals (microseconds per collect). Pages the kernel ages meanwhile (reclaim, DAMON)
    lose their bit too and are under-counted: a physical-address DAMON (a ``kdamond`` with
    ``paddr`` operations) clears the bit of each page it samples (1 written page in 300 was
    missed once on a machine running one); without memory pressure or such a monitor the
    count is exact.
    Clearing the bits perturbs LRU aging, and the ``smaps`` walk costs time proportional to
    resident memory (``benchmarks/RESULTS-accessed.md``).

    Examples
    --------
    >>> import numpy as np
    >>> from pmviz.accessed import VmaReferenced
    >>> a = np.ones(1 << 20)                        # 8 MiB, resident
    >>> with VmaReferenced("self") as probe:
    ...     _ = a.sum()                             # read all of it
    ...     sample = probe.collect()
    >>> int(sample.referenced_bytes.sum()) >= a.nbytes
    True
    """

    mechanism = "vma"

    def __init__(self, pid: Pid = "self", *, procfs_root: str = procfs.PROCFS) -> None:
        self.pid = procfs.normalize_pid(pid)
        self._root = procfs_root
        self._clear_fd = -1
        try:
            self._clear_fd = procfs.open_raw(self.pid, "clear_refs", os.O_WRONLY, procfs_root)
        except Error as err:
            if not os.path.exists(procfs.proc_path(self.pid, "clear_refs", procfs_root)) and (
                os.path.exists(procfs.proc_path(self.pid, "maps", procfs_root))
            ):
                raise UnsupportedKernel(
                    "clear_refs",
                    "this kernel has no /proc/PID/clear_refs (CONFIG_PROC_PAGE_MONITOR is off)",
                ) from err
            raise
        self._smaps_fd = procfs.open_raw(self.pid, "smaps", os.O_RDONLY, procfs_root)
        self._clear()

    def _clear(self) -> None:
        try:
            os.write(self._clear_fd, b"1")
        except OSError as err:
            raise procfs.translate(err, self.pid, "clear_refs") from err

    def _read_smaps(self) -> bytes:
        parts = []
        try:
            os.lseek(self._smaps_fd, 0, os.SEEK_SET)
            while chunk := os.read(self._smaps_fd, 1 << 20):
                parts.append(chunk)
        except OSError as err:
            raise procfs.translate(err, self.pid, "smaps") from err
        if not parts:  # an open smaps of a process that exited reads as empty
            raise procfs.translate(OSError(3, "No such process"), self.pid, "smaps")
        return b"".join(parts)

    def collect(self) -> AccessSample:
        """Per-VMA bytes referenced since the previous collect (or creation); clears again.

        Returns
        -------
        AccessSample
            Rows aligned to the VMAs ``smaps`` listed at this instant.
        """
        if self._clear_fd < 0:
            raise ValueError("this VmaReferenced is closed")
        text = self._read_smaps()
        now = time.monotonic_ns()
        self._clear()
        return AccessSample(now, parse_smaps(text))

    def close(self) -> None:
        """Close the ``/proc`` files (idempotent); accessed bits are left as they are."""
        for name in ("_clear_fd", "_smaps_fd"):
            fd = getattr(self, name, -1)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)

