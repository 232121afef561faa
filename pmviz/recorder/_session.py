"""``SessionRecorder``: record a process tree, a cgroup or every process, one Recorder each.

The session composes :class:`~pmviz.recorder.Recorder`: each process gets its own, writing a
normal capture into ``SESSION/pid=N/`` with the same write tracking (``writes="auto"``:
uffd-wp injected into each process, else soft-dirty, else none with the reason) and
``follow_exec=True``. Every recorder ticks on the session's schedule ``t0 + k * interval``.

A discovery thread runs once per tick, just before the deadline: it finds the scope's
processes (tree: the descendants of every process being recorded; cgroup: ``cgroup.procs``;
all: every pid in ``/proc``), starts a recorder for each new one, and collects the recorders
that have ended (their target exited): their threads and file descriptors are released then,
so the cost follows the live processes, not every process that ever lived. It keeps the
process table and the events, and writes them (and, with ``accounting=True``, one row per
live process and tick from ``pmviz.accounting.account``) to the session directory.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import threading
import time
import warnings
from collections.abc import Sequence
from typing import Any

from .._kernel import proctree
from .._kernel.process import ProcessHandle, read_stat
from ..capture import Capture
from ..errors import AccessDenied, Error, NoSuchProcess, PmvizWarning
from ..storage.session import (
    EVENT_SCHEMA,
    PROCESS_SCHEMA,
    Session,
    SessionWriter,
    session_tables,
)
from ._recorder import Recorder
from ._recorder import record as _record_one
from ._target import _cmdline

__all__ = ["SessionRecorder", "SCOPES", "record"]

SCOPES = ("process", "tree", "cgroup", "all")
_EXIT_STATUS_WAIT_NS = 2_000_000_000  # how long to wait for a parent to reap an exited child
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _boot_to_monotonic_ns() -> int:
    """Add to a CLOCK_BOOTTIME instant to get CLOCK_MONOTONIC (they differ by suspend time)."""
    return time.monotonic_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)


class _Proc:
    """One process of the session: its table row, its recorder and its pidfd while alive."""

    __slots__ = (
        "pid", "ppid", "starttime", "row", "recorder", "handle", "exit_wait_until", "incarnation"
    )

    def __init__(self, pid: int, ppid: int, starttime: int, row: dict[str, Any]) -> None:
        self.pid = pid
        self.ppid = ppid
        self.starttime = starttime
        self.row = row
        self.recorder: Recorder | None = None
        self.handle: ProcessHandle | None = None
        self.exit_wait_until = 0
        self.incarnation = 1


class SessionRecorder:
    """Record several processes as one session: a tree, a cgroup, or every process.

    Parameters
    ----------
    target : "self", int, list of str or None
        scope="tree": the root: this process, a running pid, or a command to launch.
        scope="cgroup" / "all": None.
    scope : {"tree", "cgroup", "all"}
        ``"tree"``: the root and every descendant, including those that appear later (found
        at each tick). ``"cgroup"``: every process of the cgroup v2 directory ``cgroup``,
        joining and leaving. ``"all"``: every process this user may read (root: the machine).
    out : str
        The session directory to write (``NAME.pmviz``); required.
    cgroup : str, optional
        With scope="cgroup": the cgroup v2 directory (``/sys/fs/cgroup/...``).
    interval, duration, count, writes, overwrite, flush_interval
        As for :class:`~pmviz.Recorder`; ``count`` counts session ticks.
    accounting : bool
        Also account the live processes' memory at each tick with shared pages counted once
        (``pmviz.accounting``; stored as the session's ``accounting`` table).
    progress : bool
        Show a tqdm bar of the ticks (with the number of live processes).

    Notes
    -----
    The session ends at ``count`` / ``duration``, on :meth:`stop`, and for a tree when every
    process of it has exited (``meta["end_reason"]`` says which). A launched command still
    running then gets SIGTERM (its recorder ends it as a single recording would); other
    processes are left running. Limits (``docs/sessions.md``): a descendant that forks and
    whose parent exits within one tick is reparented (to init or a subreaper) before it is
    seen and is missed; a process that lives less than a tick may never be seen.
    """

    def __init__(
        self,
        target: str | int | Sequence[str] | None = None,
        *,
        scope: str = "tree",
        out: str | os.PathLike[str],
        cgroup: str | os.PathLike[str] | None = None,
        interval: float = 0.1,
        duration: float | None = None,
        count: int | None = None,
        writes: Any = "auto",
        overwrite: bool = False,
        flush_interval: float = 0.5,
        accounting: bool = False,
        progress: bool = True,
    ) -> None:
        if scope not in SCOPES or scope == "process":
            raise ValueError(f"scope must be 'tree', 'cgroup' or 'all', got {scope!r}")
        if out is None:
            raise ValueError(f"scope={scope!r} records a session directory: give out=")
        if scope == "tree" and target is None:
            raise ValueError("scope='tree' needs a root: 'self', a pid or a command")
        if scope != "tree" and target is not None:
            raise ValueError(f"scope={scope!r} takes no target (the {scope} is the scope)")
        if scope == "cgroup":
            if cgroup is None:
                raise ValueError("scope='cgroup' needs cgroup=PATH (a cgroup v2 directory)")
            cgroup = os.fspath(cgroup)
            if not os.path.isfile(os.path.join(cgroup, "cgroup.procs")):
                raise ValueError(f"{cgroup} is not a cgroup v2 directory (no cgroup.procs)")
        elif cgroup is not None:
            raise ValueError("cgroup= goes with scope='cgroup'")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ValueError(f"count must be a positive int, got {count!r}")
        # the per-process recorders check interval/duration; check here what we use first
        Recorder("self", interval=interval, duration=duration, progress=False)
        self.scope = scope
        self.target = target
        self.cgroup = None if cgroup is None else os.fspath(cgroup)
        self.out = os.fspath(out)
        self.interval_ns = int(round(interval * 1e9))
        self.duration_ns = None if duration is None else int(duration * 1e9)
        self.count = count
        self.writes = writes
        self.overwrite = overwrite
        self.flush_interval = flush_interval
        self.accounting = accounting
        self.progress = progress
        self.error: BaseException | None = None
        self._procs: dict[int, _Proc] = {}  # live (or ending) processes by pid
        self._ended: list[_Proc] = []  # kept only as table rows
        self._waiting_status: list[_Proc] = []  # ended, exit status not yet known
        self._rows: list[dict[str, Any]] = []  # process table, in discovery order
        self._events: list[dict[str, Any]] = []
        self._seen_pids: dict[int, int] = {}  # pid -> incarnations so far
        self._skipped: set[tuple[int, int]] = set()  # (pid, starttime) not recordable
        self._accounting_rows: list[Any] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._stop_reason: str | None = None
        self._thread: threading.Thread | None = None
        self._writer: SessionWriter | None = None
        self._root: _Proc | None = None
        self._dirty = True
        self._ticks = 0
        self._account: Any = None

    # -- public -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and not self._done.is_set()

    @property
    def pids(self) -> list[int]:
        """The processes being recorded now."""
        with self._lock:
            return [p.pid for p in self._procs.values() if p.recorder is not None]

    @property
    def session(self) -> Session:
        """The session so far: tables as they stand, live captures of running processes."""
        if self._writer is None:
            raise RuntimeError("the session recorder has not started; call start()")
        return _LiveSession(self)

    def start(self) -> SessionRecorder:
        """Start the root (tree), begin discovery in a background thread; returns ``self``."""
        if self._thread is not None:
            raise RuntimeError("a SessionRecorder records once; create a new one")
        if self.accounting:
            from ..accounting import account  # (an analysis of live processes, loaded lazily)

            self._account = account
        from .. import __version__
        from ..features import features

        self.t0 = time.monotonic_ns()
        self._boot_offset = _boot_to_monotonic_ns()
        meta = {
            "scope": self.scope,
            "root_pid": None,
            "command": list(self.target) if isinstance(self.target, (list, tuple)) else None,
            "cgroup": self.cgroup,
            "interval_ns": self.interval_ns,
            "schedule_start_ns": self.t0,
            "start_monotonic_ns": self.t0,
            "start_wall_ns": time.time_ns(),
            "end_monotonic_ns": None,
            "end_reason": None,
            "writes": self.writes if isinstance(self.writes, str) else "custom",
            "accounting": bool(self.accounting),
            "pmviz_version": __version__,
            "kernel_release": features().kernel_release,
            "recorder_pid": os.getpid(),
        }
        self._writer = SessionWriter(self.out, meta, overwrite=self.overwrite)
        if self.scope == "tree":
            assert self.target is not None
            root = self._start_root(self.target)
            self._root = root
            self._writer.meta["root_pid"] = root.pid
            self._writer.meta["command"] = (root.row["command"] or "").split() or None
            if isinstance(self.target, (list, tuple)):
                self._writer.meta["command"] = list(self.target)
        # (the tables are first written by the discovery thread: pyarrow's first table
        # imports pandas, most of a second that must not delay the root's recording)
        self._thread = threading.Thread(target=self._run, name="pmviz-session", daemon=True)
        self._thread.start()
        return self

    def request_stop(self, reason: str = "stopped") -> None:
        """Ask the session to end (returns at once; safe in a signal handler)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop.set()

    def stop(self, reason: str = "stopped") -> Session:
        """Stop every recorder, finish the session directory, return the stored session."""
        self.request_stop(reason)
        return self.wait()

    def wait(self, timeout: float | None = None) -> Session:
        """Block until the session ends; returns it (reopened from disk)."""
        if self._thread is None:
            raise RuntimeError("the session recorder has not started; call start()")
        if not self._done.wait(timeout):
            raise TimeoutError(f"still recording after {timeout} s")
        self._thread.join()
        if self.error is not None:
            raise self.error
        return Session(self.out)

    def mark(self, label: str, *, time_ns: int | None = None) -> None:
        """A named instant, recorded in the capture of every process being recorded."""
        t = time.monotonic_ns() if time_ns is None else int(time_ns)
        with self._lock:
            recorders = [p.recorder for p in self._procs.values() if p.recorder is not None]
        for rec in recorders:
            with contextlib.suppress(RuntimeError):
                rec.mark(label, time_ns=t)

    def __enter__(self) -> SessionRecorder:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None and not self._done.is_set():
            self.stop()

    def __repr__(self) -> str:
        state = "recording" if self.running else "idle" if self._thread is None else "done"
        return f"<SessionRecorder {self.scope} {state} live={len(self.pids)} seen={len(self._rows)}>"

    # -- discovery ----------------------------------------------------------------------------
    def _run(self) -> None:
        reason = None
        bar = self._progress_bar()
        try:
            tick = 0
            while True:
                deadline = self.t0 + tick * self.interval_ns
                if self.duration_ns is not None and deadline - self.t0 >= self.duration_ns:
                    reason = "duration reached"
                    break
                if self.count is not None and tick >= self.count:
                    reason = "count reached"
                    break
                # discover just before the deadline, so a new process's first snapshot is
                # this tick's (its recorder takes it at once: the deadline has passed)
                delay = deadline - time.monotonic_ns()
                if delay > 0 and self._stop.wait(delay / 1e9):
                    break
                if self._stop.is_set():
                    break
                now = time.monotonic_ns()
                self._collect_ended(now)
                ended = self._discover(now)
                if ended is not None:
                    reason = ended
                    break
                self._account_tick(deadline)
                self._ticks += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"{len(self.pids)} live", refresh=False)
                if self._dirty or self._accounting_rows:
                    self._flush_tables()
                now = time.monotonic_ns()
                nxt = tick + 1
                if self.interval_ns:
                    nxt = max(tick + 1, -((self.t0 - now) // self.interval_ns))
                tick = int(nxt)
        except BaseException as err:  # surfaced by wait()/stop()
            self.error = err if isinstance(err, Error) else Error(f"session failed: {err!r}")
            reason = f"error: {err}"
        finally:
            if reason is None:
                reason = self._stop_reason or "stopped"
            try:
                self._finish(reason)
            finally:
                if bar is not None:
                    bar.set_postfix_str(reason, refresh=False)
                    bar.close()
                self._done.set()

    def _discover(self, now: int) -> str | None:
        """Start recorders for the scope's new processes; the end reason when the scope is
        finished (a tree with no live process; a removed cgroup), else None.
        """
        if self.scope == "tree":
            with self._lock:
                live = [p.pid for p in self._procs.values() if p.recorder is not None]
            if not live and not self._procs:
                return "every process of the tree has exited"
            found = proctree.descendants(live) if live else set()
            candidates = sorted(found - set(self._procs))
        elif self.scope == "cgroup":
            assert self.cgroup is not None
            try:
                members = set(proctree.cgroup_procs(self.cgroup))
            except FileNotFoundError:
                return "the cgroup was removed"
            self._leave(set(self._procs) - members, now)
            candidates = sorted(members - set(self._procs))
        else:
            candidates = sorted(set(proctree.all_pids()) - set(self._procs))
        for pid in candidates:
            self._add(pid, now)
        return None

    def _add(self, pid: int, now: int, recorder: Recorder | None = None) -> _Proc | None:
        """A newly seen process: its table row, then its recorder (or why not)."""
        try:
            st = read_stat(pid)
        except Error:
            if recorder is None:
                return None  # gone already: never seen (a process shorter than a tick)
            # the root, launched and gone already: its recorder says how it ended
            st = _GoneStat(ppid=os.getpid())
        if (pid, st.starttime) in self._skipped:
            return None
        known = self._procs.get(pid)
        if known is not None and known.starttime == st.starttime:
            return known
        command = _cmdline(pid)
        start_ns = (
            int(st.starttime * 1_000_000_000 // _CLK_TCK) + self._boot_offset
            if st.starttime >= 0
            else None
        )
        incarnation = self._seen_pids.get(pid, 0) + 1
        row: dict[str, Any] = {
            "pid": pid,
            "ppid": st.ppid,
            "start_time_ns": start_ns,
            "first_seen_ns": now,
            "end_time_ns": None,
            "command": shlex.join(command) if command else None,
            "exit_status": None,
            "end_reason": None,
            "cgroup": proctree.cgroup_of(pid),
            "recorded": False,
            "reason": None,
            "write_mechanism": None,
            "writes_reason": None,
            "capture": None,
            "n_snapshots": 0,
        }
        proc = _Proc(pid, st.ppid, st.starttime, row)
        proc.incarnation = incarnation
        kind = "fork" if self.scope == "tree" and st.ppid in self._procs else "appear"
        self._event(start_ns if kind == "fork" and start_ns else now, kind, pid, st.ppid, row["command"])
        reason = None if recorder is not None else self._unrecordable(pid, st)
        if reason is None:
            reason = self._start_recorder(proc, recorder)
        if reason is not None:
            row["reason"] = reason
            row["end_time_ns"] = now if reason.startswith("exited") else None
            self._skipped.add((pid, st.starttime))
            self._event(now, "skip", pid, st.ppid, reason)
            with self._lock:
                self._rows.append(row)
            self._dirty = True
            return None
        self._seen_pids[pid] = incarnation
        with self._lock:
            self._rows.append(row)
            self._procs[pid] = proc
        self._dirty = True
        return proc

    def _unrecordable(self, pid: int, st: Any) -> str | None:
        if st.flags & proctree.PF_KTHREAD:
            return "kernel thread (no user address space)"
        if not st.alive:
            return "exited before it could be recorded (a zombie)"
        if pid == os.getpid():
            return "the recording process itself"
        return None

    def _start_recorder(self, proc: _Proc, recorder: Recorder | None = None) -> str | None:
        """Start ``proc``'s recorder (or take the root's); None, or why it cannot be."""
        assert self._writer is not None
        rel = self._writer.capture_dir(proc.pid, proc.incarnation)
        try:
            proc.handle = ProcessHandle(proc.pid)
        except Error as err:
            if recorder is None:
                if isinstance(err, NoSuchProcess):
                    return "exited before it could be recorded"
                return f"cannot hold the process: {err}"
            proc.handle = None  # the root is gone already; its recorder has its status
        if proc.handle is not None and proc.handle.starttime != proc.starttime:
            proc.handle.close()
            proc.handle = None
            if recorder is None:
                return "exited before it could be recorded (pid reused)"
        rec = recorder
        if rec is None:
            rec = Recorder(
                proc.pid,
                interval=self.interval_ns / 1e9,
                out=os.path.join(self.out, rel),
                writes=self.writes,
                progress=False,
                flush_interval=self.flush_interval,
                follow_exec=True,
            )
            rec.schedule_start_ns = self.t0
            try:
                # the reason goes into the process table; a warning per process is noise
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", PmvizWarning)
                    rec.start()
            except NoSuchProcess:
                proc.handle.close()
                proc.handle = None
                return "exited before it could be recorded"
            except AccessDenied as err:
                proc.handle.close()
                proc.handle = None
                return f"access denied: {err}"
            except Error as err:
                proc.handle.close()
                proc.handle = None
                return f"cannot be recorded: {err}"
        proc.recorder = rec
        meta = rec.meta
        proc.row.update(
            recorded=True,
            capture=rel,
            write_mechanism=meta.write_mechanism,
            writes_reason=str(meta.extra.get("writes_reason")),
        )
        return None

    def _start_root(self, target: str | int | Sequence[str]) -> _Proc:
        """The tree's root: a launched command, a pid or this process (errors raise)."""
        assert self._writer is not None
        writer = self._writer
        rec = Recorder(
            target,
            interval=self.interval_ns / 1e9,
            writes=self.writes,
            progress=False,
            flush_interval=self.flush_interval,
            follow_exec=True,
        )
        rec.schedule_start_ns = self.t0
        # (a launched command's pid is known only once the recorder has launched it)
        rec.out_for_pid = lambda pid: os.path.join(self.out, writer.capture_dir(pid))
        rec.start()  # errors (no such program / process, access denied) are the caller's
        proc = self._add(rec.pid, time.monotonic_ns(), recorder=rec)
        assert proc is not None
        return proc

    def _leave(self, gone: set[int], now: int) -> None:
        """Cgroup scope: processes no longer in the cgroup (moved out, or exited)."""
        for pid in sorted(gone):
            proc = self._procs.get(pid)
            if proc is None or proc.recorder is None:
                continue
            if proc.handle is not None and not proc.handle.exited():
                self._event(now, "leave", pid, proc.ppid, proctree.cgroup_of(pid))
                proc.recorder.request_stop("left the cgroup")

    def _collect_ended(self, now: int) -> None:
        """Release the recorders that have ended; fill in end time and exit status."""
        with self._lock:
            ended = [p for p in self._procs.values() if p.recorder and not p.recorder.running]
        for proc in ended:
            self._end(proc, now)
        self._resolve_statuses(now, final=False)

    def _end(self, proc: _Proc, now: int) -> None:
        rec = proc.recorder
        assert rec is not None
        rec.join()
        meta = rec.meta
        row = proc.row
        row["end_reason"] = meta.end_reason
        row["n_snapshots"] = _n_snapshots(rec)
        if rec.error is not None and not row["end_reason"]:
            row["end_reason"] = f"error: {rec.error}"
        for ev in meta.extra.get("events", []):
            if ev.get("kind") == "exec":
                self._event(
                    int(ev["time_ns"]), "exec", proc.pid, proc.ppid,
                    shlex.join(ev.get("command") or ["?"]),
                )
        exited = proc.handle is None or proc.handle.exited()
        if meta.exit_status is not None:
            row["exit_status"] = int(meta.exit_status)
        if exited:
            row["end_time_ns"] = now
        proc.recorder = None  # its threads have ended; its memory goes with it
        with self._lock:
            del self._procs[proc.pid]
            self._ended.append(proc)
        if exited and row["exit_status"] is None and proc.handle is not None:
            proc.exit_wait_until = now + _EXIT_STATUS_WAIT_NS
            self._waiting_status.append(proc)
        else:
            self._close_handle(proc)
            if exited:
                self._event(now, "exit", proc.pid, proc.ppid, _status_text(row["exit_status"]))
        self._dirty = True

    def _resolve_statuses(self, now: int, *, final: bool) -> None:
        """Exit statuses of ended processes: once reaped (pidfd), or while zombies (stat)."""
        still = []
        for proc in self._waiting_status:
            assert proc.handle is not None
            status = proctree.pidfd_exit_status(proc.handle.pidfd)
            if status is None:
                status = proctree.zombie_exit_status(proc.pid, proc.starttime)
            if status is None and not final and now < proc.exit_wait_until:
                still.append(proc)
                continue
            proc.row["exit_status"] = status
            self._event(
                proc.row["end_time_ns"] or now, "exit", proc.pid, proc.ppid, _status_text(status)
            )
            self._close_handle(proc)
            self._dirty = True
        self._waiting_status = still

    @staticmethod
    def _close_handle(proc: _Proc) -> None:
        if proc.handle is not None:
            proc.handle.close()
            proc.handle = None

    def _event(self, t: int, kind: str, pid: int, ppid: int, detail: str | None) -> None:
        with self._lock:
            self._events.append(
                {"time_ns": int(t), "kind": kind, "pid": pid, "ppid": ppid, "detail": detail}
            )
        self._dirty = True

    def _account_tick(self, deadline: int) -> None:
        if self._account is None:
            return
        import pyarrow as pa

        pids = self.pids
        if not pids:
            return
        table = self._account(pids)
        n = len(table)
        self._accounting_rows.append(
            table.add_column(0, "time_ns", pa.array([deadline] * n, pa.int64()))
        )

    # -- files --------------------------------------------------------------------------------
    def _tables(self) -> tuple[Any, Any]:
        with self._lock:
            rows = [dict(r) for r in self._rows]
            events = sorted(self._events, key=lambda e: (e["time_ns"], e["pid"]))
            live = [p for p in self._procs.values() if p.recorder is not None]
        # live processes: snapshots so far
        counts = {p.row["capture"]: _n_snapshots(p.recorder) for p in live}
        for r in rows:
            if r["capture"] in counts:
                r["n_snapshots"] = counts[r["capture"]]
        return session_tables(rows, PROCESS_SCHEMA), session_tables(events, EVENT_SCHEMA)

    def _flush_tables(self) -> None:
        assert self._writer is not None
        processes, events = self._tables()
        self._writer.write_tables(processes, events)
        self._dirty = False
        if self._accounting_rows:
            import pyarrow as pa

            rows, self._accounting_rows = self._accounting_rows, []
            self._writer.append_accounting(pa.concat_tables(rows))

    def _finish(self, reason: str) -> None:
        """Stop every recorder, then write the final tables and metadata."""
        assert self._writer is not None
        with self._lock:
            live = list(self._procs.values())
        for proc in live:
            if proc.recorder is not None:
                proc.recorder.request_stop(reason)
        now = time.monotonic_ns()
        for proc in live:
            if proc.recorder is not None:
                self._end(proc, now)
        # a process still running keeps end_time null; give reaping a moment for the rest
        deadline = time.monotonic_ns() + 200_000_000
        while self._waiting_status and time.monotonic_ns() < deadline:
            self._resolve_statuses(time.monotonic_ns(), final=False)
            if self._waiting_status:
                time.sleep(0.01)
        self._resolve_statuses(time.monotonic_ns(), final=True)
        end = time.monotonic_ns()
        self._writer.meta.update(end_reason=reason, end_monotonic_ns=end, ticks=self._ticks)
        self._flush_tables()
        self._writer.write_meta(complete=True)

    def _progress_bar(self) -> Any:
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        total = self.count
        if total is None and self.duration_ns is not None and self.interval_ns:
            total = -(-self.duration_ns // self.interval_ns)
        return tqdm(total=total, unit="tick", desc=f"pmviz record ({self.scope})")


class _GoneStat:
    """The stat of a launched root that was gone before the session could read it."""

    state = "X"
    flags = 0
    starttime = -1
    alive = False

    def __init__(self, ppid: int) -> None:
        self.ppid = ppid


def _n_snapshots(rec: Recorder | None) -> int:
    builder = getattr(rec, "_builder", None)
    return int(builder.n) if builder is not None else 0


def _status_text(status: int | None) -> str:
    if status is None:
        return "exit status unknown"
    if status < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exited with status {status}"


class _LiveSession(Session):
    """A :class:`Session` over a running :class:`SessionRecorder` (tables from memory)."""

    def __init__(self, recorder: SessionRecorder) -> None:
        self._rec = recorder
        self.path = recorder.out
        self.strict = True
        assert recorder._writer is not None
        self.meta = dict(recorder._writer.meta)
        self._captures = {}

    @property
    def processes(self) -> Any:
        return self._rec._tables()[0]

    @property
    def events(self) -> Any:
        return self._rec._tables()[1]

    def _open_capture(self, rel: str) -> Capture:
        with self._rec._lock:
            for p in self._rec._procs.values():
                if p.recorder is not None and p.row["capture"] == rel:
                    return p.recorder.capture
        return super()._open_capture(rel)

    def capture(self, pid: int, incarnation: int = 1) -> Capture:
        # no cache: a live capture grows
        return self._open_capture(self._capture_path(int(pid), incarnation))


def record(
    target: str | int | Sequence[str] | None = "self",
    *,
    scope: str = "process",
    cgroup: str | os.PathLike[str] | None = None,
    interval: float = 0.1,
    duration: float | None = None,
    count: int | None = None,
    out: str | os.PathLike[str] | None = None,
    writes: Any = "auto",
    progress: bool = True,
    overwrite: bool = False,
    accounting: bool = False,
    **options: Any,
) -> Any:
    """Record a process (or a tree, a cgroup, every process) until it ends; return the result.

    Parameters
    ----------
    target : "self", int or list of str
        This process, a running pid, or a command to launch; with ``scope="tree"`` the root
        of the tree. Not used with ``scope="cgroup"`` / ``"all"``.
    scope : {"process", "tree", "cgroup", "all"}
        ``"process"`` (default): one capture, as :func:`pmviz.recorder.record`. Any other
        scope records a session (see :class:`SessionRecorder`): ``"tree"`` the target and
        every descendant (also those that appear later), ``"cgroup"`` every process of the
        cgroup v2 directory ``cgroup``, ``"all"`` every process this user may read.
    cgroup : str, optional
        The cgroup v2 directory of ``scope="cgroup"``.
    out : str, optional
        The capture / session directory; required for a session.
    accounting : bool
        Sessions: account shared memory once per tick (``Session.accounting``).
    interval, duration, count, writes, progress, overwrite, **options
        As for :class:`~pmviz.Recorder` (``options``: its other keywords; single process only).

    Returns
    -------
    Capture or Session
        A :class:`~pmviz.capture.Capture` for ``scope="process"``, else a
        :class:`~pmviz.storage.session.Session` (read back from ``out``).

    Examples
    --------
    >>> import pmviz
    >>> s = pmviz.record(["make", "-j2"], scope="tree", out="build.pmviz")  # doctest: +SKIP
    >>> s.processes.to_pandas()  # doctest: +SKIP
    """
    if scope == "process":
        if cgroup is not None or accounting:
            raise ValueError("cgroup= and accounting= go with a session scope ('tree', ...)")
        if target is None:
            raise ValueError("scope='process' needs a target: 'self', a pid or a command")
        return _record_one(
            target,
            interval=interval,
            duration=duration,
            count=count,
            out=out,
            writes=writes,
            progress=progress,
            overwrite=overwrite,
            **options,
        )
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if options:
        raise TypeError(f"{sorted(options)} are not options of a session (scope={scope!r})")
    if scope != "tree":
        target = None if target == "self" else target
    launched = isinstance(target, (list, tuple))
    if duration is None and count is None and not launched:
        raise ValueError(
            "give duration= or count= (only a launched command's tree ends by itself); "
            "use pmviz.SessionRecorder for open-ended recording"
        )
    if out is None:
        raise ValueError(f"scope={scope!r} records a session directory: give out=")
    rec = SessionRecorder(
        target,
        scope=scope,
        cgroup=cgroup,
        out=out,
        interval=interval,
        duration=duration,
        count=count,
        writes=writes,
        overwrite=overwrite,
        accounting=accounting,
        progress=progress,
    )
    rec.start()
    try:
        return rec.wait()
    except KeyboardInterrupt:
        return rec.stop("interrupted")
    finally:
        if rec.running:
            rec.stop("interrupted")
