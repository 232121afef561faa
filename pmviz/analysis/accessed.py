"""Accessed working sets: what a process read *or* wrote, from access samples over time.

An :class:`AccessSeries` is a per-snapshot row table, the shape a capture stores its
``written`` sets in: snapshot ``i`` is ``rows[offsets[i]:offsets[i + 1]]``, rows ``[start,
end)`` plus value columns. Two kinds (``pmviz.accessed``):

``"vma"``
    ``REFERENCED_DTYPE``: per VMA, bytes referenced in the interval ending at the snapshot
    (exact) and bytes resident.
``"probe"``
    ``PROBED_DTYPE``: per adaptive region, resident pages, probed pages and probes accessed
    in the interval. Accessed bytes are estimates with a Wilson 95 % interval.

Everything here is numpy only and runs on any machine that can read the samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._intervals import concat_aranges, elementary
from .._kernel.pagemap_scan import PAGE_SIZE, REGION_DTYPE
from ..accessed._samples import PROBED_DTYPE, REFERENCED_DTYPE, AccessSample, ProbeSample
from ..accessed._stats import wilson_interval
from ..capture import Capture, CaptureMeta
from ..categories import Category
from ..regions import Regions
from ..sidetables import PROBED, REFERENCED
from ._html import human_bytes, table
from ._intervals import prefix_coverage
from .axis import AddressAxis, address_axis
from .heatmap import HeatmapGrid
from .working_set import working_set_size

__all__ = [
    "AccessSeries",
    "AccessedWss",
    "accessed_wss",
    "AccessIdleAge",
    "access_idle_age",
    "access_heatmap_grid",
    "ReadMostly",
    "read_mostly",
]

_KINDS = {"vma": REFERENCED_DTYPE, "probe": PROBED_DTYPE}


class AccessSeries:
    """Access samples of one process over time, as one row table plus offsets.

    Parameters
    ----------
    kind : {"vma", "probe"}
    time_ns : numpy.ndarray
        ``int64`` ``CLOCK_MONOTONIC`` of each sample (the clock of ``Capture.time_ns``).
    rows : numpy.ndarray
        ``REFERENCED_DTYPE`` (vma) or ``PROBED_DTYPE`` (probe), samples concatenated.
    offsets : numpy.ndarray
        ``n + 1`` offsets into ``rows``.
    page_size : int

    Examples
    --------
    >>> import numpy as np
    >>> from pmviz.accessed import AccessSample, REFERENCED_DTYPE
    >>> rows = np.zeros(1, REFERENCED_DTYPE)
    >>> rows["start"], rows["end"], rows["referenced_bytes"] = 0x1000, 0x9000, 0x4000
    >>> s = AccessSeries.from_samples([AccessSample(0, rows), AccessSample(10**8, rows)])
    >>> s.accessed_bytes().tolist()
    [16384.0, 16384.0]
    """

    def __init__(
        self,
        kind: str,
        time_ns: np.ndarray,
        rows: np.ndarray,
        offsets: np.ndarray,
        *,
        page_size: int = PAGE_SIZE,
    ) -> None:
        if kind not in _KINDS:
            raise ValueError(f"kind must be 'vma' or 'probe', got {kind!r}")
        self.kind = kind
        self.time_ns = np.asarray(time_ns, dtype=np.int64)
        self.rows = np.asarray(rows).astype(_KINDS[kind], copy=False)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        if self.offsets.shape != (len(self.time_ns) + 1,) or self.offsets[-1] != len(self.rows):
            raise ValueError("offsets need n + 1 entries ending at len(rows)")
        self.page_size = int(page_size)

    @classmethod
    def from_samples(
        cls, samples: Sequence[AccessSample | ProbeSample], *, page_size: int = PAGE_SIZE
    ) -> AccessSeries:
        """Build from what ``VmaReferenced.collect`` / ``AccessProbe.collect`` returned."""
        if not samples:
            raise ValueError("no samples")
        kinds = {"probe" if isinstance(s, ProbeSample) else "vma" for s in samples}
        if len(kinds) != 1:
            raise ValueError("samples of both kinds: keep vma and probe samples apart")
        off = np.zeros(len(samples) + 1, np.int64)
        np.cumsum([len(s.rows) for s in samples], out=off[1:])
        return cls(
            kinds.pop(),
            np.array([s.time_ns for s in samples], np.int64),
            np.concatenate([s.rows for s in samples]),
            off,
            page_size=page_size,
        )

    @classmethod
    def from_capture(cls, capture: Capture) -> AccessSeries:
        """The access samples a capture recorded with ``accessed="vma"`` or ``"probe"``.

        Raises
        ------
        ValueError
            The capture has no access samples (recorded with ``accessed="none"``).

        Examples
        --------
        >>> import pmviz
        >>> cap = pmviz.open("sample_data/redis-get.pmviz")  # doctest: +SKIP
        >>> AccessSeries.from_capture(cap).accessed_bytes()  # doctest: +SKIP
        """
        kind = capture.accessed_mechanism
        if kind == "none":
            raise ValueError(
                "this capture has no access samples: record with accessed='vma' or 'probe' "
                "(pmviz record --accessed vma)"
            )
        table = REFERENCED if kind == "vma" else PROBED
        return cls(
            kind,
            capture.time_ns,
            capture.side_rows(table),
            capture.side_offsets(table),
            page_size=capture.page_size,
        )

    def __len__(self) -> int:
        return int(self.time_ns.shape[0])

    def rows_at(self, i: int) -> np.ndarray:
        """The rows of sample ``i`` (a view)."""
        i = range(len(self))[i]
        return self.rows[self.offsets[i] : self.offsets[i + 1]]

    @property
    def snapshot_of_row(self) -> np.ndarray:
        """Sample index of every row."""
        return np.repeat(np.arange(len(self)), np.diff(self.offsets))

    def row_fraction(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row: estimated accessed bytes and its 95 % bounds (equal for ``"vma"``)."""
        r = self.rows
        if self.kind == "vma":
            b = r["referenced_bytes"].astype(np.float64)
            return b, b, b
        res = r["resident_pages"].astype(np.float64) * self.page_size
        n = r["probed_pages"]
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.where(n > 0, r["accessed_pages"] / n, 0.0)
        lo, hi = wilson_interval(r["accessed_pages"], n)
        hi = np.where(n > 0, hi, 0.0)  # unprobed regions: no estimate, counted as 0
        return p * res, lo * res, hi * res

    def accessed_bytes(self, *, bounds: bool = False):
        """Accessed bytes per sample (and lower / upper 95 % bounds with ``bounds=True``).

        The probe bounds add the regions' bounds: a conservative interval for the total.
        """
        est, lo, hi = self.row_fraction()
        snap = self.snapshot_of_row
        n = len(self)
        out = np.bincount(snap, est, n)
        if not bounds:
            return out
        return out, np.bincount(snap, lo, n), np.bincount(snap, hi, n)

    def resident_bytes(self) -> np.ndarray:
        """Resident bytes the samples saw (vma: ``Rss``; probe: probeable resident pages)."""
        r = self.rows
        v = r["resident_bytes"] if self.kind == "vma" else r["resident_pages"] * self.page_size
        return np.bincount(self.snapshot_of_row, v.astype(np.float64), len(self))

    def __repr__(self) -> str:
        return f"<AccessSeries kind={self.kind} samples={len(self)} rows={len(self.rows)}>"

    def _repr_html_(self) -> str:
        acc = self.accessed_bytes()
        span = (self.time_ns[-1] - self.time_ns[0]) / 1e9 if len(self) else 0.0
        mech = {"vma": "clear_refs + smaps (exact per VMA)", "probe": "pageout probes (sampled)"}
        rows = {
            "mechanism": mech[self.kind],
            "samples": f"{len(self):,} over {span:.2f} s, {len(self.rows):,} rows",
            "accessed per interval (max / median)": f"{human_bytes(float(acc.max(initial=0)))}"
            f" / {human_bytes(float(np.median(acc)) if acc.size else 0)}",
        }
        if self.kind == "probe":
            rows["pages probed / came back"] = (
                f"{int(self.rows['probed_pages'].sum()):,} / "
                f"{int(self.rows['accessed_pages'].sum()):,}"
            )
        return table("AccessSeries", rows)


def _series(
    data: AccessSeries | Capture, capture: Capture | None = None
) -> tuple[AccessSeries, Capture | None]:
    """A series and its capture from what an analysis was given (a series, or a capture)."""
    if isinstance(data, Capture):
        return AccessSeries.from_capture(data), data if capture is None else capture
    return data, capture


def _capture_rows(capture: Capture, series: AccessSeries) -> np.ndarray:
    """For each sample, the capture snapshot at or before it (-1 when none)."""
    return np.searchsorted(capture.time_ns, series.time_ns, side="right") - 1


@dataclass(frozen=True)
class AccessedWss:
    """Accessed bytes per sample beside resident and written (``NaN`` where unknown)."""

    time: np.ndarray
    accessed: np.ndarray
    accessed_lo: np.ndarray
    accessed_hi: np.ndarray
    resident: np.ndarray
    written: np.ndarray
    kind: str

    def _repr_html_(self) -> str:
        def mx(a: np.ndarray) -> str:
            return human_bytes(float(np.nanmax(a))) if np.isfinite(a).any() else "—"

        return table(
            f"Accessed working set ({self.kind})",
            {
                "samples": f"{self.time.size:,}",
                "accessed (max)": mx(self.accessed),
                "written (max)": mx(self.written),
                "resident (max)": mx(self.resident),
            },
        )


def accessed_wss(
    series: AccessSeries | Capture,
    capture: Capture | None = None,
    *,
    resident: np.ndarray | None = None,
    written: np.ndarray | None = None,
) -> AccessedWss:
    """The accessed working set per interval, beside the resident and written ones.

    Parameters
    ----------
    series : AccessSeries or Capture
        The samples, or a capture recorded with ``accessed=`` (then also the ``capture``).
    capture : Capture, optional
        Resident and written bytes come from ``working_set_size(capture)`` at the snapshot
        at or before each sample (matched on ``time_ns``).
    resident, written : numpy.ndarray, optional
        Or give them directly, one value per sample. Without either, resident is what the
        samples saw and written is NaN.

    Returns
    -------
    AccessedWss
        ``time`` in seconds since the first sample (or the capture's first snapshot).
    """
    series, capture = _series(series, capture)
    est, lo, hi = series.accessed_bytes(bounds=True)
    n = len(series)
    res = series.resident_bytes() if resident is None else np.asarray(resident, np.float64)
    wr = np.full(n, np.nan) if written is None else np.asarray(written, np.float64)
    t0 = series.time_ns[0] if n else 0
    if capture is not None and capture.n_snapshots:
        t0 = capture.time_ns[0]
        ws = working_set_size(capture)
        idx = _capture_rows(capture, series)
        ok = idx >= 0
        if resident is None:
            res = np.where(ok, ws.resident[np.maximum(idx, 0)], np.nan)
        if written is None and ws.written is not None:
            wr = np.where(ok, ws.written[np.maximum(idx, 0)], np.nan)
    return AccessedWss((series.time_ns - t0) / 1e9, est, lo, hi, res, wr, series.kind)


@dataclass(frozen=True)
class AccessIdleAge:
    """Resident bytes by samples since they were last accessed, at sample ``at``.

    ``bytes[k]``: last accessed ``k`` samples before ``at`` (0: in the interval ending at
    ``at``); ``never``: not accessed in the series up to ``at``. Ages are of the rows'
    address ranges (VMAs, or adaptive regions where any probe came back), not of pages.
    """

    at: int
    ages: np.ndarray
    bytes: np.ndarray
    never: float
    interval_s: float


def access_idle_age(series: AccessSeries | Capture, *, at: int = -1) -> AccessIdleAge:
    """The idle-age (cold-age) histogram from accesses: how long since each range was used.

    Parameters
    ----------
    series : AccessSeries or Capture
    at : int
        The sample to look from (default the last); its resident bytes are distributed.

    Returns
    -------
    AccessIdleAge
    """
    series, _ = _series(series)
    n = len(series)
    at = range(n)[at]
    r = series.rows
    snap = series.snapshot_of_row
    hit = r["referenced_bytes"] > 0 if series.kind == "vma" else r["accessed_pages"] > 0
    hit &= snap <= at
    now = series.rows_at(at)
    bounds = elementary(
        np.concatenate([r["start"][hit], now["start"]]), np.concatenate([r["end"][hit], now["end"]])
    )
    # Last access of every elementary interval: expand accessed rows onto the intervals.
    i0 = np.searchsorted(bounds, r["start"][hit])
    cnt = np.searchsorted(bounds, r["end"][hit]) - i0
    e = concat_aranges(i0, cnt)
    last = np.full(max(bounds.size - 1, 0), -1, np.int64)
    np.maximum.at(last, e, np.repeat(snap[hit], cnt))
    # Resident bytes of sample `at`, spread evenly over each row's range.
    res = (
        now["resident_bytes"] if series.kind == "vma" else now["resident_pages"] * series.page_size
    ).astype(np.float64)
    size = (now["end"] - now["start"]).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        density = np.where(size > 0, res / size, 0.0)
    j0 = np.searchsorted(bounds, now["start"])
    jc = np.searchsorted(bounds, now["end"]) - j0
    ej = concat_aranges(j0, jc)
    w = np.diff(bounds).astype(np.float64)[ej] * np.repeat(density, jc)
    age = np.where(last[ej] >= 0, at - last[ej], -1)
    hist = np.bincount(age[age >= 0], w[age >= 0], at + 1)
    dt = np.diff(series.time_ns)
    interval = float(np.median(dt)) / 1e9 if dt.size else 1.0
    return AccessIdleAge(at, np.arange(at + 1), hist, float(w[age < 0].sum()), interval)


def _as_capture(series: AccessSeries) -> Capture:
    """A capture whose snapshots are the sample rows (for the address axis of a series alone)."""
    snaps = []
    for i in range(len(series)):  # one per sample
        rows = series.rows_at(i)
        arr = np.zeros(len(rows), REGION_DTYPE)
        arr["start"], arr["end"], arr["categories"] = rows["start"], rows["end"], Category.PRESENT
        snaps.append((int(series.time_ns[i]), Regions(arr, page_size=series.page_size), None, None))
    return Capture.from_snapshots(CaptureMeta(page_size=series.page_size), snaps)


def _weighted_prefix(rows: np.ndarray, weight: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``sum_r weight_r * |[start_r, end_r) ∩ [0, p)|`` at every point (rows sorted, disjoint)."""
    s, e = rows["start"], rows["end"]
    full = np.concatenate([[0.0], np.cumsum(weight * (e - s).astype(np.float64))])
    j = np.searchsorted(s, points, side="right") - 1
    jc = np.maximum(j, 0)
    part = np.where(j >= 0, np.minimum(points, e[jc]) - np.minimum(points, s[jc]), 0)
    return np.where(j >= 0, full[jc] + weight[jc] * part.astype(np.float64), 0.0)


def access_heatmap_grid(
    series: AccessSeries | Capture,
    capture: Capture | None = None,
    *,
    addr_bins: int = 512,
    addr_range: tuple[int, int] | None = None,
    axis: str | AddressAxis = "compact",
) -> HeatmapGrid:
    """Damo's view: time x address, colour = the fraction of each bin's bytes accessed.

    One time bin per sample (over the interval it describes). The address axis is the one
    every other heatmap uses (``address_axis`` of ``capture``, or of the samples' own
    ranges without one), so ``pmviz.plotting.heatmap`` draws the result as it draws any grid.

    Returns
    -------
    HeatmapGrid
        ``category`` is ``"accessed"``; probe estimates use each region's sampled fraction.
    """
    series, capture = _series(series, capture)
    if not len(series):
        raise ValueError("the series has no samples")
    ax = (
        axis
        if isinstance(axis, AddressAxis)
        else address_axis(capture or _as_capture(series), kind=axis, addr_range=addr_range)
    )
    pos, real = ax.edges(addr_bins, series.page_size)
    width = np.diff(pos).astype(np.float64)
    est, _, _ = series.row_fraction()
    size = (series.rows["end"] - series.rows["start"]).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        dens = np.where(size > 0, est / size, 0.0)
    grid = np.empty((len(series), width.size))
    for i in range(len(series)):  # one prefix evaluation per sample
        a, b = series.offsets[i], series.offsets[i + 1]
        grid[i] = np.diff(_weighted_prefix(series.rows[a:b], dens[a:b], real))
    with np.errstate(invalid="ignore", divide="ignore"):
        grid /= width[None, :]
    t0 = capture.time_ns[0] if capture is not None and capture.n_snapshots else series.time_ns[0]
    t = (series.time_ns - t0) / 1e9
    dt = np.diff(t)
    last = float(np.median(dt)) if dt.size else 1.0
    # sample i describes the interval ending at it: draw it over [t[i-1], t[i])
    tedges = np.concatenate([[t[0] - (dt[0] if dt.size else last)], t])
    return HeatmapGrid(np.clip(grid, 0.0, 1.0), tedges, real, pos, ax, "accessed")


@dataclass(frozen=True)
class ReadMostly:
    """Per VMA: bytes referenced and written per interval (means over the samples).

    ``read_only`` is referenced minus written (at least 0): bytes touched but not written,
    an upper bound of what was only read.
    """

    start: np.ndarray
    end: np.ndarray
    labels: list[str]
    referenced: np.ndarray
    written: np.ndarray
    resident: np.ndarray

    @property
    def read_only(self) -> np.ndarray:
        return np.maximum(self.referenced - np.nan_to_num(self.written), 0.0)

    def to_pandas(self):  # noqa: ANN201 - pandas is optional
        """One row per VMA, most read-only bytes first."""
        import pandas as pd

        df = pd.DataFrame(
            {
                "start": self.start,
                "end": self.end,
                "label": self.labels,
                "referenced": self.referenced,
                "written": self.written,
                "read_only": self.read_only,
                "resident": self.resident,
            }
        )
        return df.sort_values("read_only", ascending=False, kind="stable")

    def _repr_html_(self, max_rows: int = 15) -> str:
        import html

        order = np.argsort(-self.read_only, kind="stable")[:max_rows]
        body = "".join(
            f"<tr><td><code>{int(self.start[i]):#x}</code></td>"
            f"<td>{html.escape(self.labels[i])}</td>"
            f"<td>{human_bytes(float(self.referenced[i]))}</td>"
            f"<td>{human_bytes(float(self.written[i])) if np.isfinite(self.written[i]) else '—'}</td>"
            f"<td>{human_bytes(float(self.read_only[i]))}</td>"
            f"<td>{human_bytes(float(self.resident[i]))}</td></tr>"
            for i in order.tolist()
        )
        return (
            "<div><b>Read-mostly VMAs</b> (mean bytes per interval)<table><tr><th>start</th>"
            "<th>VMA</th><th>referenced</th><th>written</th><th>read only</th>"
            f"<th>resident</th></tr>{body}</table></div>"
        )


def read_mostly(series: AccessSeries | Capture, capture: Capture | None = None) -> ReadMostly:
    """Which VMAs are referenced but not written: the reads a write-only working set misses.

    Parameters
    ----------
    series : AccessSeries or Capture
        Of kind ``"vma"`` (a capture recorded with ``accessed="vma"``).
    capture : Capture, optional
        With write tracking: written bytes per VMA come from ``written_at`` of the snapshot
        at or before each sample; labels from its VMA tables. Without it written is NaN.

    Returns
    -------
    ReadMostly
    """
    series, capture = _series(series, capture)
    if series.kind != "vma":
        raise ValueError("read_mostly needs per-VMA samples (kind 'vma')")
    r = series.rows
    key = np.stack([r["start"], r["end"]], axis=1)
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    m, n = len(uniq), len(series)
    ref = np.bincount(inv, r["referenced_bytes"].astype(np.float64), m) / n
    res = np.bincount(inv, r["resident_bytes"].astype(np.float64), m) / n
    wr = np.full(m, np.nan)
    labels = [""] * m
    if capture is not None and capture.n_snapshots:
        vmas = capture.vmas_at(-1)
        k = vmas.find(uniq[:, 0])
        labels = [vmas.label(int(j)) if j >= 0 else "" for j in k.tolist()]
        if capture.written is not None and capture.written_offsets is not None:
            idx = _capture_rows(capture, series)
            rows = idx[idx >= 0]
            pts = np.sort(np.unique(uniq.ravel()))
            c = prefix_coverage(capture.written, capture.written_offsets, pts, rows=rows)
            tot = c.sum(axis=0).astype(np.float64) / n
            at = np.searchsorted(pts, uniq)
            wr = tot[at[:, 1]] - tot[at[:, 0]]
    return ReadMostly(uniq[:, 0], uniq[:, 1], labels, ref, wr, res)
