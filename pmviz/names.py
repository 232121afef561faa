"""Names for the address axis: which Python objects of a namespace own which address ranges.

:func:`object_ranges` looks at the values of a namespace (a notebook's ``user_ns``,
``globals()``) and, for each object that holds a memory buffer, returns the address range of
that buffer and a label such as ``a: float64[8_000_000]``. It recognises numpy arrays (a view
is resolved to the array that owns the memory), ``bytearray``/``bytes``, ``mmap.mmap``,
``memoryview`` (resolved to its exporter), ``array.array``, and, only when the program has
imported them already (never imported here), torch CPU tensors and pyarrow buffers, arrays,
chunked arrays, record batches and tables. Values of lists, tuples and dicts one level down
are looked at too (``arrays[0]``, ``d['x']``).

Only addresses are read: nothing is copied, and no object is kept alive beyond the call.
"""

from __future__ import annotations

import array
import mmap
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from ._intervals import union_columns
from .capture import Capture

__all__ = [
    "NamedRange",
    "object_ranges",
    "as_records",
    "from_records",
    "capture_names",
    "name_at",
]

_MAX_ITEMS = 1000  # container items looked at, per container
_SKIP_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython"})


class NamedRange(NamedTuple):
    """``[start, end)`` of a buffer and the label of the object that owns it."""

    start: int
    end: int
    label: str


def _shape(shape: tuple[int, ...]) -> str:
    return ", ".join(f"{int(n):_}" for n in shape)


def _extent(a: np.ndarray) -> tuple[int, int]:
    """``[lo, hi)`` bytes an array's elements span (any strides, negative ones too)."""
    base = int(a.__array_interface__["data"][0])
    if a.size == 0:
        return base, base
    lo = hi = 0
    for n, s in zip(a.shape, a.strides):
        step = (n - 1) * s
        lo += min(step, 0)
        hi += max(step, 0)
    return base + lo, base + hi + a.itemsize


def _owner(a: np.ndarray) -> np.ndarray:
    """The array that owns ``a``'s memory (``a`` itself, or the end of its ``.base`` chain)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _numpy(a: np.ndarray) -> tuple[int, int, str, bool]:
    owner = _owner(a)
    lo, hi = _extent(owner)
    return lo, hi, f"{owner.dtype}[{_shape(owner.shape)}]", owner is a


def _raw(obj: Any) -> tuple[int, int]:
    """Address range of a one-segment buffer (bytes, bytearray, mmap), read-only or not."""
    flat = np.frombuffer(obj, dtype=np.uint8)  # a view: the buffer's own address
    lo = int(flat.__array_interface__["data"][0])
    return lo, lo + flat.nbytes


def _buffers(obj: Any) -> Iterator[tuple[int, int, str, bool]]:
    """``(start, end, description, owns)`` of each buffer ``obj`` holds.

    ``owns`` is False for a view whose range is its owner's.
    """
    if isinstance(obj, np.ndarray):
        if obj.size:
            yield _numpy(obj)
        return
    if isinstance(obj, (bytes, bytearray)):
        if len(obj):
            lo, hi = _raw(obj)
            yield lo, hi, f"{type(obj).__name__}[{len(obj):_}]", True
        return
    if isinstance(obj, mmap.mmap):
        if not obj.closed and len(obj):
            lo, hi = _raw(obj)
            yield lo, hi, f"mmap[{len(obj):_}]", True
        return
    if isinstance(obj, array.array):
        addr, n = obj.buffer_info()
        if n:
            yield addr, addr + n * obj.itemsize, f"array('{obj.typecode}')[{n:_}]", True
        return
    if isinstance(obj, memoryview):
        inner = list(_buffers(obj.obj)) if obj.obj is not None else []
        if inner:
            for lo, hi, desc, _ in inner:
                yield lo, hi, f"memoryview of {desc}", False
            return
        try:
            view = np.asarray(obj)
        except (TypeError, ValueError):
            return
        if view.size:
            lo, hi = _extent(view)
            yield lo, hi, f"memoryview[{_shape(obj.shape or ())}]", True
        return
    yield from _optional_buffers(obj)


def _optional_buffers(obj: Any) -> Iterator[tuple[int, int, str, bool]]:
    """Buffers of torch and pyarrow objects, when the program imported those modules (never here)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor):
        if obj.device.type == "cpu" and obj.numel():
            st = obj.untyped_storage()
            lo = int(st.data_ptr())
            dtype = str(obj.dtype).removeprefix("torch.")
            yield lo, lo + int(st.nbytes()), f"torch.{dtype}[{_shape(tuple(obj.shape))}]", True
        return
    pa = sys.modules.get("pyarrow")
    if pa is None:
        return
    if isinstance(obj, pa.Buffer):
        if obj.size:
            yield obj.address, obj.address + obj.size, f"arrow buffer[{obj.size:_}]", True
    elif isinstance(obj, pa.Array):
        kinds = ("validity", "offsets" if len(obj.buffers()) > 2 else "data", "data")
        for i, buf in enumerate(obj.buffers()):
            if buf is not None and buf.size:
                what = kinds[i] if i < len(kinds) else f"buffer {i}"
                desc = f"arrow {obj.type}[{len(obj):_}] {what}"
                yield buf.address, buf.address + buf.size, desc, True
    elif isinstance(obj, pa.ChunkedArray):
        for chunk in obj.chunks[:_MAX_ITEMS]:
            yield from _optional_buffers(chunk)
    elif isinstance(obj, (pa.Table, pa.RecordBatch)):
        for name, col in zip(obj.column_names, obj.columns):
            for lo, hi, desc, owns in _optional_buffers(col):
                yield lo, hi, f"[{name!r}] {desc}", owns


def _candidates(namespace: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for name, value in list(namespace.items()):
        if not isinstance(name, str) or name.startswith("_") or name in _SKIP_NAMES:
            continue
        yield name, value
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value[:_MAX_ITEMS]):
                yield f"{name}[{i}]", item
        elif isinstance(value, dict):
            for k, item in list(value.items())[:_MAX_ITEMS]:
                yield f"{name}[{k!r}]", item


def object_ranges(namespace: Mapping[str, Any], *, min_bytes: int = 1) -> list[NamedRange]:
    """The address ranges of the buffers owned by a namespace's objects, with labels.

    Parameters
    ----------
    namespace : mapping of str to object
        For example IPython's ``user_ns`` or ``globals()``. Names starting with ``_`` and
        IPython's ``In``/``Out`` are skipped.
    min_bytes : int
        Leave out buffers smaller than this.

    Returns
    -------
    list of NamedRange
        ``(start, end, label)`` sorted by start; one entry per distinct range. An array's
        range is that of the array owning its memory, so a view and its base share one
        entry, labelled with the base's name when the namespace has it (``a:
        float64[8_000_000]``), else the view's (``v: view of float64[8_000_000]``).

    Examples
    --------
    >>> import numpy as np
    >>> from pmviz.names import object_ranges
    >>> a = np.zeros(1000)
    >>> [r.label for r in object_ranges({"a": a, "v": a[::2]})]
    ['a: float64[1_000]']
    """
    best: dict[tuple[int, int], tuple[int, str]] = {}
    for name, value in _candidates(namespace):
        try:
            found = list(_buffers(value))
        except (TypeError, ValueError, BufferError, AttributeError, RuntimeError):
            continue  # an exotic object whose buffer cannot be read: no name, not an error
        for lo, hi, desc, owns in found:
            if hi - lo < min_bytes:
                continue
            if owns:
                rank, label = 0, f"{name}: {desc}"
            else:
                rank = 1
                label = (
                    f"{name}: {desc}"
                    if desc.startswith("memoryview")
                    else f"{name}: view of {desc}"
                )
            key = (lo, hi)
            # owners beat views; among equals the first name (the namespace's order) wins
            if key not in best or rank < best[key][0]:
                best[key] = (rank, label)
    return sorted(NamedRange(lo, hi, label) for (lo, hi), (_, label) in best.items())


def as_records(ranges: list[NamedRange]) -> list[dict[str, Any]]:
    """``[{"start", "end", "label"}, ...]``, as kept in ``capture.meta.extra["names"]``."""
    return [{"start": int(r.start), "end": int(r.end), "label": str(r.label)} for r in ranges]


def from_records(records: Any) -> list[NamedRange]:
    """Inverse of :func:`as_records` (tolerates ``None``)."""
    return sorted(
        NamedRange(int(d["start"]), int(d["end"]), str(d["label"])) for d in records or ()
    )


def _covered_below(s: np.ndarray, e: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Bytes of the sorted disjoint intervals ``[s, e)`` below each address ``x``."""
    x = np.asarray(x, dtype=np.int64)
    if not s.size:
        return np.zeros(x.shape, np.int64)
    s64, e64 = s.astype(np.int64), e.astype(np.int64)
    cum = np.concatenate([[0], np.cumsum(e64 - s64)])
    j = np.searchsorted(s64, x, side="right") - 1  # the interval starting at or below x
    jj = np.maximum(j, 0)
    part = np.where(j >= 0, np.clip(np.minimum(x, e64[jj]) - s64[jj], 0, None), 0)
    return cum[jj] * (j >= 0) + part


def _overlap(s: np.ndarray, e: np.ndarray, qs: np.ndarray, qe: np.ndarray) -> np.ndarray:
    """Bytes of ``[qs, qe)`` covered by the sorted disjoint intervals ``[s, e)``."""
    return _covered_below(s, e, qe) - _covered_below(s, e, qs)


def _written_union(cap: Capture) -> tuple[np.ndarray, np.ndarray]:
    if cap.written is None or not len(cap.written):
        return np.empty(0, np.uint64), np.empty(0, np.uint64)
    return union_columns(cap.written["start"], cap.written["end"])


def _by_interest(cap: Capture, names: list[NamedRange]) -> list[NamedRange]:
    """Names ordered for labelling: most bytes written in the capture first, then biggest."""
    if not names:
        return names
    ws, we = _written_union(cap)
    s = np.array([n.start for n in names], np.uint64)
    e = np.array([n.end for n in names], np.uint64)
    written = _overlap(ws, we, s, e) if ws.size else np.zeros(len(names), np.int64)
    order = np.lexsort((-(e - s).astype(np.int64), -written))
    return [names[i] for i in order.tolist()]


def capture_names(capture: Capture) -> list[NamedRange]:
    """The named objects a capture holds (``%%pmviz`` stores them), ordered for labelling."""
    return _by_interest(capture, from_records(capture.meta.extra.get("names")))


def name_at(names: Sequence[NamedRange], address: int) -> str | None:
    """The label of the smallest named range holding ``address``, or None."""
    inside = [n for n in names if n.start <= address < n.end]
    if not inside:
        return None
    return min(inside, key=lambda n: n.end - n.start).label
