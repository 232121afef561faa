"""What a session knows about its processes, on its way to disk: rows, events, accounting.

A process's row is *live* while the process is being recorded (the session recorder keeps
it), then *final* (kept here until the next flush writes it). Rows and events move memory ->
in flight -> disk, never back; a reader that looks at memory first and at the disk second sees
every row at least once, and drops the doubles (:meth:`ProcessTable.processes`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from ..storage.session import (
    EVENT_SCHEMA,
    EVENTS,
    PROCESS_SCHEMA,
    PROCESSES,
    SessionWriter,
    session_tables,
)

__all__ = ["ProcessTable"]

Row = dict[str, Any]


class ProcessTable:
    """The session's final rows, events and accounting rows not yet written, and the flush.

    Thread-safe: the discovery, start, accounting and writer threads all add to it.
    """

    def __init__(self, writer: SessionWriter) -> None:
        self.writer = writer
        self.lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._rows: list[Row] = []  # final rows not yet written
        self._events: list[Row] = []
        self._accounting: list[pa.Table] = []
        self._inflight: tuple[list[Row], list[Row]] = ([], [])

    def final(self, row: Row) -> None:
        """A process's row will not change any more (it ended, or was never recorded)."""
        with self.lock:
            self._rows.append(row)

    def event(self, time_ns: int, kind: str, pid: int, ppid: int, detail: str | None) -> None:
        with self.lock:
            self._events.append(
                {"time_ns": int(time_ns), "kind": kind, "pid": pid, "ppid": ppid, "detail": detail}
            )

    def accounting(self, table: pa.Table) -> None:
        with self.lock:
            self._accounting.append(table)

    def flush(self, live_rows: Callable[[], list[Row]]) -> None:
        """Write what is new (final rows, events, accounting) and rewrite the live rows.

        On a write error the rows stay in memory for the next flush, and the error is raised.
        """
        with self._flush_lock:
            with self.lock:
                rows, events, acc = self._rows, self._events, self._accounting
                self._rows, self._events, self._accounting = [], [], []
                self._inflight = (rows, events)
            live = session_tables(live_rows(), PROCESS_SCHEMA)
            try:
                self.writer.flush(
                    session_tables(rows, PROCESS_SCHEMA),
                    live,
                    session_tables(events, EVENT_SCHEMA),
                    pa.concat_tables(acc, promote_options="default") if acc else None,
                )
            except BaseException:
                with self.lock:
                    self._rows[:0], self._events[:0], self._accounting[:0] = rows, events, acc
                    self._inflight = ([], [])
                raise
            with self.lock:
                self._inflight = ([], [])

    # -- the live view ------------------------------------------------------------------------
    def processes(self, session: Any, live_rows: Callable[[], list[Row]]) -> pa.Table:
        """The process table as it stands: written parts, then rows in memory."""
        with self.lock:  # memory first, then disk (see the module docstring)
            memory = [*self._inflight[0], *self._rows]
            live = live_rows()
        stored = session._parts(PROCESSES, PROCESS_SCHEMA)
        key = ("pid", "start_time_ns", "first_seen_ns")
        done = set(zip(*(stored.column(k).to_pylist() for k in key)))
        rows = []
        for r in [*memory, *live]:  # a row both in memory and on disk: the stored one
            k = tuple(r[c] for c in key)
            if k not in done:
                done.add(k)
                rows.append(r)
        table = pa.concat_tables([stored, session_tables(rows, PROCESS_SCHEMA)])
        return table.sort_by([("first_seen_ns", "ascending"), ("pid", "ascending")])

    def events(self, session: Any) -> pa.Table:
        """The events so far: written parts, then those in memory."""
        with self.lock:
            memory = [*self._inflight[1], *self._events]
        stored = session._parts(EVENTS, EVENT_SCHEMA)
        names = EVENT_SCHEMA.names
        seen = set(zip(*(stored.column(n).to_pylist() for n in names)))
        rows = [e for e in memory if tuple(e[n] for n in names) not in seen]
        table = pa.concat_tables([stored, session_tables(rows, EVENT_SCHEMA)])
        return table.sort_by([("time_ns", "ascending"), ("pid", "ascending")])
