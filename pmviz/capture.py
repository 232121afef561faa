"""``Capture``: a time series of region snapshots of one process, columnar in memory.

One regions array for all snapshots plus offsets (snapshot ``i`` is
``regions[region_offsets[i]:region_offsets[i+1]]``), the same for written sets, and VMA tables
stored once per change. Analysis works on these arrays directly; ``regions_at(i)`` is a view.

``pmviz.open`` returns a subclass whose big arrays (``regions``, ``written``, ``vma_tables``)
load on first access; everything here goes through those attributes or the per-snapshot
accessors, so both behave the same.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, NamedTuple

import numpy as np

from ._intervals import clip_regions, concat_aranges
from ._kernel.pagemap_scan import PAGE_SIZE, REGION_DTYPE
from .categories import Category
from .maps import Vmas
from .regions import Regions, _human_bytes

__all__ = [
    "Capture",
    "CaptureMeta",
    "Changes",
    "Mark",
    "Snapshot",
    "FORMAT_VERSION",
    "TELEMETRY_FIELDS",
]

FORMAT_VERSION = 1

TELEMETRY_FIELDS = (
    "scan_ns",
    "n_regions",
    "retries",
    "skipped_ticks",
    "collect_ns",
    "snapshot_ns",
)
"""Per-snapshot telemetry: scan duration, regions returned, ioctl calls beyond the first
(resumes of a full output vector), schedule ticks skipped because the previous snapshot
overran, time to collect the written set, and the whole snapshot's time (scan + written set +
maps + bookkeeping)."""


@dataclass(frozen=True)
class CaptureMeta:
    """What a capture is of and how it was taken (stored as the capture's metadata file)."""

    pid: int | None = None
    command: list[str] | None = None
    kernel_release: str = ""
    page_size: int = PAGE_SIZE
    interval_ns: int = 0
    start_wall_ns: int = 0
    """``time.time_ns()`` at the first snapshot."""
    start_monotonic_ns: int = 0
    """``time.monotonic_ns()`` at the first snapshot; ``time_ns`` values share this clock."""
    write_mechanism: str = "none"
    """"uffd-wp", "soft-dirty" or "none" (present/swapped only)."""
    features: dict[str, Any] = field(default_factory=dict)
    scan_mask: dict[str, int] = field(default_factory=dict)
    """The kernel fields of the recording mask (normally: no filter, every category)."""
    end_reason: str | None = None
    exit_status: int | None = None
    anonymized: bool = False
    format_version: int = FORMAT_VERSION
    pmviz_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CaptureMeta:
        """Inverse of :meth:`as_dict`; unknown keys (from newer writers) go to ``extra``."""
        known = {f.name for f in fields(cls)}
        extra = dict(d.get("extra") or {})
        extra.update({k: v for k, v in d.items() if k not in known})
        return cls(**{k: v for k, v in d.items() if k in known and k != "extra"}, extra=extra)

    def replace(self, **changes: Any) -> CaptureMeta:
        return replace(self, **changes)


class Snapshot(NamedTuple):
    """One snapshot, as views into its capture."""

    index: int  # type: ignore[assignment]  # shadows tuple.index, as the lead's API has it
    time_ns: int
    regions: Regions
    written: Regions | None
    vmas: Vmas


class Mark(NamedTuple):
    """A named instant of a recording (``pmviz.mark("sort")``, ``Recorder.mark``)."""

    time_ns: int
    """``CLOCK_MONOTONIC``, the clock of the capture's ``time_ns``."""
    label: str


class Changes(NamedTuple):
    """Region changes of consecutive snapshots ``first .. end-1``, sorted by snapshot.

    Replaying the changes of :meth:`Capture.changes` from an empty address space rebuilds
    every snapshot exactly: the first chunk of an iteration that starts at snapshot ``lo``
    brings the whole of snapshot ``lo`` as rows that appear at ``lo``; after that a row
    appears (``sign`` +1) at the snapshot where it is first seen and disappears (``sign`` -1)
    at the first snapshot that no longer has it, identical (start, end, categories).
    """

    first: int
    end: int
    snapshot: np.ndarray
    """``int64``: the snapshot at which each row appears or disappears."""
    rows: np.ndarray
    """``REGION_DTYPE`` rows."""
    sign: np.ndarray
    """``int8``: +1 appears, -1 disappears."""


def _offsets(lengths: Sequence[int] | np.ndarray) -> np.ndarray:
    off = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=off[1:])
    return off


def _gather(arr: np.ndarray, off: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of snapshots ``idx`` (in that order) and their new offsets, without a Python loop."""
    lens = off[idx + 1] - off[idx]
    new_off = _offsets(lens)
    return arr[concat_aranges(off[idx], lens)], new_off


def clip_rows(
    arr: np.ndarray, off: np.ndarray, start: int, end: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cut every snapshot's regions to ``[start, end)``; returns the rows and new offsets."""
    out, keep = clip_regions(arr, start, end)
    snap = np.repeat(np.arange(len(off) - 1), np.diff(off))
    return out, _offsets(np.bincount(snap[keep], minlength=len(off) - 1))


class Capture:
    """A recording: snapshots of one process over time.

    Attributes
    ----------
    meta : CaptureMeta
    time_ns : numpy.ndarray
        ``int64`` monotonic timestamps, one per snapshot.
    regions, region_offsets : numpy.ndarray
        All snapshots' full-category scans concatenated (``REGION_DTYPE``) and ``n+1`` offsets.
    written, written_offsets : numpy.ndarray or None
        Pages written since the previous snapshot, likewise; ``None`` without write tracking.
    vma_tables : list of Vmas
        Distinct VMA tables; ``vma_index[i]`` says which one snapshot ``i`` saw.
    telemetry : dict of numpy.ndarray
        Per snapshot: ``scan_ns``, ``n_regions``, ``retries``, ``skipped_ticks``.

    Examples
    --------
    >>> import numpy as np, pmviz
    >>> from pmviz.capture import Capture, CaptureMeta
    >>> r = pmviz.Regions.from_arrays([0x1000], [0x3000], [8])
    >>> cap = Capture.from_snapshots(CaptureMeta(), [(0, r, None, None), (10**8, r, None, None)])
    >>> cap.n_snapshots, cap.regions_at(1).n_pages
    (2, 2)
    """

    def __init__(
        self,
        meta: CaptureMeta,
        time_ns: np.ndarray,
        regions: np.ndarray | None,
        region_offsets: np.ndarray,
        *,
        written: np.ndarray | None = None,
        written_offsets: np.ndarray | None = None,
        vma_tables: list[Vmas] | None = None,
        vma_index: np.ndarray | None = None,
        telemetry: dict[str, np.ndarray] | None = None,
        marks: Sequence[Mark] | None = None,
    ) -> None:
        n = len(time_ns)
        self.meta = meta
        self.marks: list[Mark] = [Mark(int(t), str(label)) for t, label in (marks or ())]
        self.time_ns = np.asarray(time_ns, dtype=np.int64)
        self.region_offsets = np.asarray(region_offsets, dtype=np.int64)
        if self.region_offsets.shape != (n + 1,):
            raise ValueError(f"region_offsets needs {n + 1} entries, has {len(region_offsets)}")
        if (written is None) != (written_offsets is None):
            raise ValueError("written and written_offsets go together")
        self.written_offsets = (
            None if written_offsets is None else np.asarray(written_offsets, dtype=np.int64)
        )
        self.vma_index = (
            np.zeros(n, dtype=np.int32) if vma_index is None else np.asarray(vma_index, np.int32)
        )
        tel = telemetry or {}
        self.telemetry = {
            k: np.asarray(tel.get(k, np.zeros(n)), dtype=np.int64) for k in TELEMETRY_FIELDS
        }
        self._regions: np.ndarray | None = (
            None if regions is None else np.asarray(regions, dtype=REGION_DTYPE)
        )
        self._written = None if written is None else np.asarray(written, dtype=REGION_DTYPE)
        self._vma_tables: list[Vmas] | None = list(vma_tables) if vma_tables else [Vmas()]

    # The three big columns are properties so that a lazily opened capture can load them on
    # first access (pmviz.storage); here they are plain arrays.
    @property
    def regions(self) -> np.ndarray:
        assert self._regions is not None
        return self._regions

    @property
    def written(self) -> np.ndarray | None:
        return self._written

    @property
    def vma_tables(self) -> list[Vmas]:
        assert self._vma_tables is not None
        return self._vma_tables

    @classmethod
    def from_snapshots(
        cls,
        meta: CaptureMeta,
        snapshots: Iterable[tuple[int, Regions, Regions | None, Vmas | None]],
    ) -> Capture:
        """Build from ``(time_ns, regions, written or None, vmas or None)`` tuples.

        A ``None`` VMA table repeats the previous one; written sets must be all present or all
        ``None``. Meant for tests and synthetic data; the recorder appends columns directly.
        """
        times: list[int] = []
        regs: list[np.ndarray] = []
        wr: list[np.ndarray | None] = []
        tables: list[Vmas] = []
        index: list[int] = []
        for t, r, w, v in snapshots:
            times.append(int(t))
            regs.append(r.array)
            wr.append(None if w is None else w.array)
            if v is not None and (not tables or not v == tables[-1]):
                tables.append(v)
            index.append(max(len(tables) - 1, 0))
        has_w = [w is not None for w in wr]
        if any(has_w) and not all(has_w):
            raise ValueError("either every snapshot has a written set or none has")
        empty = np.empty(0, REGION_DTYPE)
        ws = [w for w in wr if w is not None] if all(has_w) and wr else None
        return cls(
            meta,
            np.array(times, dtype=np.int64),
            np.concatenate(regs) if regs else empty,
            _offsets([len(r) for r in regs]),
            written=np.concatenate(ws) if ws else (empty if ws is not None else None),
            written_offsets=_offsets([len(w) for w in ws]) if ws is not None else None,
            vma_tables=tables or None,
            vma_index=np.array(index, dtype=np.int32),
            telemetry={"n_regions": np.array([len(r) for r in regs], dtype=np.int64)},
        )

    # -- shape --------------------------------------------------------------------------------
    @property
    def n_snapshots(self) -> int:
        return int(self.time_ns.shape[0])

    def __len__(self) -> int:
        return self.n_snapshots

    @property
    def n_regions(self) -> int:
        """Regions over all snapshots (known without loading them)."""
        return int(self.region_offsets[-1])

    @property
    def page_size(self) -> int:
        return self.meta.page_size

    @property
    def has_written(self) -> bool:
        return self.written_offsets is not None

    @property
    def times(self) -> np.ndarray:
        """Seconds since the first snapshot (``float64``)."""
        if not self.n_snapshots:
            return np.empty(0)
        return (self.time_ns - self.time_ns[0]) / 1e9

    # -- per snapshot -------------------------------------------------------------------------
    def _index(self, i: int) -> int:
        n = self.n_snapshots
        if not -n <= i < n:
            raise IndexError(f"snapshot {i} out of range for a capture of {n}")
        return i % n

    def regions_at(self, i: int) -> Regions:
        """The full-category scan of snapshot ``i`` (a view)."""
        i = self._index(i)
        o = self.region_offsets
        return Regions(self.regions[o[i] : o[i + 1]], page_size=self.page_size)

    def written_at(self, i: int) -> Regions | None:
        """Pages written between snapshot ``i-1`` and ``i`` (``None`` without tracking)."""
        written = self.written
        if written is None or self.written_offsets is None:
            return None
        i = self._index(i)
        o = self.written_offsets
        return Regions(written[o[i] : o[i + 1]], page_size=self.page_size)

    def vmas_at(self, i: int) -> Vmas:
        """The VMA table in force at snapshot ``i``."""
        return self.vma_tables[int(self.vma_index[self._index(i)])]

    def snapshot(self, i: int) -> Snapshot:
        i = self._index(i)
        return Snapshot(
            i, int(self.time_ns[i]), self.regions_at(i), self.written_at(i), self.vmas_at(i)
        )

    def __iter__(self) -> Iterator[Snapshot]:
        for i in range(self.n_snapshots):
            yield self.snapshot(i)

    @property
    def snapshots(self) -> Sequence[Snapshot]:
        """The snapshots as a sequence: ``cap.snapshots[-1].regions``, ``len(cap.snapshots)``."""
        return _Snapshots(self)

    def select(self, snapshots: slice | np.ndarray) -> Capture:
        """A capture of a subset of snapshots (a slice or a boolean/integer index)."""
        idx = np.arange(self.n_snapshots)[snapshots]
        regs, roff = _gather(self.regions, self.region_offsets, idx)
        wr = woff = None
        if self.written is not None and self.written_offsets is not None:
            wr, woff = _gather(self.written, self.written_offsets, idx)
        return self._derived(idx, regs, roff, wr, woff)

    def _derived(
        self,
        idx: np.ndarray,
        regs: np.ndarray,
        roff: np.ndarray,
        wr: np.ndarray | None,
        woff: np.ndarray | None,
        **meta_changes: Any,
    ) -> Capture:
        # Keep only the VMA tables the selection uses, renumbered densely.
        used, vidx = np.unique(self.vma_index[idx], return_inverse=True)
        tables = self.vma_tables
        return Capture(
            self.meta.replace(**meta_changes) if meta_changes else self.meta,
            self.time_ns[idx],
            regs,
            roff,
            written=wr,
            written_offsets=woff,
            vma_tables=[tables[int(u)] for u in used] or None,
            vma_index=vidx.astype(np.int32).reshape(-1),
            telemetry={k: v[idx] for k, v in self.telemetry.items()},
            marks=self.marks,
        )

    def window(self, t0: float | None = None, t1: float | None = None) -> Capture:
        """The snapshots with ``t0 <= times < t1`` (seconds since the first snapshot)."""
        return self.select(self._time_slice(t0, t1))

    def _time_slice(self, t0: float | None, t1: float | None) -> slice:
        t = self.times  # sorted: snapshots are taken in order
        lo = 0 if t0 is None else int(np.searchsorted(t, t0, side="left"))
        hi = len(t) if t1 is None else int(np.searchsorted(t, t1, side="left"))
        return slice(lo, max(lo, hi))

    def address_window(self, start: int, end: int) -> Capture:
        """Every snapshot, with regions, written sets and VMAs cut to ``[start, end)``."""
        if not 0 <= start <= end:
            raise ValueError(f"need 0 <= start <= end, got start={start:#x} end={end:#x}")
        regs, roff = clip_rows(self.regions, self.region_offsets, start, end)
        wr = woff = None
        if self.written is not None and self.written_offsets is not None:
            wr, woff = clip_rows(self.written, self.written_offsets, start, end)
        out = self._derived(np.arange(self.n_snapshots), regs, roff, wr, woff)
        out._vma_tables = [_clip_vmas(v, start, end) for v in out.vma_tables]
        return out

    # -- streaming ----------------------------------------------------------------------------
    def _snapshot_range(self, snapshots: slice | None) -> range:
        return range(self.n_snapshots)[snapshots if snapshots is not None else slice(None)]

    def chunks(
        self, snapshots: slice | None = None, *, max_rows: int = 1 << 22
    ) -> Iterator[tuple[int, Capture]]:
        """Consecutive in-memory sub-captures, in order, for analyses with bounded memory.

        Parameters
        ----------
        snapshots : slice, optional
            A contiguous range of snapshots (step 1); all by default.
        max_rows : int
            Region rows per chunk at most (a snapshot larger than that comes alone).

        Yields
        ------
        (int, Capture)
            The index of the chunk's first snapshot in this capture, and the chunk.
        """
        rng = self._snapshot_range(snapshots)
        if rng.step != 1:
            raise ValueError("chunks() takes a contiguous range of snapshots (step 1)")
        off = self.region_offsets
        a, stop = rng.start, rng.stop
        while a < stop:
            # the last snapshot whose rows still fit, at least one
            b = int(np.searchsorted(off, off[a] + max_rows, side="right")) - 1
            b = min(max(b, a + 1), stop)
            yield a, self.select(slice(a, b))
            a = b

    def changes(
        self, snapshots: slice | None = None, *, max_rows: int = 1 << 22
    ) -> Iterator[Changes]:
        """The snapshots as changes (see :class:`Changes`), in chunks of bounded size.

        A cell of an analysis that did not change need not be recomputed: replaying these
        costs what changed between snapshots, not snapshots x regions.
        """
        rng = self._snapshot_range(snapshots)
        if rng.step != 1:
            raise ValueError("changes() takes a contiguous range of snapshots (step 1)")
        for a, chunk in self.chunks(slice(rng.start, rng.stop), max_rows=max_rows):
            if a == rng.start:  # nothing before the iteration's first snapshot
                yield _changes(chunk, a, a)
            else:
                yield _changes(self.select(slice(a - 1, a + chunk.n_snapshots)), a - 1, a)

    # -- reshaping ----------------------------------------------------------------------------
    def slice(
        self,
        t0: float | None = None,
        t1: float | None = None,
        *,
        addr_range: tuple[int, int] | None = None,
    ) -> Capture:
        """The snapshots with ``t0 <= times < t1``, cut to ``addr_range`` when given.

        Times are seconds since the first snapshot (as :attr:`times`); marks outside the
        time window are dropped.
        """
        out = self.window(t0, t1)
        if addr_range is not None:
            out = out.address_window(int(addr_range[0]), int(addr_range[1]))
        if out.n_snapshots:
            lo, hi = int(out.time_ns[0]), int(out.time_ns[-1])
            out.marks = [m for m in out.marks if lo <= m.time_ns <= hi]
        return out

    def downsample(self, *, every: int | None = None, interval: float | None = None) -> Capture:
        """Keep every ``every``-th snapshot, or the first at or after each ``interval`` seconds.

        Written sets stay exact: a kept snapshot's written set is the union of its own and
        those of the dropped snapshots since the previous kept one. Snapshots after the last
        kept one are dropped with their written sets.
        """
        if (every is None) == (interval is None):
            raise ValueError("give exactly one of every= or interval=")
        n = self.n_snapshots
        if every is not None:
            if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
                raise ValueError(f"every must be a positive int, got {every!r}")
            idx = np.arange(0, n, int(every))
        else:
            if not (isinstance(interval, (int, float)) and np.isfinite(interval) and interval > 0):
                raise ValueError(
                    f"interval must be a finite number of seconds > 0, got {interval!r}"
                )
            t = self.times
            marks_t = np.arange(0.0, float(t[-1]) + interval, interval) if n else np.empty(0)
            idx = np.unique(np.searchsorted(t, marks_t, side="left"))
            idx = idx[idx < n]
        out = self.select(idx)
        if self.written is not None and self.written_offsets is not None and len(idx):
            out = _merge_written(self, idx, out)
        return out

    # -- export -------------------------------------------------------------------------------
    def to_pandas(self, what: str = "regions"):  # noqa: ANN201 - pandas is optional
        """A ``pandas.DataFrame`` of one of the capture's tables.

        Parameters
        ----------
        what : {"regions", "written", "snapshots"}
            ``"regions"``: one row per region per snapshot (``snapshot``, ``time_ns``,
            ``start``, ``end``, ``categories``); ``"written"``: the same for written sets;
            ``"snapshots"``: one row per snapshot with ``time_ns``, ``vma_table`` and telemetry.
        """
        import pandas as pd

        if what == "snapshots":
            return pd.DataFrame(
                {"time_ns": self.time_ns, "vma_table": self.vma_index, **self.telemetry}
            )
        if what == "regions":
            arr, off = self.regions, self.region_offsets
        elif what == "written":
            if self.written is None or self.written_offsets is None:
                raise ValueError("this capture has no written sets (recorded with writes='none')")
            arr, off = self.written, self.written_offsets
        else:
            raise ValueError(f"what must be 'regions', 'written' or 'snapshots', got {what!r}")
        snap = np.repeat(np.arange(self.n_snapshots), np.diff(off))
        return pd.DataFrame(
            {
                "snapshot": snap,
                "time_ns": self.time_ns[snap],
                "start": arr["start"],
                "end": arr["end"],
                "categories": arr["categories"],
            }
        )

    def anonymize(self) -> Capture:
        """A copy safe to publish: addresses rebased, paths and command line stripped.

        See :func:`pmviz.anonymize.anonymize` for the scheme.
        """
        from .anonymize import anonymize

        return anonymize(self)

    # -- display ------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} pid={self.meta.pid} snapshots={self.n_snapshots} "
            f"regions={self.n_regions} writes={self.meta.write_mechanism}>"
        )

    def summary(self) -> dict[str, str]:
        """The facts ``_repr_html_`` and ``pmviz info`` show, as plain strings."""
        m = self.meta
        n = self.n_snapshots
        dur = float(self.times[-1]) if n else 0.0
        last = self.regions_at(-1) if n else Regions()
        resident = last.pages_with(Category.PRESENT) * self.page_size
        skipped = int(self.telemetry["skipped_ticks"].sum())
        scan_ms = self.telemetry["scan_ns"][self.telemetry["scan_ns"] > 0] / 1e6
        return {
            "process": (f"pid {m.pid}" if m.pid is not None else "pid hidden")
            + (f" — {' '.join(m.command)}" if m.command else ""),
            "snapshots": f"{n:,} over {dur:.2f} s (interval {m.interval_ns / 1e6:g} ms, "
            f"{skipped} ticks skipped)",
            "regions": f"{self.n_regions:,} in all, {len(last):,} in the last snapshot",
            "scan time": f"median {np.median(scan_ms):.2f} ms, max {scan_ms.max():.2f} ms"
            if len(scan_ms)
            else "—",
            "resident (last)": _human_bytes(resident),
            "mapped (last)": _human_bytes(self.vmas_at(-1).size) if n else "—",
            "VMA tables": f"{len(self.vma_tables):,}",
            "write tracking": m.write_mechanism,
            "kernel": m.kernel_release,
            "end reason": str(m.end_reason)
            + (
                f" (program exit status {m.exit_status})"
                if m.exit_status is not None and "status" not in str(m.end_reason)
                else ""
            ),
            "anonymized": "yes" if m.anonymized else "no",
        }

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{html.escape(v)}</td></tr>"
            for k, v in self.summary().items()
        )
        return f"<div><b>pmviz {type(self).__name__}</b><table>{body}</table></div>"


class _Snapshots(Sequence):
    """A read-only sequence view of a capture's snapshots (built on demand, as views)."""

    def __init__(self, capture: Capture) -> None:
        self._capture = capture

    def __len__(self) -> int:
        return self._capture.n_snapshots

    def __getitem__(self, i):  # noqa: ANN001, ANN204 - int -> Snapshot, slice -> list
        if isinstance(i, slice):
            return [self._capture.snapshot(k) for k in range(*i.indices(len(self)))]
        return self._capture.snapshot(int(i))


def _clip_vmas(v: Vmas, start: int, end: int) -> Vmas:
    keep = (v.array["end"] > np.uint64(start)) & (v.array["start"] < np.uint64(end))
    return v[keep]


def _changes(base: Capture, first_prev: int, first: int) -> Changes:
    """Changes of ``base``'s snapshots from ``first`` on; ``base`` starts at ``first_prev``
    (``first - 1``: its first snapshot is only the state before; ``first``: start empty).
    """
    rows = base.regions
    n = base.n_snapshots
    snap = np.repeat(
        np.arange(first_prev, first_prev + n, dtype=np.int64), np.diff(base.region_offsets)
    )
    end = first_prev + n
    order = np.lexsort((snap, rows["categories"], rows["end"], rows["start"]))
    r, s = rows[order], snap[order]
    same = np.zeros(len(r), bool)
    if len(r) > 1:
        same[1:] = (
            (r["start"][1:] == r["start"][:-1])
            & (r["end"][1:] == r["end"][:-1])
            & (r["categories"][1:] == r["categories"][:-1])
            & (s[1:] == s[:-1] + 1)
        )
    # appears: a row of a snapshot >= first with no identical row one snapshot before
    appears = ~same & (s >= first)
    # disappears at s+1: a row with no identical row one snapshot later, if s+1 is in range
    cont_next = np.zeros(len(r), bool)
    cont_next[:-1] = same[1:]
    disappears = ~cont_next & (s + 1 < end)
    ev_snap = np.concatenate([s[disappears] + 1, s[appears]])
    ev_rows = np.concatenate([r[disappears], r[appears]])
    ev_sign = np.concatenate(
        [np.full(int(disappears.sum()), -1, np.int8), np.ones(int(appears.sum()), np.int8)]
    )
    o = np.lexsort((ev_rows["start"], ev_snap))
    return Changes(first, end, ev_snap[o], ev_rows[o], ev_sign[o])


def _merge_written(src: Capture, idx: np.ndarray, out: Capture) -> Capture:
    """``out`` (= ``src.select(idx)``) with each kept written set the union of the dropped
    ones since the previous kept snapshot.
    """
    from ._intervals import union_columns

    assert src.written is not None and src.written_offsets is not None
    off = src.written_offsets
    lo = np.concatenate([[0], idx[:-1] + 1])
    parts: list[np.ndarray] = []
    for a, b in zip(lo.tolist(), idx.tolist()):  # one union per kept snapshot
        rows = src.written[off[a] : off[b + 1]]
        s, e = union_columns(rows["start"], rows["end"])
        merged = np.zeros(len(s), REGION_DTYPE)
        merged["start"], merged["end"] = s, e
        merged["categories"] = int(Category.WRITTEN)
        parts.append(merged)
    out._written = np.concatenate(parts) if parts else np.empty(0, REGION_DTYPE)
    out.written_offsets = _offsets([len(p) for p in parts])
    return out
