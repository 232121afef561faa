"""``Mask``: the four category fields of a ``PAGEMAP_SCAN`` call, and their offline emulation."""

from __future__ import annotations

import html
from collections.abc import Iterable

import numpy as np

from ._intervals import merge_runs, regions_array
from .categories import ALL_CATEGORIES, Category, category_names, parse_categories
from .regions import Regions

__all__ = ["Mask", "CategorySpec"]

CategorySpec = Category | int | str | Iterable[str | Category] | None

_U64 = (1 << 64) - 1
_FIELDS = ("category_inverted", "category_mask", "category_anyof_mask", "return_mask")


def _names(bits: int) -> str:
    if bits == int(ALL_CATEGORIES):
        return "ALL"
    return category_names(bits)


class Mask:
    """Which pages a scan selects and which categories it reports (spec §3.3).

    A page matches when, with ``c = categories ^ category_inverted``, every bit of
    ``category_mask`` is set in ``c`` and, if ``category_anyof_mask`` is nonzero, at least one
    of its bits is. Matching pages are reported with ``categories & return_mask`` (the
    original, un-inverted bits), and adjacent pages with equal reported bits merge.

    Parameters
    ----------
    require : category spec
        Every one of these must be set.
    anyof : category spec
        At least one of these must be set (ignored when empty).
    exclude : category spec
        None of these may be set (the kernel's ``category_inverted`` + ``category_mask``).
    report : category spec
        Categories to report (``return_mask``); default every known category.

    Raises
    ------
    ValueError
        A bit the kernel does not know, or a category both required and excluded.

    Examples
    --------
    >>> from pmviz import Mask, Category as C
    >>> Mask(anyof=C.PRESENT | C.SWAPPED, exclude=C.FILE | C.PFNZERO)  # CRIU's dump mask
    Mask(anyof=PRESENT|SWAPPED, exclude=FILE|PFNZERO, report=ALL)
    """

    __slots__ = _FIELDS

    category_inverted: int
    category_mask: int
    category_anyof_mask: int
    return_mask: int

    def __init__(
        self,
        require: CategorySpec = None,
        anyof: CategorySpec = None,
        exclude: CategorySpec = None,
        report: CategorySpec = ALL_CATEGORIES,
    ) -> None:
        req, anyo, exc = (int(parse_categories(x)) for x in (require, anyof, exclude))
        both = req & exc
        if both:
            raise ValueError(f"{_names(both)} is both required and excluded; no page can match")
        rep = int(parse_categories(report))
        self._set(exc, req | exc, anyo, rep)

    def _set(self, inverted: int, mask: int, anyof: int, ret: int) -> None:
        for name, value in zip(_FIELDS, (inverted, mask, anyof, ret)):
            object.__setattr__(self, name, value)

    @classmethod
    def from_kernel(
        cls,
        category_inverted: int = 0,
        category_mask: int = 0,
        category_anyof_mask: int = 0,
        return_mask: int = 0,
    ) -> Mask:
        """Build from the raw kernel fields, rejecting exactly what the kernel rejects.

        The kernel answers ``EINVAL`` when any field has a bit outside its category set
        (spec §2, check 4); every other combination is legal, even one that can match nothing.
        """
        values = (category_inverted, category_mask, category_anyof_mask, return_mask)
        for name, value in zip(_FIELDS, values):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if not 0 <= int(value) <= _U64:
                raise ValueError(f"{name}={value} does not fit in a __u64")
            bad = int(value) & ~int(ALL_CATEGORIES)
            if bad:
                low = (bad & -bad).bit_length() - 1
                raise ValueError(
                    f"{name}={int(value):#x} sets bit {low} ({bad:#x} in all), outside the "
                    f"kernel's categories (bits 0-8, {int(ALL_CATEGORIES):#x}); the kernel "
                    "would answer EINVAL"
                )
        self = cls.__new__(cls)
        self._set(*(int(v) for v in values))
        return self

    def replace(self, **fields: int) -> Mask:
        """A copy with some kernel fields changed (validated like ``from_kernel``)."""
        current = {name: getattr(self, name) for name in _FIELDS}
        unknown = set(fields) - set(_FIELDS)
        if unknown:
            raise TypeError(f"unknown Mask fields {sorted(unknown)}; valid: {list(_FIELDS)}")
        current.update(fields)
        return Mask.from_kernel(**current)

    # -- value semantics ----------------------------------------------------------------------
    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Mask is immutable; use Mask.replace()")

    def kernel_fields(self) -> dict[str, int]:
        """The four fields by their C names, ready for ``struct pm_scan_arg``."""
        return {name: getattr(self, name) for name in _FIELDS}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mask):
            return NotImplemented
        return self.kernel_fields() == other.kernel_fields()

    def __hash__(self) -> int:
        return hash(
            (self.category_inverted, self.category_mask, self.category_anyof_mask, self.return_mask)
        )

    def __reduce__(self):
        return (Mask.from_kernel, tuple(self.kernel_fields().values()))

    def __repr__(self) -> str:
        inv, mask, anyof, ret = (getattr(self, n) for n in _FIELDS)
        if inv & ~mask or anyof & inv:  # not expressible with require/anyof/exclude
            return (
                f"Mask.from_kernel(category_inverted={inv:#x}, category_mask={mask:#x}, "
                f"category_anyof_mask={anyof:#x}, return_mask={ret:#x})"
            )
        parts = []
        for label, bits in (("require", mask & ~inv), ("anyof", anyof), ("exclude", inv)):
            if bits:
                parts.append(f"{label}={_names(bits)}")
        parts.append(f"report={_names(ret)}")
        return f"Mask({', '.join(parts)})"

    def _repr_html_(self) -> str:
        # The readable form, then the four fields the kernel receives (what a C user types).
        fields = "".join(
            f"<tr><th style='text-align:left'><code>{n}</code></th>"
            f"<td><code>{getattr(self, n):#06x}</code></td>"
            f"<td>{html.escape(_names(getattr(self, n)) if getattr(self, n) else '—')}</td></tr>"
            for n in _FIELDS
        )
        return f"<div><code>{html.escape(repr(self))}</code><table>{fields}</table></div>"

    def c_initializer(self, *, start: str = "start", end: str = "end") -> str:
        """A C ``struct pm_scan_arg`` initialiser selecting what this mask selects."""

        def cats(bits: int) -> str:
            names = [f"PAGE_IS_{c.name}" for c in Category if bits & c.value]  # type: ignore[misc]
            return " | ".join(names) or "0"

        return (
            "struct pm_scan_arg arg = {\n"
            "\t.size = sizeof(struct pm_scan_arg),\n"
            f"\t.start = (__u64){start},\n"
            f"\t.end = (__u64){end},\n"
            "\t.vec = (__u64)regions,\n"
            "\t.vec_len = n_regions,\n"
            f"\t.category_inverted = {cats(self.category_inverted)},\n"
            f"\t.category_mask = {cats(self.category_mask)},\n"
            f"\t.category_anyof_mask = {cats(self.category_anyof_mask)},\n"
            f"\t.return_mask = {cats(self.return_mask)},\n"
            "};"
        )

    # -- semantics ----------------------------------------------------------------------------
    def matches(self, categories: np.ndarray | int) -> np.ndarray:
        """Whether pages with these categories match (the kernel's formula, vectorised)."""
        c = np.asarray(categories, dtype=np.uint64) ^ np.uint64(self.category_inverted)
        req = np.uint64(self.category_mask)
        hit = (c & req) == req
        if self.category_anyof_mask:
            hit &= (c & np.uint64(self.category_anyof_mask)) != 0
        return hit

    def apply(self, regions: Regions, max_pages: int = 0) -> Regions:
        """What the kernel would have returned had this mask been given at scan time.

        ``regions`` must come from a scan with every category reported and no filter (what
        ``pmviz.scan()`` and the recorder store). Filtering, output masking, merging of
        adjacent equal outputs (across VMA boundaries too) and ``max_pages`` truncation follow
        the kernel exactly (spec §3.3-§3.4).

        Parameters
        ----------
        regions : Regions
            An unfiltered, full-category scan.
        max_pages : int
            Stop after this many pages (0 = unlimited).

        Returns
        -------
        Regions
            Bit for bit the kernel's answer for an unbounded output vector. It may share
            memory with ``regions`` when nothing had to change.
        """
        if not 0 <= max_pages <= _U64:
            raise ValueError(f"max_pages must be in [0, 2**64) (0 = unlimited), got {max_pages}")
        a = regions.array
        s, e, c = a["start"], a["end"], a["categories"]
        filtered = False
        if self.category_mask or self.category_anyof_mask:  # else every page matches (§3.3)
            keep = self.matches(c)
            filtered = not keep.all()
            if filtered:
                s, e, c = s[keep], e[keep], c[keep]
        out = c
        if self.return_mask & int(ALL_CATEGORIES) != int(ALL_CATEGORIES):
            out = c & np.uint64(self.return_mask)
        n = s.shape[0]
        s, e, out = merge_runs(s, e, out)
        merged = s.shape[0] != n
        n = s.shape[0]
        if filtered or merged or out is not c:
            res = regions_array(s, e, out)
        else:
            res = a  # already what the kernel returns: share it rather than copy
        if max_pages and n:
            shift = np.uint64(regions.page_size.bit_length() - 1)
            cum = np.cumsum((res["end"] - res["start"]) >> shift)
            if cum[-1] > max_pages:
                k = int(np.searchsorted(cum, max_pages))  # first region reaching the budget
                res = res[: k + 1].copy()
                over = int(cum[k]) - max_pages
                res["end"][k] -= np.uint64(over << int(shift))
        return Regions._trusted(res, regions.page_size)  # derived from checked regions
