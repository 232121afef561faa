"""``open()``: a capture directory as a lazily loaded :class:`~pmviz.capture.Capture`.

Opening reads ``capture.json``, the Parquet footers of every part, the small ``snapshots``
table (one row per snapshot) and the ``snapshot`` column of side-table parts (their rows per
snapshot). Region rows load on demand: the per-snapshot row counts give the
exact row range of any snapshot range, and the footers' row-group sizes say which row groups
hold it, so a time window reads only those row groups (plus those of the keyframe it starts
from). Format versions 1 (every snapshot in full) and 2 (keyframes + changes) are read.

A capture that is being recorded can be opened at any time: tables are listed in the reverse of
the writer's commit order (``snapshots`` first), so every committed snapshot's rows are still
listed; a part deleted after listing (merged into a bigger one by the writer) is found again by
re-listing its table.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .._kernel.pagemap_scan import REGION_DTYPE
from ..capture import TELEMETRY_FIELDS, Capture, CaptureMeta, Mark, _offsets
from ..errors import CaptureError, PmvizWarning
from ..maps import VMA_DTYPE, Vmas
from . import format as fmt
from . import validate

__all__ = ["open", "StoredCapture"]

_NO_ROWS = np.empty(0, REGION_DTYPE)


class _Gone(CaptureError):
    """A part listed a moment ago no longer exists (a concurrent writer merged or dropped it)."""


class _PartFile:
    """An opened, footer-checked Parquet part plus its row-group boundaries.

    Opening a part is where per-part checks run: a regular file, a sane footer (from its raw
    bytes, nothing deserialized before), then the schema.
    """

    def __init__(
        self, part: fmt.Part, version: int = fmt.FORMAT_VERSION, schema: pa.Schema | None = None
    ) -> None:
        self.part = part
        try:
            validate.check_part_file(part.path)
            validate.check_footer(part.path)  # raw bytes: nothing deserialized before this
        except CaptureError as err:
            if not os.path.lexists(part.path):
                raise _Gone(part.path, "the part vanished (merged by the recorder?)") from err
            raise
        try:
            with pq.ParquetFile(part.path) as f:
                md = f.metadata
                self.schema = f.schema_arrow
        except FileNotFoundError as err:
            raise _Gone(part.path, "the part vanished (merged by the recorder?)") from err
        except (OSError, pa.ArrowException) as err:
            raise CaptureError(part.path, f"damaged part (truncated or corrupt): {err}") from err
        self.metadata = md
        want = schema if schema is not None else fmt.schemas(version).get(part.table)
        if want is None or not self.schema.remove_metadata().equals(want):
            raise CaptureError(part.path, f"not a {part.table} part of format {version}")
        self.num_rows = md.num_rows
        self._snapshots: np.ndarray | None = None
        self.rg_offsets = _offsets([md.row_group(i).num_rows for i in range(md.num_row_groups)])

    def read_rows(self, lo: int, hi: int, columns: list[str]) -> pa.Table:
        """Rows ``[lo, hi)`` of this part, reading only the row groups that hold them."""
        g0 = int(np.searchsorted(self.rg_offsets, lo, side="right")) - 1
        g1 = int(np.searchsorted(self.rg_offsets, hi, side="left"))
        if hi <= lo:
            return _empty(self.schema).select(columns)
        try:
            with self._open() as f:
                t = f.read_row_groups(list(range(g0, g1)), columns=columns)
        except FileNotFoundError as err:
            raise _Gone(self.part.path, "the part vanished (merged by the recorder?)") from err
        except (OSError, pa.ArrowException) as err:
            raise CaptureError(self.part.path, f"damaged part (corrupt data): {err}") from err
        return t.slice(lo - int(self.rg_offsets[g0]), hi - lo)

    def iter_rows(self, lo: int, hi: int, columns: list[str], groups: int = 4):  # noqa: ANN201
        """Rows ``[lo, hi)`` as tables of at most ``groups`` row groups each (bounded memory)."""
        g0 = int(np.searchsorted(self.rg_offsets, lo, side="right")) - 1
        g1 = int(np.searchsorted(self.rg_offsets, hi, side="left"))
        for g in range(max(g0, 0), g1, groups):
            a = max(lo, int(self.rg_offsets[g]))
            b = min(hi, int(self.rg_offsets[min(g + groups, g1)]))
            if b > a:
                yield self.read_rows(a, b, columns)

    def _open(self) -> pq.ParquetFile:
        # Reopened per read (footer reused) so an open capture holds no file descriptors.
        return pq.ParquetFile(
            self.part.path, metadata=self.metadata, page_checksum_verification=True
        )

    def read_row_group(self, g: int) -> pa.Table:
        try:
            with self._open() as f:
                return f.read_row_group(g)
        except FileNotFoundError as err:
            raise _Gone(self.part.path, "the part vanished (merged by the recorder?)") from err
        except (OSError, pa.ArrowException) as err:
            raise CaptureError(self.part.path, f"damaged part (corrupt data): {err}") from err

    def snapshot_column(self) -> np.ndarray:
        if self._snapshots is None:
            self._snapshots = _column(self.read_rows(0, self.num_rows, ["snapshot"]), "snapshot")
        return self._snapshots

    def read(self) -> pa.Table:
        return self.read_rows(0, self.num_rows, self.schema.names)


def _empty(schema: pa.Schema) -> pa.Table:
    # Schema.empty_table() and pa.array([]) import pandas; this does not.
    return pa.Table.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema)


def _np(a: pa.Array) -> np.ndarray:
    """An integer Arrow array as numpy, nulls as 0, from its buffers: zero-copy when there are
    no nulls (``to_numpy`` and ``fill_null`` would import pandas, costing ~0.4 s per open).
    """
    if pa.types.is_boolean(a.type):  # bit-packed; nulls read as False
        validity, data = a.buffers()[:2]
        if not len(a) or data is None:
            return np.zeros(len(a), bool)
        bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
        values = bits[a.offset : a.offset + len(a)].astype(bool)
        if a.null_count and validity is not None:
            v = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")
            values &= v[a.offset : a.offset + len(a)].astype(bool)
        return values
    dtype = np.dtype(f"{'i' if pa.types.is_signed_integer(a.type) else 'u'}{a.type.bit_width // 8}")
    validity, data = a.buffers()[:2]
    if not len(a) or data is None or a.null_count == len(a):
        return np.zeros(len(a), dtype)
    values = np.frombuffer(data, dtype, count=len(a), offset=a.offset * dtype.itemsize)
    if not a.null_count:
        return values
    bits = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")
    return np.where(bits[a.offset : a.offset + len(a)].astype(bool), values, 0).astype(dtype)


def _column(t: pa.Table, name: str) -> np.ndarray:
    chunks = [_np(c) for c in t.column(name).chunks]
    if len(chunks) == 1:
        return chunks[0]
    dtype = _np(pa.nulls(0, t.schema.field(name).type)).dtype
    return np.concatenate(chunks) if chunks else np.empty(0, dtype)


def _kinds(t: pa.Table, out: np.ndarray) -> None:
    pos = 0
    for chunk in t.column("change").chunks:
        out[pos : pos + len(chunk)] = _np(chunk)
        pos += len(chunk)


def _pooled(n: int) -> np.ndarray:
    """``n`` uninitialised ``REGION_DTYPE`` rows in pyarrow's memory pool.

    Streaming analyses read a capture in chunks of up to a few hundred MB each: from
    malloc, every chunk is a fresh mmap whose pages are faulted in (and on a VM, often
    backed by the host again) and returned on free. pyarrow's pool (mimalloc/jemalloc)
    keeps freed pages for the next chunk and for the Parquet reads in between, so a chunk
    costs its copy, not its page faults. The array owns a reference to the buffer.
    """
    if n * REGION_DTYPE.itemsize < 1 << 20:
        return np.empty(n, REGION_DTYPE)
    return np.frombuffer(pa.allocate_buffer(n * REGION_DTYPE.itemsize), REGION_DTYPE)


def _to_regions(t: pa.Table, out: np.ndarray | None = None) -> np.ndarray:
    """Arrow columns -> ``REGION_DTYPE`` rows, chunk by chunk (no intermediate concatenation)."""
    if out is None:
        out = np.empty(t.num_rows, REGION_DTYPE)
    for name in ("start", "end", "categories"):
        field = out[name]
        pos = 0
        for chunk in t.column(name).chunks:
            n = len(chunk)
            field[pos : pos + n] = _np(chunk)
            pos += n
    return out


class _Retry(Exception):
    """Opening raced with the recorder (a part merged or dropped in between): list again."""


class StoredCapture(Capture):
    """A capture on disk; rows load on demand (``regions_at``, ``chunks``, ``changes``...).

    Everything a :class:`~pmviz.capture.Capture` offers works; ``select``, ``window``,
    ``regions_at`` and friends read only the row groups they need (those of the snapshots
    asked for and of the keyframe they start from) and return in-memory captures.

    Attributes
    ----------
    path : str
        The capture directory.
    complete : bool
        True once the recorder finished writing: every snapshot it took is on disk and the
        metadata is final (``meta.end_reason`` says whether the recording ended normally).
        False while recording, or when the recorder was killed or could not write everything:
        the capture holds what was flushed.
    snapshot_ids : numpy.ndarray
        The recorded number of each snapshot. They need not start at 0 (a ``max_size`` ring
        drops the oldest) and have gaps when ``strict=False`` skipped damaged parts.
    """

    def __init__(self, path: str, *, strict: bool = True) -> None:
        self.path = path
        self._strict = strict
        for attempt in range(20):
            try:
                # the last attempt reports what it finds (a part really missing, ...)
                self._open(strict, retry=attempt < 19)
                break
            except _Retry:
                continue
        if self.skipped_parts or self.dropped:
            warnings.warn(
                f"{path}: skipped damaged parts {self.skipped_parts}, dropped {self.dropped}; "
                f"the capture has {self.n_snapshots} readable snapshots",
                PmvizWarning,
                stacklevel=3,
            )

    # -- opening ------------------------------------------------------------------------------
    def _open(self, strict: bool, retry: bool = True) -> None:
        path = self.path
        doc = fmt.read_meta(path)
        self.version = int(doc["format_version"])
        self.complete = bool(doc.pop("complete", False))
        doc.pop("format", None)
        side = validate.check_side_tables_meta(
            doc.pop(fmt.SIDE_KEY, None), os.path.join(path, fmt.META_FILE)
        )
        self._side_schemas = {k: fmt.side_schema(v) for k, v in side.items()}
        meta = CaptureMeta.from_dict(doc)
        if not self.complete and meta.end_reason is None:
            meta = meta.replace(end_reason="incomplete: the recorder did not finish")
        live = retry and not self.complete
        self.meta = meta  # page_size for the row checks below; _setup sets it again
        self.skipped_parts: list[str] = []
        self.dropped: list[str] = []
        """What a lenient open left out beyond whole parts: snapshots and why."""
        self._parts: dict[str, list[_PartFile]] = {}
        # Reverse commit order: a snapshot listed in `snapshots` has its rows listed after.
        for table in reversed(fmt.table_order(list(side))):
            parts, stray = fmt.list_parts(path, table)
            if stray:
                raise CaptureError(stray[0], "unexpected file in a capture (not a part name)")
            parts = validate.drop_overlapping_parts(
                parts, strict=strict, dropped=self.skipped_parts
            )
            try:
                self._parts[table] = self._open_parts(parts, strict)
            except _Gone:
                if live:
                    raise _Retry from None
                raise
        try:
            snaps = self._read_snapshots(strict)
        except _Gone:
            if live:
                raise _Retry from None
            raise
        ids = snaps["snapshot"]
        if self.version == 1:
            key = np.ones(len(ids), bool)
            crows = snaps["region_rows"]
        else:
            key = snaps["keyframe"].astype(bool)
            crows = snaps["change_rows"]
        self.snapshot_ids = ids
        self._has_w = self._check_written_dir(strict)
        ok = self._check_coverage(strict, ids, crows, snaps["written_rows"], live)
        sound = np.ones(len(ids), bool)
        if not strict:
            try:
                sound = self._drop_damaged_rows(ids, key, crows, snaps["written_rows"])
            except _Gone:
                if live:
                    raise _Retry from None
                raise
        ok &= sound
        ok &= self._check_vma_index(strict, ids, snaps["vma_table"])
        # a drop for damage is final: re-listing a live capture would not bring it back
        ok &= self._check_chain(strict, ids, key, ok, live and bool(sound.all()))
        if not ok.all():
            snaps = {k: v[ok] for k, v in snaps.items()}
            ids, key, crows = ids[ok], key[ok], crows[ok]
            self.snapshot_ids = ids
        self._setup(
            meta,
            snaps["time_ns"],
            snaps["region_rows"],
            key,
            _offsets(crows),
            snaps["vma_table"],
            {k: snaps[k] for k in TELEMETRY_FIELDS},
            None,
            self._read_marks(),
        )
        if self._has_w:
            self.written_offsets = _offsets(snaps["written_rows"])
        self._vma_tables = None
        self._side = {k: [v, None, None] for k, v in side.items()}
        # Row counts now, from the parts just listed: a ring or a merge of a capture being
        # recorded may delete parts later, and counts taken then would miss snapshots.
        for name in list(self._side):
            try:
                self._side[name][2] = self._side_offsets_once(name)
                if not strict:  # recovery: check the rows now too
                    self.side_rows(name)
            except _Gone:
                if live:
                    raise _Retry from None
                raise
            except CaptureError as err:
                if strict:
                    raise
                del self._side[name]  # a damaged side table is left out whole
                self.dropped.append(f"side table {name} ({err})")

    def _open_parts(self, parts: list[fmt.Part], strict: bool) -> list[_PartFile]:
        out = []
        for p in parts:
            try:
                pf = _PartFile(p, self.version, self._side_schemas.get(p.table))
                if not strict:
                    pf.read()  # recovery mode: check every data page now, not on first use
                out.append(pf)
            except _Gone:
                raise
            except CaptureError:
                if strict:
                    raise
                self.skipped_parts.append(p.path)
        return out

    def _read_snapshots(self, strict: bool) -> dict[str, np.ndarray]:
        """The snapshots table, each part checked (numbers, time order, row counts)."""
        tables: list[pa.Table] = []
        self._written_tracked = False  # a written_rows column that is not all null
        counts = ["region_rows", "written_rows"] + (["change_rows"] if self.version >= 2 else [])
        for pf in self._parts["snapshots"]:
            try:
                t = pf.read()
                prev = int(_column(tables[-1], "time_ns")[-1]) if tables else None
                cols = {n: _column(t, n) for n in ["snapshot", "time_ns", "vma_table", *counts]}
                validate.check_snapshots(
                    cols, pf.part.path, first=pf.part.first, end=pf.part.end, prev_time_ns=prev
                )
            except _Gone:
                raise
            except CaptureError:
                if strict:
                    raise
                self.skipped_parts.append(pf.part.path)
                continue
            self._written_tracked |= t.column("written_rows").null_count < t.num_rows
            tables.append(t)
        schema = fmt.schemas(self.version)["snapshots"]
        t = pa.concat_tables(tables) if tables else _empty(schema)
        out = {}
        for name in schema.names:
            out[name] = _column(t, name)
        out["snapshot"] = np.asarray(out["snapshot"], np.int64)
        ids = out["snapshot"]
        want = np.arange(ids[0], ids[0] + len(ids)) if len(ids) else ids
        if strict and not np.array_equal(ids, want):
            gap = int(np.flatnonzero(ids != want)[0])
            raise CaptureError(
                os.path.join(self.path, "snapshots"),
                f"snapshots {int(want[gap])}..{int(ids[gap]) - 1} are missing "
                "(a part was deleted?)",
            )
        return out

    def _check_coverage(
        self, strict: bool, ids: np.ndarray, crows: np.ndarray, wrows: np.ndarray, live: bool
    ) -> np.ndarray:
        """Every committed snapshot needs its regions (and written) rows: drop or complain."""
        ok = np.ones(len(ids), bool)
        tables: list[tuple[str, np.ndarray | None]] = [("regions", crows), ("written", wrows)]
        tables += [(name, None) for name in self._side_schemas]
        for table, rows_per in tables:
            if table == "written" and not self._has_w:
                continue
            covered = np.zeros(len(ids), bool)
            for pf in self._parts[table]:
                inside = (ids >= pf.part.first) & (ids < pf.part.end)
                covered |= inside
                if rows_per is None:  # a side table: rows per snapshot are in its own part
                    continue
                rows = int(rows_per[inside].sum())
                whole = int(inside.sum()) == pf.part.end - pf.part.first
                # rows of uncommitted (crash) or lost (damaged) snapshots may follow
                if rows > pf.num_rows or (whole and rows != pf.num_rows):
                    raise CaptureError(pf.part.path, "damaged part: row count does not match")
            if not covered.all():
                if live:
                    raise _Retry
                missing = int(ids[~covered][0])
                if strict:
                    raise CaptureError(
                        os.path.join(self.path, table),
                        f"no {table} part holds snapshot {missing} (a part is missing)",
                    )
                ok &= covered
                self.dropped.append(
                    f"snapshots {validate.id_ranges(ids[~covered])} (no {table} part holds them)"
                )
        return ok

    def _check_written_dir(self, strict: bool) -> bool:
        """Whether the capture has written sets: the ``written/`` directory and the snapshots
        table's ``written_rows`` must agree (a deleted directory is not "no tracking").
        """
        has_w = os.path.isdir(os.path.join(self.path, "written"))
        if has_w == self._written_tracked or not self._parts["snapshots"]:
            return has_w
        why = (
            "the snapshots table counts written rows but written/ is missing"
            if self._written_tracked
            else "written/ exists but the snapshots table has no written row counts"
        )
        if strict:
            raise CaptureError(os.path.join(self.path, "written"), f"damaged capture: {why}")
        self.dropped.append(f"every written set ({why})")
        return False

    def _drop_damaged_rows(
        self, ids: np.ndarray, key: np.ndarray, crows: np.ndarray, wrows: np.ndarray
    ) -> np.ndarray:
        """Lenient open: the snapshots whose stored region or written rows are sound.

        In format 2 only keyframe rows are a whole snapshot (sorted, disjoint); change rows
        are checked row by row, and a snapshot stored as changes after a dropped one is lost
        too (see :meth:`_check_chain`).
        """
        bad: dict[int, str] = {}
        ordered = ids[key] if self.version >= 2 else None
        for table, counts in (("regions", crows), ("written", wrows)):
            if table == "written" and not self._has_w:
                continue
            for pf in self._parts[table]:
                t = pf.read()
                snap, rows = _column(t, "snapshot"), _to_regions(t)
                found = validate.damaged_snapshots(
                    snap,
                    rows,
                    self.page_size,
                    ids,
                    counts,
                    pf.part,
                    ordered if table == "regions" else None,
                )
                bad = found | bad
        if bad:
            self.dropped += [f"snapshot {k} ({why})" for k, why in sorted(bad.items())]
        return ~np.isin(ids, list(bad))

    def _check_vma_index(self, strict: bool, ids: np.ndarray, vma_index: np.ndarray) -> np.ndarray:
        """Every snapshot's VMA table must exist (its ``vmas`` part is there): drop or complain."""
        where = os.path.join(self.path, "snapshots")
        if strict:
            validate.check_vma_index(vma_index, ids, where)
        missing = validate.missing_vma_tables(
            vma_index, ids, [pf.part for pf in self._parts["vmas"]]
        )
        if missing and strict:
            t, s = next(iter(missing.items()))
            raise CaptureError(
                os.path.join(self.path, "vmas"),
                f"no vmas part holds VMA table {t}, first used by snapshot {s} (a part is missing)",
            )
        if missing:
            self.dropped += [
                f"snapshots using VMA table {t} (its vmas part is missing)" for t in missing
            ]
        return ~np.isin(vma_index, list(missing))

    def _check_chain(
        self, strict: bool, ids: np.ndarray, key: np.ndarray, ok: np.ndarray, live: bool
    ) -> np.ndarray:
        """A snapshot stored as changes needs every snapshot back to its keyframe."""
        valid = np.zeros(len(ids), bool)
        for i in range(len(ids)):  # one step per snapshot
            valid[i] = ok[i] and (key[i] or (i > 0 and valid[i - 1] and ids[i - 1] == ids[i] - 1))
        lost = ok & ~valid
        if lost.any():
            if live:
                raise _Retry
            if strict:
                raise CaptureError(
                    os.path.join(self.path, "snapshots"),
                    f"snapshot {int(ids[lost][0])} is stored as changes but the snapshots back "
                    "to its keyframe are missing (a part was deleted?)",
                )
            self.dropped.append(
                f"snapshots {validate.id_ranges(ids[lost])} (stored as changes after a dropped "
                "snapshot: lost up to the next keyframe)"
            )
        return valid

    def _read_marks(self) -> list[Mark]:
        marks: list[Mark] = []
        for pf in self._parts.get("marks", []):
            t = pf.read()
            marks += [
                Mark(int(a), str(b))
                for a, b in zip(_column(t, "time_ns").tolist(), t.column("label").to_pylist())
            ]
        return sorted(marks)

    # -- lazy rows ----------------------------------------------------------------------------
    def _relist(self, table: str) -> None:
        parts, _ = fmt.list_parts(self.path, table)
        parts = validate.drop_overlapping_parts(
            parts, strict=self._strict, dropped=self.skipped_parts
        )
        self._parts[table] = [
            _PartFile(p, self.version, self._side_schemas.get(table)) for p in parts
        ]

    def _rows(self, table: str, a: int, b: int, kind: np.ndarray | None = None) -> np.ndarray:
        """Rows of the snapshots at positions ``[a, b)`` (contiguous in snapshot ids); a part
        that vanished (merged by a concurrent writer) is found again by re-listing.
        """
        for attempt in range(20):
            try:
                return self._rows_once(table, a, b, kind)
            except _Gone:
                if attempt == 19:
                    raise
                self._relist(table)
        raise AssertionError("unreachable")

    def _rows_once(self, table: str, a: int, b: int, kind: np.ndarray | None) -> np.ndarray:
        if b <= a:
            return _NO_ROWS
        off = self._coff if table == "regions" else self.written_offsets
        assert off is not None
        ids = self.snapshot_ids
        out = _pooled(int(off[b] - off[a]))
        cols = ["snapshot", "start", "end", "categories"]
        if kind is not None and self.version >= 2:
            cols.append("change")
        # format 2 change rows are not a whole snapshot: no order check on them (the rebuilt
        # snapshots are checked instead, see _rows_at)
        changes = table == "regions" and self.version >= 2
        pos = 0
        for pf in self._parts[table]:
            lo_id, hi_id = max(int(ids[a]), pf.part.first), min(int(ids[b - 1]) + 1, pf.part.end)
            if hi_id <= lo_id:
                continue
            lo, hi = self._row_range(pf, off, lo_id, hi_id)
            p0, snap = pos, []
            for t in pf.iter_rows(lo, hi, cols):
                if pos + t.num_rows > len(out):
                    raise CaptureError(
                        pf.part.path, f"{table}: more rows than counted ({len(out)})"
                    )
                _to_regions(t, out[pos : pos + t.num_rows])
                if kind is not None and self.version >= 2:
                    _kinds(t, kind[pos : pos + t.num_rows])
                snap.append(_column(t, "snapshot"))
                pos += t.num_rows
            k = a + lo_id - int(ids[a])  # ids[a:b] are consecutive
            validate.check_regions(
                out[p0:pos], off[k : k + hi_id - lo_id + 1] - off[k], self.page_size, pf.part.path,
                lo_id, first_row=lo, snapshot_column=np.concatenate(snap) if snap else None,
                ordered=self._key[k : k + hi_id - lo_id] if changes else None,
            )  # fmt: skip
        if pos != len(out):
            raise CaptureError(self.path, f"{table}: expected {len(out)} rows, found {pos}")
        return out

    def _row_range(self, pf: _PartFile, off: np.ndarray, lo_id: int, hi_id: int) -> tuple[int, int]:
        """Rows of snapshots ``[lo_id, hi_id)`` inside part ``pf``."""
        ids = self.snapshot_ids
        k0, k_lo, k_hi = np.searchsorted(ids, [pf.part.first, lo_id, hi_id])
        if k_lo - k0 == lo_id - pf.part.first and (k0 > 0 or int(ids[0]) <= pf.part.first):
            # every snapshot of the part before lo_id is known: pure offset arithmetic
            base = int(off[k0])
            return int(off[k_lo]) - base, int(off[k_hi]) - base
        # snapshots before lo_id are not ours (dropped, damaged): find rows by snapshot number
        snap = pf.snapshot_column()
        lo, hi = np.searchsorted(snap, [lo_id, hi_id])
        return int(lo), int(hi)

    def _runs(self, a: int, b: int) -> list[tuple[int, int]]:
        """Positions ``[a, b)`` cut where snapshot numbers jump (dropped as damaged)."""
        ids = self.snapshot_ids[a:b]
        cuts = np.flatnonzero(np.diff(ids) != 1) + 1
        bounds = (np.concatenate([[0], cuts, [len(ids)]]) + a).tolist()
        return list(zip(bounds, bounds[1:]))

    def _stored(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        kind = np.zeros(int(self._coff[b] - self._coff[a]), np.int8)
        parts, pos = [], 0
        for x, y in self._runs(a, b):
            m = int(self._coff[y] - self._coff[x])
            parts.append(self._rows("regions", x, y, kind[pos : pos + m]))
            pos += m
        return (np.concatenate(parts) if len(parts) != 1 else parts[0]) if parts else _NO_ROWS, kind

    def _written_rows(self, a: int, b: int) -> np.ndarray:
        if self._written is not None:
            return super()._written_rows(a, b)
        parts = [self._rows("written", x, y) for x, y in self._runs(a, b)]
        return (np.concatenate(parts) if len(parts) != 1 else parts[0]) if parts else _NO_ROWS

    # -- side tables: offsets from each part's snapshot column, rows by range ---------------
    def _load_side_offsets(self, name: str) -> np.ndarray:
        for attempt in range(20):
            try:
                return self._side_offsets_once(name)
            except _Gone:
                if attempt == 19:
                    raise
                self._relist(name)
        raise AssertionError("unreachable")

    def _side_offsets_once(self, name: str) -> np.ndarray:
        ids = self.snapshot_ids
        counts = np.zeros(len(ids), np.int64)
        for pf in self._parts[name]:
            snap = pf.snapshot_column()
            validate.check_side_part(
                snap, np.empty(0, [("x", "u1")]), self.page_size, pf.part.path,
                first=pf.part.first, end=pf.part.end,
            )  # fmt: skip
            k = np.searchsorted(ids, [pf.part.first, pf.part.end])
            mine = ids[k[0] : k[1]]
            counts[k[0] : k[1]] = np.searchsorted(snap, mine, "right") - np.searchsorted(snap, mine)
        return _offsets(counts)

    def _side_rows(self, name: str, a: int, b: int) -> np.ndarray:
        e = self._side_entry(name)
        if e[1] is not None:
            return super()._side_rows(name, a, b)
        for attempt in range(20):
            try:
                parts = [self._side_rows_once(name, x, y) for x, y in self._runs(a, b)]
                break
            except _Gone:
                if attempt == 19:
                    raise
                self._relist(name)
        if not parts:
            return np.empty(0, e[0])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _side_rows_once(self, name: str, a: int, b: int) -> np.ndarray:
        """Rows of snapshots at positions ``[a, b)`` (consecutive snapshot numbers)."""
        dtype = self._side[name][0]
        off = self.side_offsets(name)
        out = np.empty(int(off[b] - off[a]), dtype)
        lo_id, hi_id = int(self.snapshot_ids[a]), int(self.snapshot_ids[b - 1]) + 1
        pos = 0
        for pf in self._parts[name]:
            if pf.part.end <= lo_id or pf.part.first >= hi_id:
                continue
            snap = pf.snapshot_column()
            lo, hi = np.searchsorted(snap, [lo_id, hi_id])
            t = pf.read_rows(int(lo), int(hi), pf.schema.names)
            n = t.num_rows
            if pos + n > len(out):
                raise CaptureError(pf.part.path, f"{name}: more rows than counted")
            for f in dtype.names or ():
                out[f][pos : pos + n] = _column(t, f) if n else []
            validate.check_side_part(
                snap[lo:hi], out[pos : pos + n], self.page_size, pf.part.path,
                first=pf.part.first, end=pf.part.end,
            )  # fmt: skip
            pos += n
        if pos != len(out):
            raise CaptureError(self.path, f"{name}: expected {len(out)} rows, found {pos}")
        return out

    # -- rebuilt snapshots (format 2): checked like whole stored snapshots ----------------------
    def _rows_at(self, i: int) -> np.ndarray:
        if self._regions is not None or self.version < 2 or self._key[i]:
            return super()._rows_at(i)  # whole stored rows, checked when read
        try:
            rows = super()._rows_at(i)
        except ValueError as err:  # a change that does not apply: damaged change rows
            raise self._damaged_changes(i, str(err)) from err
        self._check_rebuilt(rows, np.array([0, len(rows)]), i)
        return rows

    def _decode_chunks(
        self, a: int, stop: int, max_rows: int
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        chunks = super()._decode_chunks(a, stop, max_rows)
        while True:
            try:
                first, rows, counts = next(chunks)
            except StopIteration:
                return
            except ValueError as err:
                raise self._damaged_changes(a, str(err)) from err
            if self._regions is None and self.version >= 2:
                self._check_rebuilt(rows, _offsets(counts), first)
            a = first + len(counts)
            yield first, rows, counts

    def _check_rebuilt(self, rows: np.ndarray, off: np.ndarray, first: int) -> None:
        bad, i, reason = validate.region_problems(rows, off, self.page_size)
        if i is not None:
            k = first + int(np.flatnonzero(bad)[0])
            r = rows[i]
            raise self._damaged_changes(
                k, f"the rebuilt row {int(r['start']):#x}-{int(r['end']):#x}: {reason}"
            )

    def _damaged_changes(self, i: int, why: str) -> CaptureError:
        sid = int(self.snapshot_ids[i]) if i < len(self.snapshot_ids) else i
        return CaptureError(
            os.path.join(self.path, "regions"),
            f"damaged part: snapshot {sid} rebuilt from its keyframe and change rows is not a "
            f"sound snapshot ({why})",
        )

    @property
    def vma_tables(self) -> list[Vmas]:
        if self._vma_tables is None:
            self._vma_tables = self._read_vmas()
        return self._vma_tables

    def _read_vmas(self) -> list[Vmas]:
        # Tables with no rows (a process whose maps could not be read) are empty Vmas. A table
        # may be stored in several segments (each segment is self-contained): keep the first.
        n_tables = int(self.vma_index.max()) + 1 if len(self.vma_index) else 1
        for attempt in range(20):
            try:
                tabs = [pf.read() for pf in self._parts["vmas"]]
                break
            except _Gone:
                if attempt == 19:
                    raise
                self._relist("vmas")
        for pf, tab in zip(self._parts["vmas"], tabs):
            cols = [_column(tab, c) for c in ("start", "end", "vma_table")]
            validate.check_vmas(
                cols[0], cols[1], cols[2], pf.part.path, tables_in_order=self.version < 2
            )
        schema = fmt.schemas(self.version)["vmas"]
        t = pa.concat_tables(tabs) if tabs else _empty(schema)
        ids = _column(t, "vma_table")
        arr = np.empty(t.num_rows, VMA_DTYPE)
        for name in VMA_DTYPE.names or ():
            if name == "perms":  # per VMA, not per region: a list is fine
                arr[name] = [p.encode() for p in t.column(name).to_pylist()]
            else:
                arr[name] = _column(t, name)
        raw = t.column("path").to_pylist()
        if self.version >= 2:  # bytes on disk; surrogateescape keeps undecodable bytes exact
            raw = [b.decode("utf-8", "surrogateescape") for b in raw]
        paths = np.asarray(raw, dtype=object)
        n_tables = max(n_tables, int(ids.max()) + 1 if len(ids) else 0)
        # the first stored copy of each table: rows of a table are contiguous within a part
        part_no = np.repeat(np.arange(len(tabs)), [x.num_rows for x in tabs])
        first_part = np.full(n_tables, len(tabs), np.int64)
        np.minimum.at(first_part, ids, part_no)
        keep = part_no == first_part[ids] if len(ids) else np.zeros(0, bool)
        arr, paths, ids = arr[keep], paths[keep], ids[keep]
        order = np.argsort(ids, kind="stable")
        bounds = np.searchsorted(ids[order], np.arange(n_tables + 1))
        return [Vmas(arr[order[x:y]], paths[order[x:y]]) for x, y in zip(bounds, bounds[1:])]


def open(path: str | os.PathLike[str], *, strict: bool = True) -> StoredCapture:  # noqa: A001
    """Open a capture directory (``NAME.pmviz``) lazily.

    Parameters
    ----------
    path : str or path-like
        The capture directory written by ``pmviz record`` / ``pmviz.record(out=...)``.
    strict : bool
        With ``True`` (default) any damaged or missing part raises: footers are checked on
        opening, data pages (CRC) when first read. With ``False`` (recovery) every part is read
        and checked now, damaged ones are skipped with a ``PmvizWarning``, and the capture holds
        every snapshot whose parts are intact.

    Returns
    -------
    StoredCapture
        A :class:`~pmviz.capture.Capture` whose region rows load on first use.

    Raises
    ------
    CaptureError
        Not a capture, a newer format version, a damaged or missing part; the message names
        the file.

    Examples
    --------
    >>> import pmviz
    >>> cap = pmviz.open("sample_data/demo.pmviz")  # doctest: +SKIP
    >>> cap.window(0, 1.0).regions_at(0)  # doctest: +SKIP
    """
    return StoredCapture(os.fspath(path), strict=strict)
