"""``Regions``: a run-length list of pages with their categories, as the kernel returns it."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import NamedTuple, overload

import numpy as np

from ._intervals import clip_regions, regions_array
from ._kernel.pagemap_scan import PAGE_SIZE, REGION_DTYPE
from ._units import human_bytes
from .categories import Category, category_names

__all__ = ["Region", "Regions", "REGION_DTYPE"]


class Region(NamedTuple):
    """One ``struct page_region``: pages ``[start, end)`` sharing ``categories``."""

    start: int
    end: int
    categories: Category

    @property
    def size(self) -> int:
        """Bytes covered."""
        return self.end - self.start

    def __repr__(self) -> str:
        return f"Region({self.start:#x}, {self.end:#x}, {category_names(int(self.categories))})"


class Regions:
    """Sorted, non-overlapping ``[start, end)`` runs of pages with their categories.

    A thin wrapper over one numpy structured array laid out exactly like the kernel's
    ``struct page_region`` (fields ``start``, ``end``, ``categories``, all ``<u8``); for a live
    scan the kernel wrote it in place. Adjacent runs may share categories when they came from
    different scans or VMAs; ``Mask.apply`` and the kernel merge them, this class does not.

    Parameters
    ----------
    array : numpy.ndarray, optional
        A structured array of dtype ``REGION_DTYPE`` (not copied when it already has it).
    page_size : int
        Bytes per page of the process this came from.

    Examples
    --------
    >>> import pmviz
    >>> r = pmviz.Regions.from_arrays([0x1000, 0x3000], [0x2000, 0x5000], [8, 10])
    >>> len(r), r.n_pages
    (2, 3)
    """

    __slots__ = ("_a", "page_size")

    def __init__(self, array: np.ndarray | None = None, *, page_size: int = PAGE_SIZE) -> None:
        if array is None:
            array = np.empty(0, dtype=REGION_DTYPE)
        else:
            array = _checked_array(array)
        self._a: np.ndarray = array
        self.page_size = _checked_page_size(page_size)

    @classmethod
    def _trusted(cls, array: np.ndarray, page_size: int = PAGE_SIZE) -> Regions:
        """Wrap a ``REGION_DTYPE`` array the kernel (or pmviz itself) produced: no checks.

        The scan path builds one per call; validating kernel output there would only cost.
        """
        r = cls.__new__(cls)
        r._a = array
        r.page_size = page_size
        return r

    @classmethod
    def from_arrays(
        cls,
        start: Iterable[int] | np.ndarray,
        end: Iterable[int] | np.ndarray,
        categories: Iterable[int] | np.ndarray | int,
        *,
        page_size: int = PAGE_SIZE,
    ) -> Regions:
        """Build from parallel arrays (``categories`` may be one value for all).

        Raises
        ------
        ValueError
            A column that is not 1-D, not integer, negative or of a different length; a
            reversed range (``start > end``). The message names the field and the first bad
            row.
        """
        s = _checked_column("start", start)
        e = _checked_column("end", end)
        c = _checked_column("categories", categories, scalar_ok=True)
        if len(s) != len(e) or (c.ndim and len(c) != len(s)):
            raise ValueError(
                f"start, end and categories need the same length, got {len(s)}, {len(e)} "
                f"and {len(c) if c.ndim else 'one value'}"
            )
        a = regions_array(s, e, c)
        _check_order(a)
        return cls._trusted(a, _checked_page_size(page_size))

    @classmethod
    def concat(cls, parts: Iterable[Regions]) -> Regions:
        """Concatenate (no merging): the parts must already be in address order."""
        parts = list(parts)
        if not parts:
            return cls()
        return cls._trusted(np.concatenate([p._a for p in parts]), parts[0].page_size)

    # -- array access -------------------------------------------------------------------------
    @property
    def array(self) -> np.ndarray:
        """The underlying structured array (``start``, ``end``, ``categories``)."""
        return self._a

    @property
    def start(self) -> np.ndarray:
        return self._a["start"]

    @property
    def end(self) -> np.ndarray:
        return self._a["end"]

    @property
    def categories(self) -> np.ndarray:
        return self._a["categories"]

    @property
    def page_counts(self) -> np.ndarray:
        """Pages per region (``int64``)."""
        shift = self.page_size.bit_length() - 1
        return ((self._a["end"] - self._a["start"]) >> np.uint64(shift)).astype(np.int64)

    @property
    def n_pages(self) -> int:
        """Total pages covered."""
        return int(self.page_counts.sum())

    @property
    def size(self) -> int:
        """Total bytes covered."""
        return int((self._a["end"] - self._a["start"]).sum())

    def pages_with(self, category: Category | int, *, all_of: bool = True) -> int:
        """Pages whose categories contain ``category`` (all its bits, or any with ``all_of=False``)."""
        return int(self.page_counts[self._has(category, all_of)].sum())

    def select(self, category: Category | int, *, all_of: bool = True) -> Regions:
        """The regions whose categories contain ``category`` (all bits, or any bit)."""
        return Regions._trusted(self._a[self._has(category, all_of)], self.page_size)

    def _has(self, category: Category | int, all_of: bool) -> np.ndarray:
        bits = np.uint64(int(category))
        hit = self._a["categories"] & bits
        return hit == bits if all_of else hit != 0

    def clip(self, start: int, end: int) -> Regions:
        """The part of these regions inside ``[start, end)``, cut at the edges."""
        a = self._a
        if end <= start:
            return Regions._trusted(a[:0].copy(), self.page_size)
        return Regions._trusted(clip_regions(a, start, end)[0], self.page_size)

    def to_pandas(self):  # noqa: ANN201 - pandas is optional
        """A ``pandas.DataFrame`` with ``start``, ``end``, ``n_pages`` and ``categories``."""
        import pandas as pd

        df = pd.DataFrame({k: self._a[k] for k in ("start", "end", "categories")})
        df["n_pages"] = self.page_counts
        return df

    # -- container protocol -------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._a.shape[0])

    @overload
    def __getitem__(self, key: int) -> Region: ...
    @overload
    def __getitem__(self, key: slice | np.ndarray) -> Regions: ...
    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            s, e, c = self._a[key].tolist()
            return Region(s, e, Category(c))
        out = self._a[key]
        if out.ndim != 1:
            raise IndexError(f"Regions index must select rows, got {key!r}")
        return Regions._trusted(out, self.page_size)

    def __iter__(self):
        for s, e, c in self._a.tolist():
            yield Region(s, e, Category(c))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Regions):
            return NotImplemented
        return self.page_size == other.page_size and np.array_equal(self._a, other._a)

    __hash__ = None  # type: ignore[assignment]  # mutable array inside

    def __repr__(self) -> str:
        head = ", ".join(repr(r) for r in self[:3])
        more = f", ... {len(self) - 3} more" if len(self) > 3 else ""
        return f"<Regions n={len(self)} pages={self.n_pages} [{head}{more}]>"

    def _repr_html_(self, max_rows: int = 20) -> str:
        n = len(self)
        size = human_bytes(self.size)
        rows = []
        shown = self[:max_rows]
        for r, pages in zip(shown, shown.page_counts.tolist()):
            cats = html.escape(category_names(int(r.categories)))
            rows.append(
                f"<tr><td><code>{r.start:#014x}</code></td><td><code>{r.end:#014x}</code></td>"
                f"<td style='text-align:right'>{pages:,}</td>"
                f"<td>{cats}</td></tr>"
            )
        if n > max_rows:
            rows.append(f"<tr><td colspan=4><i>… {n - max_rows:,} more regions</i></td></tr>")
        by_cat = "".join(
            f"<li>{c.name}: {pages:,} pages</li>" for c in Category if (pages := self.pages_with(c))
        )
        return (
            f"<div><b>Regions</b>: {n:,} regions, {self.n_pages:,} pages ({size})"
            f"<ul style='columns:3'>{by_cat}</ul>"
            "<table><thead><tr><th>start</th><th>end</th><th>pages</th><th>categories</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )


def _checked_page_size(page_size: int) -> int:
    if isinstance(page_size, bool) or not isinstance(page_size, (int, np.integer)):
        raise TypeError(f"page_size must be an int, got {page_size!r}")
    ps = int(page_size)
    if ps < 1 or ps & (ps - 1):
        raise ValueError(f"page_size must be a power of two, got {ps}")
    return ps


def _checked_column(name: str, values: object, *, scalar_ok: bool = False) -> np.ndarray:
    """One column as ``uint64``, refusing what ``astype`` would silently wrap or truncate."""
    a = np.asarray(values)
    if a.ndim > 1 or (a.ndim == 0 and not scalar_ok):
        raise ValueError(f"{name} must be a 1-D sequence of integers, got shape {a.shape}")
    if a.dtype == object:  # Python ints beyond int64: let numpy range-check each one
        try:
            a = np.array(a.tolist(), dtype=np.uint64)
        except (OverflowError, TypeError, ValueError) as err:
            raise ValueError(f"{name} must hold integers in [0, 2**64): {err}") from None
    if a.dtype.kind not in "iub" and a.size:
        raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
    if a.dtype.kind == "i" and a.size and (bad := np.flatnonzero(a < 0)).size:
        i = int(bad[0])
        value = int(a) if a.ndim == 0 else int(a[i])
        raise ValueError(
            f"{name}[{i}] is negative ({value}): addresses and categories are unsigned"
        )
    return a.astype(np.uint64, copy=False)


def _check_order(a: np.ndarray) -> None:
    bad = np.flatnonzero(a["start"] > a["end"])
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"row {i}: start {int(a['start'][i]):#x} > end {int(a['end'][i]):#x} (a reversed range)"
        )


def _checked_array(array: object) -> np.ndarray:
    """What ``Regions(array)`` accepts: a 1-D structured array with ``start``, ``end`` and
    ``categories`` (converted to ``REGION_DTYPE`` without wrapping negatives), no reversed range.
    """
    a = np.asarray(array)
    names = a.dtype.names or ()
    if a.ndim != 1 or not {"start", "end", "categories"} <= set(names):
        raise ValueError(
            "Regions needs a 1-D structured array with fields start, end, categories "
            f"(REGION_DTYPE), got dtype {a.dtype} of shape {a.shape}; for columns use "
            "Regions.from_arrays(start, end, categories)"
        )
    if a.dtype != REGION_DTYPE:
        cols = {n: _checked_column(n, a[n]) for n in ("start", "end", "categories")}
        a = regions_array(cols["start"], cols["end"], cols["categories"])
    _check_order(a)
    return a
