"""``CaptureBuilder``: a capture being recorded, kept as change and bounded in memory.

The builder holds the previous snapshot's rows (to diff against), the next snapshot's scan
buffer, the stored rows (keyframes + changes) not yet written to disk, and the small
per-snapshot columns. Rows a writer has flushed leave memory (:meth:`release`); the live
:meth:`capture` view then reads them back from disk lazily.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .._kernel.pagemap_scan import REGION_DTYPE
from ..capture import TELEMETRY_FIELDS, Capture, CaptureMeta, Mark, _Encoder, _strictly_sorted
from ..maps import Vmas

_NO_ROWS = np.empty(0, REGION_DTYPE)
_NO_KIND = np.empty(0, np.int8)

_memcmp: Any
try:
    _memcmp = ctypes.CDLL(None).memcmp
    _memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    _memcmp.restype = ctypes.c_int
except (OSError, AttributeError):  # pragma: no cover - every libc has memcmp
    _memcmp = None


def _same_rows(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two contiguous row arrays hold the same bytes.

    libc ``memcmp``: one pass over both at memory speed, no temporary, and the GIL is
    released meanwhile (ctypes), so the writer thread runs; ``np.array_equal`` writes a
    boolean per word and then reduces it, about three times the memory traffic.
    """
    if len(a) != len(b):
        return False
    if _memcmp is None or not (a.flags.c_contiguous and b.flags.c_contiguous):
        return bool(np.array_equal(a.view(np.uint64), b.view(np.uint64)))
    return _memcmp(a.ctypes.data, b.ctypes.data, a.nbytes) == 0


class _Column:
    """A growing 1-D array whose first ``base`` entries were dropped (positions stay global).

    Appends write past the end; views handed out cover entries that never change afterwards,
    and a grown or trimmed column is a new array (old views keep the old one alive).
    """

    def __init__(self, dtype: Any, initial: int = 1024) -> None:
        self.buf = np.empty(initial, dtype)
        self.base = 0  # global position of buf[0]
        self.end = 0  # global end

    def append(self, values: np.ndarray) -> None:
        n = len(values)
        used = self.end - self.base
        if used + n > len(self.buf):
            bigger = np.empty(max(used + n, 2 * len(self.buf)), self.buf.dtype)
            bigger[:used] = self.buf[:used]
            self.buf = bigger
        self.buf[used : used + n] = values
        self.end += n

    def view(self, lo: int, hi: int) -> np.ndarray:
        return self.buf[lo - self.base : hi - self.base]

    def drop_before(self, pos: int) -> None:
        """Forget entries before global position ``pos`` (copying the rest to a fresh array)."""
        if pos <= self.base:
            return
        rest = self.buf[pos - self.base : self.end - self.base]
        self.buf = np.empty(max(len(rest), 1024), self.buf.dtype)
        self.buf[: len(rest)] = rest
        self.base = pos


class _Grow(_Column):
    """A growing per-snapshot column (one value per snapshot; released ones dropped too)."""

    def __init__(self, dtype: Any, first: Any = None) -> None:
        super().__init__(dtype, 64)
        if first is not None:
            self.push(first)

    def push(self, v: Any) -> None:
        used = self.end - self.base
        if used == len(self.buf):
            bigger = np.empty(2 * len(self.buf), self.buf.dtype)
            bigger[:used] = self.buf[:used]
            self.buf = bigger
        self.buf[used] = v
        self.end += 1


class ScanPair:
    """Two reusable scan buffers: the next scan goes into one, the other keeps the last scan.

    For a recorder that post-processes its scans (uffd-wp swap resolution): it compares each
    raw scan with the previous one (:meth:`same_as_last`) before doing any work on it.
    """

    def __init__(self) -> None:
        self._buf = [np.empty(1 << 12, REGION_DTYPE), np.empty(1 << 12, REGION_DTYPE)]
        self._cur = 0
        self._last = -1  # rows of the last scan (-1: none, or forgotten)

    def region_tail(self, n: int, keep: int | None = None) -> np.ndarray:
        """Writable rows ``[0, n)`` of the next scan (as :meth:`CaptureBuilder.region_tail`)."""
        buf = self._buf[self._cur]
        if n > len(buf):
            bigger = np.empty(max(n, 2 * len(buf)), REGION_DTYPE)
            k = len(buf) if keep is None else min(keep, len(buf))
            bigger[:k] = buf[:k]
            self._buf[self._cur] = buf = bigger
        return buf[:n]

    def same_as_last(self, n: int) -> bool:
        """Whether the ``n`` rows just scanned repeat the last scan byte for byte."""
        return self._last == n and _same_rows(
            self._buf[self._cur][:n], self._buf[self._cur ^ 1][:n]
        )

    def done(self, n: int) -> None:
        """The ``n`` rows just scanned become the last scan; the next scan uses the other buffer."""
        self._last = n
        self._cur ^= 1

    def forget(self) -> None:
        """The next scan is compared with nothing (after an exec, or a non-repeatable result)."""
        self._last = -1


class CaptureBuilder:
    """The capture being recorded: appended to by the recorder, flushed by its writer.

    ``region_tail(n)`` gives the scan buffer for the next snapshot (separate from the previous
    snapshot's rows, which the next diff needs); ``append`` encodes the snapshot as a keyframe
    or as its changes (see :class:`~pmviz.capture.Capture`). ``capture()`` is a consistent
    view at any moment: snapshots a writer flushed are read from disk, the rest from memory.

    Without a writer everything stays in memory, as change: memory grows with what changes.
    """

    def __init__(
        self,
        meta: CaptureMeta,
        *,
        has_written: bool,
        side_tables: Mapping[str, np.dtype] | None = None,
    ) -> None:
        self.meta = meta
        self.n = 0
        self._lock = threading.Lock()
        self._time = _Grow(np.int64)
        self._vidx = _Grow(np.int32)
        self._tel = {k: _Grow(np.int64) for k in TELEMETRY_FIELDS}
        self._nrows = _Grow(np.int64)
        self._key = _Grow(bool)
        self._coff = _Grow(np.int64, 0)  # global stored-row offsets, n + 1
        self._woff = _Grow(np.int64, 0) if has_written else None
        self._rows = _Column(REGION_DTYPE, 1 << 16)
        self._kind = _Column(np.int8, 1 << 16)
        self._wrows = _Column(REGION_DTYPE, 1 << 12) if has_written else None
        self._scan = [np.empty(1 << 12, REGION_DTYPE), np.empty(1 << 12, REGION_DTYPE)]
        self._cur = 0  # the scan buffer of the next snapshot; the other holds the previous
        self._prev: np.ndarray | None = None  # the previous snapshot's rows (in the other buffer)
        self._prev_sorted: bool | None = None  # whether they are strictly sorted (None: unknown)
        self._enc = _Encoder()
        self._force_key = False
        self.mem_first = 0  # snapshots before this one were released to disk
        self.vma_tables: list[Vmas] = []
        self.marks: list[Mark] = []
        self._disk: Callable[[], Capture] | None = None
        # per-snapshot side tables (pmviz.sidetables): rows, global offsets, the next's rows
        self._side = {k: _Column(np.dtype(d), 1 << 10) for k, d in (side_tables or {}).items()}
        self._soff = {k: _Grow(np.int64, 0) for k in self._side}
        self._side_next: dict[str, np.ndarray] = {}

    # -- recording ----------------------------------------------------------------------------
    def region_tail(self, n: int, keep: int | None = None) -> np.ndarray:
        """Writable rows ``[0, n)`` for the next snapshot's scan.

        When the buffer grows, its first ``keep`` rows (default: all it had) are kept; the
        rest of a grown buffer is untouched memory, which costs nothing until written.
        """
        buf = self._scan[self._cur]
        if n > len(buf):
            bigger = np.empty(max(n, 2 * len(buf)), REGION_DTYPE)
            k = len(buf) if keep is None else min(keep, len(buf))
            bigger[:k] = buf[:k]
            self._scan[self._cur] = buf = bigger
        return buf[:n]

    def force_keyframe(self) -> None:
        """Store the next snapshot as a keyframe (a writer starts a new segment there)."""
        self._force_key = True

    def add_side(self, name: str, rows: np.ndarray) -> None:
        """Rows of side table ``name`` for the snapshot the next :meth:`append` adds."""
        col = self._side[name]
        if rows.dtype != col.buf.dtype:
            raise TypeError(f"side table {name!r} has rows {col.buf.dtype}, got {rows.dtype}")
        self._side_next[name] = rows

    def _commit_side(self) -> None:
        # (under the lock, in append: a snapshot's side rows appear with the snapshot)
        for name, col in self._side.items():
            col.append(self._side_next.pop(name, col.buf[:0]))
            self._soff[name].push(col.end)

    def mark(self, time_ns: int, label: str) -> None:
        with self._lock:
            self.marks.append(Mark(int(time_ns), str(label)))

    def append(
        self,
        time_ns: int,
        regions: np.ndarray | int | None,
        written: np.ndarray | None,
        vmas: Vmas | None,
        telemetry: dict[str, int],
    ) -> None:
        """Add one snapshot; ``vmas=None`` means "unchanged since the previous snapshot".

        ``regions`` is the snapshot's rows, the number of rows already written into
        :meth:`region_tail`, or None: the same rows as the previous snapshot (the caller
        knows, e.g. its raw scan repeated byte for byte); that costs no copy and no compare
        unless a keyframe is due.
        """
        force, self._force_key = self._force_key, False
        if regions is None:
            if self._prev is None:
                raise ValueError("append(None) repeats the previous snapshot: there is none")
            if not force and self._repeatable():
                cur = self._prev
                self._push(time_ns, cur, _NO_ROWS, _NO_KIND, False, written, vmas, telemetry)
                return
            regions = self._prev  # (copied into the next buffer below, then encoded)
        if isinstance(regions, (int, np.integer)):
            cur = self.region_tail(int(regions))
        else:
            cur = self.region_tail(len(regions))
            cur[:] = regions
        rows, kind, key = self._encode(cur, force)
        self._cur ^= 1  # the next scan must not overwrite this snapshot (the next diff's base)
        self._push(time_ns, cur, rows, kind, key, written, vmas, telemetry)

    def _push(
        self,
        time_ns: int,
        cur: np.ndarray,
        rows: np.ndarray,
        kind: np.ndarray,
        key: bool,
        written: np.ndarray | None,
        vmas: Vmas | None,
        telemetry: dict[str, int],
    ) -> None:
        """Store one encoded snapshot (``cur``: its rows; ``rows``/``kind``: what is stored)."""
        with self._lock:
            i = self.n
            if vmas is not None or not self.vma_tables:
                self.vma_tables.append(vmas if vmas is not None else Vmas())
            self._time.push(time_ns)
            self._vidx.push(len(self.vma_tables) - 1)
            for k in TELEMETRY_FIELDS:
                self._tel[k].push(int(telemetry.get(k, 0)))
            self._nrows.push(len(cur))
            self._key.push(key)
            self._rows.append(rows)
            self._kind.append(kind)
            self._coff.push(self._rows.end)
            if self._woff is not None and self._wrows is not None:
                w = _NO_ROWS if written is None else written
                self._wrows.append(w)
                self._woff.push(self._wrows.end)
            self._commit_side()
            self.n = i + 1  # last: a concurrent capture() sees whole snapshots only

    @property
    def last_rows(self) -> int:
        """Row count of the previous snapshot (0 before the first)."""
        return 0 if self._prev is None else len(self._prev)

    def _repeatable(self) -> bool:
        """Whether a repeat of the previous snapshot is stored as zero change rows."""
        prev = self._prev
        if prev is None or self._enc.prev is not prev:
            return False
        if self._prev_sorted is None:
            self._prev_sorted = _strictly_sorted(prev)
        return self._prev_sorted

    def _encode(self, cur: np.ndarray, force: bool) -> tuple[np.ndarray, np.ndarray, bool]:
        """The encoder's (rows, kinds, is keyframe), with the steady case made cheap.

        A snapshot with the same bytes as the previous one is no change at all when the
        previous one was diffable (strictly sorted); one ``memcmp`` says so, instead of the
        encoder's sortedness checks of both and its element-wise comparison. Whatever else
        goes through the encoder unchanged, so the stored rows are identical either way.
        """
        if not force and self._prev is not None and _same_rows(self._prev, cur):
            if self._repeatable():
                self._prev = self._enc.prev = cur  # (no other encoder state moves for 0 rows)
                return _NO_ROWS, _NO_KIND, False
        self._prev = cur
        self._prev_sorted = None  # known again the next time the bytes repeat
        rows, kind, key = self._enc.encode(cur, force=force)
        if key:
            rows = cur  # copied into the row column below; the scan buffer is reused
        return rows, kind, key

    # -- writing ------------------------------------------------------------------------------
    def pending(self, meta: CaptureMeta | None = None) -> tuple[int, Capture]:
        """(first, snapshots ``first..n-1`` held in memory) for a writer's ``flush(cap, first)``.

        The returned capture may start with changes: it is for writers, not for reading.
        """
        with self._lock:
            return self.mem_first, self._memory(self.mem_first, self.n, meta, partial=True)

    def release(self, upto: int) -> None:
        """Snapshots before ``upto`` are on disk: drop their rows from memory."""
        if self._disk is None:
            raise RuntimeError("release() needs set_disk(): the live view reads flushed rows")
        with self._lock:
            upto = min(upto, self.n)
            if upto <= self.mem_first:
                return
            (r,) = self._coff.view(upto, upto + 1)
            self._rows.drop_before(int(r))
            self._kind.drop_before(int(r))
            if self._wrows is not None and self._woff is not None:
                (w,) = self._woff.view(upto, upto + 1)
                self._wrows.drop_before(int(w))
                self._woff.drop_before(upto)
            for name, col in self._side.items():
                (so,) = self._soff[name].view(upto, upto + 1)
                col.drop_before(int(so))
                self._soff[name].drop_before(upto)
            # the live view reads released snapshots' columns from the file too
            for col in (
                self._time,
                self._vidx,
                self._nrows,
                self._key,
                self._coff,
                *self._tel.values(),
            ):
                col.drop_before(upto)
            self.mem_first = upto

    def set_disk(self, open_flushed: Callable[[], Capture]) -> None:
        """How the live view opens the snapshots flushed so far (``pmviz.open`` of the file)."""
        self._disk = open_flushed

    # -- views --------------------------------------------------------------------------------
    def _memory(self, a: int, b: int, meta: CaptureMeta | None, *, partial: bool) -> Capture:
        """Snapshots ``[a, b)`` from memory (``a >= mem_first``), as a capture of views."""
        co = self._coff.view(a, b + 1)
        wr = woff = None
        if self._woff is not None and self._wrows is not None:
            wo = self._woff.view(a, b + 1)
            wr, woff = self._wrows.view(int(wo[0]), int(wo[-1])), wo - wo[0]
        side = {}
        for name, col in self._side.items():
            so = self._soff[name].view(a, b + 1)
            side[name] = (col.view(int(so[0]), int(so[-1])), so - so[0])
        return Capture._from_encoded(
            meta or self.meta,
            self._time.view(a, b),
            (
                self._rows.view(int(co[0]), int(co[-1])),
                self._kind.view(int(co[0]), int(co[-1])),
                self._nrows.view(a, b),
                np.diff(co),
                self._key.view(a, b),
            ),
            written=wr,
            written_offsets=woff,
            vma_tables=list(self.vma_tables),
            vma_index=self._vidx.view(a, b),
            telemetry={k: v.view(a, b) for k, v in self._tel.items()},
            marks=list(self.marks),
            partial=partial,
            side_tables=side,
        )

    def capture(self, start: int = 0, meta: CaptureMeta | None = None) -> Capture:
        """Snapshots ``start..n-1``: a consistent prefix of the recording.

        Snapshots still in memory are views (no copy); those released to disk are read from
        the capture file when used.
        """
        for _ in range(100):
            with self._lock:
                mem_first = self.mem_first
                if mem_first == 0:
                    cap = self._memory(0, self.n, meta, partial=False)
                    return cap if start == 0 else cap.select(slice(start, None))
                disk = self._disk
            assert disk is not None
            d = disk()  # opened outside the lock: the recorder keeps appending meanwhile
            ids = d.snapshot_ids  # type: ignore[attr-defined]  # a StoredCapture
            first_id = int(ids[0]) if len(ids) else mem_first
            with self._lock:
                if self.mem_first != mem_first:
                    continue  # released meanwhile: the disk view may predate that flush
                lo = max(mem_first, first_id)  # a ring may have dropped released snapshots
                if first_id < lo and (not len(ids) or int(ids[-1]) + 1 < lo):
                    raise RuntimeError("the capture file lacks snapshots released from memory")
                tail = self._memory(lo, self.n, meta, partial=True)
            cap = _LiveCapture(d, tail, lo)
            return cap if start == 0 else cap.select(slice(max(0, start - cap.first_id), None))
        raise RuntimeError("the recording kept flushing while its live view was opened")


class _LiveCapture(Capture):
    """Flushed snapshots read from disk, followed by the snapshots still in memory."""

    def __init__(self, disk: Any, tail: Capture, mem_first: int) -> None:
        ids = disk.snapshot_ids
        self.first_id = int(ids[0]) if len(ids) else mem_first
        self._disk, self._tail = disk, tail
        self._split = mem_first - self.first_id  # positions before this come from disk
        k = self._split
        d = slice(0, k)
        telemetry = {
            f: np.concatenate([disk.telemetry[f][d], tail.telemetry[f]]) for f in disk.telemetry
        }
        self._setup(
            tail.meta,
            np.concatenate([disk.time_ns[d], tail.time_ns]),
            np.concatenate([disk._n_rows[d], tail._n_rows]),
            np.concatenate([disk._key[d], tail._key]),
            np.concatenate([disk._coff[: k + 1], disk._coff[k] + tail._coff[1:]]),
            np.concatenate([disk.vma_index[d], tail.vma_index]),
            telemetry,
            tail.vma_tables,
            tail.marks,
        )
        if tail.written_offsets is not None and disk.written_offsets is not None:
            dw = disk.written_offsets
            self.written_offsets = np.concatenate([dw[: k + 1], dw[k] + tail.written_offsets[1:]])
        self.snapshot_ids = np.arange(self.first_id, self.first_id + len(self.time_ns))
        self._side = {}
        for name, dtype in tail.side_tables.items():
            if name not in disk.side_tables:  # (the file declares what the recorder records)
                raise RuntimeError(f"the capture file lacks side table {name!r}")
            do, to = disk.side_offsets(name), tail.side_offsets(name)
            self._side[name] = [dtype, None, np.concatenate([do[: k + 1], do[k] + to[1:]])]

    def _stored(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        k = self._split
        parts = []
        if a < k:
            parts.append(self._disk._stored(a, min(b, k)))
        if b > k:
            parts.append(self._tail._stored(max(a, k) - k, b - k))
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _written_rows(self, a: int, b: int) -> np.ndarray:
        k = self._split
        parts = []
        if a < k:
            parts.append(self._disk._written_rows(a, min(b, k)))
        if b > k:
            parts.append(self._tail._written_rows(max(a, k) - k, b - k))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _side_rows(self, name: str, a: int, b: int) -> np.ndarray:
        k = self._split
        parts = []
        if a < k:
            parts.append(self._disk._side_rows(name, a, min(b, k)))
        if b > k:
            parts.append(self._tail._side_rows(name, max(a, k) - k, b - k))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
