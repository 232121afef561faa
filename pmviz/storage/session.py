"""Sessions: several processes recorded together, one capture each (``docs/sessions.md``).

A session is a directory ``NAME.pmviz/``::

    session.json             metadata: scope, root, interval, schedule, start, end_reason, ...
    processes.parquet        the process table: one row per process seen (recorded or not)
    events.parquet           fork / appear / exec / exit / leave / skip, in time order
    accounting/NNNNNNNNN.parquet   per tick and live process: RSS/PSS/USS... (accounting=True)
    pid=N/                   the capture of process N (a normal capture directory)
    reused/K/pid=N/          the K-th process (K >= 2) that had pid N during the session

The ``pid=N`` directories are Hive-style partitions: ``duckdb.read_parquet(
'NAME.pmviz/*/regions/*.parquet', hive_partitioning=true)`` reads every process's regions
with a ``pid`` column. ``processes.parquet`` and ``events.parquet`` are rewritten whole
(atomically) as the session goes; ``session.json`` says ``"complete": true`` once the
recorder has finished.

:func:`open_path` opens a session or a capture, whichever the directory holds.
"""

from __future__ import annotations

import html
import io
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .._units import human_bytes
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
PROCESSES_FILE = "processes.parquet"
EVENTS_FILE = "events.parquet"
ACCOUNTING_DIR = "accounting"

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
    """Writes a session directory: metadata, process and event tables, accounting parts.

    The per-process captures are written by their own recorders into :meth:`capture_dir`.
    """

    def __init__(self, path: str, meta: dict[str, Any], *, overwrite: bool = False) -> None:
        self.path = path
        if os.path.lexists(path):
            if not overwrite:
                raise CaptureError(path, "already exists (overwrite=True replaces it)")
            _remove_output(path)
        os.mkdir(path)
        self.meta = dict(meta)
        self._n_accounting = 0
        self.write_meta(complete=False)

    def capture_dir(self, pid: int, incarnation: int = 1) -> str:
        """Where process ``pid`` goes (relative): ``pid=N``, or ``reused/K/pid=N``."""
        if incarnation <= 1:
            return f"pid={pid}"
        os.makedirs(os.path.join(self.path, "reused", str(incarnation)), exist_ok=True)
        return os.path.join("reused", str(incarnation), f"pid={pid}")

    def write_meta(self, *, complete: bool) -> None:
        doc = {
            **self.meta,
            "format": SESSION_FORMAT,
            "format_version": SESSION_VERSION,
            "complete": complete,
        }
        data = (json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n").encode()
        fmt.write_atomic(os.path.join(self.path, SESSION_FILE), data)

    def write_tables(self, processes: pa.Table, events: pa.Table) -> None:
        # events first: a reader that sees a process row finds the events that led to it
        fmt.write_atomic(os.path.join(self.path, EVENTS_FILE), _table_bytes(events))
        fmt.write_atomic(os.path.join(self.path, PROCESSES_FILE), _table_bytes(processes))

    def append_accounting(self, table: pa.Table) -> None:
        """One more part of the accounting table (rows of one or more ticks)."""
        if not len(table):
            return
        d = os.path.join(self.path, ACCOUNTING_DIR)
        os.makedirs(d, exist_ok=True)
        fmt.write_atomic(os.path.join(d, f"{self._n_accounting:09d}.parquet"), _table_bytes(table))
        self._n_accounting += 1


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
        table = pq.read_table(path)
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
        """The process table (``PROCESS_SCHEMA``; ``.to_pandas()`` for a DataFrame)."""
        path = os.path.join(self.path, PROCESSES_FILE)
        if not os.path.exists(path):  # (a session whose recorder died before the first write)
            return PROCESS_SCHEMA.empty_table()
        return _read_table(path, PROCESS_SCHEMA)

    @property
    def events(self) -> pa.Table:
        """Fork / appear / exec / exit / leave / skip events in time order (``EVENT_SCHEMA``)."""
        path = os.path.join(self.path, EVENTS_FILE)
        if not os.path.exists(path):
            return EVENT_SCHEMA.empty_table()
        return _read_table(path, EVENT_SCHEMA)

    @property
    def accounting(self) -> pa.Table | None:
        """Per tick and live process: ``time_ns`` + ``pmviz.accounting.account``'s columns;
        None when the session was recorded without ``accounting=True``.
        """
        d = os.path.join(self.path, ACCOUNTING_DIR)
        if not os.path.isdir(d):
            return None
        names = sorted(n for n in os.listdir(d) if n.endswith(".parquet") and n[:1] != ".")
        tables = [_read_table(os.path.join(d, n)) for n in names]
        if not tables:
            return None
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

    # -- internals ----------------------------------------------------------------------------
    def _capture_path(self, pid: int, incarnation: int) -> str:
        p = self.processes
        rows = [
            r for r in p.select(["pid", "capture", "recorded", "reason"]).to_pylist()
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


def _bytes(n: int) -> str:
    return human_bytes(n)


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


def session_tables(rows: list[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows (dicts) as a table of ``schema`` (missing keys are nulls)."""
    return pa.Table.from_pylist([dict(r) for r in rows], schema=schema)
