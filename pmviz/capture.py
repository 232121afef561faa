"""``Capture``: a time series of region snapshots of one process, columnar in memory.

One regions array for all snapshots plus offsets (snapshot ``i`` is
``regions[region_offsets[i]:region_offsets[i+1]]``), the same for written sets, and VMA tables
stored once per change. Analysis works on these arrays directly; ``regions_at(i)`` is a view.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

from ._kernel.pagemap_scan import PAGE_SIZE, REGION_DTYPE
from .categories import Category
from .maps import Vmas
from .regions import Regions, _human_bytes

__all__ = ["Capture", "CaptureMeta", "Snapshot", "FORMAT_VERSION"]

FORMAT_VERSION = 1

TELEMETRY_FIELDS = ("scan_ns", "n_regions", "retries", "skipped_ticks")


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

    def replace(self, **changes: Any) -> CaptureMeta:
        return replace(self, **changes)


class Snapshot(NamedTuple):
    """One snapshot, as views into its capture."""

    index: int
    time_ns: int
    regions: Regions
    written: Regions | None
    vmas: Vmas


def _offsets(lengths: Sequence[int]) -> np.ndarray:
    off = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=off[1:])
    return off


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
    """

    def __init__(
        self,
        meta: CaptureMeta,
        time_ns: np.ndarray,
        regions: np.ndarray,
        region_offsets: np.ndarray,
        *,
        written: np.ndarray | None = None,
        written_offsets: np.ndarray | None = None,
        vma_tables: list[Vmas] | None = None,
        vma_index: np.ndarray | None = None,
        telemetry: dict[str, np.ndarray] | None = None,
    ) -> None:
        n = len(time_ns)
        self.meta = meta
        self.time_ns = np.asarray(time_ns, dtype=np.int64)
        self.regions = np.asarray(regions, dtype=REGION_DTYPE)
        self.region_offsets = np.asarray(region_offsets, dtype=np.int64)
        if self.region_offsets.shape != (n + 1,):
            raise ValueError(f"region_offsets needs {n + 1} entries, has {len(region_offsets)}")
        if (written is None) != (written_offsets is None):
            raise ValueError("written and written_offsets go together")
        self.written = None if written is None else np.asarray(written, dtype=REGION_DTYPE)
        self.written_offsets = (
            None if written_offsets is None else np.asarray(written_offsets, dtype=np.int64)
        )
        self.vma_tables = list(vma_tables) if vma_tables else [Vmas()]
        self.vma_index = (
            np.zeros(n, dtype=np.int32) if vma_index is None else np.asarray(vma_index, np.int32)
        )
        tel = telemetry or {}
        self.telemetry = {
            k: np.asarray(tel.get(k, np.zeros(n)), dtype=np.int64) for k in TELEMETRY_FIELDS
        }

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
        times, regs, wr, tables, index = [], [], [], [], []
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
        return cls(
            meta,
            np.array(times, dtype=np.int64),
            np.concatenate(regs) if regs else empty,
            _offsets([len(r) for r in regs]),
            written=(np.concatenate(wr) if wr else empty) if all(has_w) and wr else None,
            written_offsets=_offsets([len(w) for w in wr]) if all(has_w) and wr else None,
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
    def page_size(self) -> int:
        return self.meta.page_size

    @property
    def has_written(self) -> bool:
        return self.written is not None

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
        if self.written is None or self.written_offsets is None:
            return None
        i = self._index(i)
        o = self.written_offsets
        return Regions(self.written[o[i] : o[i + 1]], page_size=self.page_size)

    def vmas_at(self, i: int) -> Vmas:
        """The VMA table in force at snapshot ``i``."""
        return self.vma_tables[int(self.vma_index[self._index(i)])]

    def snapshot(self, i: int) -> Snapshot:
        i = self._index(i)
        return Snapshot(
            i, int(self.time_ns[i]), self.regions_at(i), self.written_at(i), self.vmas_at(i)
        )

    def __iter__(self):
        for i in range(self.n_snapshots):
            yield self.snapshot(i)

    def select(self, snapshots: slice | np.ndarray) -> Capture:
        """A capture of a subset of snapshots (a slice or a boolean/integer index)."""
        idx = np.arange(self.n_snapshots)[snapshots]

        def gather(arr: np.ndarray, off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            lens = off[idx + 1] - off[idx]
            take = np.repeat(off[idx] - _offsets(lens)[:-1], lens) + np.arange(lens.sum())
            return arr[take], _offsets(lens)

        regs, roff = gather(self.regions, self.region_offsets)
        wr = woff = None
        if self.written is not None and self.written_offsets is not None:
            wr, woff = gather(self.written, self.written_offsets)
        return Capture(
            self.meta,
            self.time_ns[idx],
            regs,
            roff,
            written=wr,
            written_offsets=woff,
            vma_tables=self.vma_tables,
            vma_index=self.vma_index[idx],
            telemetry={k: v[idx] for k, v in self.telemetry.items()},
        )

    def window(self, t0: float | None = None, t1: float | None = None) -> Capture:
        """The snapshots with ``t0 <= times < t1`` (seconds since the first snapshot)."""
        t = self.times
        keep = np.ones(len(t), dtype=bool)
        if t0 is not None:
            keep &= t >= t0
        if t1 is not None:
            keep &= t < t1
        return self.select(keep)

    def to_pandas(self):  # noqa: ANN201 - pandas is optional
        """One row per region per snapshot (``snapshot``, ``time_ns``, ``start``, ``end``,
        ``categories``, and ``written`` — the written pages the region overlaps, when tracked).
        """
        import pandas as pd

        snap = np.repeat(np.arange(self.n_snapshots), np.diff(self.region_offsets))
        return pd.DataFrame(
            {
                "snapshot": snap,
                "time_ns": self.time_ns[snap],
                "start": self.regions["start"],
                "end": self.regions["end"],
                "categories": self.regions["categories"],
            }
        )

    def __repr__(self) -> str:
        return (
            f"<Capture pid={self.meta.pid} snapshots={self.n_snapshots} "
            f"regions={len(self.regions)} writes={self.meta.write_mechanism}>"
        )

    def _repr_html_(self) -> str:
        m = self.meta
        n = self.n_snapshots
        dur = float(self.times[-1]) if n else 0.0
        last = self.regions_at(-1) if n else Regions()
        resident = last.pages_with(Category.PRESENT) * self.page_size
        rows = {
            "process": f"pid {m.pid}"
            + (f" — <code>{html.escape(' '.join(m.command))}</code>" if m.command else ""),
            "snapshots": f"{n:,} over {dur:.2f} s (interval {m.interval_ns / 1e6:g} ms)",
            "regions": f"{len(self.regions):,} in all, {len(last):,} in the last snapshot",
            "resident (last)": _human_bytes(resident),
            "mapped (last)": _human_bytes(self.vmas_at(-1).size) if n else "—",
            "write tracking": html.escape(m.write_mechanism),
            "kernel": html.escape(m.kernel_release),
            "end reason": html.escape(str(m.end_reason)),
        }
        body = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in rows.items()
        )
        return f"<div><b>pmviz Capture</b><table>{body}</table></div>"
