"""Page categories: the ``PAGE_IS_*`` bits of ``PAGEMAP_SCAN`` (spec §1.4)."""

from __future__ import annotations

import enum
from collections.abc import Iterable

__all__ = ["Category", "ALL_CATEGORIES", "parse_categories"]


class Category(enum.IntFlag):
    """One bit per kernel page category (``PAGE_IS_*`` in ``include/uapi/linux/fs.h``).

    Values are the kernel's, so ``int(Category.PRESENT | Category.SWAPPED)`` can be passed to
    the ioctl as is.
    """

    WPALLOWED = 1 << 0
    """The VMA is registered for userfaultfd async write-protect (per VMA, not per page)."""
    WRITTEN = 1 << 1
    """Not uffd-write-protected; carries information only inside WPALLOWED VMAs."""
    FILE = 1 << 2
    """Page cache, shmem or shared anonymous memory (not the zero page)."""
    PRESENT = 1 << 3
    """Mapped in a page table entry."""
    SWAPPED = 1 << 4
    """A non-present entry: real swap, but also uffd-wp and guard markers (spec gotcha 9)."""
    PFNZERO = 1 << 5
    """Maps the shared zero page (read but never written)."""
    HUGE = 1 << 6
    """PMD-mapped THP or hugetlb page."""
    SOFT_DIRTY = 1 << 7
    """Soft-dirty; never set on kernels without CONFIG_MEM_SOFT_DIRTY."""
    GUARD = 1 << 8
    """MADV_GUARD_INSTALL guard page (Linux >= 6.15)."""


ALL_CATEGORIES = Category(0x1FF)
"""Every bit this version of pmviz knows; the kernel may support fewer (probe with features())."""


def category_names(bits: int) -> str:
    """``"WRITTEN|PRESENT"`` for those bits (kernel bit order), ``"0"`` for none."""
    return "|".join(c.name for c in Category if bits & c.value) or "0"  # type: ignore[misc]


def parse_categories(spec: str | int | Category | Iterable[str | Category] | None) -> Category:
    """Turn ``"present|written"``, ``["PRESENT", "FILE"]``, an int or a Category into a Category.

    Raises
    ------
    ValueError
        For an unknown name or a bit outside the known categories; the message lists the valid
        names.
    """
    if spec is None:
        return Category(0)
    if isinstance(spec, Category):
        value = int(spec)
    elif isinstance(spec, int) and not isinstance(spec, bool):
        value = spec
    else:
        names: Iterable[str | Category]
        if isinstance(spec, str):
            names = [p for p in spec.replace(",", "|").replace("+", "|").split("|") if p.strip()]
        elif isinstance(spec, bool):
            raise TypeError("categories must be names, a Category or an int, not a bool")
        else:
            names = spec
        value = 0
        for name in names:
            if isinstance(name, Category):
                value |= int(name)
                continue
            key = str(name).strip().upper().replace("-", "_")
            if key == "ALL":
                value |= int(ALL_CATEGORIES)
            elif key in Category.__members__:
                value |= int(Category[key])
            else:
                valid = ", ".join(Category.__members__)
                raise ValueError(f"unknown page category {name!r}; valid names: {valid}, ALL")
    bad = value & ~int(ALL_CATEGORIES)
    if value < 0 or bad:
        raise ValueError(
            f"category bits {value:#x} include {bad:#x}, outside the known categories "
            f"(bits 0-8, mask {int(ALL_CATEGORIES):#x})"
        )
    return Category(value)
