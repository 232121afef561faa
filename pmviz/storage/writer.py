"""``CaptureWriter``: append a growing capture to a ``NAME.pmviz`` directory, crash-safely."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..capture import TELEMETRY_FIELDS, Capture, CaptureMeta, _Encoder, _offsets
from ..errors import CaptureError
from ..maps import Vmas
from ..sidetables import check_name, side_columns
from . import format as fmt

__all__ = ["CaptureWriter", "save"]


def _arr(values: Any) -> pa.Array:
    """A numeric numpy array as Arrow, from its buffer (``pa.array`` on numpy input can import
    pandas, 0.25 s on the first flush of a recording).
    """
    a = np.ascontiguousarray(values)
    if a.dtype == bool:
        bits = np.packbits(a, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(a), [None, pa.py_buffer(bits)])
    return pa.Array.from_buffers(pa.from_numpy_dtype(a.dtype), len(a), [None, pa.py_buffer(a)])


def _bytes_arr(items: list[bytes], type_: pa.DataType) -> pa.Array:
    """Strings or binaries as Arrow from offsets and data (no ``pa.array``: see ``_arr``)."""
    off = np.zeros(len(items) + 1, np.int32)
    np.cumsum([len(x) for x in items], out=off[1:])
    data = b"".join(items)
    return pa.Array.from_buffers(
        type_, len(items), [None, pa.py_buffer(off), pa.py_buffer(data or b"\0")]
    )


def _rows_table(rows: np.ndarray, counts: np.ndarray, first: int, kind: Any = None) -> pa.Table:
    """Rows of consecutive snapshots from ``first`` (``counts`` rows each), numbered."""
    snap = np.repeat(np.arange(first, first + len(counts), dtype=np.int64), counts)
    cols = [
        _arr(snap),
        _arr(rows["start"]),
        _arr(rows["end"]),
        _arr(rows["categories"].astype(np.uint16)),
    ]
    if kind is None:
        return pa.table(cols, schema=fmt.WRITTEN_SCHEMA)
    return pa.table(cols + [_arr(np.asarray(kind, np.int8))], schema=fmt.REGIONS_SCHEMA)


def _side_table(rows: np.ndarray, counts: np.ndarray, first: int, schema: pa.Schema) -> pa.Table:
    """Side-table rows of consecutive snapshots from ``first`` (``counts`` rows each)."""
    snap = np.repeat(np.arange(first, first + len(counts), dtype=np.int64), counts)
    cols = [_arr(snap)] + [_arr(rows[f.name]) for f in list(schema)[1:]]
    return pa.table(cols, schema=schema)


def _vmas_table(tables: list[tuple[int, Vmas]]) -> pa.Table:
    if tables:
        arr = np.concatenate([v.array for _, v in tables])
        # Linux paths are bytes; maps.Vmas.parse keeps undecodable bytes as surrogates
        paths = [str(p).encode("utf-8", "surrogateescape") for _, v in tables for p in v.paths]
        ids = np.repeat([t for t, _ in tables], [len(v) for _, v in tables]).astype(np.int32)
    else:
        arr, paths, ids = Vmas().array, [], np.empty(0, np.int32)
    # pa.array per column: a dict of numpy string arrays would make pyarrow import pandas
    cols: dict[str, Any] = {"vma_table": _arr(ids.astype(np.int32))}
    for name in ("start", "end", "offset", "inode", "dev_major", "dev_minor", "kind"):
        cols[name] = _arr(arr[name])
    cols["perms"] = _bytes_arr(arr["perms"].tolist(), pa.string())
    cols["path"] = _bytes_arr(paths, pa.binary())
    return pa.table([cols[f.name] for f in fmt.VMAS_SCHEMA], schema=fmt.VMAS_SCHEMA)


def _snapshots_table(cap: Capture, a: int, b: int, first: int) -> pa.Table:
    """Snapshots at positions ``[a, b)`` of ``cap``, numbered from ``first + a``."""
    tel = cap.telemetry
    wo = cap.written_offsets
    cols = {
        "snapshot": _arr(np.arange(first + a, first + b, dtype=np.int64)),
        "time_ns": _arr(cap.time_ns[a:b]),
        "vma_table": _arr(cap.vma_index[a:b].astype(np.int32)),
        "region_rows": _arr(cap._n_rows[a:b].astype(np.int64)),
        "written_rows": pa.nulls(b - a, pa.int64())
        if wo is None
        else _arr(np.diff(wo[a : b + 1]).astype(np.int64)),
        **{k: _arr(tel[k][a:b].astype(np.int64)) for k in TELEMETRY_FIELDS},
        "keyframe": _arr(cap._key[a:b]),
        "change_rows": _arr(np.diff(cap._coff[a : b + 1]).astype(np.int64)),
    }
    return pa.table([cols[f.name] for f in fmt.SNAPSHOTS_SCHEMA], schema=fmt.SNAPSHOTS_SCHEMA)


def _is_half_created(path: str, tables: tuple[str, ...] = fmt.TABLES) -> bool:
    """A directory holding nothing but what a capture writer creates first (a failed start)."""
    allowed = {*tables, fmt.RESERVE_FILE, fmt.META_FILE, f".tmp-{fmt.META_FILE}"}
    try:
        names = os.listdir(path)
    except OSError:
        return False
    if not names:
        return False
    for name in names:
        if name not in allowed:
            return False
        full = os.path.join(path, name)
        if name in tables and (not os.path.isdir(full) or os.listdir(full)):
            return False
    return True


class CaptureWriter:
    """Writes the snapshots of a growing :class:`~pmviz.capture.Capture` as Parquet parts.

    Call :meth:`flush` with the snapshots not yet written (or the whole capture so far) at
    least once a second, and :meth:`close` at the end. Every part is written to a temporary
    file, fsynced and renamed, so killing the process at any moment loses only what was not yet
    flushed. Rows are written in the capture's stored form (keyframes + changes).

    Parts are grouped in **segments**: a segment starts at a keyframe, so it is
    self-contained (its VMA tables are stored again in it). Every ``merge_every`` flushes the
    current segment's parts are merged into one, reading them back from disk (never from
    memory); once a segment holds ``segment_rows`` stored rows, ``segment_snapshots``
    snapshots (or ``max_size / 4`` bytes) it
    ends at the next keyframe and ``on_segment_full`` is called so the producer makes one
    soon. With ``max_size`` the oldest segments are deleted while the parts exceed it
    (``extra.dropped_snapshots``, ``extra.first_snapshot``).

    Parameters
    ----------
    path : str
        The capture directory to create (``NAME.pmviz``).
    meta : CaptureMeta
    has_written : bool
        Whether snapshots carry written sets.
    overwrite : bool
        Replace an existing capture at ``path`` (never a directory that is not a capture;
        a half-created one left by a failed start is fine).
    max_size : int, optional
        Bytes of parts to keep at most (a ring of segments); the newest segment is never
        dropped.
    side_tables : mapping of str to numpy.dtype, optional
        The per-snapshot side tables the captures given to :meth:`flush` carry
        (``pmviz.sidetables``): each is stored as a part directory of its own and declared
        in ``capture.json``.

    Raises
    ------
    CaptureError
        ``path`` exists, or cannot be created (nothing is left behind then).
    """

    def __init__(
        self,
        path: str,
        meta: CaptureMeta,
        *,
        has_written: bool,
        overwrite: bool = False,
        merge_every: int = 64,
        segment_rows: int = 1 << 24,
        segment_snapshots: int = 1 << 15,
        max_size: int | None = None,
        reserve_bytes: int = fmt.RESERVE_BYTES,
        on_segment_full: Callable[[], None] | None = None,
        side_tables: Mapping[str, np.dtype] | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.meta = meta
        self.has_written = has_written
        self.side_tables = {check_name(k): np.dtype(v) for k, v in (side_tables or {}).items()}
        for v in self.side_tables.values():
            side_columns(v)  # (a row type of numbers only: checked by the data model)
        self._tables = fmt.table_order(list(self.side_tables))
        self._schemas = {
            **fmt.SCHEMAS,
            **{k: fmt.side_schema(v) for k, v in self.side_tables.items()},
        }
        self.merge_every = merge_every
        self.segment_rows = segment_rows
        self.segment_snapshots = segment_snapshots
        if max_size is not None and (isinstance(max_size, bool) or int(max_size) <= 0):
            raise ValueError(f"max_size must be a positive number of bytes, got {max_size!r}")
        self.max_size = None if max_size is None else int(max_size)
        self.segment_bytes = None if max_size is None else max(1, int(max_size) // 4)
        self.on_segment_full = on_segment_full
        self.flushed = 0  # snapshots [first_kept, flushed) are on disk
        self.first_kept = 0
        self.dropped = 0
        self._seg_start = 0
        self._merged_end = 0  # parts of the current segment before this are merged
        self._seg_rows = 0
        self._seg_bytes = 0
        self._flushes = 0  # since the last merge
        self._closed: list[tuple[int, int, int]] = []  # (first, end, bytes) of whole segments
        self._seg_tables: set[int] = set()  # VMA tables stored in the current segment
        self._marks_written = 0
        self._full_signalled = False
        created = not os.path.exists(self.path)
        try:
            self._prepare_directory(overwrite, reserve_bytes)
            self.write_meta(meta, complete=False)
        except BaseException:
            # a failed start leaves nothing behind: no skeleton blocking a retry
            if created or overwrite:
                shutil.rmtree(self.path, ignore_errors=True)
            raise

    # -- directory ----------------------------------------------------------------------------
    def _prepare_directory(self, overwrite: bool, reserve_bytes: int) -> None:
        if os.path.lexists(self.path):
            if not overwrite:
                raise CaptureError(
                    self.path,
                    "already exists (pass overwrite=True, or --overwrite to the CLI, to replace it)",
                )
            if not os.path.isdir(self.path) or os.path.islink(self.path):
                raise CaptureError(
                    self.path, "exists and is not a pmviz capture; refusing to overwrite it"
                )
            if not os.path.exists(os.path.join(self.path, fmt.META_FILE)) and not _is_half_created(
                self.path, self._tables
            ):
                raise CaptureError(
                    self.path, "exists and is not a pmviz capture; refusing to overwrite it"
                )
            try:
                shutil.rmtree(self.path)
            except OSError as err:
                raise _write_error(self.path, err) from err
        try:
            os.makedirs(self.path)
            for table in self._tables:
                if table != "written" or self.has_written:
                    os.mkdir(os.path.join(self.path, table))
            if reserve_bytes:
                with open(os.path.join(self.path, fmt.RESERVE_FILE), "wb") as f:
                    os.posix_fallocate(f.fileno(), 0, reserve_bytes)
        except OSError as err:
            raise _write_error(self.path, err) from err

    def _full_meta(self, meta: CaptureMeta) -> CaptureMeta:
        if self.max_size is None and not self.dropped:
            return meta
        extra = dict(meta.extra)
        extra["max_size"] = self.max_size
        extra["dropped_snapshots"] = self.dropped
        extra["first_snapshot"] = self.first_kept
        return meta.replace(extra=extra)

    def write_meta(self, meta: CaptureMeta, *, complete: bool) -> None:
        """Atomically (re)write ``capture.json``."""
        self.meta = meta
        path = os.path.join(self.path, fmt.META_FILE)
        doc = self._full_meta(meta).as_dict()
        if self.side_tables:
            doc[fmt.SIDE_KEY] = {k: side_columns(v) for k, v in self.side_tables.items()}
        try:
            fmt.write_atomic(path, fmt.encode_meta(doc, complete=complete))
        except OSError as err:
            raise _write_error(path, err) from err

    # -- parts --------------------------------------------------------------------------------
    def _part_path(self, table: str, first: int, end: int) -> str:
        return os.path.join(self.path, table, fmt.part_name(first, end))

    def _schema_meta(self, table: str, first: int, end: int) -> dict[str, str]:
        return {
            "pmviz.format_version": str(fmt.FORMAT_VERSION),
            "pmviz.table": table,
            "pmviz.snapshots": f"{first}-{end}",
        }

    def _commit(self, tmp: str, final: str) -> int:
        os.replace(tmp, final)
        fmt.fsync_dir(os.path.dirname(final))
        return os.path.getsize(final)

    def _write_part(self, table: str, first: int, end: int, data: pa.Table) -> int:
        final = self._part_path(table, first, end)
        tmp = os.path.join(os.path.dirname(final), f".tmp-{os.path.basename(final)}")
        data = data.replace_schema_metadata(self._schema_meta(table, first, end))
        try:
            with open(tmp, "wb") as f:
                pq.write_table(data, f, row_group_size=fmt.ROW_GROUP_ROWS, **fmt.PARQUET_OPTIONS)
                f.flush()
                os.fsync(f.fileno())
            return self._commit(tmp, final)
        except OSError as err:
            fmt._unlink_quietly(tmp)
            raise _write_error(final, err) from err

    def _write_range(self, cap: Capture, first: int, a: int, b: int) -> None:
        """Every table's part for snapshots ``[a, b)`` (ids), ``snapshots`` last (the commit).

        ``cap``'s position ``p`` is snapshot ``first + p``.
        """
        pa_, pb = a - first, b - first
        size = 0
        used = np.unique(cap.vma_index[pa_:pb]).tolist()
        new = [t for t in used if t not in self._seg_tables]
        if new:
            tables = cap.vma_tables
            size += self._write_part("vmas", a, b, _vmas_table([(t, tables[t]) for t in new]))
            self._seg_tables.update(new)
        marks = cap.marks[self._marks_written :]
        if marks:
            t = pa.table(
                [
                    _arr(np.array([m.time_ns for m in marks], np.int64)),
                    _bytes_arr(
                        [m.label.encode("utf-8", "surrogateescape") for m in marks], pa.string()
                    ),
                ],
                schema=fmt.MARKS_SCHEMA,
            )
            size += self._write_part("marks", a, b, t)
            self._marks_written += len(marks)
        if self.has_written:
            if cap.written_offsets is None:
                raise ValueError("the writer expects written sets but the capture has none")
            w = cap._written_rows(pa_, pb)
            size += self._write_part(
                "written", a, b, _rows_table(w, np.diff(cap.written_offsets[pa_ : pb + 1]), a)
            )
        for name in self.side_tables:
            # a part for every range, empty or not: coverage says the range was recorded
            off = cap.side_offsets(name)
            rows = cap._side_rows(name, pa_, pb)
            t = _side_table(rows, np.diff(off[pa_ : pb + 1]), a, self._schemas[name])
            size += self._write_part(name, a, b, t)
        rows, kind = cap._stored(pa_, pb)
        crows = np.diff(cap._coff[pa_ : pb + 1])
        size += self._write_part("regions", a, b, _rows_table(rows, crows, a, kind))
        size += self._write_part("snapshots", a, b, _snapshots_table(cap, pa_, pb, first))
        self._seg_rows += len(rows)
        self._seg_bytes += size

    def flush(self, cap: Capture, first: int = 0) -> int:
        """Write the snapshots of ``cap`` not yet on disk; returns the end of those on disk.

        ``cap``'s first snapshot is snapshot number ``first`` (a recorder passes only the
        snapshots it still holds in memory).
        """
        a, b = max(self.flushed, first), first + cap.n_snapshots
        if b <= a:
            return self.flushed
        if a == first and a > self.flushed:
            raise ValueError(f"snapshots {self.flushed}..{a - 1} were never given to the writer")
        key = cap._key
        coff = cap._coff
        while a < b:
            cut = b
            if self._segment_full():
                ks = np.flatnonzero(key[a - first : b - first])
                if len(ks) and ks[0] == 0 and a > self._seg_start:
                    self._close_segment(a)
                    continue
                if len(ks):
                    cut = a + int(ks[0])
            # bounded memory per part: a few million stored rows (at least one snapshot)
            limit = int(np.searchsorted(coff, coff[a - first] + (1 << 22), side="right")) - 1
            cut = min(cut, max(limit + first, a + 1))
            self._write_range(cap, first, a, cut)
            self.flushed = a = cut
        self._flushes += 1
        if self._segment_full() and not self._full_signalled:
            self._full_signalled = True
            if self.on_segment_full is not None:
                self.on_segment_full()
        if self._flushes >= self.merge_every:
            self.merge(whole=False)
        return self.flushed

    def _segment_full(self) -> bool:
        # Snapshots bound it too: a merge rewrites the segment's snapshots table, so a static
        # process recorded for hours must not grow one segment forever.
        return (
            self._seg_rows >= self.segment_rows
            or self.flushed - self._seg_start >= self.segment_snapshots
        ) or (self.segment_bytes is not None and self._seg_bytes >= self.segment_bytes)

    def _close_segment(self, at: int) -> None:
        """The current segment ends before snapshot ``at`` (a keyframe); merge, maybe drop."""
        self.merge()
        self._closed.append((self._seg_start, at, self._seg_bytes))
        self._seg_start, self._seg_rows, self._seg_bytes = at, 0, 0
        self._merged_end = at
        self._seg_tables = set()
        self._full_signalled = False
        self._enforce_max_size()

    def _enforce_max_size(self) -> None:
        if self.max_size is None:
            return
        while self._closed and sum(c[2] for c in self._closed) + self._seg_bytes > self.max_size:
            s, e, _ = self._closed.pop(0)
            # uncommit first (snapshots), then the rows: a reader sees the segment or nothing
            for table in reversed(self._tables):
                for p in fmt.list_parts(self.path, table)[0]:
                    if s <= p.first and p.end <= e:
                        fmt._unlink_quietly(p.path)
            self.first_kept, self.dropped = e, self.dropped + (e - s)
            self.write_meta(self.meta, complete=False)

    def merge(self, *, whole: bool = True) -> None:
        """Replace parts by one part per table, streamed from disk.

        ``whole``: every part of the current segment (at its end, and at close); otherwise
        only the small parts flushed since the last merge, so that a periodic merge costs what
        was flushed since, not the whole segment again. The merged part is written (and
        fsynced) before the parts it replaces are deleted; readers ignore a part whose range
        lies inside another's, so a reader listing the directory at any moment sees every
        committed snapshot once.
        """
        self._flushes = 0
        s, e = (self._seg_start if whole else self._merged_end), self.flushed
        if e > s:
            replaced: list[fmt.Part] = []
            for table in self._tables:  # commit order: snapshots last
                parts = [
                    p for p in fmt.list_parts(self.path, table)[0] if s <= p.first and p.end <= e
                ]
                replaced += [p for p in parts if (p.first, p.end) != (s, e)]
                if parts and not (len(parts) == 1 and (parts[0].first, parts[0].end) == (s, e)):
                    self._merge_parts(table, parts, s, e)
            for table in reversed(self._tables):
                for p in replaced:
                    if p.table == table:
                        fmt._unlink_quietly(p.path)
            self._merged_end = e
        self._seg_bytes = sum(
            os.path.getsize(p.path)
            for t in self._tables
            for p in fmt.list_parts(self.path, t)[0]
            if self._seg_start <= p.first
        )
        # Arrow's allocator keeps freed pages for reuse; a long recording must not keep the
        # high-water mark of every merge
        pa.default_memory_pool().release_unused()

    def _merge_parts(self, table: str, parts: list[fmt.Part], s: int, e: int) -> int:
        """Stream ``parts`` into one part ``[s, e)``: memory holds about one row group."""
        final = self._part_path(table, s, e)
        tmp = os.path.join(os.path.dirname(final), f".tmp-{os.path.basename(final)}")
        schema = self._schemas[table].with_metadata(self._schema_meta(table, s, e))
        rg = fmt.ROW_GROUP_ROWS
        try:
            with open(tmp, "wb") as f:
                with pq.ParquetWriter(f, schema, **fmt.PARQUET_OPTIONS) as w:
                    buf: list[pa.RecordBatch] = []
                    n = 0
                    for p in parts:
                        with pq.ParquetFile(p.path) as pf:
                            for batch in pf.iter_batches(batch_size=rg):
                                buf.append(batch)
                                n += batch.num_rows
                                while n >= rg:
                                    t = pa.Table.from_batches(buf, schema=self._schemas[table])
                                    w.write_table(t.slice(0, rg), row_group_size=rg)
                                    rest = t.slice(rg)
                                    buf, n = rest.to_batches(), rest.num_rows
                    if n or not parts:
                        t = pa.Table.from_batches(buf, schema=self._schemas[table])
                        w.write_table(t, row_group_size=rg)
                f.flush()
                os.fsync(f.fileno())
            return self._commit(tmp, final)
        except OSError as err:
            fmt._unlink_quietly(tmp)
            raise _write_error(final, err) from err

    def close(self, cap: Capture, meta: CaptureMeta, first: int = 0) -> None:
        """Flush, merge, and write the final metadata (``complete: true``)."""
        self.flush(cap, first)
        self.merge()
        self.finish(meta)

    def finish(self, meta: CaptureMeta, *, complete: bool = True) -> None:
        """Write the final metadata, using the reserved space if the disk is full.

        ``complete`` says every snapshot taken is on disk and the metadata is final; a
        recording that could not write everything passes ``False`` (its ``end_reason`` says why).
        """
        reserve = os.path.join(self.path, fmt.RESERVE_FILE)
        try:
            self.write_meta(meta, complete=complete)
        except CaptureError:
            fmt._unlink_quietly(reserve)
            self.write_meta(meta, complete=complete)
        fmt._unlink_quietly(reserve)


def _write_error(path: str, err: OSError) -> CaptureError:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return CaptureError(
            path, "disk full (ENOSPC): recording stopped; what was written so far is readable"
        )
    return CaptureError(path, f"cannot write: {os.strerror(err.errno or 0)} (errno {err.errno})")


def save(cap: Capture, path: str, *, overwrite: bool = False) -> str:
    """Write a whole capture as a ``NAME.pmviz`` directory; returns the path.

    Parameters
    ----------
    cap : Capture
        In memory or opened from disk (its stored rows are read chunk by chunk).
    path : str
        Directory to create; by convention it ends in ``.pmviz``.
    overwrite : bool
        Replace an existing capture there.

    Raises
    ------
    CaptureError
        ``path`` exists (without ``overwrite``) or the disk is full.
    """
    w = CaptureWriter(
        path,
        cap.meta,
        has_written=cap.has_written,
        overwrite=overwrite,
        side_tables=cap.side_tables,
    )
    n = cap.n_snapshots
    if n > 1 and len(cap.keyframes) == n:
        # stored in full (a format-1 capture): store it as change, chunk by chunk
        enc = _Encoder()
        for a, rows, counts in cap._decode_chunks(0, n, 1 << 22):
            b = a + len(counts)
            off = _offsets(counts)
            for j in range(len(counts)):
                enc.add(rows[off[j] : off[j + 1]])
            wo = cap.written_offsets
            part = Capture._from_encoded(
                cap.meta,
                cap.time_ns[a:b],
                enc.take(),
                written=None if wo is None else cap._written_rows(a, b),
                written_offsets=None if wo is None else wo[a : b + 1] - wo[a],
                vma_tables=cap.vma_tables,
                vma_index=cap.vma_index[a:b],
                telemetry={k: v[a:b] for k, v in cap.telemetry.items()},
                marks=cap.marks,
                partial=True,
                side_tables=cap._side_subset(np.arange(a, b)) if cap.side_tables else None,
            )
            w.flush(part, first=a)
    w.close(cap, cap.meta)
    return w.path
