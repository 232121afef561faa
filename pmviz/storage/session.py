"""Sessions: several processes recorded together, one capture each (``docs/sessions.md``).

A session is a directory ``NAME.pmviz/``::

    session.json                  metadata: scope, root, interval, schedule, start, end_reason
    processes/FIRST-END.parquet   the process table: rows of processes that have ended (or
                                  were never recorded), appended as they end
    processes/live.parquet        rows of the processes being recorded (rewritten at each
                                  flush; removed at the end)
    events/FIRST-END.parquet      fork / appear / exec / exit / leave / skip
    accounting/FIRST-END.parquet  per tick and live process: RSS/PSS/USS ... (accounting=True)
    pid=N/                        the capture of process N (a normal capture directory)
    reused/K/pid=N/               the K-th process (K >= 2) that had pid N in the session

``FIRST-END`` is the range of flushes a part covers. Each flush appends at most one part per
table, so what a flush writes follows the processes alive and the events since the previous
one, never every process that lived. At the end each table's parts are merged into one part
covering their union (a reader ignores a part whose range lies inside another's, so a crash
during the merge is harmless, as for captures).

The ``pid=N`` directories are Hive-style partitions: ``duckdb.read_parquet(
'NAME.pmviz/*/regions/*.parquet', hive_partitioning=true)`` reads every process's regions
with a ``pid`` column; ``NAME.pmviz/processes/*.parquet`` is the process table.
``session.json`` says ``"complete": true`` once the recorder has finished.

:func:`open_path` opens a session or a capture, whichever the directory holds.
"""

from __future__ import annotations

import html
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..capture import Capture
from ..errors import CaptureError
from . import format as fmt
from . import validate

__all__ = [
    "Session",
    "SessionWriter",
    "open_path",
    "open_session",
    "is_session",
    "PROCESS_SCHEMA",
    "EVENT_SCHEMA",
    "SESSION_FILE",
]

SESSION_FORMAT = "pmviz-session"
SESSION_VERSION = 1
SESSION_FILE = "session.json"
PROCESSES = "processes"
EVENTS = "events"
ACCOUNTING = "accounting"
LIVE_FILE = "live.parquet"

PROCESS_SCHEMA = pa.schema(
    [
        ("pid", pa.int64()),
        ("ppid", pa.int64()),  # the parent when the process was first seen
        ("start_time_ns", pa.int64()),  # CLOCK_MONOTONIC ns (from /proc/PID/stat starttime)
        ("first_seen_ns", pa.int64()),  # when the session found it
        ("end_time_ns", pa.int64()),  # when the session saw it end (null: still running)
        ("command", pa.string()),  # argv joined by spaces, as first seen (execs: events)
        ("exit_status", pa.int32()),  # exit code, -N = killed by signal N; null: unknown
        ("end_reason", pa.string()),  # why its recording ended
        ("cgroup", pa.string()),  # cgroup v2 path, as first seen
        ("recorded", pa.bool_()),  # false: see reason
        ("reason", pa.string()),  # why it was not recorded (null when recorded)
        ("write_mechanism", pa.string()),  # "uffd-wp", "soft-dirty", "none"
        ("writes_reason", pa.string()),  # why that mechanism (or why none)
        ("capture", pa.string()),  # its capture directory, relative to the session
        ("n_snapshots", pa.int64()),
    ]
)
EVENT_SCHEMA = pa.schema(
    [
        ("time_ns", pa.int64()),  # CLOCK_MONOTONIC ns
        ("kind", pa.string()),  # fork, appear, exec, exit, leave, skip
        ("pid", pa.int64()),
        ("ppid", pa.int64()),
        ("detail", pa.string()),  # command (fork/appear/exec), status (exit), reason (skip)
    ]
)


def is_session(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a session directory (it holds ``session.json``)."""
    return os.path.isfile(os.path.join(os.fspath(path), SESSION_FILE))


def _table_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


class SessionWriter:
    """Writes a session directory: metadata, the process / event / accounting tables.

    The per-process captures are written by their own recorders into :meth:`capture_dir`.
    """

    def __init__(self, path: str, meta: dict[str, Any], *, overwrite: bool = False) -> None:
        self.path = path
        if os.path.lexists(path):
            if not overwrite:
                raise CaptureError(path, "already exists (overwrite=True replaces it)")
            _remove_output(path)
        os.mkdir(path)
        for table in (PROCESSES, EVENTS):
            os.mkdir(os.path.join(path, table))
        self.meta = dict(meta)
        self._flushes = 0
        self.write_meta(complete=False)

    def capture_dir(self, pid: int) -> str:
        """Where a new process ``pid`` goes (relative): ``pid=N``, or ``reused/K/pid=N`` for
        the K-th process with that pid (the pid was reused during the session).
        """
        rel = f"pid={pid}"
        k = 1
        while os.path.lexists(os.path.join(self.path, rel)):
            k += 1
            rel = os.path.join("reused", str(k), f"pid={pid}")
        if k > 1:
            os.makedirs(os.path.join(self.path, "reused", str(k)), exist_ok=True)
        return rel

    def write_meta(self, *, complete: bool) -> None:
        doc = {
            **self.meta,
            "format": SESSION_FORMAT,
            "format_version": SESSION_VERSION,
            "complete": complete,
        }
        data = (json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n").encode()
        fmt.write_atomic(os.path.join(self.path, SESSION_FILE), data)

    def flush(
        self,
        ended: pa.Table,
        live: pa.Table,
        events: pa.Table,
        accounting: pa.Table | None = None,
    ) -> None:
        """Append the rows of processes that ended, events and accounting since the last
        flush (one part each, when there are rows); rewrite the live processes' rows.
        """
        n = self._flushes
        # events and ended rows before the live rows: a process is never missing in between
        # (it may show twice; readers keep its final row)
        for table, rows in ((EVENTS, events), (ACCOUNTING, accounting), (PROCESSES, ended)):
            if rows is not None and len(rows):
                d = os.path.join(self.path, table)
                os.makedirs(d, exist_ok=True)
                fmt.write_atomic(os.path.join(d, fmt.part_name(n, n + 1)), _table_bytes(rows))
        live_path = os.path.join(self.path, PROCESSES, LIVE_FILE)
        if len(live):
            fmt.write_atomic(live_path, _table_bytes(live))
        elif os.path.exists(live_path):
            os.unlink(live_path)
        self._flushes += 1

    def merge(self) -> None:
        """One part per table (the end of the session): merged part first, then the rest go."""
        for table in (PROCESSES, EVENTS, ACCOUNTING):
            parts, _ = fmt.list_parts(self.path, table)
            if len(parts) < 2:
                continue
            merged = pa.concat_tables(
                [_read_table(p.path) for p in parts], promote_options="default"
            )
            first, end = parts[0].first, parts[-1].end
            fmt.write_atomic(
                os.path.join(self.path, table, fmt.part_name(first, end)), _table_bytes(merged)
            )
            for p in parts:
                os.unlink(p.path)


def _remove_output(path: str) -> None:
    """Remove an existing session or capture directory that overwrite=True replaces."""
    import shutil

    if not os.path.isdir(path) or os.path.islink(path):
        raise CaptureError(path, "exists and is not a directory; refusing to replace it")
    if not (is_session(path) or os.path.exists(os.path.join(path, fmt.META_FILE))):
        raise CaptureError(path, "exists and is not a pmviz session or capture; not replacing it")
    shutil.rmtree(path)


def _read_table(path: str, schema: pa.Schema | None = None) -> pa.Table:
    validate.check_part_file(path)
    validate.check_footer(path)  # raw bytes: nothing deserialized before this
    try:
        # ParquetFile reads synchronously in this thread. pq.read_table on a Python file
        # object goes through Arrow's dataset scanner, whose worker thread may drop the last
        # reference to that file object later, taking the GIL: at interpreter exit that
        # thread is ended inside C++ and the process aborts ("terminate called without an
        # active exception").
        with pq.ParquetFile(path) as f:
            table = f.read()
    except (OSError, pa.ArrowException) as err:
        raise CaptureError(path, f"damaged table (truncated or corrupt): {err}") from err
    if schema is not None and not table.schema.remove_metadata().equals(schema):
        raise CaptureError(path, "unexpected columns: not written by this pmviz (or damaged)")
    return table


def _read_session_meta(root: str) -> dict[str, Any]:
    path = os.path.join(root, SESSION_FILE)
    validate.check_part_file(path)
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CaptureError(path, f"damaged session metadata: {err}") from err
    if not isinstance(doc, dict) or doc.get("format") != SESSION_FORMAT:
        raise CaptureError(path, f"not a pmviz session file (no format={SESSION_FORMAT!r})")
    version = doc.get("format_version")
    if not isinstance(version, int) or version > SESSION_VERSION:
        raise CaptureError(
            path, f"session format version {version!r} is not one this pmviz reads (upgrade?)"
        )
    return doc


class Session:
    """Several processes recorded together: the process table, events, one capture each.

    Open with :func:`pmviz.open` (a session directory), or take the live view of a
    :class:`pmviz.SessionRecorder` (``.session``).

    Attributes
    ----------
    path : str
        The session directory.
    meta : dict
        ``session.json``: ``scope``, ``root_pid``, ``command``, ``cgroup``, ``interval_ns``,
        ``schedule_start_ns``, ``start_wall_ns``, ``end_reason``, ``complete``, ...

    Examples
    --------
    >>> import pmviz
    >>> s = pmviz.open("run.pmviz")  # doctest: +SKIP
    >>> s.processes.to_pandas()  # doctest: +SKIP
    >>> cap = s.capture(s.pids[0])  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str], *, strict: bool = True) -> None:
        self.path = os.fspath(path)
        self.strict = strict
        self.meta = _read_session_meta(self.path)
        self._captures: dict[str, Capture] = {}

    # -- tables -------------------------------------------------------------------------------
    @property
    def processes(self) -> pa.Table:
        """The process table (``PROCESS_SCHEMA``; ``.to_pandas()`` for a DataFrame), in the
        order the processes were found.
        """
        ended = self._parts(PROCESSES, PROCESS_SCHEMA)
        live_path = os.path.join(self.path, PROCESSES, LIVE_FILE)
        tables = [ended]
        if os.path.exists(live_path):
            try:
                live = _read_table(live_path, PROCESS_SCHEMA)
            except CaptureError:
                if os.path.exists(live_path):
                    raise
                live = None  # (the recorder replaced or removed it meanwhile)
            if live is not None and len(live):
                done = set(
                    zip(ended.column("pid").to_pylist(), ended.column("start_time_ns").to_pylist())
                )
                keep = [
                    (p, t) not in done
                    for p, t in zip(
                        live.column("pid").to_pylist(), live.column("start_time_ns").to_pylist()
                    )
                ]
                tables.append(live.filter(pa.array(keep, pa.bool_())))
        table = pa.concat_tables(tables)
        return table.sort_by([("first_seen_ns", "ascending"), ("pid", "ascending")])

    @property
    def events(self) -> pa.Table:
        """Fork / appear / exec / exit / leave / skip events in time order (``EVENT_SCHEMA``)."""
        return self._parts(EVENTS, EVENT_SCHEMA).sort_by(
            [("time_ns", "ascending"), ("pid", "ascending")]
        )

    @property
    def accounting(self) -> pa.Table | None:
        """Per tick and live process: ``time_ns`` + ``pmviz.accounting.account``'s columns;
        None when the session was recorded without ``accounting=True``.
        """
        if not os.path.isdir(os.path.join(self.path, ACCOUNTING)):
            return None
        return self._parts(ACCOUNTING, None)

    def _parts(self, table: str, schema: pa.Schema | None) -> pa.Table:
        for _ in range(3):  # a part merged away while listing: list again
            parts, _stray = fmt.list_parts(self.path, table)
            try:
                tables = [_read_table(p.path, schema) for p in parts]
                break
            except CaptureError:
                if all(os.path.exists(p.path) for p in parts):
                    raise
        else:
            raise CaptureError(self.path, f"the {table} table kept changing while being read")
        if not tables:
            if schema is None:
                return pa.table({})
            return schema.empty_table()
        return pa.concat_tables(tables, promote_options="default")

    # -- processes ----------------------------------------------------------------------------
    @property
    def pids(self) -> list[int]:
        """The processes that have a capture, in the order they were found."""
        p = self.processes
        rec = p.column("recorded").to_pylist()
        return list(dict.fromkeys(pid for pid, r in zip(p.column("pid").to_pylist(), rec) if r))

    def capture(self, pid: int, incarnation: int = 1) -> Capture:
        """The capture of process ``pid`` (opened lazily, kept).

        ``incarnation``: 2, 3 ... for a later process that reused the pid in this session.

        Raises
        ------
        KeyError
            No recorded process ``pid`` (the message lists those that were not recorded and
            why).
        """
        rel = self._capture_path(int(pid), incarnation)
        cap = self._captures.get(rel)
        if cap is None:
            cap = self._open_capture(rel)
            self._captures[rel] = cap
        return cap

    def captures(self) -> Iterator[tuple[int, Capture]]:
        """``(pid, capture)`` of every recorded process (opened one at a time)."""
        for pid in self.pids:
            yield pid, self.capture(pid)

    def tree(self) -> dict[int, list[int]]:
        """``{parent: [children]}`` over the session's processes (ppid as first seen);
        processes whose parent is not in the session are children of ``0``.
        """
        p = self.processes
        pids = p.column("pid").to_pylist()
        ppids = p.column("ppid").to_pylist()
        known = set(pids)
        out: dict[int, list[int]] = {}
        for pid, ppid in zip(pids, ppids):
            parent = ppid if ppid in known and ppid != pid else 0
            kids = out.setdefault(parent, [])
            if pid not in kids:
                kids.append(pid)
        return out

    # -- tree-wide analyses (pmviz.analysis.ticks) --------------------------------------------
    def resident_series(self) -> Any:
        """Resident bytes of every recorded process per tick of the common schedule
        (:class:`pmviz.analysis.ProcessSeries` with ``ticks``: ``values[tick, process]``,
        ``to_pandas()``).
        """
        from ..analysis.ticks import tick_series  # (analysis sits above storage: on use)

        return tick_series(self, "resident")

    def written_series(self) -> Any:
        """Bytes each process wrote since its previous tick, per tick (see
        :meth:`resident_series`; 0 for a process recorded without write tracking).
        """
        from ..analysis.ticks import tick_series

        return tick_series(self, "written")

    # -- internals ----------------------------------------------------------------------------
    def _capture_path(self, pid: int, incarnation: int) -> str:
        p = self.processes
        rows = [
            r
            for r in p.select(["pid", "capture", "recorded", "reason"]).to_pylist()
            if r["pid"] == pid
        ]
        recorded = [r for r in rows if r["recorded"] and r["capture"]]
        if not 1 <= incarnation <= len(recorded):
            if rows:
                raise KeyError(
                    f"process {pid} was not recorded (incarnation {incarnation}): "
                    + "; ".join(str(r["reason"]) for r in rows if not r["recorded"])
                )
            raise KeyError(f"no process {pid} in this session; recorded: {self.pids[:20]}")
        return str(recorded[incarnation - 1]["capture"])

    def _open_capture(self, rel: str) -> Capture:
        from .reader import open as open_capture

        return open_capture(os.path.join(self.path, rel), strict=self.strict)

    def summary(self) -> dict[str, str]:
        """The main facts, as label -> text (what ``pmviz info`` prints)."""
        m = self.meta
        p = self.processes
        rec = p.column("recorded").to_pylist()
        n_rec = sum(bool(r) for r in rec)
        mech: dict[str, int] = {}
        for r, w in zip(rec, p.column("write_mechanism").to_pylist()):
            if r:
                mech[str(w)] = mech.get(str(w), 0) + 1
        facts = {
            "scope": str(m.get("scope")),
            "root": (
                f"pid {m.get('root_pid')}"
                + (f" ({' '.join(m['command'])})" if m.get("command") else "")
            )
            if m.get("root_pid") is not None
            else str(m.get("cgroup") or "every readable process"),
            "processes": f"{len(p)} seen, {n_rec} recorded, {len(p) - n_rec} not recorded",
            "interval": f"{(m.get('interval_ns') or 0) / 1e6:g} ms",
            "write tracking": ", ".join(f"{k}: {v}" for k, v in sorted(mech.items())) or "—",
            "end": str(m.get("end_reason")),
            "complete": "yes" if m.get("complete") else "no (the recorder did not finish)",
        }
        if m.get("start_monotonic_ns") and m.get("end_monotonic_ns"):
            secs = (m["end_monotonic_ns"] - m["start_monotonic_ns"]) / 1e9
            facts["duration"] = f"{secs:.2f} s"
        reasons: dict[str, int] = {}
        for r, why in zip(rec, p.column("reason").to_pylist()):
            if not r:
                key = str(why).split(":")[0]
                reasons[key] = reasons.get(key, 0) + 1
        if reasons:
            facts["not recorded"] = "; ".join(f"{k} ({v})" for k, v in sorted(reasons.items()))
        return facts

    def __repr__(self) -> str:
        return f"<pmviz Session {self.path!r}: {self.summary()['processes']}>"

    def _repr_html_(self) -> str:
        facts = self.summary()
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in facts.items()
        )
        p = self.processes.to_pylist()[:50]
        head = "".join(
            f"<th>{h}</th>"
            for h in ("pid", "ppid", "command", "exit", "writes", "snapshots", "note")
        )
        body = "".join(
            "<tr>"
            + "".join(
                f"<td style='text-align:left'>{html.escape(str(v))}</td>"
                for v in (
                    r["pid"],
                    r["ppid"],
                    (r["command"] or "")[:80],
                    "" if r["exit_status"] is None else r["exit_status"],
                    r["write_mechanism"] or "",
                    r["n_snapshots"] or 0,
                    r["reason"] or r["end_reason"] or "",
                )
            )
            + "</tr>"
            for r in p
        )
        more = len(self.processes) - len(p)
        tail = f"<p>… {more} more processes</p>" if more > 0 else ""
        return (
            f"<div><b>pmviz session</b> <code>{html.escape(self.path)}</code>"
            f"<table>{rows}</table><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>{tail}</div>"
        )


def open_session(path: str | os.PathLike[str], *, strict: bool = True) -> Session:
    """Open a session directory (see :class:`Session`).

    Raises
    ------
    CaptureError
        Not a session (or damaged metadata); the message names the file.
    """
    path = os.fspath(path)
    if not is_session(path):
        raise CaptureError(path, f"not a pmviz session: it has no {SESSION_FILE}")
    return Session(path, strict=strict)


def open_path(path: str | os.PathLike[str], *, strict: bool = True) -> Any:
    """``pmviz.open``: a :class:`Session` for a session directory, else a capture.

    Parameters
    ----------
    path : str or path-like
        A ``NAME.pmviz`` directory written by ``pmviz record`` / ``pmviz.record(out=...)``.
    strict : bool
        As for :func:`pmviz.storage.open` (damaged parts raise; ``False`` skips them).

    Returns
    -------
    Session or StoredCapture
    """
    if is_session(path):
        return open_session(path, strict=strict)
    from .reader import open as open_capture

    return open_capture(path, strict=strict)


def session_tables(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows (dicts) as a table of ``schema`` (missing keys are nulls)."""
    return pa.Table.from_pylist([dict(r) for r in rows], schema=schema)
