"""What this machine's kernel offers, probed at run time (never read off the version string)."""

from __future__ import annotations

import errno
import functools
import mmap
import os
from dataclasses import asdict, dataclass

import numpy as np

from ._kernel import pagemap, procfs, uffd
from ._kernel import pagemap_scan as pms
from .categories import Category
from .errors import Error

__all__ = ["Features", "features", "user_address_limit"]

# x86-64 4-level paging: access_ok() admits end <= TASK_SIZE_MAX (spec §2 check 6). Used only
# where the limit cannot be probed (no PAGEMAP_SCAN); otherwise user_address_limit() bisects.
_DEFAULT_LIMIT = (1 << 47) - pms.PAGE_SIZE


@dataclass(frozen=True)
class Features:
    """Kernel capabilities relevant to pmviz (see ``pmviz doctor``)."""

    kernel_release: str
    page_size: int
    pagemap_scan: bool
    categories: Category
    """Category bits the kernel's PAGEMAP_SCAN accepts (GUARD needs >= 6.15)."""
    guard: bool
    soft_dirty: bool
    """CONFIG_MEM_SOFT_DIRTY: soft-dirty bits are maintained."""
    uffd_wp_async: bool
    uffd_reason: str
    thp_mode: str
    swap_active: bool
    user_address_limit: int
    pfn_visible: bool
    """PFNs in the classic pagemap (CAP_SYS_ADMIN): needed for the fallback's PFNZERO."""
    accessed_category: bool = False
    """PAGEMAP_SCAN knows ``PAGE_IS_ACCESSED`` (bit 9, proposed by the userfaultfd RWP series
    "mm/pagemap: add PAGE_IS_ACCESSED for RWP tracking", under review in 2026)."""

    @property
    def write_mechanisms(self) -> list[str]:
        """Write-tracking mechanisms available here, best first."""
        out = []
        if self.pagemap_scan and self.uffd_wp_async:
            out.append("uffd-wp")
        if self.soft_dirty:
            out.append("soft-dirty")
        return out

    def _rows(self) -> list[tuple[str, str]]:
        from .categories import category_names

        def yes(flag: bool, why: str = "") -> str:
            return "yes" if flag else ("no" + (f" ({why})" if why else ""))

        mech = ", ".join(self.write_mechanisms) or "none (present/swapped only)"
        return [
            ("kernel", self.kernel_release),
            ("page size", f"{self.page_size:,} B"),
            ("PAGEMAP_SCAN", yes(self.pagemap_scan, "classic /proc/PID/pagemap fallback")),
            ("categories", category_names(int(self.categories)) or "—"),
            ("guard markers", yes(self.guard, "needs Linux 6.15")),
            ("write tracking", mech),
            ("uffd-wp async", yes(self.uffd_wp_async, self.uffd_reason)),
            ("soft-dirty", yes(self.soft_dirty, "CONFIG_MEM_SOFT_DIRTY is not set")),
            ("THP", self.thp_mode),
            ("swap active", yes(self.swap_active)),
            ("user address limit", f"{self.user_address_limit:#x}"),
            ("PFNs visible", yes(self.pfn_visible, "needs CAP_SYS_ADMIN")),
        ]

    def __repr__(self) -> str:
        rows = self._rows()
        width = max(len(k) for k, _ in rows)
        return "Features(\n" + "".join(f"  {k:<{width}}  {v}\n" for k, v in rows) + ")"

    def _repr_html_(self) -> str:
        import html

        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in self._rows()
        )
        return (
            "<table class='pmviz-features'><caption style='text-align:left'>"
            f"<b>pmviz.features()</b>: what this kernel offers</caption>{body}</table>"
        )

    def as_dict(self) -> dict:
        d = asdict(self)
        d["categories"] = int(self.categories)
        d["write_mechanisms"] = self.write_mechanisms
        return d


def _probe_pagemap_scan() -> tuple[bool, Category]:
    try:
        fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False, Category(0)
    try:
        if not pms.probe(fd, 0xFF):
            return False, Category(0)
        bits = 0xFF
        if pms.probe(fd, int(Category.GUARD)):
            bits |= int(Category.GUARD)
        return True, Category(bits)
    finally:
        os.close(fd)


PAGE_IS_ACCESSED = 1 << 9


def _probe_accessed_category() -> bool:
    """A zero-length scan asking for bit 9: EINVAL on kernels that do not know it."""
    try:
        with procfs.open_fd("self", "pagemap") as fd:
            return pms.probe(fd, PAGE_IS_ACCESSED)
    except (OSError, Error):
        return False


@functools.cache
def user_address_limit() -> int:
    """The highest ``end`` PAGEMAP_SCAN accepts for this process (``access_ok``, spec §2).

    Found exactly by bisection on zero- or one-page scans (about 64 cheap ioctls, once): it
    is 0x7ffffffff000 with 4-level x86-64 paging, but 5-level paging and other architectures
    differ, and validation must say exactly what the kernel says.
    """
    try:
        fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return _DEFAULT_LIMIT
    try:

        def accepted(end: int) -> bool:
            arg = pms.PmScanArg(size=96, start=end & ~(pms.PAGE_SIZE - 1), end=end)
            try:
                pms.ioctl_scan(fd, arg)
            except OSError as err:
                if err.errno == errno.EFAULT:
                    return False
                raise
            return True

        if not accepted(pms.PAGE_SIZE):
            return _DEFAULT_LIMIT
        lo, hi = pms.PAGE_SIZE, (1 << 64) - 1  # accepted(lo), not accepted(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if accepted(mid):
                lo = mid
            else:
                hi = mid
        return lo
    except OSError:  # ENOTTY: no PAGEMAP_SCAN, the limit does not matter
        return _DEFAULT_LIMIT
    finally:
        os.close(fd)


def _probe_soft_dirty() -> tuple[bool, bool]:
    """(soft-dirty works, PFNs visible): a freshly written page is soft-dirty (bit 55) iff
    CONFIG_MEM_SOFT_DIRTY; with it off the bit is always 0 (spec §5).
    """
    page = mmap.mmap(-1, pms.PAGE_SIZE)
    view = np.frombuffer(page, dtype=np.uint8)
    try:
        view[0] = 1
        addr = view.ctypes.data
        with procfs.open_fd("self", "pagemap") as fd:
            (entry,) = pagemap.read_entries(fd, addr, addr + pms.PAGE_SIZE).tolist()
        return bool(entry & pagemap.PM_SOFT_DIRTY), bool(entry & pagemap.PM_PFN_MASK)
    except (OSError, Error):
        return False, False
    finally:
        del view  # the mapping cannot close while a buffer of it is exported
        page.close()


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


@functools.cache
def features() -> Features:
    """Probe the running kernel once (cached) the way CRIU does.

    Returns
    -------
    Features

    Examples
    --------
    >>> import pmviz
    >>> pmviz.features().page_size
    4096
    """
    has_scan, cats = _probe_pagemap_scan()
    soft_dirty, pfn_visible = _probe_soft_dirty()
    wp_async, reason = uffd.probe_wp_async()
    thp = _read("/sys/kernel/mm/transparent_hugepage/enabled")
    thp_mode = thp[thp.find("[") + 1 : thp.find("]")] if "[" in thp else "unavailable"
    swaps = _read("/proc/swaps").splitlines()[1:]
    return Features(
        kernel_release=os.uname().release,
        page_size=pms.PAGE_SIZE,
        pagemap_scan=has_scan,
        categories=cats,
        guard=bool(cats & Category.GUARD),
        soft_dirty=soft_dirty,
        uffd_wp_async=wp_async and has_scan,
        uffd_reason=reason if has_scan else "PAGEMAP_SCAN missing (needs Linux >= 6.7)",
        thp_mode=thp_mode,
        swap_active=any(line.strip() for line in swaps),
        user_address_limit=user_address_limit() if has_scan else _DEFAULT_LIMIT,
        pfn_visible=pfn_visible,
        accessed_category=has_scan and _probe_accessed_category(),
    )
