"""Working sets over time: resident / swapped / written bytes, WSS curves, idle times, heat.

Per-page history is computed on elementary intervals: the address ranges between consecutive
boundaries of all written regions, which every snapshot covers either wholly or not at all.
Write events (interval, snapshot) sorted by interval then snapshot answer every question below
with a few vectorised passes (bincount, difference arrays), in memory proportional to the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .._intervals import concat_aranges, covered, elementary, merge_runs
from ..capture import Capture
from ..categories import Category as C
from ..maps import VmaKind
from ..mask import Mask
from ._html import human_bytes, table
from ._intervals import BitMatch, prefix_coverage
from .heatmap import interval_s

__all__ = [
    "WorkingSet",
    "working_set_size",
    "cumulative_written",
    "WssCurve",
    "wss_curve",
    "IdleTime",
    "idle_time",
    "Temperature",
    "temperature",
    "RESIDENT",
    "SWAPPED",
]

RESIDENT = Mask(require=C.PRESENT)
# SWAPPED is also set for guard markers and uffd-wp markers (spec §3.5, gotcha 9). Guards carry
# GUARD; the recorder clears SWAPPED on uffd-wp markers as it scans (pmviz.swapped), so what is
# left is real swap (and migration entries, which are fleeting).
SWAPPED = Mask(require=C.SWAPPED, exclude=C.GUARD)
KINDS = [k.name.lower() for k in VmaKind] + ["unattributed"]


@dataclass(frozen=True)
class WorkingSet:
    """Bytes per snapshot, in total and per VMA kind (columns named by ``kinds``).

    ``written*`` are ``None`` for a capture without write tracking. ``unattributed`` holds
    bytes outside every VMA of the snapshot's table (a capture recorded without maps).
    """

    time: np.ndarray
    kinds: list[str]
    resident: np.ndarray
    swapped: np.ndarray
    written: np.ndarray | None
    resident_by_kind: np.ndarray
    swapped_by_kind: np.ndarray
    written_by_kind: np.ndarray | None

    def _repr_html_(self) -> str:
        rows = {
            "snapshots": f"{self.time.size:,} over {self.time[-1] if self.time.size else 0:.2f} s",
            "resident (max / last)": f"{human_bytes(int(self.resident.max(initial=0)))} / "
            f"{human_bytes(int(self.resident[-1])) if self.resident.size else '—'}",
            "swapped (max)": human_bytes(int(self.swapped.max(initial=0))),
        }
        if self.written is not None:
            rows["written per interval (max / mean)"] = (
                f"{human_bytes(int(self.written.max(initial=0)))} / "
                f"{human_bytes(float(self.written.mean()) if self.written.size else 0)}"
            )
        if self.resident.size:
            by = self.resident_by_kind[-1]
            rows["resident by kind (last)"] = ", ".join(
                f"{k} {human_bytes(int(b))}" for k, b in zip(self.kinds, by.tolist()) if b
            )
        return table("WorkingSet", rows)

    def to_pandas(self):  # noqa: ANN201 - pandas is optional
        """One row per snapshot: time and the three totals."""
        import pandas as pd

        cols = {"time": self.time, "resident": self.resident, "swapped": self.swapped}
        if self.written is not None:
            cols["written"] = self.written
        return pd.DataFrame(cols)


def _by_kind(capture: Capture, regions, offsets, select) -> tuple[np.ndarray, np.ndarray]:
    """Totals and per-kind bytes per snapshot (one pass per distinct VMA table)."""
    n = capture.n_snapshots
    total = prefix_coverage(regions, offsets, np.array([0, 2**64 - 1], np.uint64), select=select)
    total = total[:, 1] - total[:, 0]
    by_kind = np.zeros((n, len(KINDS)), dtype=np.int64)
    for t, vt in enumerate(capture.vma_tables):  # per VMA table, not per region
        rows = np.flatnonzero(capture.vma_index == t)
        if not rows.size or not len(vt):
            continue
        pts = np.stack([vt.start, vt.end], axis=1).ravel()
        c = prefix_coverage(regions, offsets, pts, select=select, rows=rows)
        per_vma = c[:, 1::2] - c[:, 0::2]
        onehot = np.zeros((len(vt), len(KINDS)), dtype=np.int64)
        onehot[np.arange(len(vt)), vt.kind.astype(np.int64)] = 1
        by_kind[rows] = per_vma @ onehot
    by_kind[:, -1] = total - by_kind[:, :-1].sum(axis=1)
    return total, by_kind


def working_set_size(capture: Capture) -> WorkingSet:
    """Resident, swapped and written bytes of every snapshot, in total and per VMA kind.

    Resident is ``PRESENT``; swapped is ``SWAPPED`` without guard markers (the recorder has
    already told uffd-wp markers from swap, see ``pmviz.swapped``); written is the
    write-tracking set (pages written since the previous snapshot).

    Returns
    -------
    WorkingSet
    """
    res, res_k = _by_kind(capture, capture.regions, capture.region_offsets, RESIDENT)
    swp, swp_k = _by_kind(capture, capture.regions, capture.region_offsets, SWAPPED)
    wr = wr_k = None
    if capture.written is not None and capture.written_offsets is not None:
        wr, wr_k = _by_kind(capture, capture.written, capture.written_offsets, None)
    return WorkingSet(capture.times, KINDS, res, swp, wr, res_k, swp_k, wr_k)


# -- per-page history ------------------------------------------------------------------------
class _History(NamedTuple):
    """Write events over elementary intervals, sorted by (interval, snapshot).

    ``bounds`` are the sorted boundaries of all written regions (and of ``extra``); interval
    ``k`` is ``[bounds[k], bounds[k + 1])`` and is wholly in or out of every written set.
    Event ``j`` says interval ``e[j]`` was written in snapshot ``s[j]``; ``prev[j]`` is the
    snapshot of the previous write of the same interval (or a large negative number). Memory
    is proportional to the data, not to snapshots x intervals.
    """

    bounds: np.ndarray
    widths: np.ndarray
    e: np.ndarray
    s: np.ndarray
    prev: np.ndarray
    n: int


_NEVER = -(1 << 40)


def _history(capture: Capture, extra: np.ndarray | None = None) -> _History:
    if capture.written is None or capture.written_offsets is None:
        raise ValueError(
            "this capture has no written sets (write_mechanism="
            f"{capture.meta.write_mechanism!r}); record with write tracking"
        )
    nonempty = capture.written["end"] > capture.written["start"]
    w = capture.written[nonempty]
    n = capture.n_snapshots
    parts = [w] if extra is None else [w, extra]
    bounds = elementary(
        np.concatenate([p["start"] for p in parts]), np.concatenate([p["end"] for p in parts])
    )
    widths = np.diff(bounds).astype(np.int64)
    snap = np.repeat(np.arange(n, dtype=np.int64), np.diff(capture.written_offsets))[nonempty]
    i0 = np.searchsorted(bounds, w["start"])
    cnt = np.searchsorted(bounds, w["end"]) - i0
    # Expand every written region into the elementary intervals it covers.
    e = concat_aranges(i0, cnt)
    key = e * n + np.repeat(snap, cnt)
    key.sort()
    e, s = key // n, key % n
    prev = np.full(e.size, _NEVER, dtype=np.int64)
    same = e[1:] == e[:-1]
    prev[1:][same] = s[:-1][same]
    return _History(bounds, widths, e, s, prev, n)


def _window_bytes(h: _History, k: int) -> np.ndarray:
    """Distinct bytes written in the ``k`` intervals ending at each snapshot (exact).

    Event ``(e, s)`` keeps interval ``e`` inside the window for snapshots ``s .. s + k - 1``;
    the part already covered by the previous write of ``e`` is not counted twice.
    """
    lo = np.maximum(h.s, h.prev + k)
    hi = np.minimum(h.s + k, h.n)
    ok = lo < hi
    wts = h.widths[h.e[ok]].astype(np.float64)
    d = np.bincount(lo[ok], wts, minlength=h.n + 1) - np.bincount(hi[ok], wts, minlength=h.n + 1)
    return np.rint(np.cumsum(d[: h.n])).astype(np.int64)


def cumulative_written(capture: Capture) -> np.ndarray:
    """Distinct bytes written up to and including each snapshot (``int64``)."""
    h = _history(capture)
    new = h.prev == _NEVER
    wts = h.widths[h.e[new]].astype(np.float64)
    return np.rint(np.cumsum(np.bincount(h.s[new], wts, minlength=h.n))).astype(np.int64)


@dataclass(frozen=True)
class WssCurve:
    """``bytes[j, i]``: distinct bytes written in the ``windows[j]`` intervals ending at ``i``.

    Entries whose window reaches before the first snapshot count what there is (a partial
    window); ``time`` is the snapshot time in seconds.
    """

    time: np.ndarray
    windows: np.ndarray
    bytes: np.ndarray
    interval_s: float


def wss_curve(capture: Capture, windows=(1, 2, 4, 8, 16)) -> WssCurve:
    """The write working set: distinct pages written within sliding windows of intervals.

    Parameters
    ----------
    capture : Capture
        With write tracking.
    windows : sequence of int
        Window lengths in intervals (1 = the pages written since the previous snapshot).

    Returns
    -------
    WssCurve
    """
    win = np.asarray(windows, dtype=np.int64)
    if win.ndim != 1 or (win < 1).any():
        raise ValueError(f"windows must be positive interval counts, got {windows!r}")
    h = _history(capture)
    out = np.empty((win.size, h.n), dtype=np.int64)
    for j, k in enumerate(win.tolist()):  # per window length, O(events) each
        out[j] = _window_bytes(h, k)
    return WssCurve(capture.times, win, out, interval_s(capture))


@dataclass(frozen=True)
class IdleTime:
    """Bytes by intervals since their last write, at snapshot ``at``.

    ``bytes[k]`` were last written ``k`` intervals before ``at`` (0: in the interval ending at
    ``at``); ``never`` bytes were not written in the capture up to ``at``.
    """

    at: int
    intervals: np.ndarray
    bytes: np.ndarray
    never: int
    interval_s: float


def idle_time(capture: Capture, *, at: int = -1, among: str = "resident") -> IdleTime:
    """The page idle-time distribution: how long since each page was last written.

    Parameters
    ----------
    capture : Capture
        With write tracking.
    at : int
        The snapshot to look from (default the last).
    among : {"resident", "written"}
        Which pages: resident (``PRESENT``) at ``at``, or every page written up to ``at``.

    Returns
    -------
    IdleTime
    """
    if among not in ("resident", "written"):
        raise ValueError(f"among must be 'resident' or 'written', got {among!r}")
    at = capture._index(at)
    res = capture.regions_at(at).array
    res = res[RESIDENT.matches(res["categories"])]
    h = _history(capture, res)
    upto = h.s <= at
    e, s = h.e[upto], h.s[upto]
    is_last = np.ones(e.size, dtype=bool)
    is_last[:-1] = e[1:] != e[:-1]  # events sorted by (interval, snapshot)
    last = np.full(h.widths.size, -1, dtype=np.int64)
    last[e[is_last]] = s[is_last]
    ever = last >= 0
    if among == "resident":
        keep = covered(res["start"], res["end"], h.bounds[:-1])
    else:
        keep = ever
    sel = keep & ever
    hist = np.bincount(at - last[sel], weights=h.widths[sel].astype(np.float64), minlength=at + 1)
    never = int(h.widths[keep & ~ever].sum())
    return IdleTime(at, np.arange(at + 1), hist.astype(np.int64), never, interval_s(capture))


@dataclass(frozen=True)
class Temperature:
    """Hot / warm / cold classification of the resident pages at snapshot ``at``.

    Attributes
    ----------
    regions : numpy.ndarray
        ``REGION_DTYPE`` runs whose ``categories`` is the class: 1 cold, 2 warm, 4 hot.
    bytes : dict
        Bytes per class name.
    vma_bytes : numpy.ndarray
        ``(n_vmas, 3)`` cold / warm / hot bytes per VMA of ``vmas_at(at)``.
    vma_labels : list of str
    """

    at: int
    window: int
    regions: np.ndarray
    bytes: dict[str, int]
    vma_bytes: np.ndarray
    vma_labels: list[str]

    def _repr_html_(self) -> str:
        rows = {k: human_bytes(v) for k, v in self.bytes.items()}
        rows["window"] = f"last {self.window} intervals up to snapshot {self.at}"
        rows["runs"] = f"{self.regions.size:,}"
        return table("Temperature of resident pages", rows)


COLD, WARM, HOT = 1, 2, 4


def temperature(
    capture: Capture, *, at: int = -1, window: int | None = None, hot: float = 0.5
) -> Temperature:
    """Classify resident pages by how often they were written in the last ``window`` intervals.

    hot: written in at least ``hot`` of the intervals; warm: written, but less often; cold:
    resident and not written in the window.

    Parameters
    ----------
    capture : Capture
        With write tracking.
    at : int
        The snapshot (default the last).
    window : int, optional
        Intervals to look back (default: every snapshot up to ``at``).
    hot : float
        Fraction of intervals (0 < hot <= 1) that makes a page hot.

    Returns
    -------
    Temperature
    """
    if not 0 < hot <= 1:
        raise ValueError(f"hot must be in (0, 1], got {hot}")
    at = capture._index(at)
    w = at + 1 if window is None else int(window)
    if not 1 <= w <= at + 1:
        raise ValueError(f"window must be between 1 and {at + 1} intervals, got {window}")
    res = capture.regions_at(at).array
    res = res[RESIDENT.matches(res["categories"])]
    h = _history(capture, res)
    bounds = h.bounds
    keep = covered(res["start"], res["end"], bounds[:-1])
    inwin = (h.s > at - w) & (h.s <= at)
    frac = np.bincount(h.e[inwin], minlength=h.widths.size) / w
    cls = np.where(frac >= hot, HOT, np.where(frac > 0, WARM, COLD))[keep]
    lo, hi = bounds[:-1][keep], bounds[1:][keep]
    lo, hi, cls = merge_runs(lo, hi, cls)  # neighbouring intervals of one class
    out = np.empty(lo.size, dtype=capture.regions.dtype)
    out["start"], out["end"], out["categories"] = lo, hi, cls
    sizes = (out["end"] - out["start"]).astype(np.int64)
    names = {COLD: "cold", WARM: "warm", HOT: "hot"}
    totals = {names[c]: int(sizes[out["categories"] == c].sum()) for c in (COLD, WARM, HOT)}
    vmas = capture.vmas_at(at)
    vb = np.zeros((len(vmas), 3), dtype=np.int64)
    if len(vmas):
        pts = np.stack([vmas.start, vmas.end], axis=1).ravel()
        off = np.array([0, out.size])
        for j, c in enumerate((COLD, WARM, HOT)):
            cc = prefix_coverage(out, off, pts, select=BitMatch(c))[0]
            vb[:, j] = cc[1::2] - cc[0::2]
    return Temperature(at, w, out, totals, vb, [vmas.label(i) for i in range(len(vmas))])
