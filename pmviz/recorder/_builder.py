"""``CaptureBuilder``: the columns of a capture being recorded, appended to without copying."""

from __future__ import annotations

import contextlib
import mmap

import numpy as np

from .._kernel.pagemap_scan import REGION_DTYPE
from ..capture import TELEMETRY_FIELDS, Capture, CaptureMeta
from ..maps import Vmas

_MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)  # Python < 3.13 lacks the name


class _RowStore:
    """A growing ``REGION_DTYPE`` column whose rows rarely move.

    Backed by an anonymous ``MAP_NORESERVE`` mapping: only pages rows are written to are
    committed, and ``MADV_HUGEPAGE`` makes faulting them in cheap. When it fills up, a mapping
    eight times larger replaces it (one copy of the rows so far; amortised an eighth of a copy
    per row). A moderate reservation, rather than one huge one, matters when recording this
    very process with write tracking: arming write protection allocates page tables for the
    whole reservation (spec §3.8, holes). Views handed out keep their old mapping alive.
    """

    INITIAL_BYTES = 64 << 20

    def __init__(self, initial_bytes: int = INITIAL_BYTES) -> None:
        self.buf = self._reserve(initial_bytes // REGION_DTYPE.itemsize)
        self.used = 0

    @staticmethod
    def _reserve(rows: int) -> np.ndarray:
        nbytes = rows * REGION_DTYPE.itemsize
        try:
            m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE)
        except OSError:  # strict overcommit: plain memory
            return np.empty(rows, REGION_DTYPE)
        with contextlib.suppress(OSError, AttributeError):
            m.madvise(mmap.MADV_HUGEPAGE)
        return np.frombuffer(m, REGION_DTYPE, count=rows)

    def tail(self, start: int, n: int) -> np.ndarray:
        """Writable rows ``[start, start + n)``, growing the column if it must."""
        if start + n > len(self.buf):
            bigger = self._reserve(max(start + n, 8 * len(self.buf)))
            bigger[: self.used] = self.buf[: self.used]  # rows past start: a scan in progress
            self.buf = bigger
        self.used = max(self.used, start + n)
        return self.buf[start : start + n]


class CaptureBuilder:
    """Append-only columns of a capture being recorded; ``capture()`` is a consistent view.

    Region rows live in a :class:`_RowStore` (rows never move); the small per-snapshot
    columns grow by doubling. A view handed out earlier keeps pointing at rows that never
    change afterwards.
    """

    def __init__(self, meta: CaptureMeta, *, has_written: bool) -> None:
        self.meta = meta
        self.n = 0
        self._time = np.empty(64, np.int64)
        self._vidx = np.empty(64, np.int32)
        self._tel = {k: np.empty(64, np.int64) for k in TELEMETRY_FIELDS}
        self._roff = np.zeros(65, np.int64)
        self._regs = _RowStore()
        self._woff = np.zeros(65, np.int64) if has_written else None
        self._wr = _RowStore(_RowStore.INITIAL_BYTES // 4) if has_written else None
        self.vma_tables: list[Vmas] = []

    @staticmethod
    def _room(buf: np.ndarray, need: int) -> np.ndarray:
        if need <= len(buf):
            return buf
        bigger = np.empty(max(need, 2 * len(buf)), buf.dtype)
        bigger[: len(buf)] = buf
        return bigger

    def region_tail(self, n: int) -> np.ndarray:
        """Room for ``n`` region rows of the next snapshot (the recorder scans into it)."""
        return self._regs.tail(int(self._roff[self.n]), n)

    def append(
        self,
        time_ns: int,
        regions: np.ndarray | int,
        written: np.ndarray | None,
        vmas: Vmas | None,
        telemetry: dict[str, int],
    ) -> None:
        """Add one snapshot; ``vmas=None`` means "unchanged since the previous snapshot".

        ``regions`` is the snapshot's rows, or the number of rows already written into
        :meth:`region_tail`.
        """
        i = self.n
        if vmas is not None or not self.vma_tables:
            self.vma_tables.append(vmas if vmas is not None else Vmas())
        self._time = self._room(self._time, i + 1)
        self._vidx = self._room(self._vidx, i + 1)
        self._roff = self._room(self._roff, i + 2)
        for k in TELEMETRY_FIELDS:
            self._tel[k] = self._room(self._tel[k], i + 1)
            self._tel[k][i] = int(telemetry.get(k, 0))
        self._time[i] = time_ns
        self._vidx[i] = len(self.vma_tables) - 1
        r0 = int(self._roff[i])
        if isinstance(regions, (int, np.integer)):
            n_rows = int(regions)
        else:
            n_rows = len(regions)
            self._regs.tail(r0, n_rows)[:] = regions
        self._roff[i + 1] = r0 + n_rows
        if self._woff is not None and self._wr is not None:
            w = np.empty(0, REGION_DTYPE) if written is None else written
            self._woff = self._room(self._woff, i + 2)
            w0 = int(self._woff[i])
            self._wr.tail(w0, len(w))[:] = w
            self._woff[i + 1] = w0 + len(w)
        self.n = i + 1  # last: a concurrent capture() sees whole snapshots only

    def capture(self, start: int = 0, meta: CaptureMeta | None = None) -> Capture:
        """Snapshots ``start..n-1`` as a Capture of views (no copy of region rows)."""
        n = self.n
        ro = self._roff[start : n + 1]
        wr = woff = None
        if self._woff is not None and self._wr is not None:
            wo = self._woff[start : n + 1]
            wr, woff = self._wr.buf[wo[0] : wo[-1]], wo - wo[0]
        return Capture(
            meta or self.meta,
            self._time[start:n],
            self._regs.buf[ro[0] : ro[-1]],
            ro - ro[0],
            written=wr,
            written_offsets=woff,
            vma_tables=list(self.vma_tables),
            vma_index=self._vidx[start:n],
            telemetry={k: v[start:n] for k, v in self._tel.items()},
        )
