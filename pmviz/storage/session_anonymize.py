"""Anonymize a whole session: every capture as ``pmviz.anonymize`` does, plus its tables.

On top of the capture scheme (``pmviz/anonymize.py``):

- **Pids** are renumbered 1000, 1001, ... in the order the session found the processes;
  parents outside the session become 0. Every table, path (``pid=N``) and text uses the new
  numbers; a pid reused within the session simply gets another number.
- **Times** become relative to the session's start (``CLOCK_MONOTONIC`` minus the schedule
  start), the same origin for every capture, so the processes stay on one clock; wall-clock
  times become 0.
- **Commands** keep only the program's name (``python3``, and for an interpreter the
  script's file name, ``shm_pool.py``): no arguments, no directories. Other text (reasons,
  event details) loses anything path-like and the real pids.
- **cgroup** paths and the recorder's own pid are removed.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pyarrow as pa

from ..anonymize import _PATHLIKE, anonymize
from ..errors import CaptureError
from .session import (
    EVENT_SCHEMA,
    PROCESS_SCHEMA,
    Session,
    SessionWriter,
    open_session,
)

__all__ = ["anonymize_session"]

_FIRST_PID = 1000
_INTERPRETERS = ("python", "sh", "bash", "dash", "node", "perl", "ruby", "env")


def program_name(command: str | None) -> str | None:
    """The program's base name (and an interpreter's script file name), nothing else."""
    if not command:
        return command
    words = command.split()
    prog = os.path.basename(words[0]) or "program"
    if prog.rstrip("0123456789.") in _INTERPRETERS and len(words) > 1:
        if not words[1].startswith("-"):
            return f"{prog} {os.path.basename(words[1])}"
    return prog


def anonymize_session(
    session: Session | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> str:
    """Write an anonymized copy of a session directory to ``out``; returns ``out``.

    Parameters
    ----------
    session : Session or path
    out : path
        The new session directory.
    overwrite : bool
        Replace an existing ``out``.

    Raises
    ------
    CaptureError
        ``out`` exists (without ``overwrite``), or the session is damaged.
    """
    from . import save

    s = session if isinstance(session, Session) else open_session(session)
    out = os.fspath(out)
    if os.path.abspath(out) == os.path.abspath(s.path):
        raise CaptureError(out, "is the session being anonymized; write the copy elsewhere")
    meta = s.meta
    t0 = int(meta.get("schedule_start_ns") or meta.get("start_monotonic_ns") or 0)
    processes, events = s.processes, s.events
    real = processes.column("pid").to_pylist()
    new = [_FIRST_PID + i for i in range(len(real))]
    first_new: dict[int, int] = {}
    for r, n in zip(real, new):
        first_new.setdefault(int(r), n)
    # A row's pid maps to its own new number; references (ppid, events) to the first.
    text = _TextScrub(first_new)

    rows = processes.to_pylist()
    for row, n in zip(rows, new):
        row["pid"] = n
        row["ppid"] = first_new.get(int(row["ppid"]), 0) if row["ppid"] is not None else None
        for key in ("start_time_ns", "first_seen_ns", "end_time_ns"):
            if row[key] is not None:
                row[key] = int(row[key]) - t0
        row["command"] = program_name(row["command"])
        row["cgroup"] = None
        for key in ("reason", "writes_reason", "end_reason"):
            row[key] = text(row[key])
    new_meta = {
        k: v
        for k, v in meta.items()
        if "wall" not in k and k not in ("recorder_pid", "complete", "format", "format_version")
    }
    for key, value in meta.items():
        if isinstance(value, int) and key.endswith(("_ns",)) and key != "interval_ns":
            new_meta[key] = int(value) - t0
    new_meta["start_wall_ns"] = 0
    new_meta["root_pid"] = first_new.get(int(meta.get("root_pid") or -1))
    cmd = meta.get("command")
    new_meta["command"] = program_name(" ".join(cmd)) if cmd else None
    new_meta["cgroup"] = None
    new_meta["anonymized"] = True
    new_meta["end_reason"] = text(meta.get("end_reason"))

    writer = SessionWriter(out, new_meta, overwrite=overwrite)
    for row, n in zip(rows, new):
        rel = row["capture"]
        if not row["recorded"] or not rel:
            row["capture"] = None
            continue
        cap = s._open_capture(rel)  # this row's own capture (a reused pid has its own)
        row["capture"] = writer.capture_dir(n)
        save(anonymize(cap, time_origin_ns=t0), os.path.join(out, row["capture"]))
    ev = events.to_pylist()
    for e in ev:
        e["time_ns"] = int(e["time_ns"]) - t0
        e["pid"] = first_new.get(int(e["pid"]), 0)
        e["ppid"] = first_new.get(int(e["ppid"]), 0) if e["ppid"] is not None else None
        e["detail"] = (
            program_name(e["detail"])
            if e["kind"] in ("fork", "appear", "exec")
            else text(e["detail"])
        )
    acc = s.accounting
    if acc is not None and len(acc):
        pid_col = [first_new.get(int(p), 0) for p in acc.column("pid").to_pylist()]
        i = acc.schema.get_field_index("pid")
        acc = acc.set_column(i, "pid", pa.array(pid_col, pa.int64()))
        times = pa.array([int(t) - t0 for t in acc.column("time_ns").to_pylist()], pa.int64())
        acc = acc.set_column(acc.schema.get_field_index("time_ns"), "time_ns", times)
    # One flush: every process has ended, so all rows go to the appended part, none live.
    writer.flush(
        pa.Table.from_pylist(rows, schema=PROCESS_SCHEMA),
        PROCESS_SCHEMA.empty_table(),
        pa.Table.from_pylist(ev, schema=EVENT_SCHEMA),
        acc if acc is not None and len(acc) else None,
    )
    writer.write_meta(complete=bool(meta.get("complete")))
    return out


class _TextScrub:
    """Path-like tokens out, real pids replaced by the new ones."""

    def __init__(self, pids: dict[int, int]) -> None:
        self.pids = pids
        alts = sorted((str(p) for p in pids), key=len, reverse=True)
        self._pid = re.compile(rf"(?<!\d)(?:{'|'.join(alts)})(?!\d)") if alts else None

    def __call__(self, s: Any) -> Any:
        if not isinstance(s, str):
            return s
        s = _PATHLIKE.sub("<path>", s)
        if self._pid is not None:
            s = self._pid.sub(lambda m: str(self.pids[int(m.group(0))]), s)
        return s
