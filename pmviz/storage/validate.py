"""Checks that a capture read from disk is what its format promises (untrusted input).

A capture may come from anyone: a damaged disk, a half-copied directory, a hand-edited file.
Every check here is a function over plain values or numpy arrays, so any reader (format
versions 1 and 2) calls the same ones. Each problem is a :class:`~pmviz.errors.CaptureError`
naming the file and, for rows, the snapshot and row, or, for the lenient reader
(``pmviz.open(path, strict=False)``), a description of what is dropped.

Cheap checks run on every open: the metadata (:func:`check_meta`), that every part is a
regular file (:func:`check_part_file`: a FIFO or a device would block the reader forever),
part ranges (:func:`drop_overlapping_parts`), the snapshots table (:func:`check_snapshots`,
:func:`check_vma_index`, :func:`missing_vma_tables`). Row checks (:func:`check_regions`,
:func:`region_problems`, :func:`check_vmas`) run when rows are loaded; they are vectorized
(a few passes over the columns, no loop per row).
"""

from __future__ import annotations

import base64
import os
import re
import stat
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np

from ..errors import CaptureError

__all__ = [
    "ADDRESS_LIMIT",
    "check_pyarrow",
    "check_footer",
    "check_meta",
    "check_part_file",
    "drop_overlapping_parts",
    "damaged_snapshots",
    "id_ranges",
    "check_snapshots",
    "check_vma_index",
    "missing_vma_tables",
    "region_problems",
    "check_regions",
    "check_vmas",
    "check_side_tables_meta",
    "check_side_part",
]

ADDRESS_LIMIT = 1 << 57
"""No Linux architecture has user addresses at or above 2**57 (x86-64 with 5-level paging
ends user space at 2**56, arm64 and riscv64 lower); a region row beyond it is damage."""

_CHUNK = 1 << 16
_MIN_PAGE, _MAX_PAGE = 1 << 10, 1 << 20  # every Linux base page size lies in [1 KiB, 1 MiB]


class _PartLike(Protocol):
    @property
    def first(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def path(self) -> str: ...


_P = TypeVar("_P", bound=_PartLike)


# -- files ------------------------------------------------------------------------------------
def check_part_file(path: str) -> None:
    """Refuse anything but a regular file (following symlinks), without opening it.

    Opening a FIFO blocks until a writer appears and a device may have side effects on
    open, so the type comes from ``stat`` before any ``open``.

    Raises
    ------
    CaptureError
        ``path`` is missing, or a FIFO, socket, device or directory (or a symlink to one).
    """
    try:
        st = os.stat(path)
    except OSError as err:
        raise CaptureError(path, f"cannot read: {os.strerror(err.errno or 0)}") from err
    if not stat.S_ISREG(st.st_mode):
        kind = {
            stat.S_IFIFO: "a FIFO",
            stat.S_IFSOCK: "a socket",
            stat.S_IFCHR: "a character device",
            stat.S_IFBLK: "a block device",
            stat.S_IFDIR: "a directory",
        }.get(stat.S_IFMT(st.st_mode), "not a regular file")
        via = " (via a symlink)" if os.path.islink(path) else ""
        raise CaptureError(path, f"refusing to read {kind}{via}: capture files are regular files")


def id_ranges(ids: np.ndarray) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0..2, 5, 7..8"`` (for messages about dropped snapshots)."""
    ids = np.asarray(ids, np.int64)
    if not len(ids):
        return "none"
    cut = np.flatnonzero(np.diff(ids) != 1) + 1
    lo, hi = ids[np.r_[0, cut]], ids[np.r_[cut - 1, len(ids) - 1]]
    return ", ".join(f"{a}" if a == b else f"{a}..{b}" for a, b in zip(lo.tolist(), hi.tolist()))


# -- pyarrow and Parquet footers -------------------------------------------------------------
MIN_PYARROW = (14, 0, 1)
"""pyarrow before 14.0.1 unpickles ``arrow.py_extension_type`` metadata from any Parquet or
IPC file it reads: code execution from a crafted file (CVE-2023-47248)."""


def check_pyarrow(version: str | None = None) -> None:
    """Refuse a pyarrow that executes code from crafted files (or has that switched back on).

    Raises
    ------
    ImportError
        pyarrow older than 14.0.1, or ``PyExtensionType`` auto-loading enabled.
    """
    import pyarrow as pa

    version = pa.__version__ if version is None else version
    parts = tuple(int(x) for x in re.findall(r"\d+", version)[:3])
    if parts < MIN_PYARROW:
        raise ImportError(
            f"pmviz needs pyarrow >= 14.0.1, found {version}: older versions execute code "
            "hidden in a crafted Parquet file (CVE-2023-47248); pip install -U 'pyarrow>=14.0.1'"
        )
    # 14.0.1 .. 20 keep PyExtensionType with auto-loading off unless someone turned it on
    if getattr(pa.lib, "_py_extension_type_auto_load", False):
        raise ImportError(
            "pyarrow.PyExtensionType auto-loading is enabled in this process: reading a "
            "crafted capture would unpickle its data (CVE-2023-47248); turn it off with "
            "pyarrow.PyExtensionType.set_auto_load(False)"
        )


def _base64_needles(text: bytes) -> tuple[bytes, ...]:
    """``text`` as it appears inside base64 at each of the three byte alignments."""
    out = []
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + text)
        out.append(enc[(8 * k + 5) // 6 : (8 * (k + len(text))) // 6])
    return tuple(out)


# Arrow stores a column's extension type as the field metadata "ARROW:extension:name" inside
# the footer's "ARROW:schema" value (a base64 IPC schema). pmviz never writes one.
_EXTENSION_NEEDLES = (b"ARROW:extension", *_base64_needles(b"ARROW:extension"))
_MAX_FOOTER = 64 << 20


def check_footer(path: str) -> None:
    """Check a part's Parquet footer from its raw bytes, before pyarrow parses anything.

    Opening a file with pyarrow converts the stored Arrow schema, which for an extension type
    runs that type's deserializer; pmviz parts never hold one, so a footer that mentions
    any is refused unread.

    Raises
    ------
    CaptureError
        No Parquet magic, a footer length beyond the file, or an Arrow extension type.
    """
    try:
        # O_NONBLOCK: if the file was swapped for a FIFO since check_part_file, fail, not hang
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise CaptureError(path, "refusing to read: not a regular file")
            size = st.st_size
            if size < 12:
                raise CaptureError(path, f"damaged part (truncated: {size} bytes)")
            f.seek(size - 8)
            tail = f.read(8)
            n = int.from_bytes(tail[:4], "little")
            if tail[4:] != b"PAR1" or n > min(size - 12, _MAX_FOOTER):
                raise CaptureError(path, "damaged part (truncated or not Parquet: bad footer)")
            f.seek(size - 8 - n)
            footer = f.read(n)
    except OSError as err:
        raise CaptureError(path, f"cannot read: {os.strerror(err.errno or 0)}") from err
    if any(needle in footer for needle in _EXTENSION_NEEDLES):
        raise CaptureError(
            path,
            "refusing to read: the part declares an Arrow extension type, which pmviz never "
            "writes and whose deserializer could run code (CVE-2023-47248)",
        )


# -- metadata ---------------------------------------------------------------------------------
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_META_TYPES: dict[str, tuple[str, Any]] = {
    # key: (what it must be, predicate)
    "complete": ("a bool", lambda v: isinstance(v, bool)),
    "anonymized": ("a bool", lambda v: isinstance(v, bool)),
    "pid": ("an int > 0 or null", lambda v: v is None or (_is_int(v) and v > 0)),
    "command": ("a list or null", lambda v: v is None or isinstance(v, list)),
    "interval_ns": ("an int >= 0", lambda v: _is_int(v) and v >= 0),
    "start_wall_ns": ("an int", _is_int),
    "start_monotonic_ns": ("an int", _is_int),
    "exit_status": ("an int or null", lambda v: v is None or _is_int(v)),
    "end_reason": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "write_mechanism": ("a string", lambda v: isinstance(v, str)),
    "accessed_mechanism": ("a string", lambda v: isinstance(v, str)),
    "kernel_release": ("a string", lambda v: isinstance(v, str)),
    "pmviz_version": ("a string", lambda v: isinstance(v, str)),
    "features": ("an object", lambda v: isinstance(v, dict)),
    "scan_mask": ("an object", lambda v: isinstance(v, dict)),
    "extra": ("an object", lambda v: isinstance(v, dict)),
}


def check_meta(doc: Mapping[str, Any], path: str) -> None:
    """Check the types and ranges of the known ``capture.json`` keys (unknown keys pass).

    Parameters
    ----------
    doc : mapping
        The decoded JSON object.
    path : str
        The metadata file, for the message.

    Raises
    ------
    CaptureError
        ``format_version`` not a positive int (a JSON ``true`` is not 1), ``page_size`` not a
        power of two between 1 KiB and 1 MiB, or any known key of the wrong type.
    """
    version = doc.get("format_version")
    if not _is_int(version) or int(version) < 1:  # type: ignore[arg-type]
        raise CaptureError(
            path, f"damaged metadata: format_version must be an int >= 1, got {version!r}"
        )
    ps = doc.get("page_size", 4096)
    if not _is_int(ps) or not _MIN_PAGE <= ps <= _MAX_PAGE or ps & (ps - 1):
        raise CaptureError(
            path,
            f"damaged metadata: page_size must be a power of two from {_MIN_PAGE} to "
            f"{_MAX_PAGE}, got {ps!r}",
        )
    for key, (what, ok) in _META_TYPES.items():
        if key in doc and not ok(doc[key]):
            raise CaptureError(path, f"damaged metadata: {key} must be {what}, got {doc[key]!r}")


def check_side_tables_meta(decl: Any, path: str) -> dict[str, np.dtype]:
    """The side tables ``capture.json`` declares (``side_tables``), as name -> row type.

    Raises
    ------
    CaptureError
        Not an object of ``name: [[column, type], ...]`` with valid names and numeric types.
    """
    from ..sidetables import check_name, side_dtype_from_columns

    if decl is None:
        return {}
    if not isinstance(decl, dict):
        raise CaptureError(path, f"damaged metadata: side_tables must be an object, got {decl!r}")
    out = {}
    for name, cols in decl.items():
        try:
            out[check_name(name)] = side_dtype_from_columns(cols)
        except (ValueError, TypeError) as err:
            raise CaptureError(path, f"damaged metadata: side table {name!r}: {err}") from err
    return out


def check_side_part(
    snap: np.ndarray, rows: np.ndarray, page_size: int, path: str, *, first: int, end: int
) -> None:
    """Check rows of one side-table part: snapshot numbers sorted and inside the part's
    range, and, for a table of address ranges, each snapshot's rows sorted, page-aligned and
    not reversed (``smaps`` lists ``[vsyscall]``, above user space: no address limit).

    Raises
    ------
    CaptureError
        Naming the part and the row.
    """
    from ..sidetables import range_problem

    snap = np.asarray(snap, np.int64)
    if len(snap):
        if (i := _first_bad(np.diff(snap) < 0)) is not None:
            raise CaptureError(path, f"damaged part: snapshot numbers not sorted (row {i + 1})")
        if snap[0] < first or snap[-1] >= end:
            raise CaptureError(
                path, f"damaged part: snapshot numbers outside its range {first}-{end}"
            )
    heads = np.flatnonzero(np.diff(snap, prepend=-1) != 0) if len(snap) else np.empty(0, int)
    problem = range_problem(rows, np.append(heads, len(rows)), page_size)
    if problem is not None:
        raise CaptureError(path, f"damaged part: {problem}")


# -- part listing -----------------------------------------------------------------------------
def drop_overlapping_parts(parts: Sequence[_P], *, strict: bool, dropped: list[str]) -> list[_P]:
    """The parts of one table without those whose snapshot range overlaps an earlier one.

    ``parts`` are sorted by range, parts inside another already removed (the writer's merge
    leftovers). The writer never produces partial overlaps: they are damage (a part copied
    from another capture, a renamed file).

    Raises
    ------
    CaptureError
        With ``strict``, on the first overlap (naming both files); otherwise the later part
        is left out and its path appended to ``dropped``.
    """
    out: list[_P] = []
    for part in parts:
        if out and part.first < out[-1].end:
            if strict:
                raise CaptureError(
                    part.path,
                    f"damaged capture: its snapshot range overlaps {out[-1].path} "
                    "(parts of a table cover disjoint ranges)",
                )
            dropped.append(part.path)
            continue
        out.append(part)
    return out


# -- snapshots table --------------------------------------------------------------------------
def _first_bad(bad: np.ndarray) -> int | None:
    idx = np.flatnonzero(bad)
    return int(idx[0]) if len(idx) else None


def check_snapshots(
    cols: Mapping[str, np.ndarray],
    path: str,
    *,
    first: int,
    end: int,
    prev_time_ns: int | None = None,
) -> None:
    """Check one part of the ``snapshots`` table (columns as numpy arrays, nulls as 0).

    Parameters
    ----------
    cols : mapping of str to numpy.ndarray
        At least ``snapshot``, ``time_ns``, ``vma_table`` and ``region_rows``; ``written_rows``
        is checked when present.
    path : str
        The part file, for the message.
    first, end : int
        The snapshot range the part's name claims.
    prev_time_ns : int, optional
        The last ``time_ns`` of the previous part: time never goes backwards across parts.

    Raises
    ------
    CaptureError
        Snapshot numbers not ``first .. end-1``, ``time_ns`` going backwards, a negative row
        count or VMA table number; the message names the snapshot.
    """
    ids = np.asarray(cols["snapshot"])
    if len(ids) != end - first or not np.array_equal(ids, np.arange(first, end)):
        raise CaptureError(
            path, f"damaged part: snapshot numbers do not match its range {first}-{end}"
        )
    t = np.asarray(cols["time_ns"], np.int64)
    back = np.zeros(len(t), bool)
    back[1:] = t[1:] < t[:-1]
    if len(t) and prev_time_ns is not None:
        back[0] = t[0] < prev_time_ns
    if (i := _first_bad(back)) is not None:
        before = t[i - 1] if i else prev_time_ns
        raise CaptureError(
            path, f"damaged part: snapshot {first + i}: time_ns goes backwards ({before} -> {t[i]})"
        )
    for name in ("region_rows", "written_rows", "change_rows", "vma_table"):
        if name in cols and (i := _first_bad(np.asarray(cols[name]) < 0)) is not None:
            raise CaptureError(
                path, f"damaged part: snapshot {first + i}: negative {name} {cols[name][i]}"
            )


def check_vma_index(vma_index: np.ndarray, snapshot_ids: np.ndarray, path: str) -> None:
    """VMA tables are numbered 0, 1, 2 ... in order of first use: a number beyond the next
    one is out of range. Checked when the capture starts at snapshot 0 (a lenient open may
    have dropped the snapshots that first used some tables).

    Raises
    ------
    CaptureError
        Names the snapshot whose ``vma_table`` is out of range.
    """
    v = np.asarray(vma_index, np.int64)
    if not len(v) or int(snapshot_ids[0]) != 0:
        return
    allowed = np.empty(len(v), np.int64)
    allowed[0] = 0
    allowed[1:] = np.maximum.accumulate(v)[:-1] + 1
    if (i := _first_bad(v > allowed)) is not None:
        raise CaptureError(
            path,
            f"snapshot {int(snapshot_ids[i])}: vma_table {int(v[i])} out of range "
            f"(tables are numbered in order of first use; expected at most {int(allowed[i])})",
        )


def missing_vma_tables(
    vma_index: np.ndarray, snapshot_ids: np.ndarray, parts: Sequence[_PartLike]
) -> dict[int, int]:
    """VMA tables whose ``vmas`` part is missing: ``{table: first snapshot using it}``.

    The writer stores each table in the ``vmas`` part whose range holds the first snapshot
    that used it, so a table whose first use no part covers was deleted with its part.
    """
    if not len(vma_index):
        return {}
    tables, first = np.unique(np.asarray(vma_index), return_index=True)
    sid = np.asarray(snapshot_ids)[first]
    covered = np.zeros(len(sid), bool)
    for p in parts:
        covered |= (sid >= p.first) & (sid < p.end)
    return {int(t): int(s) for t, s in zip(tables[~covered], sid[~covered])}


# -- rows -------------------------------------------------------------------------------------
_REASONS = (
    "start >= end (empty or reversed range)",
    "not page-aligned",
    f"end beyond the user address space ({ADDRESS_LIMIT:#x})",
    "overlaps or precedes the previous row of its snapshot (rows are sorted and disjoint)",
)


def region_problems(
    rows: np.ndarray,
    offsets: np.ndarray,
    page_size: int,
    ordered: np.ndarray | None = None,
) -> tuple[np.ndarray, int | None, str]:
    """Find damaged region rows, vectorized.

    Parameters
    ----------
    rows : numpy.ndarray
        ``REGION_DTYPE`` rows of consecutive snapshots.
    offsets : numpy.ndarray
        ``n + 1`` offsets: snapshot ``k`` is ``rows[offsets[k]:offsets[k + 1]]``.
    page_size : int
    ordered : numpy.ndarray, optional
        ``bool`` per snapshot: its rows are a whole snapshot, sorted and disjoint (default: all).
        Format 2 change rows (``False``) are checked row by row only (range, alignment,
        address limit): a snapshot's changes may overlap each other.

    Returns
    -------
    bad_snapshots : numpy.ndarray
        ``bool`` per snapshot: it has at least one damaged row.
    first_row : int or None
        The first damaged row (``None``: all rows are sound).
    reason : str
        What is wrong with that row.
    """
    s, e = rows["start"], rows["end"]
    n = len(rows)
    off = np.asarray(offsets, np.int64)
    bad = np.empty(n, bool)
    # A snapshot's first row follows nothing, nor does a row of an unordered snapshot (change
    # rows): their order test is masked out (a mask, not a recheck of gathered rows: with
    # format 2 most rows read are change rows).
    follows: np.ndarray | None = None
    if n > 1:
        heads = off[1:-1][(off[1:-1] > 0) & (off[1:-1] < n)]
        if ordered is not None and not np.all(ordered):
            follows = np.repeat(np.asarray(ordered, bool), np.diff(off))
        else:
            follows = np.ones(n, bool)
        follows[heads] = False
    mask, limit = np.uint64(page_size - 1), np.uint64(ADDRESS_LIMIT)
    for a in range(0, n, _CHUNK):  # chunks keep the temporaries in cache: this runs on every load
        b = min(a + _CHUNK, n)
        cs, ce, out = s[a:b], e[a:b], bad[a:b]
        np.greater_equal(cs, ce, out=out)
        tmp = cs | ce
        tmp &= mask
        out |= tmp.astype(bool)
        out |= ce > limit
        if follows is None:
            continue
        order = np.empty(b - a, bool)
        order[0] = a > 0 and cs[0] < e[a - 1]
        np.less(cs[1:], ce[:-1], out=order[1:])
        order &= follows[a:b]
        out |= order
    first = _first_bad(bad)
    bad_snap = np.zeros(len(off) - 1, bool)
    if first is None:
        return bad_snap, None, ""
    bad_snap[np.searchsorted(off, np.flatnonzero(bad), side="right") - 1] = True
    r = first
    k = int(np.searchsorted(off, r, side="right")) - 1
    is_head = r == 0 or bool(np.isin(r, off)) or (ordered is not None and not ordered[k])
    checks = [
        s[r] >= e[r],
        bool((s[r] | e[r]) & np.uint64(page_size - 1)),
        e[r] > np.uint64(ADDRESS_LIMIT),
        not is_head and s[r] < e[r - 1],
    ]
    return bad_snap, first, next(x for x, c in zip(_REASONS, checks) if c)


def check_regions(
    rows: np.ndarray,
    offsets: np.ndarray,
    page_size: int,
    path: str,
    first_snapshot: int = 0,
    *,
    first_row: int = 0,
    snapshot_column: np.ndarray | None = None,
    ordered: np.ndarray | None = None,
) -> None:
    """Raise on the first damaged region (or written) row of consecutive snapshots.

    Parameters
    ----------
    rows, offsets, page_size
        As for :func:`region_problems`.
    path : str
        The part file the rows come from.
    first_snapshot : int
        The snapshot number of ``offsets[0]``.
    first_row : int
        The row number of ``rows[0]`` inside the part file (for the message).
    snapshot_column : numpy.ndarray, optional
        The rows' stored ``snapshot`` column: checked against ``offsets`` (the per-snapshot
        row counts of the snapshots table), which catches shifted row counts.
    ordered : numpy.ndarray, optional
        As for :func:`region_problems` (format 2: ``False`` for snapshots stored as changes).

    Raises
    ------
    CaptureError
        Names the file, the part's row and its snapshot, and what is wrong.
    """
    off = np.asarray(offsets, np.int64)
    if snapshot_column is not None:
        # The first and last row of every snapshot must carry its number: row counts shifted
        # between snapshots move these boundaries (checking every row would cost a pass).
        got = np.asarray(snapshot_column)
        counts = np.diff(off)
        nz = np.flatnonzero(counts > 0)
        ends = np.stack([off[nz], off[nz + 1] - 1], axis=1).ravel()
        want = np.repeat(nz + first_snapshot, 2)
        last = first_snapshot + len(off) - 2
        if len(got) != off[-1] - off[0]:
            raise CaptureError(
                path,
                f"damaged part: {len(got)} rows for snapshots {first_snapshot}..{last} where the "
                f"snapshots table counts {int(off[-1] - off[0])} (region_rows/written_rows)",
            )
        if len(ends) and not np.array_equal(got[ends], want):
            k = int(ends[_first_bad(got[ends] != want)])
            raise CaptureError(
                path,
                f"damaged part: row {first_row + k} belongs to snapshot {int(got[k])}, not where "
                "the snapshots table's row counts put it (region_rows/written_rows do not match "
                "the part)",
            )
    _, i, reason = region_problems(rows, off, page_size, ordered)
    if i is not None:
        snap = first_snapshot + int(np.searchsorted(off, i, side="right")) - 1
        r = rows[i]
        raise CaptureError(
            path,
            f"damaged part: row {first_row + i} (snapshot {snap}, "
            f"{int(r['start']):#x}-{int(r['end']):#x}): {reason}",
        )


def check_vmas(
    start: np.ndarray,
    end: np.ndarray,
    table: np.ndarray,
    path: str,
    *,
    tables_in_order: bool = True,
) -> None:
    """Check VMA rows: each ``start < end``, sorted and disjoint within its table, tables
    in order (``tables_in_order``; format 2 segments store again the tables they use, in
    order of use) and numbered from 0. (Tables no snapshot uses are legal: the vmas part of
    a range whose snapshots part was never committed.)

    Raises
    ------
    CaptureError
        Names the file and the row.
    """
    t = np.asarray(table, np.int64)
    if (i := _first_bad(t < 0)) is not None:
        raise CaptureError(path, f"damaged part: row {i}: negative vma_table {int(t[i])}")
    bad = start >= end
    if len(t) > 1:
        bad[1:] |= (t[1:] == t[:-1]) & (start[1:] < end[:-1])
        if tables_in_order:
            bad[1:] |= t[1:] < t[:-1]
    if (i := _first_bad(bad)) is not None:
        raise CaptureError(
            path,
            f"damaged part: row {i} (VMA table {int(t[i])}, {int(start[i]):#x}-{int(end[i]):#x}): "
            "empty, reversed, overlapping or out of order",
        )


def damaged_snapshots(
    snapshot_column: np.ndarray,
    rows: np.ndarray,
    page_size: int,
    snapshot_ids: np.ndarray,
    row_counts: np.ndarray,
    part: _PartLike,
    ordered_ids: np.ndarray | None = None,
) -> dict[int, str]:
    """For a lenient open: which snapshots of one whole regions/written part are damaged.

    Parameters
    ----------
    snapshot_column, rows : numpy.ndarray
        The part's ``snapshot`` column and its rows (``REGION_DTYPE``).
    page_size : int
    snapshot_ids, row_counts : numpy.ndarray
        The snapshots the snapshots table holds and their row counts for this table.
    part
        The part (its ``first``, ``end`` and ``path``).
    ordered_ids : numpy.ndarray, optional
        Format 2 ``regions``: the snapshots stored whole (keyframes); the others' change rows
        are not checked for order (see :func:`region_problems`). Default: every snapshot.

    Returns
    -------
    dict
        ``{snapshot: reason}`` for every snapshot of the part whose rows are damaged or whose
        row count disagrees with the snapshots table.
    """
    ids = np.asarray(snapshot_ids, np.int64)
    inside = (ids >= part.first) & (ids < part.end)
    known, want = ids[inside], np.asarray(row_counts, np.int64)[inside]
    snap = np.asarray(snapshot_column, np.int64)
    name = os.path.basename(os.path.dirname(part.path)) + "/" + os.path.basename(part.path)
    if len(snap) > 1 and (np.diff(snap) < 0).any():
        return {int(k): f"{name}: rows out of snapshot order" for k in known}
    got = np.searchsorted(snap, known, side="right") - np.searchsorted(snap, known, side="left")
    out = {
        int(k): f"{name}: {g} rows where the snapshots table says {w}"
        for k, g, w in zip(known[got != want], got[got != want], want[got != want])
    }
    groups, starts = np.unique(snap, return_index=True)
    off = np.append(starts, len(snap))
    ordered = None if ordered_ids is None else np.isin(groups, ordered_ids)
    bad, _, _ = region_problems(rows, off, page_size, ordered)
    in_table = set(known.tolist())
    for g in np.flatnonzero(bad).tolist():  # a loop per damaged snapshot only
        k = int(groups[g])
        if k in in_table:
            _, i, reason = region_problems(
                rows[off[g] : off[g + 1]],
                off[g : g + 2] - off[g],
                page_size,
                None if ordered is None else ordered[g : g + 1],
            )
            out.setdefault(k, f"{name}: row {int(off[g]) + (i or 0)}: {reason}")
    return out
