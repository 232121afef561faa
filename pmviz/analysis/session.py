"""Tree-wide analyses of a session: totals counted once, per-process series, the process tree.

Inputs are the session's tables (pyarrow) and its per-process captures; outputs are numpy
arrays in small result objects. No Python loop per tick or per page: ticks and processes are
pivoted with ``np.unique`` / ``np.searchsorted``; per-process loops touch one capture each.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _intervals as iv
from .._intervals import concat_aranges
from ..capture import Capture
from ._html import Summary, human_bytes
from .ticks import ProcessSeries, tick_series
from .working_set import working_set_size

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "TreeTotals",
    "tree_totals",
    "ProcessSeries",
    "accounting_series",
    "process_series",
    "ProcessTree",
    "process_tree",
    "SharedWrites",
    "shared_writes",
    "short_command",
]


def _table(data: Any, name: str) -> pa.Table:
    """A pyarrow table given as itself, or as a session attribute (``session.accounting``)."""
    import pyarrow as pa

    table = data if isinstance(data, pa.Table) else getattr(data, name, None)
    if table is None:
        what = type(data).__name__
        raise ValueError(f"no {name} table: {what} has none (record with accounting=True)")
    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    return table


def _column(table: pa.Table, name: str, dtype: Any = np.int64) -> np.ndarray:
    if name not in table.column_names:
        raise ValueError(f"the table has no {name!r} column (columns: {table.column_names})")
    col = table.column(name)
    return (
        col.to_numpy(zero_copy_only=False).astype(dtype)
        if col.null_count == 0
        else np.array(col.fill_null(0).to_numpy(zero_copy_only=False), dtype=dtype)
    )


# -- totals -------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class TreeTotals(Summary):
    """Tree-wide bytes per accounting tick.

    ``counted`` is the set's distinct resident memory, every shared page once; ``rss_sum``
    is the naive sum of every process's RSS, which counts a shared page once per mapper.
    ``unknown`` (inode mode) is resident memory whose sharing could not be established
    (anonymous copy-on-write pages after fork): the true distinct total lies between
    ``counted + max per process of unknown`` and ``counted + unknown``.
    """

    time: np.ndarray
    time_ns: np.ndarray
    n_processes: np.ndarray
    rss_sum: np.ndarray
    pss_sum: np.ndarray
    uss_sum: np.ndarray
    swap_sum: np.ndarray
    counted: np.ndarray
    unknown: np.ndarray
    written: np.ndarray | None
    shared_written: np.ndarray | None
    mode: str

    def _rows(self) -> dict[str, str]:
        if not self.time.size:
            return {"ticks": "0"}
        rows = {
            "ticks": f"{self.time.size:,} over {self.time[-1]:.2f} s ({self.mode} mode)",
            "processes (max)": f"{int(self.n_processes.max())}",
            "counted once (last / max)": f"{human_bytes(int(self.counted[-1]))} / "
            f"{human_bytes(int(self.counted.max()))}",
            "sum of RSS (last)": human_bytes(int(self.rss_sum[-1])),
            "sum of PSS (last)": human_bytes(int(self.pss_sum[-1])),
            "sum of USS (last)": human_bytes(int(self.uss_sum[-1])),
        }
        if self.unknown.any():
            rows["unknown sharing (last)"] = human_bytes(int(self.unknown[-1]))
        if self.shared_written is not None:
            rows["shared-written (total)"] = human_bytes(int(self.shared_written.sum()))
        return rows


def tree_totals(accounting: Any) -> TreeTotals:
    """Tree-wide totals per tick from an accounting table (``time_ns`` + :data:`COLUMNS`).

    Parameters
    ----------
    accounting : pyarrow.Table or Session
        The session's accounting table (``session.accounting``): one row per process and
        tick, as ``pmviz.accounting.account`` returns plus a ``time_ns`` column.

    Returns
    -------
    TreeTotals
    """
    t = _table(accounting, "accounting")
    ticks, tick = np.unique(_column(t, "time_ns"), return_inverse=True)
    n = len(ticks)

    def total(name: str) -> np.ndarray:
        return np.bincount(tick, weights=_column(t, name, np.float64), minlength=n).astype(np.int64)

    has_written = "written_bytes" in t.column_names and t.column("written_bytes").null_count < len(
        t
    )
    mode = (t.schema.metadata or {}).get(b"mode", b"").decode() or (
        str(t.column("mode")[0]) if len(t) and "mode" in t.column_names else "?"
    )
    return TreeTotals(
        time=(ticks - (ticks[0] if n else 0)) / 1e9,
        time_ns=ticks,
        n_processes=np.bincount(tick, minlength=n),
        rss_sum=total("rss_bytes"),
        pss_sum=total("pss_bytes"),
        uss_sum=total("uss_bytes"),
        swap_sum=total("swap_bytes"),
        counted=total("counted_bytes"),
        unknown=total("unknown_bytes"),
        written=total("written_bytes") if has_written else None,
        shared_written=total("shared_written_bytes") if has_written else None,
        mode=mode,
    )


# -- writes to shared memory ---------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class SharedWrites(Summary):
    """Written bytes per tick and process, with pages of shared memory counted once.

    A page of ``MAP_SHARED`` memory (memfd, POSIX/SysV shm, shared anonymous memory, a shared
    file) written by several processes is in every writer's written set; here it is
    identified by its file and page offset (from each VMA's device, inode and offset), so it
    is attributed to every writer (``co_written``) and counted once tree-wide
    (``tree_written``). Private pages are never shared once written (a write breaks
    copy-on-write), so they count for their process alone.

    Attributes
    ----------
    time, time_ns : numpy.ndarray
        The session's ticks (seconds from its start; ``CLOCK_MONOTONIC``).
    pids : numpy.ndarray
    written : numpy.ndarray
        ``[tick, process]``: bytes written since the process's previous snapshot.
    shared : numpy.ndarray
        ``[tick, process]``: of those, bytes written through shared mappings.
    co_written : numpy.ndarray
        ``[tick, process]``: of those, bytes of pages another process of the session wrote
        in the same tick too.
    tree_written : numpy.ndarray
        ``[tick]``: bytes written by the session, every shared page once.
    shared_once, shared_sum : int
        Over the whole session: distinct bytes of shared memory written by any process, and
        the sum over processes of the distinct shared bytes each wrote.
    """

    time: np.ndarray
    time_ns: np.ndarray
    pids: np.ndarray
    written: np.ndarray
    shared: np.ndarray
    co_written: np.ndarray
    tree_written: np.ndarray
    shared_once: int
    shared_sum: int

    def _rows(self) -> dict[str, str]:
        return {
            "ticks x processes": f"{self.time.size:,} x {self.pids.size:,}",
            "written, summed over processes": human_bytes(int(self.written.sum())),
            "written, every page once": human_bytes(int(self.tree_written.sum())),
            "of it through shared mappings": human_bytes(int(self.shared.sum())),
            "shared pages written by several in one tick": human_bytes(int(self.co_written.sum())),
            "distinct shared bytes written (session)": f"{human_bytes(self.shared_once)} "
            f"(each writer's summed: {human_bytes(self.shared_sum)})",
        }


def shared_writes(session: Any) -> SharedWrites:
    """Who wrote which pages of shared memory, and the session's writes counted once.

    Parameters
    ----------
    session : Session
        A session recorded with write tracking (``pmviz.open(path)`` or a recorder's live
        ``.session``). A process recorded without it contributes nothing (its
        ``writes_reason`` in ``session.processes`` says why).

    Returns
    -------
    SharedWrites

    Notes
    -----
    Pages are matched by file identity, as ``/proc/PID/maps`` gives it: ``(device, inode,
    page offset)``. That is exact for every shared mapping of memory, shmem and memfd
    included (each has its own inode); it needs no PFN and no root.
    """
    from ._stream import row_chunks

    t0 = int(session.meta["schedule_start_ns"])
    step = int(session.meta["interval_ns"])
    if step <= 0:
        raise ValueError("the session has no tick schedule (interval 0)")
    pids: list[int] = []
    per: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    pieces: list[np.ndarray] = []
    page = 4096
    for j, (pid, cap) in enumerate(session.captures()):  # one capture at a time
        page = cap.page_size
        pids.append(pid)
        k = (np.asarray(cap.time_ns, np.int64) - t0) // step
        total = np.zeros(k.size, np.int64)
        shared = np.zeros(k.size, np.int64)
        if cap.has_written:
            for first, rows, off in row_chunks(cap, "written"):
                snap = np.repeat(np.arange(first, first + off.size - 1), np.diff(off))
                nbytes = (rows["end"] - rows["start"]).astype(np.int64)
                total += np.bincount(snap, nbytes, k.size).astype(np.int64)
                got = _shared_pieces(cap, rows, snap, page)
                if got.size:
                    shared += np.bincount(got["snap"], got["pages"] * page, k.size).astype(np.int64)
                    got["snap"] = k[got["snap"]]  # from here on: ticks
                    got["proc"] = j
                    pieces.append(got)
        per.append((k, total, shared))
    n = max((int(k.max()) + 1 for k, _, _ in per if k.size), default=0)
    written = np.zeros((n, len(pids)), np.int64)
    shared = np.zeros((n, len(pids)), np.int64)
    for j, (k, tot, sh) in enumerate(per):
        written[k, j], shared[k, j] = tot, sh
    all_pieces = np.concatenate(pieces) if pieces else np.zeros(0, _PIECE)
    once, co = _count_once(all_pieces, len(pids), n, by_tick=True)
    once_total, _ = _count_once(all_pieces, len(pids), 1, by_tick=False)
    per_proc_sum = sum(
        int(_count_once(all_pieces[all_pieces["proc"] == j], len(pids), 1, by_tick=False)[0][0])
        for j in range(len(pids))
    )
    ticks = np.arange(n, dtype=np.int64)
    time_ns = t0 + ticks * step
    return SharedWrites(
        time=(time_ns - t0) / 1e9,
        time_ns=time_ns,
        pids=np.array(pids, np.int64),
        written=written,
        shared=shared,
        co_written=co * page,
        tree_written=(written - shared).sum(axis=1) + once * page,
        shared_once=int(once_total[0]) * page if once_total.size else 0,
        shared_sum=per_proc_sum * page,
    )


_PIECE = np.dtype(
    [("snap", "<i8"), ("proc", "<i8"), ("dev", "<u8"), ("inode", "<u8"), ("lo", "<u8"),
     ("pages", "<i8")]
)  # fmt: skip


def _shared_pieces(cap: Capture, rows: np.ndarray, snap: np.ndarray, page: int) -> np.ndarray:
    """The parts of written ``rows`` (of snapshots ``snap``) in shared VMAs, as file pages."""
    out = []
    vidx = np.asarray(cap.vma_index, np.int64)[snap]
    for t in np.unique(vidx).tolist():  # one VMA table at a time (tables change rarely)
        v = cap.vma_tables[t].array
        v = v[np.char.endswith(v["perms"], b"s")]
        if not len(v):
            continue
        sel = np.flatnonzero(vidx == t)
        r, s = rows[sel], snap[sel]
        # the shared VMAs each row meets (a run may span adjacent VMAs): VMAs are sorted
        lo = np.searchsorted(v["end"], r["start"], side="right")
        hi = np.searchsorted(v["start"], r["end"], side="left")
        cnt = np.maximum(hi - lo, 0)
        ri = np.repeat(np.arange(len(r)), cnt)
        vi = concat_aranges(lo, cnt)
        a = np.maximum(r["start"][ri], v["start"][vi])
        b = np.minimum(r["end"][ri], v["end"][vi])
        ok = b > a
        ri, vi, a, b = ri[ok], vi[ok], a[ok], b[ok]
        got = np.zeros(len(ri), _PIECE)
        got["snap"] = s[ri]
        got["dev"] = (v["dev_major"][vi].astype(np.uint64) << np.uint64(32)) | v["dev_minor"][vi]
        got["inode"] = v["inode"][vi]
        got["lo"] = v["offset"][vi] // np.uint64(page) + (a - v["start"][vi]) // np.uint64(page)
        got["pages"] = ((b - a) // np.uint64(page)).astype(np.int64)
        out.append(got)
    return np.concatenate(out) if out else np.zeros(0, _PIECE)


def _count_once(
    p: np.ndarray, n_proc: int, n_ticks: int, *, by_tick: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct file pages written per tick, and per tick and process those another process
    wrote too (``by_tick=False``: one "tick", the whole session).

    Every (tick, file) group gets its own stretch of one coordinate line, so that interval
    unions and coverage counts of all groups are one sort and one cumulative sum.
    """
    once = np.zeros(n_ticks, np.int64)
    co = np.zeros((n_ticks, n_proc), np.int64)
    if not len(p):
        return once, co
    tick = p["snap"] if by_tick else np.zeros(len(p), np.int64)
    _, group = np.unique(np.stack([tick.astype(np.uint64), p["dev"], p["inode"]]), axis=1,
                         return_inverse=True)  # fmt: skip
    group = group.reshape(-1).astype(np.uint64)
    span = int((p["lo"] + p["pages"].astype(np.uint64)).max()) + 1
    if (int(group.max()) + 1) * span >= 1 << 63:
        raise ValueError("too many distinct files x ticks to count shared pages at once")
    start = group * np.uint64(span) + p["lo"]
    end = start + p["pages"].astype(np.uint64)
    group_tick = np.zeros(int(group.max()) + 1, np.int64)
    group_tick[group.astype(np.int64)] = tick
    # each process's own pages once (it may report a page in several rows of one tick)
    mine = []
    for j in range(n_proc):
        sel = p["proc"] == j
        if sel.any():
            o = np.argsort(start[sel], kind="stable")
            mine.append((j, iv.union(iv.as_pairs(start[sel][o], end[sel][o]))))
    starts = np.concatenate([u[:, 0] for _, u in mine])
    ends = np.concatenate([u[:, 1] for _, u in mine])
    edges = np.unique(np.concatenate([starts, ends]))
    cover = np.cumsum(
        np.bincount(np.searchsorted(edges, starts), minlength=edges.size)
        - np.bincount(np.searchsorted(edges, ends), minlength=edges.size)
    )[:-1]  # processes covering [edges[i], edges[i + 1])
    seg_lo, seg_hi = edges[:-1], edges[1:]
    seg_tick = group_tick[(seg_lo // np.uint64(span)).astype(np.int64)]
    seg_len = (seg_hi - seg_lo).astype(np.int64)
    once += np.bincount(seg_tick[cover >= 1], seg_len[cover >= 1], n_ticks).astype(np.int64)
    multi = iv.as_pairs(seg_lo[cover >= 2], seg_hi[cover >= 2])
    for j, u in mine:
        both = iv.intersect(u, multi)
        if len(both):
            t = group_tick[(both[:, 0] // np.uint64(span)).astype(np.int64)]
            co[:, j] += np.bincount(t, (both[:, 1] - both[:, 0]).astype(np.int64), n_ticks).astype(
                np.int64
            )
    return once, co


# -- per-process series -------------------------------------------------------------------------


def accounting_series(accounting: Any, column: str = "counted_bytes") -> ProcessSeries:
    """One accounting column as a ticks x processes matrix (for stacked plots).

    ``counted_bytes`` stacks to the tree-wide total counted once; ``rss_bytes`` stacks to the
    naive sum.
    """
    t = _table(accounting, "accounting")
    ticks, tick = np.unique(_column(t, "time_ns"), return_inverse=True)
    pids, proc = np.unique(_column(t, "pid"), return_inverse=True)
    values = np.zeros((len(ticks), len(pids)), np.int64)
    values[tick, proc] = _column(t, column)
    return ProcessSeries(
        (ticks - (ticks[0] if len(ticks) else 0)) / 1e9, ticks, pids, values, column
    )


def process_series(
    captures: Mapping[int, Capture] | Any,
    what: str = "resident",
    *,
    time_ns: np.ndarray | None = None,
) -> ProcessSeries:
    """Resident (or written, swapped) bytes of every process, on one time grid.

    Parameters
    ----------
    captures : Session or mapping of pid to Capture
        A session's processes share its tick schedule: their series come from
        ``pmviz.analysis.ticks.tick_series`` (``Session.resident_series()``), one row per tick.
    what : {"resident", "written", "swapped"}
    time_ns : numpy.ndarray, optional
        The grid for a mapping of captures (default: every snapshot time of every capture). A process's resident and
        swapped bytes at a grid time are those of its last snapshot at or before it (0 before
        its first and after its last snapshot); written bytes are summed into the grid
        interval that ends at or after the snapshot.

    Returns
    -------
    ProcessSeries
    """
    if what not in ("resident", "written", "swapped"):
        raise ValueError(f"what must be 'resident', 'written' or 'swapped', got {what!r}")
    if time_ns is None and not isinstance(captures, Mapping) and hasattr(captures, "meta"):
        # A session: its processes tick on one schedule, so every snapshot has its tick's
        # row (pmviz.analysis.ticks); no resampling needed.
        return tick_series(captures, what)
    caps = _captures(captures)
    pids = np.array(sorted(caps), dtype=np.int64)
    per = []
    for pid in pids.tolist():  # one capture per process; the work inside is numpy
        cap = caps[pid]
        ws = working_set_size(cap)
        v = getattr(ws, what)
        if v is None:
            v = np.zeros(cap.n_snapshots, np.int64)  # recorded without write tracking
        per.append((np.asarray(cap.time_ns, np.int64), np.asarray(v, np.int64)))
    grid = (
        np.unique(np.concatenate([t for t, _ in per]))
        if time_ns is None and per
        else np.asarray(time_ns if time_ns is not None else [], np.int64)
    )
    values = np.zeros((len(grid), len(pids)), np.int64)
    for j, (t, v) in enumerate(per):
        if not len(t):
            continue
        if what == "written":
            k = np.minimum(np.searchsorted(grid, t, side="left"), len(grid) - 1)
            values[:, j] = np.bincount(k, weights=v, minlength=len(grid)).astype(np.int64)
        else:
            k = np.searchsorted(t, grid, side="right") - 1
            alive = (k >= 0) & (grid <= t[-1])
            values[alive, j] = v[k[alive]]
    return ProcessSeries((grid - (grid[0] if len(grid) else 0)) / 1e9, grid, pids, values, what)


def _captures(data: Mapping[int, Capture] | Any) -> dict[int, Capture]:
    if isinstance(data, Mapping):
        return {int(k): v for k, v in data.items()}
    return {int(pid): data.capture(pid) for pid in data.pids}


# -- the process tree ---------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class ProcessTree:
    """The process tree in depth-first order, with sizes.

    Arrays are parallel, one entry per process, parents before their children: ``depth``
    (0 for a root), ``parent`` (-1 for a root of the session), ``command``, and byte columns
    from the accounting table at one tick (``rss``, ``pss``, ``uss``, ``counted``; -1 where
    the process was not alive then). ``subtree_counted`` adds ``counted`` over each
    process's descendants (itself included): with shared pages counted once, the subtree
    totals add up to the tree's total without double counting.
    """

    pid: np.ndarray
    parent: np.ndarray
    depth: np.ndarray
    command: list[str]
    rss: np.ndarray
    pss: np.ndarray
    uss: np.ndarray
    counted: np.ndarray
    subtree_counted: np.ndarray
    time_ns: int | None

    def __len__(self) -> int:
        return int(self.pid.size)

    def _lines(self) -> list[tuple[str, list[str]]]:
        out = []
        for i in range(len(self)):
            name = f"{'    ' * int(self.depth[i])}{int(self.pid[i])} {_clip(self.command[i])}"
            sizes = [
                human_bytes(int(v)) if v >= 0 else "—"
                for v in (
                    self.rss[i],
                    self.pss[i],
                    self.uss[i],
                    self.counted[i],
                    self.subtree_counted[i],
                )
            ]
            out.append((name, sizes))
        return out

    _HEADER = ("process", "RSS", "PSS", "USS", "counted once", "subtree (once)")

    def __repr__(self) -> str:
        lines = self._lines()
        width = max([len(n) for n, _ in lines] + [len(self._HEADER[0])])
        head = f"{self._HEADER[0]:<{width}}  " + "  ".join(f"{h:>14}" for h in self._HEADER[1:])
        rows = [f"{n:<{width}}  " + "  ".join(f"{s:>14}" for s in sz) for n, sz in lines]
        return "\n".join([f"ProcessTree ({len(self)} processes)", head, *rows])

    def _repr_html_(self) -> str:
        import html

        head = "".join(f"<th>{html.escape(h)}</th>" for h in self._HEADER)
        body = []
        for i, (_, sizes) in enumerate(self._lines()):
            pad = 1.2 * int(self.depth[i])
            name = (
                f"<td style='text-align:left;padding-left:{pad:.1f}em'>"
                f"<code>{int(self.pid[i])}</code> {html.escape(_clip(self.command[i]))}</td>"
            )
            cells = "".join(f"<td style='text-align:right'>{html.escape(s)}</td>" for s in sizes)
            body.append(f"<tr>{name}{cells}</tr>")
        return (
            f"<div><b>ProcessTree</b>: {len(self)} processes<table><thead><tr>{head}</tr>"
            f"</thead><tbody>{''.join(body)}</tbody></table></div>"
        )


def _clip(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def process_tree(
    processes: Any, accounting: Any | None = None, *, at: int | None = None
) -> ProcessTree:
    """The process tree (depth-first) with each process's sizes at one accounting tick.

    Parameters
    ----------
    processes : pyarrow.Table, pandas.DataFrame or Session
        The process table: columns ``pid``, ``ppid`` (or ``parent``), ``command``.
    accounting : pyarrow.Table or Session, optional
        The accounting table (default: ``processes.accounting`` of a session, if any).
    at : int, optional
        Which tick (an index into the distinct ``time_ns``; -1: the last). Default: the tick
        at which the tree's memory counted once peaks. A process not alive at that tick
        shows -1 sizes ("—").

    Returns
    -------
    ProcessTree
    """
    p = _table(processes, "processes")
    if accounting is None and not _is_table(processes):
        accounting = getattr(processes, "accounting", None)
    pid = _column(p, "pid")
    parent = _column(p, "ppid" if "ppid" in p.column_names else "parent")
    command = _commands(p)
    index = {int(v): i for i, v in enumerate(pid.tolist())}
    parent_index = np.array([index.get(int(v), -1) for v in parent.tolist()], np.int64)
    parent_index[parent_index == np.arange(len(pid))] = -1
    order, depth = _dfs(pid, parent_index)
    sizes = {k: np.full(len(pid), -1, np.int64) for k in ("rss", "pss", "uss", "counted")}
    time_ns = None
    if accounting is not None:
        a = _table(accounting, "accounting")
        t = _column(a, "time_ns")
        if len(t):
            totals = tree_totals(a)
            k = int(np.argmax(totals.counted)) if at is None else at
            time_ns = int(totals.time_ns[k])
            rows = t == time_ns
            pos = np.array([index.get(int(v), -1) for v in _column(a, "pid")[rows].tolist()])
            ok = pos >= 0
            for name in sizes:
                sizes[name][pos[ok]] = _column(a, f"{name}_bytes")[rows][ok]
    subtree = np.maximum(sizes["counted"], 0)
    # Children come after their parent in `order`: adding each into its parent, last first,
    # accumulates whole subtrees (one step per process; trees have hundreds at most).
    for i in order[::-1].tolist():
        if parent_index[i] >= 0:
            subtree[parent_index[i]] += subtree[i]
    return ProcessTree(
        pid=pid[order],
        parent=np.where(parent_index[order] >= 0, parent[order], -1),
        depth=depth[order],
        command=[command[i] for i in order.tolist()],
        rss=sizes["rss"][order],
        pss=sizes["pss"][order],
        uss=sizes["uss"][order],
        counted=sizes["counted"][order],
        subtree_counted=subtree[order],
        time_ns=time_ns,
    )


_INTERPRETERS = ("python", "sh", "bash", "dash", "node", "perl", "ruby", "env")


def short_command(command: str) -> str:
    """``shm_pool.py`` for ``/usr/bin/python3 path/shm_pool.py``: the program, briefly.

    The program's base name; for an interpreter, the script's base name after it.
    """
    words = command.split()
    if not words:
        return ""
    prog = os.path.basename(words[0]) or words[0]
    if prog.rstrip("0123456789.") in _INTERPRETERS and len(words) > 1:
        if not words[1].startswith("-"):
            return os.path.basename(words[1]) or words[1]
        if "-c" in words or "-m" in words:
            return f"{prog} {words[1]}"[:30]
    return prog[:30]


def _is_table(x: Any) -> bool:
    import pyarrow as pa

    return isinstance(x, pa.Table) or type(x).__name__ == "DataFrame"


def _commands(p: pa.Table) -> list[str]:
    if "command" not in p.column_names:
        return [""] * len(p)
    out = []
    for c in p.column("command").to_pylist():
        if isinstance(c, (list, tuple)):
            c = " ".join(str(w) for w in c)
        out.append("" if c is None else str(c))
    return out


def _dfs(pid: np.ndarray, parent_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depth-first order (children by pid) and depths, iteratively."""
    n = len(pid)
    children: dict[int, list[int]] = {}
    for i in np.argsort(pid, kind="stable").tolist():
        children.setdefault(int(parent_index[i]), []).append(i)
    order: list[int] = []
    depth = np.zeros(n, np.int64)
    stack = list(reversed(children.get(-1, [])))
    seen = np.zeros(n, bool)
    while stack:
        i = stack.pop()
        if seen[i]:
            continue
        seen[i] = True
        order.append(i)
        for c in reversed(children.get(i, [])):
            depth[c] = depth[i] + 1
            stack.append(c)
    order += np.flatnonzero(~seen).tolist()  # a parent cycle (pid reuse): list them flat
    return np.array(order, np.int64), depth
