"""Working sets over time: resident / swapped / written bytes, WSS curves, idle times, heat.

Per-page history is computed on elementary intervals: the address ranges between consecutive
boundaries of all written regions, which every snapshot covers either wholly or not at all.
Write events (interval, snapshot) sorted by interval then snapshot answer every question below
with a few vectorised passes (bincount, difference arrays), in memory proportional to the data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .._intervals import concat_aranges, covered, elementary, merge_runs
from ..capture import Capture
from ..categories import Category as C
from ..maps import VmaKind
from ..mask import Mask
from ..regions import REGION_DTYPE
from ._html import Summary, human_bytes
from ._intervals import BitMatch, prefix_coverage
from ._select import Between, phase
from ._stream import chunks, snapshot_rows
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


@dataclass(frozen=True, repr=False)
class WorkingSet(Summary):
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

    def _rows(self) -> dict[str, str]:
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
        return rows

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


def working_set_size(capture: Capture, *, between: Between = None) -> WorkingSet:
    """Resident, swapped and written bytes of every snapshot, in total and per VMA kind.

    Resident is ``PRESENT``; swapped is ``SWAPPED`` without guard markers (the recorder has
    already told uffd-wp markers from swap, see ``pmviz.swapped``); written is the
    write-tracking set (pages written since the previous snapshot). The capture is read
    chunk by chunk (memory: one chunk plus the result).
    between : (str, str), optional
        Only the phase from one mark to another (``Capture.between``), e.g.
        ``("fill", "sort")``.

    Returns
    -------
    WorkingSet
    """
    capture = phase(capture, between)
    n = capture.n_snapshots
    res, swp = np.zeros(n, np.int64), np.zeros(n, np.int64)
    res_k = np.zeros((n, len(KINDS)), np.int64)
    swp_k = np.zeros((n, len(KINDS)), np.int64)
    wr = wr_k = None
    if capture.has_written:
        wr, wr_k = np.zeros(n, np.int64), np.zeros((n, len(KINDS)), np.int64)
    for first, ch in chunks(capture):
        sl = slice(first, first + ch.n_snapshots)
        res[sl], res_k[sl] = _by_kind(ch, ch.regions, ch.region_offsets, RESIDENT)
        swp[sl], swp_k[sl] = _by_kind(ch, ch.regions, ch.region_offsets, SWAPPED)
        if wr is not None and wr_k is not None:
            assert ch.written is not None and ch.written_offsets is not None
            wr[sl], wr_k[sl] = _by_kind(ch, ch.written, ch.written_offsets, None)
    return WorkingSet(capture.times, KINDS, res, swp, wr, res_k, swp_k, wr_k)


# -- per-page history ------------------------------------------------------------------------
# The written sets are replayed chunk by chunk into an interval map of "when was each byte last
# written" (or "how often"): its size is bounded by how fragmented the written address space
# is, not by the number of snapshots. Each chunk yields write events (bytes, snapshot, previous
# write of those bytes), from which every question below is a few vectorised passes
# (bincount, difference arrays) into arrays of one value per snapshot.

_NEVER = -(1 << 40)


class _Events(NamedTuple):
    """Bytes ``width[j]`` were written at snapshot ``s[j]``, previously at ``prev[j]``.

    ``prev`` is ``_NEVER`` where those bytes were not written before.
    """

    width: np.ndarray
    s: np.ndarray
    prev: np.ndarray


class _IntervalMap:
    """Sorted disjoint ``[start, end)`` intervals carrying one ``int64`` value each."""

    def __init__(self) -> None:
        self.start = np.empty(0, np.uint64)
        self.end = np.empty(0, np.uint64)
        self.value = np.empty(0, np.int64)

    def lookup(self, points: np.ndarray, default: int) -> np.ndarray:
        """The value at each point (``default`` outside every interval)."""
        i = np.searchsorted(self.end, points, side="right")
        j = np.minimum(i, max(self.start.size - 1, 0))
        inside = (i < self.start.size) & (self.start[j] <= points) if self.start.size else i < 0
        return np.where(inside, self.value[j] if self.start.size else default, default)

    def replay(self, rows: np.ndarray, snap: np.ndarray, count: bool = False) -> _Events:
        """Apply one chunk of written sets; the map keeps the last write (or the write count).

        Returns the chunk's write events, split where the map's intervals or the rows' bounds
        are (a piece is wholly inside or outside every row and every map interval).
        """
        nonempty = rows["end"] > rows["start"]
        rows, snap = rows[nonempty], snap[nonempty]
        bounds = elementary(
            np.concatenate([rows["start"], self.start]), np.concatenate([rows["end"], self.end])
        )
        widths = np.diff(bounds).astype(np.int64)
        i0 = np.searchsorted(bounds, rows["start"])
        cnt = np.searchsorted(bounds, rows["end"]) - i0
        e = concat_aranges(i0, cnt)
        s = np.repeat(snap, cnt)
        base = int(snap.min()) if snap.size else 0
        span = int(snap.max()) - base + 1 if snap.size else 1
        key = e * span + (s - base)
        key.sort()  # by (piece, snapshot)
        e, s = key // span, key % span + base
        carried = self.lookup(bounds[:-1], 0 if count else _NEVER)
        first = np.ones(e.size, dtype=bool)
        first[1:] = e[1:] != e[:-1]
        prev = np.empty(e.size, dtype=np.int64)
        prev[1:] = s[:-1]
        prev[first] = _NEVER if count else carried[e[first]]
        new = carried.copy()
        if count:
            new += np.bincount(e, minlength=widths.size)
            keep = new > 0
        else:
            last = np.ones(e.size, dtype=bool)
            last[:-1] = first[1:]
            new[e[last]] = s[last]
            keep = new != _NEVER
        self.start, self.end, self.value = merge_runs(
            bounds[:-1][keep], bounds[1:][keep], new[keep]
        )
        return _Events(widths[e], s, prev)


def _require_written(capture: Capture) -> None:
    if not capture.has_written:
        raise ValueError(
            "this capture has no written sets (write_mechanism="
            f"{capture.meta.write_mechanism!r}); record with write tracking"
        )


def _replay(
    capture: Capture,
    snapshots: slice | None = None,
    *,
    into: _IntervalMap | None = None,
    count: bool = False,
) -> Iterator[_Events]:
    """Replay the written sets of ``snapshots``, chunk by chunk, into one interval map."""
    _require_written(capture)
    m = _IntervalMap() if into is None else into
    for r in snapshot_rows(capture, "written", snapshots):
        yield m.replay(r.rows, r.snapshot, count)


def _final_map(capture: Capture, snapshots: slice, *, count: bool = False) -> _IntervalMap:
    """The interval map after replaying ``snapshots`` (last write, or write count)."""
    m = _IntervalMap()
    for _ in _replay(capture, snapshots, into=m, count=count):
        pass
    return m


def _window_bytes(capture: Capture, windows: np.ndarray) -> np.ndarray:
    """Distinct bytes written in the ``k`` intervals ending at each snapshot, per window.

    ``(len(windows), n)``; exact (float sums of byte counts below 2**53). An event
    ``(s, prev)`` keeps its bytes inside window ``k`` for snapshots
    ``[max(s, prev + k), s + k)``: ``+w`` on ``[s, s + k)``, less ``w`` on ``[s, prev + k)``
    where ``k > s - prev``. Every bound is either a fixed column (``s``), or a fixed column
    shifted by ``k`` (``s + k``, ``prev + k``), and the ``k > s - prev`` condition is a range of
    the sorted windows: so each event costs O(1) whatever the number of windows, and the
    windows are resolved at the end with one cumulative sum and one shift per window.
    """
    n = capture.n_snapshots
    ks, back = np.unique(windows, return_inverse=True)
    n_k, width = ks.size, n + 1
    fixed = np.zeros(width)  # +w at s (every window)
    shifted = np.zeros(width)  # -w at s + k (every window)
    fixed_from = np.zeros((n_k + 1, width))  # -w at s, for windows j >= j0 (cumulated over j)
    shifted_from = np.zeros((n_k + 1, width))  # +w at prev + k, for windows j >= j0
    for ev in _replay(capture):
        w = ev.width.astype(np.float64)
        fixed += np.bincount(ev.s, w, minlength=width)[:width]
        shifted -= np.bincount(ev.s, w, minlength=width)[:width]
        seen = ev.prev != _NEVER
        s, prev, ws = ev.s[seen], ev.prev[seen], w[seen]
        j0 = np.searchsorted(ks, s - prev, side="right")  # first window with k > s - prev
        part = j0 < n_k
        s, prev, ws, j0 = s[part], prev[part], ws[part], j0[part]
        size = (n_k + 1) * width
        fixed_from -= np.bincount(j0 * width + s, ws, minlength=size).reshape(n_k + 1, width)
        shifted_from += np.bincount(j0 * width + prev, ws, minlength=size).reshape(n_k + 1, width)
    out = np.empty((n_k, n), dtype=np.int64)
    fixed_from = np.cumsum(fixed_from[:n_k], axis=0)
    shifted_from = np.cumsum(shifted_from[:n_k], axis=0)
    for j, k in enumerate(ks.tolist()):  # per window: shift by k, then one cumulative sum
        d = fixed + fixed_from[j]
        sh = shifted + shifted_from[j]
        if k < width:
            d[k:] += sh[: width - k]
        out[j] = np.rint(np.cumsum(d[:n])).astype(np.int64)
    return out[back]


def cumulative_written(capture: Capture, *, between: Between = None) -> np.ndarray:
    """Distinct bytes written up to and including each snapshot (``int64``).

    ``between=("fill", "sort")`` counts only that phase (``Capture.between``).
    """
    capture = phase(capture, between)
    n = capture.n_snapshots
    acc = np.zeros(n)
    for ev in _replay(capture):
        new = ev.prev == _NEVER
        acc += np.bincount(ev.s[new], ev.width[new].astype(np.float64), minlength=n)[:n]
    return np.rint(np.cumsum(acc)).astype(np.int64)


@dataclass(frozen=True, repr=False)
class WssCurve(Summary):
    """``bytes[j, i]``: distinct bytes written in the ``windows[j]`` intervals ending at ``i``.

    Entries whose window reaches before the first snapshot count what there is (a partial
    window); ``time`` is the snapshot time in seconds.
    """

    time: np.ndarray
    windows: np.ndarray
    bytes: np.ndarray
    interval_s: float

    def _rows(self) -> dict[str, str]:
        rows = {"snapshots": f"{self.time.size:,}, interval {self.interval_s * 1e3:g} ms"}
        for k, b in list(zip(self.windows.tolist(), self.bytes))[:8]:
            rows[f"{k} interval(s): max / mean"] = (
                f"{human_bytes(int(b.max(initial=0)))} / "
                f"{human_bytes(float(b.mean()) if b.size else 0)}"
            )
        if self.windows.size > 8:
            rows["…"] = f"{self.windows.size - 8} more windows"
        return rows


def wss_curve(capture: Capture, windows=(1, 2, 4, 8, 16), *, between: Between = None) -> WssCurve:
    """The write working set: distinct pages written within sliding windows of intervals.

    Parameters
    ----------
    capture : Capture
        With write tracking.
    windows : sequence of int
        Window lengths in intervals (1 = the pages written since the previous snapshot).
    between : (str, str), optional
        Only the phase from one mark to another (``Capture.between``), e.g.
        ``("fill", "sort")``.

    Returns
    -------
    WssCurve
    """
    capture = phase(capture, between)
    win = np.asarray(windows, dtype=np.int64)
    if win.ndim != 1 or (win < 1).any():
        raise ValueError(f"windows must be positive interval counts, got {windows!r}")
    return WssCurve(capture.times, win, _window_bytes(capture, win), interval_s(capture))


@dataclass(frozen=True, repr=False)
class IdleTime(Summary):
    """Bytes by intervals since their last write, at snapshot ``at``.

    ``bytes[k]`` were last written ``k`` intervals before ``at`` (0: in the interval ending at
    ``at``); ``never`` bytes were not written in the capture up to ``at``.
    """

    at: int
    intervals: np.ndarray
    bytes: np.ndarray
    never: int
    interval_s: float

    def _rows(self) -> dict[str, str]:
        total = int(self.bytes.sum())
        rows = {
            "at snapshot": f"{self.at}",
            "written at some point": human_bytes(total),
            "never written": human_bytes(self.never),
        }
        if total:
            cum = np.cumsum(self.bytes)
            med = int(np.searchsorted(cum, total / 2))
            rows["median idle time"] = f"{med} interval(s) ({med * self.interval_s:.3g} s)"
            rows["written in the last interval"] = human_bytes(int(self.bytes[0]))
        return rows


def idle_time(
    capture: Capture, *, at: int = -1, among: str = "resident", between: Between = None
) -> IdleTime:
    """The page idle-time distribution: how long since each page was last written.

    Parameters
    ----------
    capture : Capture
        With write tracking.
    at : int
        The snapshot to look from (default the last).
    among : {"resident", "written"}
        Which pages: resident (``PRESENT``) at ``at``, or every page written up to ``at``.
    between : (str, str), optional
        Only the phase from one mark to another (``Capture.between``), e.g.
        ``("fill", "sort")``.

    Returns
    -------
    IdleTime
    """
    capture = phase(capture, between)
    if among not in ("resident", "written"):
        raise ValueError(f"among must be 'resident' or 'written', got {among!r}")
    at = capture._index(at)
    m = _final_map(capture, slice(0, at + 1))  # only the writes up to ``at``
    if among == "written":
        bounds, keep = _bounds(m.start, m.end), None
    else:
        res = _resident(capture, at)
        bounds = _bounds(
            np.concatenate([res["start"], m.start]), np.concatenate([res["end"], m.end])
        )
        keep = covered(res["start"], res["end"], bounds[:-1])
    widths = np.diff(bounds).astype(np.int64)
    last = m.lookup(bounds[:-1], -1)
    ever = last >= 0
    keep = ever if keep is None else keep
    sel = keep & ever
    hist = np.bincount(at - last[sel], weights=widths[sel].astype(np.float64), minlength=at + 1)
    never = int(widths[keep & ~ever].sum())
    return IdleTime(at, np.arange(at + 1), hist.astype(np.int64), never, interval_s(capture))


def _bounds(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Elementary boundaries (at least one, so that there are zero intervals, not -1)."""
    b = elementary(start, end)
    return b if b.size else np.zeros(1, np.uint64)


def _resident(capture: Capture, at: int) -> np.ndarray:
    res = capture.regions_at(at).array
    return res[RESIDENT.matches(res["categories"])]


@dataclass(frozen=True, repr=False)
class Temperature(Summary):
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

    def _title(self) -> str:
        return "Temperature of resident pages"

    def _rows(self) -> dict[str, str]:
        rows = {k: human_bytes(v) for k, v in self.bytes.items()}
        rows["window"] = f"last {self.window} intervals up to snapshot {self.at}"
        rows["runs"] = f"{self.regions.size:,}"
        return rows


COLD, WARM, HOT = 1, 2, 4


def temperature(
    capture: Capture,
    *,
    at: int = -1,
    window: int | None = None,
    hot: float = 0.5,
    between: Between = None,
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
    between : (str, str), optional
        Only the phase from one mark to another (``Capture.between``), e.g.
        ``("fill", "sort")``.

    Returns
    -------
    Temperature
    """
    capture = phase(capture, between)
    if not 0 < hot <= 1:
        raise ValueError(f"hot must be in (0, 1], got {hot}")
    at = capture._index(at)
    w = at + 1 if window is None else int(window)
    if not 1 <= w <= at + 1:
        raise ValueError(f"window must be between 1 and {at + 1} intervals, got {window}")
    m = _final_map(capture, slice(at - w + 1, at + 1), count=True)  # the window only
    res = _resident(capture, at)
    bounds = _bounds(np.concatenate([res["start"], m.start]), np.concatenate([res["end"], m.end]))
    keep = covered(res["start"], res["end"], bounds[:-1])
    frac = m.lookup(bounds[:-1], 0) / w
    cls = np.where(frac >= hot, HOT, np.where(frac > 0, WARM, COLD))[keep]
    lo, hi = bounds[:-1][keep], bounds[1:][keep]
    lo, hi, cls = merge_runs(lo, hi, cls)  # neighbouring intervals of one class
    out = np.empty(lo.size, dtype=REGION_DTYPE)
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
