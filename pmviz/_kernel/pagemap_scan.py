"""ctypes binding of the ``PAGEMAP_SCAN`` ioctl (Linux >= 6.7).

Spec: ``shared/docs/pagemap_scan.md`` (section numbers below refer to it). This module knows
only raw integers and numpy arrays; the typed model (``Category``, ``Mask``, ``Regions``) lives
one layer up.
"""

from __future__ import annotations

import ctypes
import errno
import os

import numpy as np

# §1.1: _IOWR('f', 16, struct pm_scan_arg)
PAGEMAP_SCAN = 0xC0606610
PM_SCAN_WP_MATCHING = 1
PM_SCAN_CHECK_WPASYNC = 2
PM_SCAN_FLAGS = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
PAGE_SHIFT = PAGE_SIZE.bit_length() - 1

# §1.3: struct page_region; the kernel writes these straight into a numpy buffer.
REGION_DTYPE = np.dtype([("start", "<u8"), ("end", "<u8"), ("categories", "<u8")])

# The kernel copies out of a bounce buffer of min(512, vec_len) entries (§2); a larger user
# vector only saves syscalls, and the first chunk of a typical process fits in this.
_INITIAL_CAPACITY = 4096


class PmScanArg(ctypes.Structure):
    """``struct pm_scan_arg`` (§1.2): twelve ``__u64``, 96 bytes, C field names verbatim."""

    _fields_ = [
        ("size", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("start", ctypes.c_uint64),
        ("end", ctypes.c_uint64),
        ("walk_end", ctypes.c_uint64),
        ("vec", ctypes.c_uint64),
        ("vec_len", ctypes.c_uint64),
        ("max_pages", ctypes.c_uint64),
        ("category_inverted", ctypes.c_uint64),
        ("category_mask", ctypes.c_uint64),
        ("category_anyof_mask", ctypes.c_uint64),
        ("return_mask", ctypes.c_uint64),
    ]


assert ctypes.sizeof(PmScanArg) == 96

_libc = ctypes.CDLL(None, use_errno=True)
_ioctl = _libc.ioctl
_ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
_ioctl.restype = ctypes.c_int


def ioctl_scan(fd: int, arg: PmScanArg) -> int:
    """One raw ``PAGEMAP_SCAN`` call; returns the region count or raises ``OSError``."""
    rc = _ioctl(fd, PAGEMAP_SCAN, ctypes.addressof(arg))
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return rc


def scan_range(
    fd: int,
    start: int,
    end: int,
    *,
    flags: int = 0,
    category_inverted: int = 0,
    category_mask: int = 0,
    category_anyof_mask: int = 0,
    return_mask: int = 0,
    max_pages: int = 0,
    capacity: int = _INITIAL_CAPACITY,
) -> np.ndarray:
    """Scan ``[start, end)`` to completion and return exactly what one unbounded call would.

    The kernel stops early when the output vector is full or ``max_pages`` is reached (§3.4).
    We resume only on a full vector, and from the end of the last returned region rather than
    from ``walk_end``: ``walk_end`` is stale after a call that produced more than 512 regions
    (§3.4, gotcha 2). A vector-full cut always falls where the next page could not merge into
    the last region, so concatenating the chunks equals the single-call answer. ``max_pages``
    is a budget over the whole range, so each resumed call gets what is left of it.
    """
    buf = np.empty(max(int(capacity), 1), dtype=REGION_DTYPE)
    arg = PmScanArg(
        size=96,
        flags=flags,
        start=start,
        end=end,
        category_inverted=category_inverted,
        category_mask=category_mask,
        category_anyof_mask=category_anyof_mask,
        return_mask=return_mask,
    )
    n = 0
    pages_left = max_pages  # 0 = unlimited, as in the kernel
    while True:
        room = len(buf) - n
        arg.vec = buf.ctypes.data + n * REGION_DTYPE.itemsize
        arg.vec_len = room
        arg.max_pages = pages_left
        rc = ioctl_scan(fd, arg)
        got = buf[n : n + rc]
        n += rc
        if max_pages:
            pages_left -= int(((got["end"] - got["start"]) >> PAGE_SHIFT).sum())
            if pages_left <= 0:
                break
        if rc < room:
            break
        arg.start = int(buf["end"][n - 1]) if n else arg.walk_end
        if arg.start >= end:
            break
        bigger = np.empty(len(buf) * 2, dtype=REGION_DTYPE)
        bigger[:n] = buf[:n]
        buf = bigger
    if len(buf) > 2 * n + 64:
        return buf[:n].copy()  # do not pin a mostly empty buffer
    return buf[:n]


def arm(fd: int, start: int, end: int, *, check_wpasync: bool = False) -> None:
    """Write-protect every written page in ``[start, end)`` without output (§4 step 4)."""
    flags = PM_SCAN_WP_MATCHING | (PM_SCAN_CHECK_WPASYNC if check_wpasync else 0)
    arg = PmScanArg(size=96, flags=flags, start=start, end=end, vec=0, vec_len=0)
    ioctl_scan(fd, arg)


def probe(fd: int, return_mask: int) -> bool:
    """CRIU's probe (§6): a zero-length scan; EINVAL/ENOTTY mean "unsupported"."""
    arg = PmScanArg(size=96, start=0, end=0, return_mask=return_mask)
    try:
        ioctl_scan(fd, arg)
    except OSError as err:
        if err.errno in (errno.EINVAL, errno.ENOTTY):
            return False
        raise
    return True
