"""``/proc/kpagecount`` and ``/proc/kpageflags``: one u64 per page frame, indexed by PFN.

Documentation/admin-guide/mm/pagemap.rst: ``kpagecount`` holds how many times each page is
mapped, ``kpageflags`` the ``KPF_*`` flags. Both are root-only (mode 0400) and only useful
together with PFNs, which ``/proc/PID/pagemap`` shows only to ``CAP_SYS_ADMIN``.

The PFNs a process maps are scattered over physical memory: reading one entry per syscall
would be a Python loop per page. :func:`read_frames` instead reads *clusters* of nearby PFNs
with one ``pread`` each (a gap below ``_GAP_PFNS`` frames is read through: 8 bytes per frame
cost less than another syscall) and gathers the wanted entries with numpy.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import AccessDenied, Error

KPAGECOUNT = "/proc/kpagecount"
KPAGEFLAGS = "/proc/kpageflags"

# KPF_* bit numbers (include/uapi/linux/kernel-page-flags.h).
KPF_ZERO_PAGE = 24  # the shared zero page (or the huge zero page)

# Reading through a gap of this many frames (4 KiB of entries) costs about one syscall.
_GAP_PFNS = 512
_MAX_SPAN_PFNS = 1 << 20  # one pread reads at most 8 MiB of entries


def pfn_access_error(what: str) -> AccessDenied:
    """The error for a caller who may not see PFNs or the kpage files."""
    return AccessDenied(
        None,
        f"{what} needs CAP_SYS_ADMIN (the kernel shows PFNs in /proc/PID/pagemap only to it) "
        "and read access to /proc/kpagecount (root only): run as root, or identify shared "
        "pages by inode/offset instead (mode='inode')",
    )


def open_kpage(path: str) -> int:
    """Open a ``/proc/kpage*`` file, translating errors."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except PermissionError as err:
        raise pfn_access_error(f"reading {path}") from err
    except FileNotFoundError as err:
        raise Error(f"{path} does not exist: the kernel lacks CONFIG_PROC_PAGE_MONITOR") from err


def read_frames(fd: int, pfns: np.ndarray) -> np.ndarray:
    """The u64 entries of ``pfns`` (any order, repeats allowed) from an open kpage file.

    Parameters
    ----------
    fd : int
        An open ``/proc/kpagecount`` or ``/proc/kpageflags``.
    pfns : numpy.ndarray
        Page frame numbers (``uint64``).

    Returns
    -------
    numpy.ndarray
        ``uint64`` entries, parallel to ``pfns``; a frame past the end of the file reads 0.
    """
    pfns = np.asarray(pfns, dtype=np.uint64)
    if pfns.size == 0:
        return np.zeros(0, dtype=np.uint64)
    unique, inverse = np.unique(pfns, return_inverse=True)
    # Clusters: break where the gap to the next frame is large or a span would grow too long.
    breaks = np.flatnonzero(np.diff(unique) > _GAP_PFNS) + 1
    firsts = np.concatenate(([0], breaks))
    lasts = np.concatenate((breaks, [len(unique)])) - 1
    values = np.zeros(len(unique), dtype=np.uint64)
    # One pread per cluster (not per page); a cluster longer than _MAX_SPAN_PFNS is read in
    # several pieces, so memory stays bounded however spread the frames are.
    for first, last in zip(firsts.tolist(), lasts.tolist()):
        lo, hi = int(unique[first]), int(unique[last]) + 1
        for piece in range(lo, hi, _MAX_SPAN_PFNS):
            piece_end = min(piece + _MAX_SPAN_PFNS, hi)
            buf = _pread_u64(fd, piece, piece_end - piece)
            sel = slice(
                first + int(np.searchsorted(unique[first : last + 1], piece)),
                first + int(np.searchsorted(unique[first : last + 1], piece_end)),
            )
            values[sel] = buf[(unique[sel] - np.uint64(piece)).astype(np.intp)]
    return values[inverse]


def _pread_u64(fd: int, first: int, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.uint64)
    view = memoryview(out.view(np.uint8))  # type: ignore[arg-type]
    done = 0
    while done < n * 8:
        try:
            got = os.preadv(fd, [view[done:]], first * 8 + done)
        except OSError as err:
            raise Error(f"reading page-frame entries at PFN {first}: {err.strerror}") from err
        if got <= 0:
            break  # past the last frame: left 0
        done += got
    return out
