"""Normalising the ``ranges`` argument of the trackers to page-aligned address pairs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import _intervals as iv
from ..maps import Vmas
from ..regions import Regions

__all__ = ["as_ranges"]


def _buffer_bounds(obj: Any) -> tuple[int, int] | None:
    if isinstance(obj, np.ndarray):
        if obj.nbytes == 0:
            return None
        lo, hi = np.lib.array_utils.byte_bounds(obj)
        return int(lo), int(hi)
    try:
        view = memoryview(obj)
    except TypeError:
        return None
    if view.nbytes == 0:
        return None
    arr = np.frombuffer(view.cast("B") if view.contiguous else view.tobytes(), dtype=np.uint8)
    if not view.contiguous:
        raise ValueError("cannot track a non-contiguous memoryview; pass its base object")
    lo = int(arr.__array_interface__["data"][0])
    return lo, lo + arr.nbytes


def _pair(item: Any) -> tuple[int, int] | None:
    if (
        isinstance(item, tuple)
        and len(item) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in item)
    ):
        return int(item[0]), int(item[1])
    return None


def as_ranges(ranges: Any) -> np.ndarray:
    """Normalise a ``ranges`` argument to sorted, disjoint, page-aligned ``(n, 2)`` pairs.

    Accepted: a ``Regions`` or ``Vmas``; one ``(start, end)`` tuple; one buffer (numpy array,
    ``mmap``, ``bytearray``); or an iterable of such tuples and buffers. Buffers cover the
    pages their bytes lie on.
    """
    if isinstance(ranges, (Regions, Vmas)):
        pairs = iv.as_pairs(ranges.start, ranges.end)
    else:
        one = _pair(ranges) or _buffer_bounds(ranges)
        if one is not None:
            items: Iterable[Any] = [one]
        elif isinstance(ranges, (str, bytes)) or not isinstance(ranges, Iterable):
            raise TypeError(
                "ranges must be None, a Regions or Vmas, a (start, end) tuple, a buffer "
                f"(numpy array, mmap), or an iterable of those; got {type(ranges).__name__}"
            )
        else:
            items = ranges
        rows = []
        for item in items:
            bounds = _pair(item) or _buffer_bounds(item)
            if bounds is None:
                if isinstance(item, (np.ndarray, bytearray, memoryview)):
                    continue  # an empty buffer covers no page
                raise TypeError(
                    "each range must be a (start, end) tuple of ints or a buffer, got "
                    f"{type(item).__name__}"
                )
            lo, hi = bounds
            if lo < 0 or hi <= lo:
                raise ValueError(f"range ({lo:#x}, {hi:#x}) is empty or negative; need start < end")
            rows.append(bounds)
        pairs = np.array(rows, dtype=np.uint64).reshape(-1, 2)
    return iv.union(iv.page_align(pairs))
