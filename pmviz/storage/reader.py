"""``open()``: a capture directory as a lazily loaded :class:`~pmviz.capture.Capture`.

Opening reads ``capture.json``, the Parquet footers of every part and the small ``snapshots``
table (one row per snapshot). Region rows load on demand: the per-snapshot row counts give the
exact row range of any snapshot range, and the footers' row-group sizes say which row groups
hold it, so a time window reads only those row groups. An address window reads row group by
row group and skips those whose ``start``/``end`` statistics miss the window.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .._kernel.pagemap_scan import REGION_DTYPE
from ..capture import (
    TELEMETRY_FIELDS,
    Capture,
    CaptureMeta,
    _clip_vmas,
    _gather,
    _offsets,
    clip_rows,
)
from ..errors import CaptureError, PmvizWarning
from ..maps import VMA_DTYPE, Vmas
from . import format as fmt
from . import validate

__all__ = ["open", "StoredCapture"]

_NO_ROWS = np.empty(0, REGION_DTYPE)


class _PartFile:
    """An opened, footer-checked Parquet part plus its row-group boundaries."""

    def __init__(self, part: fmt.Part) -> None:
        self.part = part
        validate.check_part_file(part.path)
        validate.check_footer(part.path)  # raw bytes: nothing deserialized before this
        try:
            with pq.ParquetFile(part.path) as f:
                md = f.metadata
                self.schema = f.schema_arrow
        except (OSError, pa.ArrowException) as err:
            raise CaptureError(part.path, f"damaged part (truncated or corrupt): {err}") from err
        self.metadata = md
        want = fmt.SCHEMAS[part.table]
        if not self.schema.remove_metadata().equals(want):
            raise CaptureError(part.path, f"not a {part.table} part of format {fmt.FORMAT_VERSION}")
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


class StoredCapture(Capture):
    """A capture on disk; ``regions``, ``written`` and ``vma_tables`` load on first access.

    Everything else a :class:`~pmviz.capture.Capture` offers works; ``select``, ``window``,
    ``address_window``, ``regions_at`` and friends read only the row groups they need and
    return in-memory captures / views.

    Attributes
    ----------
    path : str
        The capture directory.
    complete : bool
        False when the recorder never finished (killed, crashed): the capture holds what was
        flushed, up to about a second before the end.
    """

    def __init__(self, path: str, *, strict: bool = True) -> None:
        self.path = path
        self._strict = strict
        doc = fmt.read_meta(path)
        self.complete = bool(doc.pop("complete", False))
        doc.pop("format", None)
        meta = CaptureMeta.from_dict(doc)
        if not self.complete and meta.end_reason is None:
            meta = meta.replace(end_reason="incomplete: the recorder did not finish")
        self.skipped_parts: list[str] = []
        self.dropped: list[str] = []
        """What a lenient open left out beyond whole parts: snapshots and why."""
        self._parts: dict[str, list[_PartFile]] = {}
        for table in fmt.TABLES:
            parts, stray = fmt.list_parts(path, table)
            if stray:
                raise CaptureError(stray[0], "unexpected file in a capture (not a part name)")
            parts = validate.drop_overlapping_parts(
                parts, strict=strict, dropped=self.skipped_parts
            )
            self._parts[table] = self._open_parts(parts, strict)
        snaps = self._read_snapshots(strict)
        has_w = self._check_written_dir(strict)
        super().__init__(
            meta,
            snaps["time_ns"],
            None,  # loaded lazily: see the regions property
            _offsets(snaps["region_rows"]),
            vma_index=snaps["vma_table"],
            telemetry={k: snaps[k] for k in TELEMETRY_FIELDS},
        )
        self.snapshot_ids = snaps["snapshot"]
        if has_w:
            self.written_offsets = _offsets(snaps["written_rows"])
        self._vma_tables = None
        if not strict:
            self._drop_damaged_rows()
        self._check_coverage(strict)
        self._check_vma_index(strict)
        if self.skipped_parts or self.dropped:
            warnings.warn(
                f"{path}: skipped damaged parts {self.skipped_parts}, dropped {self.dropped}; "
                f"the capture has {self.n_snapshots} readable snapshots",
                PmvizWarning,
                stacklevel=3,
            )

    # -- opening ------------------------------------------------------------------------------
    def _open_parts(self, parts: list[fmt.Part], strict: bool) -> list[_PartFile]:
        out = []
        for p in parts:
            try:
                pf = _PartFile(p)
                if not strict:
                    pf.read()  # recovery mode: check every data page now, not on first use
                out.append(pf)
            except CaptureError:
                if strict:
                    raise
                self.skipped_parts.append(p.path)
        return out

    def _read_snapshots(self, strict: bool) -> dict[str, np.ndarray]:
        tables: list[pa.Table] = []
        self._written_tracked = False  # a written_rows column that is not all null
        for pf in self._parts["snapshots"]:
            try:
                t = pf.read()
                prev = int(_column(tables[-1], "time_ns")[-1]) if tables else None
                cols = {n: _column(t, n) for n in ("snapshot", "time_ns", "vma_table")}
                cols |= {n: _column(t, n) for n in ("region_rows", "written_rows")}
                validate.check_snapshots(
                    cols, pf.part.path, first=pf.part.first, end=pf.part.end, prev_time_ns=prev
                )
            except CaptureError:
                if strict:
                    raise
                self.skipped_parts.append(pf.part.path)
                continue
            self._written_tracked |= t.column("written_rows").null_count < t.num_rows
            tables.append(t)
        schema = fmt.SNAPSHOTS_SCHEMA
        t = pa.concat_tables(tables) if tables else _empty(schema)
        out = {}
        for name in schema.names:
            out[name] = _column(t, name)
        out["snapshot"] = np.asarray(out["snapshot"], np.int64)
        ids = out["snapshot"]
        if strict and len(ids) and not np.array_equal(ids, np.arange(len(ids))):
            gap = int(np.flatnonzero(ids != np.arange(len(ids)))[0])
            raise CaptureError(
                os.path.join(self.path, "snapshots"),
                f"snapshots {gap}..{int(ids[gap]) - 1} are missing (a part was deleted?)",
            )
        return out

    def _check_coverage(self, strict: bool) -> None:
        """Every committed snapshot needs its regions (and written) rows: drop or complain."""
        ids = self.snapshot_ids
        ok = np.ones(len(ids), bool)
        for table in ("regions", "written"):
            if table == "written" and not self.has_written:
                continue
            covered = np.zeros(len(ids), bool)
            for pf in self._parts[table]:
                inside = (ids >= pf.part.first) & (ids < pf.part.end)
                covered |= inside
                off = self.region_offsets if table == "regions" else self.written_offsets
                assert off is not None
                rows = int(np.diff(off)[inside].sum())
                whole = int(inside.sum()) == pf.part.end - pf.part.first
                # rows of uncommitted (crash) or lost (damaged) snapshots may follow
                if rows > pf.num_rows or (whole and rows != pf.num_rows):
                    raise CaptureError(pf.part.path, "damaged part: row count does not match")
            if not covered.all():
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
        if not ok.all():
            self._keep(ok)

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

    def _drop_damaged_rows(self) -> None:
        """Lenient open: drop the snapshots whose region or written rows are damaged."""
        bad: dict[int, str] = {}
        for table, off in (("regions", self.region_offsets), ("written", self.written_offsets)):
            if off is None:
                continue
            counts = np.diff(off)
            for pf in self._parts[table]:
                t = pf.read()
                snap, rows = _column(t, "snapshot"), _to_regions(t)
                found = validate.damaged_snapshots(
                    snap, rows, self.page_size, self.snapshot_ids, counts, pf.part
                )
                bad = found | bad
        if bad:
            self.dropped += [f"snapshot {k} ({why})" for k, why in sorted(bad.items())]
            self._keep(~np.isin(self.snapshot_ids, list(bad)))

    def _check_vma_index(self, strict: bool) -> None:
        where = os.path.join(self.path, "snapshots")
        if strict:
            validate.check_vma_index(self.vma_index, self.snapshot_ids, where)
        missing = validate.missing_vma_tables(
            self.vma_index, self.snapshot_ids, [pf.part for pf in self._parts["vmas"]]
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
            self._keep(~np.isin(self.vma_index, list(missing)))

    def _keep(self, ok: np.ndarray) -> None:
        self.time_ns = self.time_ns[ok]
        self.snapshot_ids = self.snapshot_ids[ok]
        self.vma_index = self.vma_index[ok]
        self.telemetry = {k: v[ok] for k, v in self.telemetry.items()}
        self.region_offsets = _offsets(np.diff(self.region_offsets)[ok])
        if self.written_offsets is not None:
            self.written_offsets = _offsets(np.diff(self.written_offsets)[ok])

    # -- lazy columns -------------------------------------------------------------------------
    def _rows(self, table: str, a: int, b: int) -> np.ndarray:
        """Rows of the snapshots at positions ``[a, b)`` (contiguous in snapshot ids)."""
        if b <= a:
            return _NO_ROWS
        off = self.region_offsets if table == "regions" else self.written_offsets
        assert off is not None
        ids = self.snapshot_ids
        out = np.empty(int(off[b] - off[a]), REGION_DTYPE)
        pos = 0
        for pf in self._parts[table]:
            lo_id, hi_id = max(int(ids[a]), pf.part.first), min(int(ids[b - 1]) + 1, pf.part.end)
            if hi_id <= lo_id:
                continue
            lo, hi = self._row_range(pf, off, lo_id, hi_id)
            p0, snap = pos, []
            for t in pf.iter_rows(lo, hi, ["snapshot", "start", "end", "categories"]):
                if pos + t.num_rows > len(out):
                    raise CaptureError(
                        pf.part.path, f"{table}: more rows than counted ({len(out)})"
                    )
                _to_regions(t, out[pos : pos + t.num_rows])
                snap.append(_column(t, "snapshot"))
                pos += t.num_rows
            k = a + lo_id - int(ids[a])  # ids[a:b] are consecutive
            validate.check_regions(
                out[p0:pos], off[k : k + hi_id - lo_id + 1] - off[k], self.page_size, pf.part.path,
                lo_id, first_row=lo, snapshot_column=np.concatenate(snap) if snap else None,
            )  # fmt: skip
        if pos != len(out):
            raise CaptureError(self.path, f"{table}: expected {len(out)} rows, found {pos}")
        return out

    def _row_range(self, pf: _PartFile, off: np.ndarray, lo_id: int, hi_id: int) -> tuple[int, int]:
        """Rows of snapshots ``[lo_id, hi_id)`` inside part ``pf``."""
        ids = self.snapshot_ids
        k0, k_lo, k_hi = np.searchsorted(ids, [pf.part.first, lo_id, hi_id])
        if k_lo - k0 == lo_id - pf.part.first:
            # every snapshot of the part before lo_id is known: pure offset arithmetic
            base = int(off[k0])
            return int(off[k_lo]) - base, int(off[k_hi]) - base
        # snapshots before lo_id were lost (recovery mode): find the rows by snapshot number
        snap = pf.snapshot_column()
        lo, hi = np.searchsorted(snap, [lo_id, hi_id])
        return int(lo), int(hi)

    def _contiguous(self) -> bool:
        ids = self.snapshot_ids
        return not len(ids) or int(ids[-1]) - int(ids[0]) + 1 == len(ids)

    @property
    def regions(self) -> np.ndarray:
        if self._regions is None:
            self._regions = self._rows_any("regions", 0, self.n_snapshots)
        return self._regions

    @property
    def written(self) -> np.ndarray | None:
        if self.written_offsets is None:
            return None
        if self._written is None:
            self._written = self._rows_any("written", 0, self.n_snapshots)
        return self._written

    def _rows_any(self, table: str, a: int, b: int) -> np.ndarray:
        if self._contiguous():
            return self._rows(table, a, b)
        # snapshots dropped as damaged (strict=False): read run by run
        ids = self.snapshot_ids[a:b]
        cuts = np.flatnonzero(np.diff(ids) != 1) + 1
        bounds = np.concatenate([[0], cuts, [len(ids)]]) + a
        return np.concatenate(
            [_NO_ROWS] + [self._rows(table, int(x), int(y)) for x, y in zip(bounds, bounds[1:])]
        )

    @property
    def vma_tables(self) -> list[Vmas]:
        if self._vma_tables is None:
            self._vma_tables = self._read_vmas()
        return self._vma_tables

    def _read_vmas(self) -> list[Vmas]:
        # Tables with no rows (a process whose maps could not be read) are empty Vmas.
        n_tables = int(self.vma_index.max()) + 1 if len(self.vma_index) else 1
        tabs = [pf.read() for pf in self._parts["vmas"]]
        for pf, tab in zip(self._parts["vmas"], tabs):
            cols = [_column(tab, c) for c in ("start", "end", "vma_table")]
            validate.check_vmas(cols[0], cols[1], cols[2], pf.part.path)
        t = pa.concat_tables(tabs) if tabs else _empty(fmt.VMAS_SCHEMA)
        ids = _column(t, "vma_table")
        arr = np.empty(t.num_rows, VMA_DTYPE)
        for name in VMA_DTYPE.names or ():
            if name == "perms":  # per VMA, not per region: a list is fine
                arr[name] = [p.encode() for p in t.column(name).to_pylist()]
            else:
                arr[name] = _column(t, name)
        paths = np.asarray(t.column("path").to_pylist(), dtype=object)
        n_tables = max(n_tables, int(ids.max()) + 1 if len(ids) else 0)
        order = np.argsort(ids, kind="stable")
        bounds = np.searchsorted(ids[order], np.arange(n_tables + 1))
        return [Vmas(arr[order[x:y]], paths[order[x:y]]) for x, y in zip(bounds, bounds[1:])]

    # -- windows without loading everything --------------------------------------------------
    def regions_at(self, i: int):  # noqa: ANN201 - same as Capture
        if self._regions is not None:
            return super().regions_at(i)
        return self._one(i).regions_at(0)

    def written_at(self, i: int):  # noqa: ANN201
        if self.written_offsets is None or self._written is not None:
            return super().written_at(i)
        return self._one(i).written_at(0)

    def _one(self, i: int) -> Capture:
        i = self._index(i)
        cache = self.__dict__.setdefault("_one_cache", {})
        if i not in cache:
            if len(cache) >= 16:
                cache.pop(next(iter(cache)))
            cache[i] = self.select(slice(i, i + 1))
        return cache[i]

    def select(self, snapshots: slice | np.ndarray) -> Capture:
        if self._regions is not None and (self._written is not None or not self.has_written):
            return super().select(snapshots)
        idx = np.arange(self.n_snapshots)[snapshots]
        if not len(idx):
            return super()._derived(idx, _NO_ROWS, np.zeros(1, np.int64), None, None)
        a, b = int(idx.min()), int(idx.max()) + 1
        local = idx - a
        sub_off = self.region_offsets[a : b + 1] - self.region_offsets[a]
        regs, roff = _gather(self._rows_any("regions", a, b), sub_off, local)
        wr = woff = None
        if self.written_offsets is not None:
            wsub = self.written_offsets[a : b + 1] - self.written_offsets[a]
            wr, woff = _gather(self._rows_any("written", a, b), wsub, local)
        return self._derived(idx, regs, roff, wr, woff)

    def address_window(self, start: int, end: int) -> Capture:
        if self._regions is not None:
            return super().address_window(start, end)
        if not 0 <= start <= end:
            raise ValueError(f"need 0 <= start <= end, got start={start:#x} end={end:#x}")
        regs, roff = self._clip_table("regions", self.region_offsets, start, end)
        wr = woff = None
        if self.written_offsets is not None:
            wr, woff = self._clip_table("written", self.written_offsets, start, end)
        out = self._derived(np.arange(self.n_snapshots), regs, roff, wr, woff)
        out._vma_tables = [_clip_vmas(v, start, end) for v in out.vma_tables]
        return out

    def _clip_table(
        self, table: str, off: np.ndarray, start: int, end: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Clip row group by row group, so memory holds one row group plus the result."""
        counts = np.zeros(self.n_snapshots, np.int64)
        chunks = []
        sid = self.snapshot_ids
        for pf in self._parts[table]:
            md = pf.metadata
            for g in range(md.num_row_groups):
                rg = md.row_group(g)
                st = {rg.column(c).path_in_schema: rg.column(c).statistics for c in range(4)}
                s_end, s_start = st.get("end"), st.get("start")
                if (
                    s_end is not None
                    and s_start is not None
                    and s_end.has_min_max
                    and s_start.has_min_max
                    and (s_end.max <= start or s_start.min >= end)
                ):
                    continue
                t = pf.read_row_group(g)
                snap = _column(t, "snapshot")
                if not len(snap):
                    continue
                first = int(snap[0])  # rows are in snapshot order
                if len(snap) > 1 and bool((np.diff(snap) < 0).any()):
                    if not self._strict:
                        continue  # a lenient open dropped every snapshot of this part
                    raise CaptureError(pf.part.path, "damaged part: rows out of snapshot order")
                regs, roff = _to_regions(t), _offsets(np.bincount(snap - first))
                if self._strict:
                    row0 = int(pf.rg_offsets[g])
                    validate.check_regions(
                        regs, roff, self.page_size, pf.part.path, first, first_row=row0
                    )
                clipped, coff = clip_rows(regs, roff, start, end)
                ids = np.arange(first, first + len(coff) - 1)
                k = np.minimum(np.searchsorted(sid, ids), max(len(sid) - 1, 0))
                live = (sid[k] == ids) if len(sid) else np.zeros(len(ids), bool)
                n_per = np.diff(coff)
                counts[k[live]] += n_per[live]  # k is unique per snapshot
                chunks.append(clipped[np.repeat(live, n_per)])
        rows = np.concatenate(chunks) if chunks else _NO_ROWS
        return rows, _offsets(counts)


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
