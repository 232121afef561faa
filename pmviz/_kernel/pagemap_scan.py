"""ctypes binding of the ``PAGEMAP_SCAN`` ioctl (Linux >= 6.7).

Spec: ``shared/docs/pagemap_scan.md`` (section numbers below refer to it). This module knows
only raw integers and numpy arrays; the typed model (``Category``, ``Mask``, ``Regions``) lives
one layer up.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os

import numpy as np

# §1.1: _IOWR('f', 16, struct pm_scan_arg)
PAGEMAP_SCAN = 0xC0606610
PM_SCAN_WP_MATCHING = 1
PM_SCAN_CHECK_WPASYNC = 2
PM_SCAN_FLAGS = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC
PM_SCAN_CATEGORIES = 0x1FF  # the kernel's set on 6.15+ (§1.4); older kernels know 0xFF

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
PAGE_SHIFT = PAGE_SIZE.bit_length() - 1

# §1.3: struct page_region; the kernel writes these straight into a numpy buffer.
REGION_DTYPE = np.dtype([("start", "<u8"), ("end", "<u8"), ("categories", "<u8")])
_REGION_BYTES = REGION_DTYPE.itemsize

# The first call of a scan writes into an ordinary numpy array of this many regions (most
# scans fit, and a small copy of the result is then cheaper than a mapping). A scan that fills
# it continues in an anonymous mapping that grows with mremap (page tables move, data is not
# copied) and is trimmed to the result: large scans are never copied (see RegionBuffer).
_FIRST_CAPACITY = 4096
_MAPPED_CAPACITY = 1 << 22  # regions; 96 MiB of MAP_NORESERVE address space, touched lazily

_U64 = (1 << 64) - 1


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
_mmap = _libc.mmap
_mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_mmap.restype = ctypes.c_void_p
_mremap = _libc.mremap
_mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int]
_mremap.restype = ctypes.c_void_p
_munmap = _libc.munmap
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_munmap.restype = ctypes.c_int
_madvise = _libc.madvise
_madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_madvise.restype = ctypes.c_int
_MADV_HUGEPAGE = 14
_MAP_FAILED = ctypes.c_void_p(-1).value
_MAP_NORESERVE = 0x4000
_MREMAP_MAYMOVE = 1


def _raise_errno() -> None:
    err = ctypes.get_errno()
    raise OSError(err, os.strerror(err))


def ioctl_scan(fd: int, arg: PmScanArg) -> int:
    """One raw ``PAGEMAP_SCAN`` call; returns the region count or raises ``OSError``."""
    rc = _ioctl(fd, PAGEMAP_SCAN, ctypes.addressof(arg))
    if rc < 0:
        _raise_errno()
    return rc


# -- argument validation ------------------------------------------------------------------------


def _access_ok(ptr: int, size: int, limit: int) -> bool:
    """x86-64 ``access_ok`` as observed (§2 check 6): ``ptr + size`` must not wrap and must
    be at most ``limit`` (``0x7ffffffff000`` with 4-level paging), whatever ``size`` is.
    """
    total = ptr + size
    return total <= _U64 and total <= limit


def check_args(
    *,
    size: int = 96,
    flags: int = 0,
    start: int = 0,
    end: int = 0,
    vec: int = 0,
    vec_len: int = 0,
    category_inverted: int = 0,
    category_mask: int = 0,
    category_anyof_mask: int = 0,
    return_mask: int = 0,
    categories: int = PM_SCAN_CATEGORIES,
    limit: int = (1 << 47) - 4096,
) -> tuple[int, str, str] | None:
    """Predict the kernel's verdict on raw ``pm_scan_arg`` values (``pagemap_scan_get_args``).

    Checks run in the kernel's order (§2), so the first failure found is the errno the kernel
    returns. All values are ``__u64`` (``0 <= v < 2**64``); ``max_pages`` is never checked.

    Parameters
    ----------
    categories : int
        The kernel's category set (probe it: 0x1FF with GUARD, 0xFF before 6.15).
    limit : int
        The highest address ``access_ok`` admits (``features().user_address_limit``).

    Returns
    -------
    None when the kernel accepts the arguments, else ``(errno, field, message)``.
    """
    if size != 96:
        return errno.EINVAL, "size", f"size={size} must be exactly 96 (sizeof(struct pm_scan_arg))"
    if flags & ~PM_SCAN_FLAGS:
        bad = flags & ~PM_SCAN_FLAGS
        return (
            errno.EINVAL,
            "flags",
            f"flags={flags:#x} has unknown bits {bad:#x} (known: PM_SCAN_WP_MATCHING=1, "
            "PM_SCAN_CHECK_WPASYNC=2)",
        )
    fields = (
        ("category_inverted", category_inverted),
        ("category_mask", category_mask),
        ("category_anyof_mask", category_anyof_mask),
        ("return_mask", return_mask),
    )
    for name, value in fields:
        bad = value & ~categories
        if bad:
            low = (bad & -bad).bit_length() - 1
            return (
                errno.EINVAL,
                name,
                f"{name}={value:#x} sets bit {low} ({bad:#x} in all), outside this kernel's "
                f"categories {categories:#x}",
            )
    if start % PAGE_SIZE:
        return errno.EINVAL, "start", f"start={start:#x} is not page-aligned ({PAGE_SIZE})"
    if end < start:
        # The kernel computes end - start unsigned: the wrap fails access_ok (§2 check 6).
        return errno.EFAULT, "end", f"end={end:#x} is below start={start:#x}"
    if not _access_ok(start, end - start, limit):
        return errno.EFAULT, "end", f"end={end:#x} is above the highest user address {limit:#x}"
    if not vec and vec_len:
        return errno.EINVAL, "vec", f"vec is NULL but vec_len={vec_len}"
    if vec and not _access_ok(vec, min(vec_len * _REGION_BYTES, _U64), limit):
        return (
            errno.EFAULT,
            "vec",
            f"vec={vec:#x} with vec_len={vec_len} is not user memory below {limit:#x}",
        )
    return None


# -- output buffers -----------------------------------------------------------------------------


class RegionBuffer:
    """Anonymous memory backing a large result array; unmapped when the last array goes.

    Writers fill ``view(capacity)`` (a temporary view: keep the buffer alive while using it),
    call ``trim(n)`` and return ``np.asarray(buffer)``, whose ``.base`` keeps it alive.
    """

    __slots__ = ("addr", "nbytes", "n")

    def __init__(self, n_regions: int) -> None:
        nbytes = _round_page(n_regions * _REGION_BYTES)
        try:
            # Reuse the memory of the last large result that was freed: its pages are already
            # faulted in, which is most of the cost of a fresh buffer (see _spare).
            self.addr, self.nbytes = _spare.pop()
        except IndexError:
            self.addr, self.nbytes = self._fresh(nbytes), nbytes
        else:
            if self.nbytes < nbytes:
                self._remap(nbytes, _MREMAP_MAYMOVE)
        self.n = 0

    @staticmethod
    def _fresh(nbytes: int) -> int:
        # MAP_NORESERVE: only the pages the kernel writes to are ever committed.
        addr = _mmap(
            None,
            nbytes,
            mmap.PROT_READ | mmap.PROT_WRITE,
            mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE,
            -1,
            0,
        )
        if addr in (None, _MAP_FAILED):
            _raise_errno()
        # Faulting in 4 KiB pages would cost more than the scan itself (~1 us each); with THP
        # a 6 MiB result takes three faults. Advisory: ignored where THP is off.
        _madvise(addr, nbytes, _MADV_HUGEPAGE)
        return int(addr)

    def _remap(self, nbytes: int, flags: int) -> None:
        addr = _mremap(self.addr, self.nbytes, nbytes, flags)
        if addr in (None, _MAP_FAILED):
            _raise_errno()
        self.addr, self.nbytes = addr, nbytes

    def grow(self) -> None:
        """Double the capacity; mremap moves page tables, never the data."""
        self._remap(self.nbytes * 2, _MREMAP_MAYMOVE)

    def trim(self, n_regions: int) -> None:
        """Give back the pages past ``n_regions`` (shrinking mremap stays in place)."""
        self.n = n_regions
        nbytes = max(_round_page(n_regions * _REGION_BYTES), PAGE_SIZE)
        if nbytes < self.nbytes:
            self._remap(nbytes, 0)

    @property
    def capacity(self) -> int:
        return self.nbytes // _REGION_BYTES

    def view(self, n_regions: int) -> np.ndarray:
        """The first ``n_regions`` slots, to write into (valid while this buffer lives)."""
        raw = (ctypes.c_char * (n_regions * _REGION_BYTES)).from_address(self.addr)
        return np.frombuffer(memoryview(raw), dtype=REGION_DTYPE)

    @property
    def __array_interface__(self) -> dict:
        return {
            "version": 3,
            "shape": (self.n,),
            "typestr": REGION_DTYPE.str,
            "descr": REGION_DTYPE.descr,
            "data": (self.addr, False),
        }

    def __del__(self) -> None:
        if self.addr:
            if not _spare:
                _spare.append((self.addr, self.nbytes))
            else:
                _munmap(self.addr, self.nbytes)
            self.addr = 0


# At most one freed result mapping, kept for the next large scan (a recorder scanning the
# same process repeatedly would otherwise fault in its whole output every time). Bounded:
# one mapping, as large as the largest recent result. list.append/pop are atomic.
_spare: list[tuple[int, int]] = []


def _round_page(nbytes: int) -> int:
    return -(-nbytes // PAGE_SIZE) * PAGE_SIZE


def _pages(regions: np.ndarray) -> int:
    return int(((regions["end"] - regions["start"]) >> np.uint64(PAGE_SHIFT)).sum())


# -- scanning -----------------------------------------------------------------------------------


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
    capacity: int = 0,
) -> np.ndarray:
    """Scan ``[start, end)`` to completion and return exactly what one unbounded call would.

    The kernel stops early when the output vector is full or ``max_pages`` is reached (§3.4).
    We resume only on a full vector, and from the end of the last returned region rather than
    from ``walk_end``: ``walk_end`` is stale after a call that produced more than 512 regions
    (§3.4, gotcha 2). A vector-full cut always falls where the next matching page could not
    merge into the last region, so concatenating the chunks equals the single-call answer.
    ``max_pages`` is a budget over the whole range, so each resumed call gets what is left of
    it; when it is used up the kernel has stopped for good (§3.4 "max_pages stop").

    Parameters
    ----------
    capacity : int
        At most this many regions per ioctl call (0: as many as the buffer holds). Small
        values only add calls; tests use them to exercise the resume path.

    Returns
    -------
    numpy.ndarray
        ``REGION_DTYPE`` regions, written by the kernel in place (large results are not
        copied; small ones are copied out of the first buffer to fit).

    Raises
    ------
    OSError
        From the kernel, untranslated (``scanning`` translates).
    """
    per_call = capacity if capacity > 0 else _U64
    buf = np.empty(min(_FIRST_CAPACITY, per_call), dtype=REGION_DTYPE)
    arg = PmScanArg(
        96,
        flags,
        start,
        end,
        0,
        buf.ctypes.data,
        len(buf),
        max_pages,
        category_inverted,
        category_mask,
        category_anyof_mask,
        return_mask,
    )
    rc = ioctl_scan(fd, arg)
    if rc < len(buf) or (max_pages and _pages(buf[:rc]) >= max_pages):
        return buf[:rc].copy()  # the common case: done in one call, a small exact copy
    return _scan_rest(fd, arg, buf, rc, end, max_pages, per_call)


def _scan_rest(
    fd: int,
    arg: PmScanArg,
    first: np.ndarray,
    n: int,
    end: int,
    max_pages: int,
    per_call: int,
) -> np.ndarray:
    """Continue a scan whose first vector came back full, in a growing mapping."""
    if per_call < _FIRST_CAPACITY:
        mapping = RegionBuffer(max(4 * n, 1024))  # small per-call vectors: tests of the resume path
    else:
        mapping = RegionBuffer(_MAPPED_CAPACITY)
    ctypes.memmove(mapping.addr, first.ctypes.data, n * _REGION_BYTES)
    pages_left = max_pages - _pages(first[:n]) if max_pages else 0
    while True:
        last_end = int.from_bytes(
            ctypes.string_at(mapping.addr + (n - 1) * _REGION_BYTES + 8, 8), "little"
        )
        if last_end >= end:
            break
        if n == mapping.capacity:
            mapping.grow()
        room = min(mapping.capacity - n, per_call)
        arg.start = last_end
        arg.vec = mapping.addr + n * _REGION_BYTES
        arg.vec_len = room
        arg.max_pages = pages_left
        rc = ioctl_scan(fd, arg)
        if max_pages and rc:
            mapping.n = n + rc
            pages_left -= _pages(np.asarray(mapping)[n:])
        n += rc
        if rc < room or (max_pages and pages_left <= 0):
            break
    mapping.trim(n)
    return np.asarray(mapping)


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
