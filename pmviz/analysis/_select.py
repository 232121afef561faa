"""Turn a user's ``data`` / ``category`` arguments into the rows they read and a mask."""

from __future__ import annotations

from typing import NamedTuple

from ..capture import Capture
from ..categories import Category, parse_categories
from ..maps import Vmas
from ..mask import Mask
from ..regions import Regions
from ._stream import no_written

CategoryArg = Mask | Category | int | str
"""``"written"`` (the write-tracking sets), a category / bit set / name (pages having all of
those bits in the full scan), or any ``Mask`` (its ``matches`` on the full scan)."""


_ALIASES = {
    "resident": "PRESENT",
    "zero": "PFNZERO",
    "zero-page": "PFNZERO",
    "zero_page": "PFNZERO",
    "swap": "SWAPPED",
}


class Source(NamedTuple):
    what: str
    """``"regions"`` (the full scans) or ``"written"`` (the write-tracking sets)."""
    select: Mask | None
    label: str


def resolve(capture: Capture, category: CategoryArg) -> Source:
    """Which rows to count (full scans or written sets) and which of them match.

    Raises
    ------
    ValueError
        ``"written"`` on a capture without write tracking, or an unknown category name.
    TypeError
        Anything that is not a mask, a category or a name.
    """
    if isinstance(category, str) and category.strip().lower() == "written":
        if not capture.has_written:
            raise no_written(capture)
        return Source("written", None, "written")
    if isinstance(category, Mask):
        return Source("regions", category, _mask_label(category))
    if isinstance(category, str):
        category = "|".join(
            _ALIASES.get(p.strip().lower(), p) for p in category.replace(",", "|").split("|")
        )
    if isinstance(category, bool) or not isinstance(
        category, (str, int, Category, set, frozenset, list, tuple)
    ):
        raise TypeError(
            "category must be 'written', a Category, a bit set, a category name or a Mask, "
            f"got {type(category).__name__}"
        )
    bits = parse_categories(category)
    return Source("regions", Mask(require=bits), category_label(bits))


def snapshot(data: Capture | Regions, at: int, vmas: Vmas | None) -> tuple[Regions, Vmas]:
    """One scan and its VMA table from a capture (snapshot ``at``) or a scan plus ``vmas``.

    A ``vmas`` given explicitly wins over the capture's own; none at all is an empty table.
    """
    if isinstance(data, Capture):
        regs = data.regions_at(at)
        vmas = data.vmas_at(at) if vmas is None else vmas
    else:
        regs = data
    return regs, Vmas() if vmas is None else vmas


def category_mask(category: Mask | Category | int | str) -> tuple[Mask, str]:
    """The mask selecting ``category`` in one scan, and its label.

    A ``Mask`` is used as is; a category, bit set or name is required and reported, so
    ``Mask.apply`` merges maximal runs of it (the most compact filtered scan).
    """
    if isinstance(category, Mask):
        return category, repr(category)
    bits = parse_categories(category)
    return Mask(require=bits, report=bits), category_label(bits)


def category_label(bits: Category) -> str:
    """``"present|written"`` for those bits; ``"mapped"`` for none."""
    return "|".join(c.name.lower() for c in Category if bits & c) or "mapped"  # type: ignore[union-attr]


def _mask_label(mask: Mask) -> str:
    return repr(mask).removeprefix("Mask(").removesuffix(")").replace(", report=ALL", "")


Between = tuple[str, str] | None
"""An analysis' ``between=("fill", "sort")``: only the phase from one mark to another."""


def phase(capture: Capture, between: Between) -> Capture:
    """``capture`` cut to the phase ``between`` names (``Capture.between``), or as it is.

    Raises
    ------
    ValueError
        ``between`` is not a pair of labels, or names a start mark the capture lacks.
    """
    if between is None:
        return capture
    if isinstance(between, str) or len(between) != 2:
        raise ValueError(f"between must be a (start, end) pair of mark labels, got {between!r}")
    return capture.between(between[0], between[1])
