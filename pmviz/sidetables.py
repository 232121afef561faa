"""Per-snapshot side tables: named row tables a capture carries beside its regions.

A side table is what the capture's ``written`` sets are, generalised: a numpy structured
array of rows plus ``n + 1`` offsets, snapshot ``i`` owning ``rows[off[i]:off[i + 1]]``. Any
recorder feature that produces a small table per snapshot (access samples, a process tree)
stores it this way: the capture selects, slices, downsamples, saves and anonymizes it
without knowing what it means. On disk each is a part directory of its own
(``docs/capture-format.md``).

Rules a side table follows:

- Columns are fixed-width integers or booleans (``int*``, ``uint*``, ``bool``);
  their names and types are declared in the capture's metadata when stored.
- A table with ``start`` and ``end`` columns describes address ranges: per snapshot its
  rows are sorted by ``start``, page-aligned and not reversed; :meth:`Capture.address_window`
  keeps the rows that meet the window (unclipped: a row's values describe its whole range),
  and anonymization rebases them with everything else.
- When snapshots are dropped (``select``, ``downsample``) each kept snapshot keeps its own
  rows: a side table's rows describe the interval that ends at their snapshot.

The tables pmviz itself records are listed here with their row types.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "REFERENCED",
    "PROBED",
    "ACCESS_TELEMETRY",
    "REFERENCED_DTYPE",
    "PROBED_DTYPE",
    "ACCESS_TELEMETRY_DTYPE",
    "KNOWN_SIDE_TABLES",
    "check_side_table",
    "side_dtype_from_columns",
    "side_columns",
]

REFERENCED = "referenced"
PROBED = "probed"
ACCESS_TELEMETRY = "access_telemetry"

REFERENCED_DTYPE = np.dtype(
    [("start", "<u8"), ("end", "<u8"), ("referenced_bytes", "<i8"), ("resident_bytes", "<i8")]
)
"""``accessed="vma"``: one row per VMA, bytes referenced since the previous sample (from
``/proc/PID/smaps`` ``Referenced:``) and bytes resident now (``Rss:``)."""

PROBED_DTYPE = np.dtype(
    [
        ("start", "<u8"),
        ("end", "<u8"),
        ("resident_pages", "<i8"),
        ("probed_pages", "<i8"),
        ("accessed_pages", "<i8"),
        ("interval_ns", "<i8"),
    ]
)
"""``accessed="probe"``: one row per adaptive region, the resident pages it had when the
probes were chosen, the pages paged out as probes, how many of those were present again at
the sample (accessed in between), and the time between the pageout and the sample."""

ACCESS_TELEMETRY_DTYPE = np.dtype([("accessed_ns", "<i8"), ("refaults", "<i8")])
"""One row per snapshot of a recording with access sampling: the time the access mechanism
took in that snapshot (smaps read + clear, or check scan + pageout) and the probes the target
faulted back in during the interval (0 for ``"vma"``)."""

KNOWN_SIDE_TABLES = {
    REFERENCED: REFERENCED_DTYPE,
    PROBED: PROBED_DTYPE,
    ACCESS_TELEMETRY: ACCESS_TELEMETRY_DTYPE,
}

_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
_RESERVED = frozenset({"snapshots", "regions", "written", "vmas", "marks"})


def side_columns(dtype: np.dtype) -> list[list[str]]:
    """``[[name, numpy type string], ...]``: how a side table's row type is declared."""
    return [[str(n), dtype[n].str] for n in dtype.names or ()]


def side_dtype_from_columns(columns: Any) -> np.dtype:
    """The row type a declaration (:func:`side_columns`) names; ValueError if it is not one."""
    if not isinstance(columns, list) or not columns:
        raise ValueError(f"side table columns must be a non-empty list, got {columns!r}")
    fields = []
    for c in columns:
        if not (isinstance(c, list) and len(c) == 2 and all(isinstance(x, str) for x in c)):
            raise ValueError(f"a side table column is [name, type], got {c!r}")
        fields.append((c[0], c[1]))
    dt = np.dtype(fields)
    _check_dtype("side table", dt)
    return dt


def _check_dtype(name: str, dt: np.dtype) -> None:
    if dt.names is None:
        raise ValueError(f"{name}: rows must be a structured array, got {dt}")
    if "snapshot" in dt.names:
        raise ValueError(f"{name}: 'snapshot' is reserved for the stored snapshot number")
    for f in dt.names:
        if dt[f].kind not in "iub" or dt[f].shape:
            raise ValueError(f"{name}.{f}: columns must be integers or booleans, got {dt[f]}")


def check_name(name: str) -> str:
    """A side table name: lowercase letters, digits and ``_``; not a core table's name."""
    if not isinstance(name, str) or not name or not set(name) <= _NAME_OK or name in _RESERVED:
        raise ValueError(
            f"side table names are lowercase letters, digits and '_', not one of "
            f"{sorted(_RESERVED)}; got {name!r}"
        )
    return name


def check_side_table(
    name: str, rows: Any, offsets: Any, n: int, page_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validate one side table given to a capture; returns ``(rows, offsets)`` as arrays.

    Raises
    ------
    ValueError
        Bad name, columns, offsets (``n + 1`` rising from 0 to ``len(rows)``), or, for a table
        of address ranges, rows reversed, not page-aligned or not sorted within a snapshot.
    """
    check_name(name)
    a = np.asarray(rows)
    if a.ndim != 1:
        raise ValueError(f"side table {name!r}: rows must be 1-D, got shape {a.shape}")
    _check_dtype(f"side table {name!r}", a.dtype)
    o = np.asarray(offsets)
    if o.ndim != 1 or o.dtype.kind not in "iu" or o.shape != (n + 1,):
        raise ValueError(
            f"side table {name!r}: offsets need {n + 1} integer entries, got {o.dtype} {o.shape}"
        )
    o = o.astype(np.int64)
    if o[0] != 0 or o[-1] != len(a) or (np.diff(o) < 0).any():
        raise ValueError(
            f"side table {name!r}: offsets must rise from 0 to the number of rows ({len(a)})"
        )
    problem = range_problem(a, o, page_size)
    if problem is not None:
        raise ValueError(f"side table {name!r}: {problem}")
    return a, o


def range_problem(rows: np.ndarray, offsets: np.ndarray, page_size: int) -> str | None:
    """What is wrong with the address ranges of a side table (``None``: nothing, or none)."""
    names = rows.dtype.names or ()
    if "start" not in names or "end" not in names or not len(rows):
        return None
    s, e = rows["start"].astype(np.uint64), rows["end"].astype(np.uint64)
    bad = np.flatnonzero(s > e)
    if len(bad):
        return f"row {int(bad[0])} is reversed ({int(s[bad[0]]):#x} > {int(e[bad[0]]):#x})"
    ps = np.uint64(page_size)
    bad = np.flatnonzero((s % ps != 0) | (e % ps != 0))
    if len(bad):
        return f"row {int(bad[0])} is not page-aligned ({int(s[bad[0]]):#x}-{int(e[bad[0]]):#x})"
    if len(s) > 1:
        first = np.zeros(len(s), bool)
        first[offsets[:-1][offsets[:-1] < len(s)]] = True
        unsorted = (s[1:] < s[:-1]) & ~first[1:]
        bad = np.flatnonzero(unsorted)
        if len(bad):
            return f"rows of a snapshot are not sorted by start (row {int(bad[0]) + 1})"
    return None


def align_to_vmas(rows: np.ndarray, vma_start: np.ndarray, vma_end: np.ndarray) -> np.ndarray:
    """``REFERENCED_DTYPE`` rows, one per VMA given: the row with the same ``[start, end)``,
    or ``-1`` byte counts where none matches (the VMA changed between the two reads).
    """
    out = np.zeros(len(vma_start), REFERENCED_DTYPE)
    out["start"], out["end"] = vma_start, vma_end
    out["referenced_bytes"] = out["resident_bytes"] = -1
    if not len(rows) or not len(vma_start):
        return out
    i = np.searchsorted(rows["start"], vma_start)
    ic = np.minimum(i, len(rows) - 1)
    ok = (i < len(rows)) & (rows["start"][ic] == vma_start) & (rows["end"][ic] == vma_end)
    out["referenced_bytes"][ok] = rows["referenced_bytes"][ic[ok]]
    out["resident_bytes"][ok] = rows["resident_bytes"][ic[ok]]
    return out
