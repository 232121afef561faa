"""``CaptureWriter``: append a growing capture to a ``NAME.pmviz`` directory, crash-safely."""

from __future__ import annotations

import errno
import os
import shutil
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..capture import TELEMETRY_FIELDS, Capture, CaptureMeta
from ..errors import CaptureError
from ..maps import Vmas
from . import format as fmt

__all__ = ["CaptureWriter", "save"]


def _rows_table(arr: np.ndarray, off: np.ndarray, a: int, b: int) -> pa.Table:
    """Rows of snapshots ``[a, b)`` (offsets are global) with their snapshot numbers."""
    lo, hi = int(off[a]), int(off[b])
    rows = arr[lo:hi]
    snap = np.repeat(np.arange(a, b, dtype=np.int64), np.diff(off[a : b + 1]))
    return pa.table(
        [
            pa.array(snap),
            pa.array(np.ascontiguousarray(rows["start"])),
            pa.array(np.ascontiguousarray(rows["end"])),
            pa.array(rows["categories"].astype(np.uint16)),
        ],
        schema=fmt.REGIONS_SCHEMA,
    )


def _vmas_table(tables: list[tuple[int, Vmas]]) -> pa.Table:
    if tables:
        arr = np.concatenate([v.array for _, v in tables])
        paths = [str(p) for _, v in tables for p in v.paths]
        ids = np.repeat([t for t, _ in tables], [len(v) for _, v in tables]).astype(np.int32)
    else:
        arr, paths, ids = Vmas().array, [], np.empty(0, np.int32)
    cols: dict[str, Any] = {"vma_table": ids}
    for name in ("start", "end", "offset", "inode", "dev_major", "dev_minor", "kind"):
        cols[name] = np.ascontiguousarray(arr[name])
    cols["perms"] = arr["perms"].astype(str)
    cols["path"] = paths
    return pa.table({f.name: cols[f.name] for f in fmt.VMAS_SCHEMA}, schema=fmt.VMAS_SCHEMA)


def _snapshots_table(cap: Capture, a: int, b: int) -> pa.Table:
    tel = cap.telemetry
    wo = cap.written_offsets
    return pa.table(
        {
            "snapshot": np.arange(a, b, dtype=np.int64),
            "time_ns": cap.time_ns[a:b],
            "vma_table": cap.vma_index[a:b],
            "region_rows": np.diff(cap.region_offsets[a : b + 1]),
            "written_rows": pa.nulls(b - a, pa.int64()) if wo is None else np.diff(wo[a : b + 1]),
            **{k: tel[k][a:b] for k in TELEMETRY_FIELDS},
        },
        schema=fmt.SNAPSHOTS_SCHEMA,
    )


class CaptureWriter:
    """Writes the snapshots of a growing :class:`~pmviz.capture.Capture` as Parquet parts.

    Call :meth:`flush` with the whole capture so far (a view; only new snapshots are
    written) at least once a second, and :meth:`close` at the end. Every part is written to a
    temporary file, fsynced and renamed, so killing the process at any moment loses only what
    was not yet flushed. Every ``merge_every`` flushes the small parts are merged into one part
    covering their union (up to ``segment_rows`` region rows per merged part).

    Parameters
    ----------
    path : str
        The capture directory to create (``NAME.pmviz``).
    meta : CaptureMeta
    has_written : bool
        Whether snapshots carry written sets.
    overwrite : bool
        Replace an existing capture at ``path`` (never a directory that is not a capture).

    Raises
    ------
    CaptureError
        ``path`` exists, or cannot be created.
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
        reserve_bytes: int = fmt.RESERVE_BYTES,
    ) -> None:
        self.path = os.fspath(path)
        self.meta = meta
        self.has_written = has_written
        self.merge_every = merge_every
        self.segment_rows = segment_rows
        self.flushed = 0  # snapshots on disk
        self._segment_start = 0
        self._small: list[tuple[int, int]] = []  # unmerged ranges since _segment_start
        self._merged_end = 0  # end of the merged part of the current segment (0 = none)
        self._first_use: dict[int, int] = {}  # VMA table -> first snapshot using it
        self._prepare_directory(overwrite, reserve_bytes)
        self.write_meta(meta, complete=False)

    # -- directory ----------------------------------------------------------------------------
    def _prepare_directory(self, overwrite: bool, reserve_bytes: int) -> None:
        if os.path.exists(self.path):
            if not overwrite:
                raise CaptureError(
                    self.path,
                    "already exists (pass overwrite=True, or --overwrite to the CLI, to replace it)",
                )
            if not os.path.exists(os.path.join(self.path, fmt.META_FILE)):
                raise CaptureError(
                    self.path, "exists and is not a pmviz capture; refusing to overwrite it"
                )
            shutil.rmtree(self.path)
        try:
            os.makedirs(self.path)
            for table in fmt.TABLES:
                if table != "written" or self.has_written:
                    os.mkdir(os.path.join(self.path, table))
            if reserve_bytes:
                with open(os.path.join(self.path, fmt.RESERVE_FILE), "wb") as f:
                    os.posix_fallocate(f.fileno(), 0, reserve_bytes)
        except OSError as err:
            raise _write_error(self.path, err) from err

    def write_meta(self, meta: CaptureMeta, *, complete: bool) -> None:
        """Atomically (re)write ``capture.json``."""
        self.meta = meta
        path = os.path.join(self.path, fmt.META_FILE)
        try:
            fmt.write_atomic(path, fmt.encode_meta(meta.as_dict(), complete=complete))
        except OSError as err:
            raise _write_error(path, err) from err

    # -- parts --------------------------------------------------------------------------------
    def _write_part(self, table: str, first: int, end: int, data: pa.Table) -> None:
        d = os.path.join(self.path, table)
        name = fmt.part_name(first, end)
        tmp = os.path.join(d, f".tmp-{name}")
        data = data.replace_schema_metadata(
            {
                "pmviz.format_version": str(fmt.FORMAT_VERSION),
                "pmviz.table": table,
                "pmviz.snapshots": f"{first}-{end}",
            }
        )
        try:
            with open(tmp, "wb") as f:
                pq.write_table(data, f, row_group_size=fmt.ROW_GROUP_ROWS, **fmt.PARQUET_OPTIONS)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, os.path.join(d, name))
            fmt.fsync_dir(d)
        except OSError as err:
            fmt._unlink_quietly(tmp)
            raise _write_error(os.path.join(d, name), err) from err

    def _write_range(self, cap: Capture, a: int, b: int) -> None:
        """Write every table's part for snapshots ``[a, b)``, ``snapshots`` last (the commit)."""
        new = [t for t, s in self._first_use.items() if a <= s < b]
        if new:
            tables = cap.vma_tables
            self._write_part("vmas", a, b, _vmas_table([(t, tables[t]) for t in sorted(new)]))
        if self.has_written:
            if cap.written is None or cap.written_offsets is None:
                raise ValueError("the writer expects written sets but the capture has none")
            self._write_part("written", a, b, _rows_table(cap.written, cap.written_offsets, a, b))
        self._write_part("regions", a, b, _rows_table(cap.regions, cap.region_offsets, a, b))
        self._write_part("snapshots", a, b, _snapshots_table(cap, a, b))

    def _remove_part(self, table: str, first: int, end: int) -> None:
        fmt._unlink_quietly(os.path.join(self.path, table, fmt.part_name(first, end)))

    def flush(self, cap: Capture) -> int:
        """Write the snapshots of ``cap`` not yet on disk; returns how many are on disk."""
        a, b = self.flushed, cap.n_snapshots
        if b <= a:
            return a
        used, first = np.unique(cap.vma_index[a:b], return_index=True)
        for t, s in zip(used.tolist(), first.tolist()):
            self._first_use.setdefault(t, a + s)
        self._write_range(cap, a, b)
        self.flushed = b
        self._small.append((a, b))
        if len(self._small) >= self.merge_every:
            self.merge(cap)
        return b

    def merge(self, cap: Capture) -> None:
        """Replace the current segment's parts by one part covering them all."""
        if not self._small or (len(self._small) == 1 and not self._merged_end):
            return
        s, b = self._segment_start, self.flushed
        self._write_range(cap, s, b)
        # The merged part now supersedes these; readers already ignore them (format.py).
        for table in reversed(fmt.TABLES):
            for x, y in self._small + ([(s, self._merged_end)] if self._merged_end else []):
                self._remove_part(table, x, y)
        self._small = []
        self._merged_end = b
        if int(cap.region_offsets[b] - cap.region_offsets[s]) >= self.segment_rows:
            self._segment_start, self._merged_end = b, 0

    def close(self, cap: Capture, meta: CaptureMeta) -> None:
        """Flush, merge, and write the final metadata (``complete: true``)."""
        self.flush(cap)
        self.merge(cap)
        self.finish(meta)

    def finish(self, meta: CaptureMeta) -> None:
        """Write the final metadata, using the reserved space if the disk is full."""
        reserve = os.path.join(self.path, fmt.RESERVE_FILE)
        try:
            self.write_meta(meta, complete=True)
        except CaptureError:
            fmt._unlink_quietly(reserve)
            self.write_meta(meta, complete=True)
        fmt._unlink_quietly(reserve)


def _write_error(path: str, err: OSError) -> CaptureError:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return CaptureError(
            path, "disk full (ENOSPC): recording stopped; what was written so far is readable"
        )
    return CaptureError(path, f"cannot write: {os.strerror(err.errno or 0)} (errno {err.errno})")


def save(cap: Capture, path: str, *, overwrite: bool = False) -> str:
    """Write a whole in-memory capture as a ``NAME.pmviz`` directory; returns the path.

    Parameters
    ----------
    cap : Capture
    path : str
        Directory to create; by convention it ends in ``.pmviz``.
    overwrite : bool
        Replace an existing capture there.

    Raises
    ------
    CaptureError
        ``path`` exists (without ``overwrite``) or the disk is full.
    """
    w = CaptureWriter(path, cap.meta, has_written=cap.has_written, overwrite=overwrite)
    w.close(cap, cap.meta)
    return w.path
