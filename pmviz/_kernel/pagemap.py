"""The classic ``/proc/PID/pagemap``: one little-endian u64 per page (spec §5)."""

from __future__ import annotations

import os

import numpy as np

from .pagemap_scan import PAGE_SHIFT

# Bits of a pagemap entry (Documentation/admin-guide/mm/pagemap.rst).
PM_PFN_MASK = (1 << 55) - 1
PM_SWAP_TYPE_MASK = 0x1F  # bits 0-4 when PM_SWAP
PM_SWAP_OFFSET_SHIFT = 5
PM_SOFT_DIRTY = 1 << 55
PM_MMAP_EXCLUSIVE = 1 << 56
PM_UFFD_WP = 1 << 57
PM_GUARD_REGION = 1 << 58
PM_FILE = 1 << 61
PM_SWAP = 1 << 62
PM_PRESENT = 1 << 63

# A uffd-wp PTE marker reads as swap type 31 (MAX_SWAPFILES-1 region used by pte markers is not
# a real device); observed value 0x420000000000003f (spec §5).
MARKER_SWAP_TYPE = 0x1F

_CHUNK_PAGES = 1 << 20  # 8 MiB of entries per pread: bounds the kernel's copy per call


def read_entries(fd: int, start: int, end: int, out: np.ndarray | None = None) -> np.ndarray:
    """Read the entries of pages ``[start, end)`` (page-aligned) as a ``uint64`` array.

    The kernel answers short reads at the end of the address space; anything it does not
    return is left 0 (no page).
    """
    n = (end >> PAGE_SHIFT) - (start >> PAGE_SHIFT)
    if out is None:
        out = np.zeros(n, dtype=np.uint64)
    got = pread_entries(fd, start, out[:n])
    out[got:n] = 0
    return out


def pread_entries(fd: int, start: int, out: np.ndarray) -> int:
    """Read ``len(out)`` entries from page-aligned ``start`` into ``out`` (``uint64``).

    Returns how many entries the kernel delivered: fewer than asked means the end of the
    address space, or that the process exited (its mm is gone, reads return 0 bytes).
    """
    first = start >> PAGE_SHIFT
    n = out.shape[0]
    view = memoryview(out.view(np.uint8))  # type: ignore[arg-type]
    done = 0
    while done < n:
        todo = min(n - done, _CHUNK_PAGES)
        got = os.preadv(fd, [view[done * 8 : (done + todo) * 8]], (first + done) * 8)
        if got <= 0:
            break
        done += got // 8
    return done
