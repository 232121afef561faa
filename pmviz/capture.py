"""``Capture``: a time series of region snapshots of one process, stored as change.

Each snapshot is a keyframe (all its region rows) or its changes against the previous snapshot
(rows that disappeared, rows that appeared), so memory grows with what changes, not with
snapshots x regions. ``regions_at(i)`` rebuilds a snapshot from the nearest keyframe;
``chunks()`` and ``changes()`` stream; ``regions``/``region_offsets`` remain as a dense
compatibility view built on first access. Written sets (already change-shaped) are stored per
snapshot, VMA tables once per change.

``pmviz.open`` returns a subclass whose big arrays (``regions``, ``written``, ``vma_tables``)
load on first access; everything here goes through those attributes or the per-snapshot
accessors, so both behave the same.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, NamedTuple

import numpy as np

from ._intervals import clip_regions, concat_aranges
from ._kernel.pagemap_scan import PAGE_SIZE, REGION_DTYPE
from ._units import human_bytes
from .categories import Category
from .maps import Vmas
from .regions import Regions
from .sidetables import (
    ACCESS_TELEMETRY,
    PROBED,
    REFERENCED,
    align_to_vmas,
    check_side_table,
)

__all__ = [
    "Capture",
    "CaptureMeta",
    "Changes",
    "Mark",
    "Snapshot",
    "FORMAT_VERSION",
    "KEYFRAME",
    "APPEARS",
    "DISAPPEARS",
    "TELEMETRY_FIELDS",
]

FORMAT_VERSION = 2

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
    accessed_mechanism: str = "none"
    """"vma", "probe" or "none": how accesses (reads too) were sampled (``accessed=``); the
    samples are the ``referenced`` / ``probed`` side tables, ``extra["accessed_reason"]``
    says why there are none when one was asked for and could not be set up."""
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


# -- the change model ---------------------------------------------------------------------------
# A capture stores each snapshot either as a keyframe (all its rows) or as its changes against
# the previous snapshot: the rows that disappeared (kind -1) and the rows that appeared (kind +1),
# identical (start, end, categories) rows matching. Keyframe rows have kind 0.
KEYFRAME, APPEARS, DISAPPEARS = 0, 1, -1

_NO_ROWS = np.empty(0, REGION_DTYPE)
_NO_KIND = np.empty(0, np.int8)


def _strictly_sorted(rows: np.ndarray) -> bool:
    """Rows sorted by start with distinct starts (what the kernel returns): diffable by start."""
    s = rows["start"]
    return bool(len(s) < 2 or (s[1:] > s[:-1]).all())


def _same_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (
        (a["start"] == b["start"]) & (a["end"] == b["end"]) & (a["categories"] == b["categories"])
    )


def _diff(prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows of ``prev`` not in ``cur``, rows of ``cur`` not in ``prev``), each in input order.

    Two strictly sorted snapshots match by start (``searchsorted``); anything else by a sort of
    both (multiset semantics: a row repeated k times matches k identical rows).
    """
    if (
        len(prev) == len(cur)
        and prev.flags.c_contiguous
        and cur.flags.c_contiguous
        and np.array_equal(prev.view(np.uint64), cur.view(np.uint64))
    ):
        return prev[:0], cur[:0]  # nothing changed (the steady case): one memory compare
    if len(prev) == len(cur) and np.array_equal(prev["start"], cur["start"]):
        # the common case (same layout, some categories or ends changed): compare in place
        diff = (prev["end"] != cur["end"]) | (prev["categories"] != cur["categories"])
        return prev[diff], cur[diff]
    if _strictly_sorted(prev) and _strictly_sorted(cur):
        # Rows before the first and after the last shifted start line up: compare those in
        # place and match only the middle by searchsorted (a mapping change is local).
        m = min(len(prev), len(cur))
        ps, cs = prev["start"], cur["start"]
        neq = np.flatnonzero(ps[:m] != cs[:m])
        p = int(neq[0]) if len(neq) else m
        tail = m - p
        neq = np.flatnonzero(ps[len(ps) - tail :] != cs[len(cs) - tail :]) if tail else neq[:0]
        q = tail - (int(neq[-1]) + 1) if len(neq) else tail  # equal starts at the end
        gone_mask = np.zeros(len(prev), bool)
        came_mask = np.zeros(len(cur), bool)
        for (pa, pb), (ca, cb) in (
            ((0, p), (0, p)),
            ((len(prev) - q, len(prev)), (len(cur) - q, len(cur))),
        ):
            d = (prev["end"][pa:pb] != cur["end"][ca:cb]) | (
                prev["categories"][pa:pb] != cur["categories"][ca:cb]
            )
            gone_mask[pa:pb] = d
            came_mask[ca:cb] = d
        pm, cm = prev[p : len(prev) - q], cur[p : len(cur) - q]
        j = np.searchsorted(pm["start"], cm["start"])
        jc = np.minimum(j, max(len(pm) - 1, 0))
        match = (j < len(pm)) & _same_rows(pm[jc], cm) if len(pm) else np.zeros(len(cm), bool)
        kept = np.zeros(len(pm), bool)
        kept[jc[match]] = True
        gone_mask[p : len(prev) - q] = ~kept
        came_mask[p : len(cur) - q] = ~match
        return prev[gone_mask], cur[came_mask]
    both = np.concatenate([prev, cur])
    side = np.repeat(np.array([0, 1], np.int8), [len(prev), len(cur)])
    order = np.lexsort((side, both["categories"], both["end"], both["start"]))
    r, s = both[order], side[order]
    new = np.ones(len(r), bool)
    new[1:] = ~_same_rows(r[1:], r[:-1])
    grp = np.cumsum(new) - 1
    n_prev = np.bincount(grp, weights=(s == 0), minlength=int(new.sum())).astype(np.int64)
    rank = np.arange(len(r)) - np.flatnonzero(new)[grp]  # position within its group
    # in a group: the first n_prev rows are prev's; cur's rows match prev's one to one
    n_cur = np.bincount(grp, minlength=len(n_prev)) - n_prev
    keep_prev = (s == 0) & (rank >= n_cur[grp])
    keep_cur = (s == 1) & (rank - n_prev[grp] >= n_prev[grp])
    gone = np.sort(order[keep_prev])
    came = np.sort(order[keep_cur]) - len(prev)
    return prev[gone], cur[came]


def _change_rows(gone: np.ndarray, came: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One snapshot's stored change rows: by start, a disappearing row before an appearing one."""
    rows = np.concatenate([gone, came])
    kind = np.concatenate(
        [np.full(len(gone), DISAPPEARS, np.int8), np.full(len(came), APPEARS, np.int8)]
    )
    o = np.argsort(rows["start"], kind="stable")
    return rows[o], kind[o]


def _cols(rows: np.ndarray) -> np.ndarray:
    """``REGION_DTYPE`` rows as a ``(3, n)`` uint64 matrix (start, end, categories): numpy
    sorts and gathers plain contiguous columns several times faster than structured rows.
    """
    return np.ascontiguousarray(rows).view(np.uint64).reshape(-1, 3).T.copy()


_H = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))


def _group_order(c: np.ndarray) -> np.ndarray:
    """An order of the ``(3, n)`` rows that makes identical rows adjacent.

    Sorting one 64-bit hash of each row is ~10x faster than a three-key ``lexsort``; if two
    different rows share a hash (checked: identical hashes must be identical rows), fall back.
    """
    with np.errstate(over="ignore"):
        h = (c[0] * _H[0]) ^ (c[1] * _H[1]) ^ (c[2] * _H[2])
    order = np.argsort(h)
    hs = h[order]
    same = hs[1:] == hs[:-1]
    if same.any():
        a, b = order[:-1][same], order[1:][same]
        if (c[:, a] != c[:, b]).any():
            return np.lexsort((c[2], c[1], c[0]))  # a collision (never seen): exact order
    return order


def _apply(state: np.ndarray, rows: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """``state`` (strictly sorted) after the changes ``rows``/``sign`` of one or more snapshots.

    Vectorized: the changes are grouped by identical row and their signs summed; a net -1
    removes the row from ``state`` (found by ``searchsorted`` on start), a net +1 inserts it.
    Costs a sort of the changes plus one copy of ``state``.
    """
    if not len(rows):
        return state
    c = _cols(rows)
    order = _group_order(c)
    c = c[:, order]
    new = np.ones(c.shape[1], bool)
    new[1:] = (c[:, 1:] != c[:, :-1]).any(axis=0)
    net = np.add.reduceat(sign[order].astype(np.int64), np.flatnonzero(new))
    u = c[:, new]
    rem, add = u[:, net < 0], u[:, net > 0]
    st = state["start"]
    if rem.shape[1]:
        pos = np.searchsorted(st, rem[0])
        ok = pos < len(state)
        found = state[pos[ok]]
        ok[ok] = (
            (found["start"] == rem[0][ok])
            & (found["end"] == rem[1][ok])
            & (found["categories"] == rem[2][ok])
        )
        if not ok.all():
            raise ValueError("inconsistent changes: a row disappears that is not there")
        keep = np.ones(len(state), bool)
        keep[pos] = False
        state = state[keep]
        st = state["start"]
    if add.shape[1]:
        add = add[:, np.argsort(add[0], kind="stable")]  # groups come in hash order
        ins = np.empty(add.shape[1], REGION_DTYPE)
        ins["start"], ins["end"], ins["categories"] = add[0], add[1], add[2]
        state = np.insert(state, np.searchsorted(st, add[0]), ins)
    return state


def _step(state: np.ndarray, rows: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """``state`` after ONE snapshot's stored changes: its disappearing rows are all in
    ``state`` and its appearing rows all new (a diff, nothing cancels), so no grouping.
    """
    if not len(rows):
        return state
    gone, came = kind < 0, kind > 0
    st = state["start"]
    pos = np.searchsorted(st, rows["start"][gone])
    if len(pos):
        found = state[np.minimum(pos, max(len(state) - 1, 0))] if len(state) else state
        if len(found) != len(pos) or not _same_rows(found, rows[gone]).all():
            return _apply(state, rows, kind)  # not a plain diff (e.g. clipped): the general way
        keep = np.ones(len(state), bool)
        keep[pos] = False
        state = state[keep]
        st = state["start"]
    add = rows[came]
    if len(add):
        state = np.insert(state, np.searchsorted(st, add["start"]), add)
    return state


def _bounded_runs(sizes: np.ndarray, first: int, max_rows: int) -> list[tuple[int, int]]:
    """``[a, b)`` runs of consecutive snapshots of at most ``max_rows`` rows each (a snapshot
    larger than that alone); ``sizes[i]`` is the row count of snapshot ``first + i``.
    """
    ends = np.cumsum(sizes)
    bounds, i, base = [], 0, 0
    while i < ends.size:  # one step per run, not per snapshot
        j = max(i + 1, int(np.searchsorted(ends, base + max_rows, side="right")))
        bounds.append((first + i, first + j))
        i, base = j, int(ends[j - 1])
    return bounds


class _ReadAhead:
    """``((a, b), read(a, b))`` for each of ``bounds`` in turn; ``threaded``: the next one is
    read in a thread meanwhile, starting at once (the first before iteration begins).

    One read ahead at most: memory holds the chunk in use and the one being read.
    """

    def __init__(self, read: Any, bounds: list[tuple[int, int]], threaded: bool) -> None:
        self._read = read
        self._bounds = bounds
        self._pool: Any = None
        self._pending: Any = None
        if threaded and bounds:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="pmviz-read-ahead")
            self._pending = self._pool.submit(read, *bounds[0])

    def __iter__(self) -> Iterator[tuple[tuple[int, int], Any]]:
        for i, ab in enumerate(self._bounds):
            if self._pool is None:
                yield ab, self._read(*ab)
                continue
            done = self._pending
            nxt = self._bounds[i + 1] if i + 1 < len(self._bounds) else None
            self._pending = None if nxt is None else self._pool.submit(self._read, *nxt)
            yield ab, done.result()  # (a read error is raised here, where its chunk is due)

    def close(self) -> None:
        """Wait for a read under way (its result is dropped); no thread outlives the reader."""
        if self._pool is not None:
            if self._pending is not None:
                self._pending.cancel()
            self._pool.shutdown(wait=True)
            self._pool = self._pending = None


def _around_keyframes(
    a: int, b: int, keys: np.ndarray, snap: np.ndarray, rows: np.ndarray, kind: np.ndarray
) -> Iterator[Changes]:
    """Stored rows of snapshots ``[a, b)`` as chunks cut at ``keys``: each keyframe alone,
    whole (``Capture.changes(whole_keyframes=True)``).
    """
    cuts = sorted({a, b, *keys.tolist(), *(keys + 1).tolist()})
    pos = np.searchsorted(snap, cuts)
    for (x, y), (p, q) in zip(zip(cuts, cuts[1:]), zip(pos, pos[1:])):
        if y <= x:
            continue
        k = kind[p:q]
        sign = np.ones(q - p, np.int8) if x in keys else k.astype(np.int8)
        yield Changes(x, y, snap[p:q], rows[p:q], sign)


class _Encoder:
    """Turns consecutive snapshots into keyframes + changes (the in-memory change model).

    A snapshot becomes a keyframe when it is the first, when it or the previous one is not
    strictly sorted by start, when asked (``force``), or when the change rows since the last
    keyframe would exceed that keyframe's row count: rebuilding any snapshot then reads at most
    about twice its size.
    """

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.kind: list[np.ndarray] = []
        self.n_rows: list[int] = []
        self.change_rows: list[int] = []
        self.keyframe: list[bool] = []
        self.prev: Any = None  # ndarray, or a _Lazy one
        self.since = 0  # change rows since the last keyframe
        self.key_rows = 0

    def add(self, cur: np.ndarray, *, force: bool = False) -> None:
        rows, kind, key = self.encode(cur, force=force)
        self.rows.append(rows)
        self.kind.append(kind)
        self.n_rows.append(len(cur))
        self.change_rows.append(len(rows))
        self.keyframe.append(key)

    def encode(
        self, cur: np.ndarray, *, force: bool = False
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """(stored rows, kinds, is keyframe) for the next snapshot; remembers it as previous."""
        prev, self.prev = _resolve(self.prev), cur
        if prev is not None and not force and _strictly_sorted(cur) and _strictly_sorted(prev):
            gone, came = _diff(prev, cur)
            m = len(gone) + len(came)
            if self.since + m <= self.key_rows:
                self.since += m
                rows, kind = _change_rows(gone, came)
                return rows, kind, False
        self.since, self.key_rows = 0, len(cur)
        return cur, np.zeros(len(cur), np.int8), True

    def add_stored(
        self,
        rows: np.ndarray,
        kind: np.ndarray,
        n_rows: np.ndarray,
        crows: np.ndarray,
        key: np.ndarray,
        last: Any,
    ) -> None:
        """Append already encoded snapshots verbatim; ``last()`` gives the final state."""
        self.rows.append(rows)
        self.kind.append(kind)
        self.n_rows.extend(n_rows.tolist())
        self.change_rows.extend(crows.tolist())
        self.keyframe.extend(key.tolist())
        k = np.flatnonzero(key)
        if len(k):
            self.key_rows = int(n_rows[k[-1]])
            self.since = int(crows[k[-1] + 1 :].sum())
        else:
            self.since += int(crows.sum())
        self.prev = _Lazy(last)  # decoded only if another snapshot is diffed against it

    def take(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The snapshots encoded since the last ``take`` (the state carries on)."""
        out = self.arrays()
        self.rows, self.kind, self.n_rows, self.change_rows, self.keyframe = [], [], [], [], []
        return out

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (
            np.concatenate(self.rows) if self.rows else _NO_ROWS,
            np.concatenate(self.kind) if self.kind else _NO_KIND,
            np.array(self.n_rows, np.int64),
            np.array(self.change_rows, np.int64),
            np.array(self.keyframe, bool),
        )


class _Lazy:
    """A previous snapshot computed on first use (see _Encoder.add_stored)."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn


def _resolve(prev: Any) -> Any:
    return prev.fn() if isinstance(prev, _Lazy) else prev


def _check_rows(name: str, rows: Any) -> np.ndarray:
    """Region rows given to a constructor: 1-D, no negative addresses, no reversed ranges."""
    a = np.asarray(rows)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of region rows, got shape {a.shape}")
    if a.dtype.names is None:
        if len(a):
            raise ValueError(f"{name} must be a structured array with start, end, categories")
        return np.empty(0, REGION_DTYPE)
    for f in ("start", "end"):
        if f not in a.dtype.names:
            raise ValueError(f"{name} has no {f!r} field")
        if a.dtype[f].kind == "i" and len(a) and int(a[f].min()) < 0:
            raise ValueError(f"{name}: negative {f} address {int(a[f].min())}")
        if a.dtype[f].kind not in "iu":
            raise ValueError(f"{name}.{f} must be integers, got {a.dtype[f]}")
    out = np.asarray(a, dtype=REGION_DTYPE) if a.dtype != REGION_DTYPE else a
    bad = np.flatnonzero(out["start"] > out["end"])
    if len(bad):
        r = out[bad[0]]
        raise ValueError(
            f"{name}: row {int(bad[0])} is reversed (start {int(r['start']):#x} > end "
            f"{int(r['end']):#x})"
        )
    return out


def _check_offsets(name: str, off: Any, n: int, n_rows: int) -> np.ndarray:
    o = np.asarray(off)
    if o.ndim != 1 or o.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a 1-D integer array, got {o.dtype} of shape {o.shape}")
    if o.shape != (n + 1,):
        raise ValueError(f"{name} needs {n + 1} entries (snapshots + 1), has {len(o)}")
    o = o.astype(np.int64)
    if o[0] != 0 or o[-1] != n_rows or (np.diff(o) < 0).any():
        raise ValueError(
            f"{name} must rise from 0 to the number of rows ({n_rows}), got "
            f"{o[0]}..{o[-1]}" + (" (decreasing somewhere)" if (np.diff(o) < 0).any() else "")
        )
    return o


class Capture:
    """A recording: snapshots of one process over time.

    In memory and on disk each snapshot is stored either as a **keyframe** (all its region
    rows) or as its **changes** against the previous snapshot (the rows that disappeared and
    those that appeared), so a capture costs what changed, not snapshots x regions. See
    ``docs/capture-format.md`` (format version 2) for the policy and measurements.

    Attributes
    ----------
    meta : CaptureMeta
    time_ns : numpy.ndarray
        ``int64`` monotonic timestamps, one per snapshot.
    regions, region_offsets : numpy.ndarray
        Compatibility view: all snapshots' full-category scans concatenated (``REGION_DTYPE``)
        and ``n+1`` offsets. ``regions`` is materialised on first access (24 bytes per region
        per snapshot): prefer :meth:`regions_at`, :meth:`chunks` and :meth:`changes`.
    written, written_offsets : numpy.ndarray or None
        Pages written since the previous snapshot, likewise (already change-shaped; stored per
        snapshot); ``None`` without write tracking.
    vma_tables : list of Vmas
        Distinct VMA tables; ``vma_index[i]`` says which one snapshot ``i`` saw.
    telemetry : dict of numpy.ndarray
        Per snapshot: ``scan_ns``, ``n_regions``, ``retries``, ``skipped_ticks``.
    marks : list of Mark
        Named instants of the recording.
    side_tables : dict of str to numpy.dtype
        Per-snapshot side tables (``pmviz.sidetables``): access samples (``referenced``,
        ``probed``, ``access_telemetry``) and whatever else a recorder adds; read them with
        :meth:`side_rows`, :meth:`referenced_at`, :meth:`probed_at`, :meth:`accessed_at`.
        The constructor takes them as ``side_tables={name: (rows, offsets)}``.

    Examples
    --------
    >>> import numpy as np, pmviz
    >>> from pmviz.capture import Capture, CaptureMeta
    >>> r = pmviz.Regions.from_arrays([0x1000], [0x3000], [8])
    >>> cap = Capture.from_snapshots(CaptureMeta(), [(0, r, None, None), (10**8, r, None, None)])
    >>> cap.n_snapshots, cap.regions_at(1).n_pages
    (2, 2)
    """

    _regions: np.ndarray | None
    _written: np.ndarray | None
    written_offsets: np.ndarray | None

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
        marks: Sequence[Mark] | None = None,
        side_tables: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        t = _check_time(time_ns)
        n = len(t)
        regs = _check_rows("regions", regions)
        roff = _check_offsets("region_offsets", region_offsets, n, len(regs))
        if (written is None) != (written_offsets is None):
            raise ValueError("written and written_offsets go together")
        wr = woff = None
        if written is not None:
            wr = _check_rows("written", written)
            woff = _check_offsets("written_offsets", written_offsets, n, len(wr))
        enc = _Encoder()
        for i in range(n):  # one vectorized diff per snapshot
            enc.add(regs[roff[i] : roff[i + 1]])
        rows, kind, n_rows, crows, key = enc.arrays()
        self._setup(meta, t, n_rows, key, _offsets(crows), vma_index, telemetry, vma_tables, marks)
        self._crow, self._ckind = rows, kind
        self._regions = regs  # the caller's dense rows: the compatibility view is free
        self._written = wr
        self.written_offsets = woff
        self._set_side(side_tables, check=True)

    def _setup(
        self,
        meta: CaptureMeta,
        time_ns: np.ndarray,
        n_rows: np.ndarray,
        keyframe: np.ndarray,
        change_offsets: np.ndarray,
        vma_index: np.ndarray | None,
        telemetry: dict[str, np.ndarray] | None,
        vma_tables: list[Vmas] | None,
        marks: Sequence[Mark] | None,
    ) -> None:
        """The per-snapshot columns; subclasses supply the rows (see :meth:`_stored`)."""
        n = len(time_ns)
        self.meta = meta
        self.marks: list[Mark] = [Mark(int(t), str(label)) for t, label in (marks or ())]
        self.time_ns = np.asarray(time_ns, dtype=np.int64)
        self._n_rows = np.asarray(n_rows, np.int64)
        self._key = np.asarray(keyframe, bool)
        self._coff = np.asarray(change_offsets, np.int64)
        if n and not self._key[0]:
            raise ValueError("the first snapshot of a capture must be a keyframe")
        self.vma_index = (
            np.zeros(n, dtype=np.int32) if vma_index is None else np.asarray(vma_index, np.int32)
        )
        if self.vma_index.shape != (n,):
            raise ValueError(f"vma_index needs {n} entries, has {len(self.vma_index)}")
        tel = telemetry or {}
        self.telemetry = {
            k: np.asarray(tel.get(k, np.zeros(n)), dtype=np.int64) for k in TELEMETRY_FIELDS
        }
        self._vma_tables: list[Vmas] | None = list(vma_tables) if vma_tables else [Vmas()]
        self._regions = None
        self._written = None
        self.written_offsets = None
        self._crow, self._ckind = _NO_ROWS, _NO_KIND
        self._decoded: tuple[int, np.ndarray] | None = None  # last regions_at, for stepping
        self._held: tuple[int, int, np.ndarray, np.ndarray] | None = None  # see changes()
        # side tables: name -> [row dtype, rows (None: not loaded), offsets (None: likewise)]
        self._side: dict[str, list[Any]] = {}

    @classmethod
    def _from_encoded(
        cls,
        meta: CaptureMeta,
        time_ns: np.ndarray,
        enc: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
        *,
        written: np.ndarray | None = None,
        written_offsets: np.ndarray | None = None,
        vma_tables: list[Vmas] | None = None,
        vma_index: np.ndarray | None = None,
        telemetry: dict[str, np.ndarray] | None = None,
        marks: Sequence[Mark] | None = None,
        partial: bool = False,
        side_tables: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> Capture:
        """A capture straight from its change form (``_Encoder.arrays()``).

        ``partial``: a run of snapshots that may start with changes (for writers only: such a
        capture cannot rebuild its snapshots).
        """
        rows, kind, n_rows, crows, key = enc
        cap = cls.__new__(cls)
        if partial and len(key) and not key[0]:
            key = key.copy()
            key[0] = True  # only _stored() and the per-snapshot columns are used
            cap._setup(
                meta, time_ns, n_rows, key, _offsets(crows), vma_index, telemetry, vma_tables, marks
            )
            cap._key[0] = False
        else:
            cap._setup(
                meta, time_ns, n_rows, key, _offsets(crows), vma_index, telemetry, vma_tables, marks
            )
        cap._crow, cap._ckind = rows, kind
        cap._written, cap.written_offsets = written, written_offsets
        cap._set_side(side_tables, check=False)
        return cap

    # -- stored rows (overridden by captures on disk) -----------------------------------------
    def _stored(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """The stored rows (keyframe or change rows) of snapshots ``[a, b)`` and their kinds."""
        o = self._coff
        return self._crow[o[a] : o[b]], self._ckind[o[a] : o[b]]

    def _written_rows(self, a: int, b: int) -> np.ndarray:
        # Subclasses that load lazily (stored, live) override this; ``written`` calls it.
        assert self.written_offsets is not None and self._written is not None
        o = self.written_offsets
        return self._written[o[a] : o[b]]

    # -- side tables (see pmviz.sidetables) ------------------------------------------------------
    def _set_side(
        self, tables: Mapping[str, tuple[np.ndarray, np.ndarray]] | None, *, check: bool
    ) -> None:
        self._side = {}
        for name, (rows, off) in (tables or {}).items():
            if check:
                rows, off = check_side_table(name, rows, off, self.n_snapshots, self.page_size)
            self._side[name] = [rows.dtype, rows, off]

    @property
    def side_tables(self) -> dict[str, np.dtype]:
        """The capture's per-snapshot side tables: name -> row type (``pmviz.sidetables``)."""
        return {name: v[0] for name, v in self._side.items()}

    def _side_entry(self, name: str) -> list[Any]:
        try:
            return self._side[name]
        except KeyError:
            raise KeyError(
                f"this capture has no side table {name!r} (it has: "
                f"{', '.join(self._side) or 'none'})"
            ) from None

    def side_offsets(self, name: str) -> np.ndarray:
        """``n + 1`` offsets of side table ``name``: snapshot ``i`` owns rows ``[o[i], o[i+1])``."""
        e = self._side_entry(name)
        if e[2] is None:
            e[2] = self._load_side_offsets(name)
        return e[2]

    def _load_side_offsets(self, name: str) -> np.ndarray:
        raise AssertionError(f"side table {name!r} has no offsets")  # (lazy subclasses only)

    def _side_rows(self, name: str, a: int, b: int) -> np.ndarray:
        """Rows of side table ``name`` for snapshots ``[a, b)`` (lazy subclasses override)."""
        e = self._side_entry(name)
        o = self.side_offsets(name)
        assert e[1] is not None
        return e[1][o[a] : o[b]]

    def side_rows(self, name: str, i: int | None = None) -> np.ndarray:
        """Rows of side table ``name``: of snapshot ``i``, or of every snapshot (``None``)."""
        if i is None:
            e = self._side_entry(name)
            if e[1] is None:
                e[1] = self._side_rows(name, 0, self.n_snapshots)
            return e[1]
        i = self._index(i)
        return self._side_rows(name, i, i + 1)

    def _side_subset(self, idx: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Every side table restricted to the snapshots at positions ``idx`` (in that order)."""
        out = {}
        idx = np.asarray(idx, np.int64).reshape(-1)
        for name, (dtype, _, _) in self._side.items():
            off = self.side_offsets(name)
            if not len(idx):
                out[name] = (np.empty(0, dtype), np.zeros(1, np.int64))
                continue
            cuts = np.flatnonzero(np.diff(idx) != 1) + 1
            lo, hi = int(idx.min()), int(idx.max()) + 1
            if len(cuts) and off[hi] - off[lo] <= 1 << 22:
                rows = self._side_rows(name, lo, hi)  # one read of the span, then gather
                out[name] = _gather(rows, off[lo : hi + 1] - off[lo], idx - lo)
                continue
            parts = [self._side_rows(name, int(r[0]), int(r[-1]) + 1) for r in np.split(idx, cuts)]
            lens = off[idx + 1] - off[idx]
            out[name] = (np.concatenate(parts) if parts else np.empty(0, dtype), _offsets(lens))
        return out

    # -- accessed working set (side tables of a recording with ``accessed=``) ------------------
    @property
    def accessed_mechanism(self) -> str:
        """``"vma"``, ``"probe"`` or ``"none"``: how accesses (reads too) were recorded."""
        if REFERENCED in self._side:
            return "vma"
        if PROBED in self._side:
            return "probe"
        return "none"

    def referenced_at(self, i: int) -> np.ndarray:
        """Per VMA of :meth:`vmas_at` ``(i)``: bytes referenced in the interval ending at ``i``.

        ``REFERENCED_DTYPE`` rows aligned to the VMA table (one per VMA, same order), with
        ``referenced_bytes`` and ``resident_bytes`` ``-1`` for a VMA ``smaps`` did not list as
        it is in the table (it changed between the two reads).

        Raises
        ------
        ValueError
            The capture was not recorded with ``accessed="vma"``.
        """
        if REFERENCED not in self._side:
            raise ValueError(
                f"no per-VMA referenced bytes in this capture (recorded with accessed="
                f"{self.accessed_mechanism!r}; record with accessed='vma')"
            )
        v = self.vmas_at(i)
        return align_to_vmas(self.side_rows(REFERENCED, i), v.start, v.end)

    def probed_at(self, i: int) -> np.ndarray:
        """The probe regions of the interval ending at snapshot ``i`` (``PROBED_DTYPE`` rows).

        Raises
        ------
        ValueError
            The capture was not recorded with ``accessed="probe"``.
        """
        if PROBED not in self._side:
            raise ValueError(
                f"no access probes in this capture (recorded with accessed="
                f"{self.accessed_mechanism!r}; record with accessed='probe')"
            )
        return self.side_rows(PROBED, i)

    def accessed_at(self, i: int) -> Regions:
        """Address ranges accessed (read or written) in the interval ending at snapshot ``i``.

        ``"vma"``: the VMAs with referenced bytes; ``"probe"``: the regions at least one probe
        of which came back (an estimate: see ``probed_at`` for the counts). Category
        ``PRESENT``.

        Raises
        ------
        ValueError
            The capture has no access data.
        """
        if REFERENCED in self._side:
            rows = self.side_rows(REFERENCED, i)
            rows = rows[rows["referenced_bytes"] > 0]
        elif PROBED in self._side:
            rows = self.side_rows(PROBED, i)
            rows = rows[rows["accessed_pages"] > 0]
        else:
            raise ValueError(
                "this capture has no access data (record with accessed='vma' or 'probe')"
            )
        out = np.zeros(len(rows), REGION_DTYPE)
        out["start"], out["end"] = rows["start"], rows["end"]
        out["categories"] = int(Category.PRESENT)
        return Regions(out, page_size=self.page_size)

    @property
    def accessed_telemetry(self) -> dict[str, np.ndarray] | None:
        """Per snapshot: ``accessed_ns`` (time the access mechanism took) and ``refaults``;
        ``None`` without access data.
        """
        if ACCESS_TELEMETRY not in self._side:
            return None
        rows = self.side_rows(ACCESS_TELEMETRY)
        off = self.side_offsets(ACCESS_TELEMETRY)
        out = {}
        has = np.diff(off) > 0  # one row per snapshot (0 where the mechanism did not run)
        for f in rows.dtype.names or ():
            v = np.zeros(self.n_snapshots, np.int64)
            v[has] = rows[f][off[:-1][has]]
            out[f] = v
        return out

    @property
    def stored_rows(self) -> int:
        """Region rows actually stored (keyframes + changes): what the capture costs."""
        return int(self._coff[-1]) if len(self._coff) else 0

    @property
    def keyframes(self) -> np.ndarray:
        """Positions of the snapshots stored as keyframes (the first is always one)."""
        return np.flatnonzero(self._key)

    # The big columns are properties: the dense ``regions`` is built on first access, and a
    # capture on disk loads ``written`` and ``vma_tables`` on first access.
    @property
    def regions(self) -> np.ndarray:
        if self._regions is None:
            out = np.empty(self.n_regions, REGION_DTYPE)
            pos = 0
            for _, rows, _ in self._decode_chunks(0, self.n_snapshots, 1 << 22):
                out[pos : pos + len(rows)] = rows
                pos += len(rows)
            self._regions = out
        return self._regions

    @property
    def region_offsets(self) -> np.ndarray:
        return _offsets(self._n_rows)

    @property
    def written(self) -> np.ndarray | None:
        """All written rows; a lazily opened capture loads them on first access."""
        if self.written_offsets is None:
            return None
        if self._written is None:
            self._written = self._written_rows(0, self.n_snapshots)
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
        *,
        marks: Sequence[Mark] | None = None,
        side_tables: Mapping[str, Sequence[np.ndarray]] | None = None,
    ) -> Capture:
        """Build from ``(time_ns, regions, written or None, vmas or None)`` tuples.

        A ``None`` VMA table repeats the previous one; written sets must be all present or all
        ``None``. ``side_tables``: name -> one row array per snapshot. Meant for tests and
        synthetic data; the recorder appends columns directly.
        """
        times: list[int] = []
        regs: list[np.ndarray] = []
        wr: list[np.ndarray | None] = []
        tables: list[Vmas] = []
        index: list[int] = []
        for t, r, w, v in snapshots:
            times.append(int(t))
            regs.append(_check_rows(f"snapshot {len(times) - 1} regions", r.array))
            wr.append(None if w is None else w.array)
            if v is not None and (not tables or not v == tables[-1]):
                tables.append(v)
            index.append(max(len(tables) - 1, 0))
        has_w = [w is not None for w in wr]
        if any(has_w) and not all(has_w):
            raise ValueError("either every snapshot has a written set or none has")
        ws = [w for w in wr if w is not None] if all(has_w) and wr else None
        return cls(
            meta,
            np.array(times, dtype=np.int64),
            np.concatenate(regs) if regs else _NO_ROWS,
            _offsets([len(r) for r in regs]),
            written=np.concatenate(ws) if ws else (_NO_ROWS if ws is not None else None),
            written_offsets=_offsets([len(w) for w in ws]) if ws is not None else None,
            vma_tables=tables or None,
            vma_index=np.array(index, dtype=np.int32),
            telemetry={"n_regions": np.array([len(r) for r in regs], dtype=np.int64)},
            marks=marks,
            side_tables={
                name: (np.concatenate(list(per)), _offsets([len(x) for x in per]))
                for name, per in (side_tables or {}).items()
            }
            or None,
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
        return int(self._n_rows.sum())

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

    def _rows_at(self, i: int) -> np.ndarray:
        """Snapshot ``i``'s rows: the nearest keyframe at or before it plus the changes since
        (one vectorized step for all of them), or one step from the last snapshot decoded.
        """
        if self._regions is not None:
            o = self.region_offsets
            return self._regions[o[i] : o[i + 1]]
        k = int(self.keyframes_before(i))
        last = self._decoded
        if last is not None and k <= last[0] <= i:
            base, state = last
            rows, kind = self._stored_in(base + 1, i + 1)
        else:
            rows, kind = self._stored_in(k, i + 1)
            nk = int(self._coff[k + 1] - self._coff[k])
            base, state, rows, kind = k, rows[:nk], rows[nk:], kind[nk:]
        if len(rows):
            one = base == i - 1  # one snapshot's changes: a plain diff
            state = _step(state, rows, kind) if one else _apply(state, rows, kind)
        self._decoded = (i, state)
        return state

    def keyframes_before(self, i: int) -> int:
        """The last keyframe at or before snapshot ``i``."""
        keys = self.keyframes
        return int(keys[np.searchsorted(keys, i, side="right") - 1])

    def regions_at(self, i: int) -> Regions:
        """The full-category scan of snapshot ``i``."""
        return Regions(self._rows_at(self._index(i)), page_size=self.page_size)

    def written_at(self, i: int) -> Regions | None:
        """Pages written between snapshot ``i-1`` and ``i`` (``None`` without tracking)."""
        if self.written_offsets is None:
            return None
        i = self._index(i)
        return Regions(self._written_rows(i, i + 1), page_size=self.page_size)

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

    # -- selecting ----------------------------------------------------------------------------
    def select(self, snapshots: slice | np.ndarray) -> Capture:
        """A capture of a subset of snapshots (a slice or a boolean/integer index).

        Runs of consecutive snapshots keep their stored changes; the first snapshot of each
        run is rebuilt (keyframe + changes) and stored as a keyframe or as its difference
        from the snapshot kept before it.
        """
        idx = np.arange(self.n_snapshots)[snapshots]
        if isinstance(snapshots, slice) and len(idx) and (np.diff(idx) == 1).all():
            view = self._contiguous_view(int(idx[0]), int(idx[-1]) + 1)
            if view is not None:
                return view
        if type(self) is not Capture and len(idx) > 1 and (np.diff(idx) > 1).sum() > 4:
            # many runs of a capture read from disk: read the span once, select in memory
            lo, hi = int(idx.min()), int(idx.max()) + 1
            k = self.keyframes_before(lo)
            if self._coff[hi] - self._coff[k] <= 1 << 24:
                return self._span(k, hi).select(idx - k)
        enc = _Encoder()
        w_parts: list[np.ndarray] = []
        w_lens: list[np.ndarray] = []
        cuts = np.flatnonzero(np.diff(idx) != 1) + 1 if len(idx) else np.empty(0, np.int64)
        for run in np.split(idx, cuts) if len(idx) else []:
            a, b = int(run[0]), int(run[-1]) + 1
            enc.add(self._rows_at(a))
            if b > a + 1:
                rows, kind = self._stored(a + 1, b)
                enc.add_stored(
                    rows,
                    kind,
                    self._n_rows[a + 1 : b],
                    np.diff(self._coff[a + 1 : b + 1]),
                    self._key[a + 1 : b],
                    lambda b=b: self._rows_at(b - 1),
                )
            if self.written_offsets is not None:
                w_parts.append(self._written_rows(a, b))
                w_lens.append(np.diff(self.written_offsets[a : b + 1]))
        wr = woff = None
        if self.written_offsets is not None:
            wr = np.concatenate(w_parts) if w_parts else _NO_ROWS
            woff = _offsets(np.concatenate(w_lens) if w_lens else [])
        return self._derived(idx, enc.arrays(), wr, woff)

    def _contiguous_view(self, a: int, b: int) -> Capture | None:
        """Snapshots ``[a, b)`` as views of this capture's stored rows in memory (no copy: the
        same keyframes and changes), or ``None`` unless ``a`` is a keyframe and the rows are in
        memory here. A dense compatibility view comes along as a slice.
        """
        if not self._key[a] or type(self)._stored is not Capture._stored:
            return None
        out = self._span(a, b)
        if self._regions is not None:
            o = self.region_offsets
            out._regions = self._regions[o[a] : o[b]]
        return out

    def _as_keyframes(self, a: int, rows: np.ndarray, counts: np.ndarray) -> Capture:
        """Snapshots ``a, a + 1, ...`` with the dense ``rows`` (``counts`` per snapshot), every
        one stored as a keyframe of those rows: valid, zero-copy (the kinds are a read-only
        broadcast zero); written sets as views too.
        """
        b = a + len(counts)
        enc = (
            rows,
            np.broadcast_to(np.int8(KEYFRAME), (len(rows),)),
            counts,
            counts,
            np.ones(len(counts), bool),
        )
        wr = woff = None
        if self.written_offsets is not None:
            wr = self._written_rows(a, b)
            woff = self.written_offsets[a : b + 1] - self.written_offsets[a]
        out = self._derived(np.arange(a, b), enc, wr, woff)
        out._regions = rows
        return out

    def _span(self, k: int, b: int) -> Capture:
        """Snapshots ``[k, b)`` (``k`` a keyframe) in memory, stored rows as they are."""
        rows, kind = self._stored(k, b)
        wr = woff = None
        if self.written_offsets is not None:
            wr = self._written_rows(k, b)
            woff = self.written_offsets[k : b + 1] - self.written_offsets[k]
        enc = (rows, kind, self._n_rows[k:b], np.diff(self._coff[k : b + 1]), self._key[k:b])
        return self._derived(np.arange(k, b), enc, wr, woff)

    def _derived(
        self,
        idx: np.ndarray,
        enc: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
        wr: np.ndarray | None,
        woff: np.ndarray | None,
    ) -> Capture:
        # Keep only the VMA tables the selection uses, renumbered densely.
        used, vidx = np.unique(self.vma_index[idx], return_inverse=True)
        tables = self.vma_tables
        out = Capture._from_encoded(
            self.meta,
            self.time_ns[idx],
            enc,
            written=wr,
            written_offsets=woff,
            vma_tables=[tables[int(u)] for u in used] or None,
            vma_index=vidx.astype(np.int32).reshape(-1),
            telemetry={k: v[idx] for k, v in self.telemetry.items()},
            marks=self.marks,
        )
        if self._side:
            out._set_side(self._side_subset(idx), check=False)
        return out

    def window(self, t0: float | None = None, t1: float | None = None) -> Capture:
        """The snapshots with ``t0 <= times < t1`` (seconds since the first snapshot)."""
        return self.select(self._time_slice(t0, t1))

    def _time_slice(self, t0: float | None, t1: float | None) -> slice:
        t = self.times  # sorted: snapshots are taken in order
        lo = 0 if t0 is None else int(np.searchsorted(t, t0, side="left"))
        hi = len(t) if t1 is None else int(np.searchsorted(t, t1, side="left"))
        return slice(lo, max(lo, hi))

    def address_window(self, start: int, end: int) -> Capture:
        """Every snapshot, with regions, written sets and VMAs cut to ``[start, end)``.

        Works on the stored rows: a clipped keyframe is a keyframe, clipped changes are the
        changes of the clipped snapshots (a change that clips to nothing, or to the same row
        on both sides, cancels out).
        """
        if not 0 <= start <= end:
            raise ValueError(f"need 0 <= start <= end, got start={start:#x} end={end:#x}")
        n = self.n_snapshots
        rows_l, kind_l, snap_l = [], [], []
        w_l, wsnap_l = [], []
        step = max(1, int(np.searchsorted(self._coff, self._coff[0] + (1 << 22))))
        for a in range(0, n, step):  # bounded memory: a few million stored rows at a time
            b = min(n, a + step)
            rows, kind = self._stored(a, b)
            snap = np.repeat(np.arange(a, b), np.diff(self._coff[a : b + 1]))
            clipped, keep = clip_regions(rows, start, end)
            rows_l.append(clipped)
            kind_l.append(kind[keep])
            snap_l.append(snap[keep])
            if self.written_offsets is not None:
                w, wkeep = clip_regions(self._written_rows(a, b), start, end)
                w_l.append(w)
                wsnap_l.append(
                    np.repeat(np.arange(a, b), np.diff(self.written_offsets[a : b + 1]))[wkeep]
                )
        rows = np.concatenate(rows_l) if rows_l else _NO_ROWS
        kind = np.concatenate(kind_l) if kind_l else _NO_KIND
        snap = np.concatenate(snap_l) if snap_l else np.empty(0, np.int64)
        rows, kind, snap = _cancel(rows, kind, snap)
        crows = np.bincount(snap, minlength=n).astype(np.int64)
        delta = np.bincount(snap, weights=kind, minlength=n).astype(np.int64)
        n_rows = np.zeros(n, np.int64)
        for i in range(n):  # one step per snapshot: keyframes reset the count
            n_rows[i] = crows[i] if self._key[i] else n_rows[i - 1] + delta[i]
        wr = woff = None
        if self.written_offsets is not None:
            wr = np.concatenate(w_l) if w_l else _NO_ROWS
            ws = np.concatenate(wsnap_l) if wsnap_l else np.empty(0, np.int64)
            woff = _offsets(np.bincount(ws, minlength=n))
        out = self._derived(np.arange(n), (rows, kind, n_rows, crows, self._key.copy()), wr, woff)
        out._vma_tables = [_clip_vmas(v, start, end) for v in out.vma_tables]
        for e in out._side.values():  # rows of ranges meeting the window, unclipped
            rows, off = e[1], e[2]
            if "start" in (e[0].names or ()) and "end" in (e[0].names or ()):
                keep = (rows["end"] > np.uint64(start)) & (rows["start"] < np.uint64(end))
                snap = np.repeat(np.arange(n), np.diff(off))
                e[1], e[2] = rows[keep], _offsets(np.bincount(snap[keep], minlength=n))
        return out

    # -- streaming ----------------------------------------------------------------------------
    def _snapshot_range(self, snapshots: slice | None) -> range:
        return range(self.n_snapshots)[snapshots if snapshots is not None else slice(None)]

    def _decode_chunks(
        self, first: int, stop: int, max_rows: int
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Dense rows of snapshots ``[first, stop)`` in chunks: (first, rows, per-snapshot
        counts).

        Decodes each chunk's first snapshot once, then applies one snapshot's changes at a time.
        """
        n_rows = self._n_rows
        for a, b in _bounded_runs(n_rows[first:stop], first, max_rows):
            if self._regions is not None:
                o = self.region_offsets
                yield a, self._regions[o[a] : o[b]], n_rows[a:b]
                continue
            state = self._rows_at(a)
            out = [state]
            rows, kind = self._stored(a + 1, b)
            pos = 0
            for j in range(a + 1, b):
                m = int(self._coff[j + 1] - self._coff[j])
                r, k = rows[pos : pos + m], kind[pos : pos + m]
                pos += m
                state = r if self._key[j] else _step(state, r, k)
                out.append(state)
            self._decoded = (b - 1, state)
            yield a, np.concatenate(out), n_rows[a:b]

    def chunks(
        self, snapshots: slice | None = None, *, max_rows: int = 1 << 22
    ) -> Iterator[tuple[int, Capture]]:
        """Consecutive in-memory sub-captures, in order, for analyses with bounded memory.

        Each chunk is decoded once (keyframe + changes) and carries its dense ``regions``; it
        is stored as keyframes of those rows (views, no copy, nothing read twice), so its own
        :meth:`changes` diffs snapshots rather than reading stored changes.

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
        for a, rows, counts in self._decode_chunks(rng.start, rng.stop, max_rows):
            # the stored changes are not read a second time to encode the chunk
            yield a, self._as_keyframes(a, rows, counts)

    def written_chunks(
        self, snapshots: slice | None = None, *, max_rows: int = 1 << 22
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """The written sets of consecutive snapshots, in chunks, without the region rows.

        Parameters
        ----------
        snapshots : slice, optional
            A contiguous range of snapshots (step 1); all by default.
        max_rows : int
            Written rows per chunk at most (a snapshot larger than that comes alone).

        Yields
        ------
        (int, numpy.ndarray, numpy.ndarray)
            The chunk's first snapshot, its written rows (``REGION_DTYPE``) and ``n + 1``
            offsets into them.

        Raises
        ------
        ValueError
            The capture has no written sets, or ``snapshots`` has a step.
        """
        rng = self._snapshot_range(snapshots)
        if rng.step != 1:
            raise ValueError("written_chunks() takes a contiguous range of snapshots (step 1)")
        woff = self.written_offsets
        if woff is None:
            raise ValueError("this capture has no written sets")
        for a, b in _bounded_runs(np.diff(woff[rng.start : rng.stop + 1]), rng.start, max_rows):
            yield a, self._written_rows(a, b), woff[a : b + 1] - woff[a]

    def changes(
        self,
        snapshots: slice | None = None,
        *,
        max_rows: int = 1 << 22,
        whole_keyframes: bool = False,
    ) -> Iterator[Changes]:
        """The snapshots as changes (see :class:`Changes`), in chunks of bounded size.

        Read straight from the stored change rows: a cell of an analysis that did not change
        need not be recomputed, and replaying these costs what changed between snapshots, not
        snapshots x regions. ``max_rows`` bounds the change rows per chunk (one snapshot's
        changes come whole).

        A snapshot stored as a keyframe has no stored changes: by default its changes are its
        difference from the snapshot before, rebuilt for that (the costly part of reading a
        capture whose keyframes are big). With ``whole_keyframes=True`` each keyframe after
        the first snapshot comes instead alone in its chunk (``first`` is that keyframe, see
        :attr:`keyframes`) as the whole snapshot, every row with sign +1: for a consumer that
        keeps its own per-snapshot state (e.g. bytes per bin) and needs no row-level diff.

        From a capture on disk the next chunk is read in a background thread while the
        caller works on the current one (two chunks in memory at most); the thread ends with
        the iteration, also when the caller stops early or a read fails.
        """
        rng = self._snapshot_range(snapshots)
        if rng.step != 1:
            raise ValueError("changes() takes a contiguous range of snapshots (step 1)")
        a, stop = rng.start, rng.stop
        if a >= stop:
            return
        # A capture that reads its stored rows from elsewhere (disk) holds those it read from
        # the last keyframe on: rebuilding the snapshot before a keyframe (to diff it) then
        # reads nothing twice. The encoder keeps changes since a keyframe below its size, so
        # this is about two snapshots plus one chunk.
        on_disk = type(self)._stored is not Capture._stored
        hold = on_disk and not whole_keyframes
        bounds = _bounded_runs(np.diff(self._coff[a + 1 : stop + 1]), a + 1, max_rows)
        # From disk, the next chunk is read (Parquet decoding, which releases the GIL) while
        # the consumer works on this one: reading and analysis overlap on two cores.
        ahead = _ReadAhead(self._stored, bounds, threaded=on_disk)
        try:
            if hold:
                k0 = self.keyframes_before(a)
                self._held = (k0, a + 1, *self._stored(k0, a + 1))
            first = self._rows_at(a)
            if not _strictly_sorted(first):
                first = first[np.argsort(first["start"], kind="stable")]
            yield Changes(
                a, a + 1, np.full(len(first), a, np.int64), first, np.ones(len(first), np.int8)
            )
            for (a, b), (rows, kind) in ahead:
                if hold:
                    self._extend_held(a, b, rows, kind, max_rows)
                snap = np.repeat(np.arange(a, b, dtype=np.int64), np.diff(self._coff[a : b + 1]))
                keys = np.flatnonzero(self._key[a:b]) + a
                if len(keys) and whole_keyframes:
                    yield from _around_keyframes(a, b, keys, snap, rows, kind)
                    continue
                if len(keys):  # a keyframe: its changes are its difference from the one before
                    parts_r, parts_k, parts_s = [], [], []
                    for k in keys.tolist():
                        gone, came = _diff(self._rows_at(k - 1), self._rows_at(k))
                        r, s = _change_rows(gone, came)
                        parts_r.append(r)
                        parts_k.append(s)
                        parts_s.append(np.full(len(r), k, np.int64))
                    stored = ~np.isin(snap, keys)
                    rows = np.concatenate([rows[stored], *parts_r])
                    kind = np.concatenate([kind[stored], *parts_k])
                    snap = np.concatenate([snap[stored], *parts_s])
                    o = np.argsort(snap, kind="stable")
                    rows, kind, snap = rows[o], kind[o], snap[o]
                if hold:
                    self._trim_held(b)
                yield Changes(a, b, snap, rows, kind.astype(np.int8))
        finally:
            ahead.close()
            self._held = None

    def _extend_held(self, a: int, b: int, rows: np.ndarray, kind: np.ndarray, cap: int) -> None:
        """Add the stored rows of ``[a, b)`` to those held (see :meth:`changes`)."""
        h = getattr(self, "_held", None)
        if h is None or h[1] != a or len(h[2]) > 8 * cap:
            self._held = (a, b, rows, kind)  # (an odd encoding: hold only this chunk)
        else:
            self._held = (h[0], b, np.concatenate([h[2], rows]), np.concatenate([h[3], kind]))

    def _trim_held(self, b: int) -> None:
        """Keep the held rows from the last keyframe before ``b`` on (what comes next needs)."""
        h = getattr(self, "_held", None)
        if h is None:
            return
        k = self.keyframes_before(b - 1)
        if k > h[0]:
            cut = int(self._coff[k] - self._coff[h[0]])
            self._held = (k, h[1], h[2][cut:], h[3][cut:])

    def _stored_in(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """``_stored(a, b)``, served from the rows :meth:`changes` holds when it has them."""
        h = getattr(self, "_held", None)
        if h is not None and h[0] <= a and b <= h[1]:
            o, base = self._coff, int(self._coff[h[0]])
            return h[2][o[a] - base : o[b] - base], h[3][o[a] - base : o[b] - base]
        return self._stored(a, b)

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

    def between(self, start: str, end: str | None = None) -> Capture:
        """The phase from mark ``start`` to mark ``end`` (see :func:`pmviz.marks.between`).

        Raises
        ------
        ValueError
            There is no ``start`` mark (the message lists the labels there are).
        """
        from .marks import between  # marks imports this module

        return between(self, start, end)

    def downsample(self, *, every: int | None = None, interval: float | None = None) -> Capture:
        """Keep every ``every``-th snapshot, or the first at or after each ``interval`` seconds.

        Written sets stay exact: a kept snapshot's written set is the union of its own and
        those of the dropped snapshots since the previous kept one. Snapshots after the last
        kept one are dropped with their written sets. Side tables (access samples) keep the
        kept snapshots' own rows: they describe the interval just before each kept snapshot.
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
        if self.written_offsets is not None and len(idx):
            out = _merge_written(self, idx, out)
        return out

    # -- export -------------------------------------------------------------------------------
    def to_pandas(self, what: str = "regions"):  # noqa: ANN201 - pandas is optional
        """A ``pandas.DataFrame`` of one of the capture's tables.

        Parameters
        ----------
        what : {"regions", "written", "snapshots"} or a side table's name
            ``"regions"``: one row per region per snapshot (``snapshot``, ``time_ns``,
            ``start``, ``end``, ``categories``), decoded; ``"written"``: the same for written
            sets; ``"snapshots"``: one row per snapshot with ``time_ns``, ``vma_table`` and
            telemetry; a side table (``"referenced"``, ``"probed"`` ...): its rows with
            ``snapshot`` and ``time_ns``.
        """
        import pandas as pd

        if what in self._side:
            rows = self.side_rows(what)
            snap = np.repeat(np.arange(self.n_snapshots), np.diff(self.side_offsets(what)))
            cols = {n: rows[n] for n in rows.dtype.names or ()}
            return pd.DataFrame({"snapshot": snap, "time_ns": self.time_ns[snap], **cols})

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
            raise ValueError(
                "what must be 'regions', 'written', 'snapshots' or a side table "
                f"({', '.join(self._side) or 'none'}), got {what!r}"
            )
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
            "resident (last)": human_bytes(resident),
            "mapped (last)": human_bytes(self.vmas_at(-1).size) if n else "—",
            "VMA tables": f"{len(self.vma_tables):,}",
            "write tracking": m.write_mechanism,
            **(
                {"access sampling": self.accessed_mechanism}
                if self.accessed_mechanism != "none"
                else {}
            ),
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
        path = getattr(self, "path", None)  # (a stored capture's directory)
        title = "pmviz capture" + (f" <code>{html.escape(str(path))}</code>" if path else "")
        return f"<div><b>{title}</b><table>{body}</table></div>"


def _check_time(time_ns: Any) -> np.ndarray:
    t = np.asarray(time_ns)
    if t.ndim != 1 or (len(t) and t.dtype.kind not in "iu"):
        raise ValueError(f"time_ns must be a 1-D integer array, got {t.dtype} of shape {t.shape}")
    t = t.astype(np.int64)
    back = np.flatnonzero(np.diff(t) < 0)
    if len(back):
        i = int(back[0]) + 1
        raise ValueError(
            f"time_ns must not decrease: snapshot {i} ({int(t[i])}) is before snapshot {i - 1} "
            f"({int(t[i - 1])})"
        )
    return t


def _cancel(
    rows: np.ndarray, kind: np.ndarray, snap: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stored rows with each snapshot's identical disappearing/appearing pairs cancelled,
    ordered as stored: by snapshot; keyframe rows in their order, change rows by start.
    """
    ch = kind != KEYFRAME
    if not ch.any():
        return rows, kind, snap
    r, k, s = rows[ch], kind[ch].astype(np.int64), snap[ch]
    o = np.lexsort((r["categories"], r["end"], r["start"], s))
    r, k, s = r[o], k[o], s[o]
    new = np.ones(len(r), bool)
    new[1:] = ~_same_rows(r[1:], r[:-1]) | (s[1:] != s[:-1])
    net = np.add.reduceat(k, np.flatnonzero(new))
    keep = net != 0
    r, s, k8 = r[new][keep], s[new][keep], np.sign(net[keep]).astype(np.int8)
    key_pos = np.flatnonzero(~ch).astype(np.uint64)
    rows = np.concatenate([rows[~ch], r])
    kind = np.concatenate([kind[~ch], k8])
    snap = np.concatenate([snap[~ch], s])
    sec = np.concatenate([key_pos, r["start"]])
    o = np.lexsort((kind, sec, snap))
    return rows[o], kind[o], snap[o]


class _Snapshots(Sequence):
    """A read-only sequence view of a capture's snapshots (built on demand)."""

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


def _merge_written(src: Capture, idx: np.ndarray, out: Capture) -> Capture:
    """``out`` (= ``src.select(idx)``) with each kept written set the union of the dropped
    ones since the previous kept snapshot.
    """
    from ._intervals import union_columns

    lo = np.concatenate([[0], idx[:-1] + 1])
    parts: list[np.ndarray] = []
    for a, b in zip(lo.tolist(), idx.tolist()):  # one union per kept snapshot
        rows = src._written_rows(a, b + 1)
        s, e = union_columns(rows["start"], rows["end"])
        merged = np.zeros(len(s), REGION_DTYPE)
        merged["start"], merged["end"] = s, e
        merged["categories"] = int(Category.WRITTEN)
        parts.append(merged)
    out._written = np.concatenate(parts) if parts else np.empty(0, REGION_DTYPE)
    out.written_offsets = _offsets([len(p) for p in parts])
    return out
