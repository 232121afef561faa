"""``scan()``: one exact PAGEMAP_SCAN of a process, or the classic-pagemap fallback."""

from __future__ import annotations

import functools
import os
import warnings
from typing import Literal

from ._kernel import pagemap_scan as pms
from ._kernel import procfs
from ._kernel.closing import Closing
from ._kernel.process import ProcessHandle
from ._kernel.procfs import Pid
from .categories import ALL_CATEGORIES, Category, category_names
from .errors import PmvizWarning, UnsupportedKernel
from .features import features, user_address_limit
from .mask import Mask
from .regions import Regions

__all__ = ["scan", "Pagemap", "Backend"]

Backend = Literal["auto", "ioctl", "pagemap"]
_U64 = (1 << 64) - 1


def _full_mask() -> Mask:
    """No filter, every category this kernel can report: what recordings store."""
    return _report_all(features().categories or ALL_CATEGORIES)


_WRITTEN_ONLY = Mask(require=Category.WRITTEN)


@functools.lru_cache(maxsize=8)
def _report_all(categories: Category) -> Mask:
    return Mask(report=categories)


def check_range(start: int | None, end: int | None) -> tuple[int, int]:
    """Validate a scan range exactly as the kernel does (spec §2 checks 5-6)."""
    limit = user_address_limit()
    lo = 0 if start is None else start
    hi = limit if end is None else end
    for name, v in (("start", lo), ("end", hi)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an int address, got {type(v).__name__}")
        if v < 0:
            raise ValueError(f"{name}={v} is negative")
    if lo % pms.PAGE_SIZE:
        raise ValueError(f"start={lo:#x} is not page-aligned (page size {pms.PAGE_SIZE})")
    if hi < lo:
        raise ValueError(f"end={hi:#x} is below start={lo:#x}")
    if hi > limit:
        raise ValueError(f"end={hi:#x} is above the highest user address {limit:#x}")
    return lo, hi


def check_mask(mask: Mask) -> None:
    """Reject categories this kernel does not know (its EINVAL), naming the bit."""
    _check_mask(mask, int(features().categories))


@functools.lru_cache(maxsize=256)  # masks are immutable values; the scan loop reuses a few
def _check_mask(mask: Mask, supported: int) -> None:
    if not supported:
        return
    for name, value in mask.kernel_fields().items():
        bad = value & ~supported
        if bad:
            raise ValueError(
                f"{name} uses {category_names(bad)}, which this kernel ({os.uname().release}) does not "
                f"support (supported: {supported:#x}); GUARD needs Linux >= 6.15"
            )


class Pagemap(Closing):
    """An open ``/proc/PID/pagemap`` for repeated scans (the recorder keeps one per target).

    Parameters
    ----------
    pid : int or "self"
        The process; opening needs PTRACE_MODE_READ access to it (same user, or
        CAP_SYS_PTRACE).
    process : ProcessHandle, optional
        The held process ``pid`` names (pmviz-internal): the pagemap is opened through it,
        so a process that reused the pid is never scanned.
    """

    def __init__(self, pid: Pid = "self", *, process: ProcessHandle | None = None) -> None:
        self.fd = -1
        self.pid = procfs.normalize_pid(pid)
        if process is not None:
            self.fd = process.open("pagemap")
        else:
            self.fd = procfs.open_raw(self.pid, "pagemap")

    def scan(
        self,
        start: int | None = None,
        end: int | None = None,
        *,
        mask: Mask | None = None,
        max_pages: int = 0,
        clear_written: bool = False,
    ) -> Regions:
        """See :func:`scan`; always the PAGEMAP_SCAN backend."""
        if not features().pagemap_scan:
            raise UnsupportedKernel(
                "PAGEMAP_SCAN",
                f"kernel {os.uname().release} has no PAGEMAP_SCAN (needs Linux >= 6.7); "
                "use scan(..., backend='pagemap') for the classic per-page fallback",
            )
        if self.fd < 0:
            raise ValueError("this Pagemap is closed")
        if mask is None:
            mask = _WRITTEN_ONLY if clear_written else _full_mask()
        lo, hi = check_scan_args(start, end, mask, max_pages)
        try:
            array = pms.scan_range(
                self.fd,
                lo,
                hi,
                flags=pms.PM_SCAN_WP_MATCHING if clear_written else 0,
                max_pages=max_pages,
                category_inverted=mask.category_inverted,
                category_mask=mask.category_mask,
                category_anyof_mask=mask.category_anyof_mask,
                return_mask=mask.return_mask,
            )
        except OSError as err:
            raise procfs.translate(err, self.pid, "pagemap (PAGEMAP_SCAN)") from err
        return Regions._trusted(array)  # kernel output: no re-validation on the hot path

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def check_scan_args(
    start: int | None, end: int | None, mask: Mask, max_pages: int
) -> tuple[int, int]:
    """Validate the arguments of a scan (either backend); returns the range."""
    lo, hi = check_range(start, end)
    if not isinstance(mask, Mask):
        raise TypeError(f"mask must be a pmviz.Mask, got {type(mask).__name__}")
    check_mask(mask)
    if isinstance(max_pages, bool) or not isinstance(max_pages, int):
        raise TypeError(f"max_pages must be an int, got {type(max_pages).__name__}")
    if not 0 <= max_pages <= _U64:
        raise ValueError(f"max_pages must be in [0, 2**64) (0 = unlimited), got {max_pages}")
    return lo, hi


def scan(
    pid: Pid = "self",
    start: int | None = None,
    end: int | None = None,
    *,
    mask: Mask | None = None,
    max_pages: int = 0,
    clear_written: bool = False,
    backend: Backend = "auto",
) -> Regions:
    """Scan a process's address space with ``PAGEMAP_SCAN``.

    Returns exactly what one kernel call with an unbounded output vector returns, however
    many calls it takes (it resumes correctly past the kernel's stale ``walk_end``).

    Parameters
    ----------
    pid : int or "self"
        The process to scan.
    start, end : int, optional
        Address range (``start`` page-aligned; ``end`` rounded up). Default: the whole user
        address space, which costs only as much as its VMAs.
    mask : Mask, optional
        Filter and report mask. Default: every page, every category this kernel knows.
        With ``clear_written`` the default is ``Mask(require=WRITTEN)``.
    max_pages : int
        Stop after this many matching pages (0 = unlimited).
    clear_written : bool
        Atomically report and write-protect again the written pages (``PM_SCAN_WP_MATCHING``).
        Only VMAs registered for userfaultfd async write-protect take part; others are
        skipped, as the kernel does (see ``pmviz.WriteTracker``).
    backend : {"auto", "ioctl", "pagemap"}
        ``"auto"`` uses PAGEMAP_SCAN when the kernel has it and otherwise falls back, with a
        ``PmvizWarning``, to reading the classic 8-byte-per-page pagemap.

    Returns
    -------
    Regions

    Raises
    ------
    NoSuchProcess, AccessDenied, UnsupportedKernel
        As the names say; the message names the remedy.
    ValueError
        A misaligned start, an end below start or above the user address space, a
        category bit this kernel does not know.

    Examples
    --------
    >>> import pmviz
    >>> regions = pmviz.scan()
    >>> regions.pages_with(pmviz.Category.PRESENT) > 0
    True
    """
    if backend not in ("auto", "ioctl", "pagemap"):
        raise ValueError(f"backend must be 'auto', 'ioctl' or 'pagemap', got {backend!r}")
    if backend == "auto":
        backend = "ioctl" if features().pagemap_scan else "pagemap"
        if backend == "pagemap":
            warnings.warn(
                "PAGEMAP_SCAN is not available on this kernel; using the classic pagemap "
                "fallback (slower; HUGE and WPALLOWED unknown)",
                PmvizWarning,
                stacklevel=2,
            )
    if backend == "pagemap":
        if clear_written:
            raise UnsupportedKernel(
                "PAGEMAP_SCAN",
                "clear_written needs PAGEMAP_SCAN (Linux >= 6.7); on older kernels use "
                "soft-dirty tracking (pmviz.softdirty)",
            )
        from .fallback import scan_pagemap

        return scan_pagemap(pid, start, end, mask=mask, max_pages=max_pages)
    with Pagemap(pid) as pm:
        return pm.scan(start, end, mask=mask, max_pages=max_pages, clear_written=clear_written)
