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
import shutil
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .._kernel import proctree
from .._kernel.process import ProcessHandle, ProcStat, read_stat
from .._units import MAX_SECONDS
from ..capture import Capture
from ..errors import AccessDenied, Error, NoSuchProcess, PmvizWarning
from ..storage.session import Session, SessionWriter
from ._proctable import ProcessTable
from ._recorder import Recorder
from ._target import _cmdline

__all__ = ["SessionRecorder", "SCOPES"]

SCOPES = ("process", "tree", "cgroup", "all")
_OWN_CHILD = (
    "no write tracking: a child of the recording process itself, whose own waitpid would "
    "take the ptrace stops of the injection (record it from another process to track writes)"
)
_EXIT_STATUS_WAIT_NS = 2_000_000_000  # how long to wait for a parent to reap an exited child
_CLK_TCK = os.sysconf("SC_CLK_TCK")

# A process recorded without written sets is said so in the process table (writes_reason);
# the recorders this module starts need not warn about each one.
warnings.filterwarnings(
    "ignore",
    message="recording without written sets",
    category=PmvizWarning,
    module=r"pmviz\.recorder\._session",
)


def _boot_to_monotonic_ns() -> int:
    """Add to a CLOCK_BOOTTIME instant to get CLOCK_MONOTONIC (they differ by suspend time)."""
    return time.monotonic_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)


class _Proc:
    """One process of the session: its table row, its recorder and its pidfd while alive."""

    __slots__ = (
        "n_events",
        "pid",
        "ppid",
        "starttime",
        "row",
        "recorder",
        "handle",
        "exit_wait_until",
        "future",
    )

    def __init__(self, pid: int, ppid: int, starttime: int, row: dict[str, Any]) -> None:
        self.pid = pid
        self.ppid = ppid
        self.starttime = starttime
        self.row = row
        self.recorder: Recorder | None = None
        self.handle: ProcessHandle | None = None
        self.exit_wait_until = 0
        self.future: Future | None = None  # while a start worker starts its recorder
        self.n_events = 0  # of its recorder's events (execs), already in the session's


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
        As for :class:`~pmviz.Recorder`; ``count`` counts session ticks. ``flush_interval``
        also paces the session's own tables.
    accounting : bool
        Also account the live processes' memory at each tick with shared pages counted once
        (``pmviz.accounting.account``; stored as the session's ``accounting`` table).
    progress : bool
        Show a tqdm bar of the ticks (with the number of live processes).
    start_workers : int
        Threads that start the recorders of new processes (attaching write tracking and
        creating a capture take milliseconds each; discovery does not wait for them).

    Notes
    -----
    The session ends at ``count`` / ``duration``, on :meth:`stop`, and for a tree when every
    process of it has exited (``meta["end_reason"]`` says which). A launched command still
    running then gets SIGTERM (its recorder ends it as a single recording would); other
    processes are left running. Limits (``docs/sessions.md``): a process that lives less
    than a tick may never be seen; a descendant whose parent exits before it is seen is
    reparented (to init or a subreaper) and is not found.
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
        start_workers: int = 4,
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
            if not os.path.isfile(os.path.join(os.fspath(cgroup), "cgroup.procs")):
                raise ValueError(f"{cgroup} is not a cgroup v2 directory (no cgroup.procs)")
        elif cgroup is not None:
            raise ValueError("cgroup= goes with scope='cgroup'")
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or count < 1
        ):
            raise ValueError(f"count must be a positive int, got {count!r}")
        if not isinstance(interval, (int, float)) or not 0 < interval <= MAX_SECONDS:
            raise ValueError(
                f"a session's interval must be in (0, {MAX_SECONDS:g}] seconds, got {interval!r}"
            )
        if duration is not None and not 0 < duration <= MAX_SECONDS:
            raise ValueError(f"duration must be in (0, {MAX_SECONDS:g}] seconds, got {duration!r}")
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
        self.start_workers = max(1, int(start_workers))
        self.error: BaseException | None = None
        self._procs: dict[int, _Proc] = {}  # starting or recording, by pid
        self._waiting_status: list[_Proc] = []  # ended; exit status not known yet
        # pid -> starttime of processes seen and not (any more) being recorded that may still
        # be listed (alive but not recordable, or zombies): not added again
        self._known: dict[int, int] = {}
        self._lock = threading.RLock()
        self._table: ProcessTable | None = None  # (made with the session directory)
        self._stop = threading.Event()
        self._done = threading.Event()
        self._stop_reason: str | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._flush_thread: threading.Thread | None = None
        self._accounting_thread: threading.Thread | None = None
        self._accounting_done = threading.Event()
        self._accounting_error: str | None = None
        self._flushing_done = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._writer: SessionWriter | None = None
        self._account: Any = None
        self._stats = {"ticks": 0, "skipped_ticks": 0, "seen": 0, "recorded": 0, "max_live": 0}
        self._work_ns = [0, 0]  # sum and max of the ticks' discovery times (flat memory)

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
            from ..accounting import account  # (only sessions that ask for it need it)

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
        self._table = ProcessTable(self._writer)
        self._lock = self._table.lock  # one lock: a row is never in two places nor none
        self._pool = ThreadPoolExecutor(self.start_workers, thread_name_prefix="pmviz-start")
        try:
            if self.scope == "tree":
                assert self.target is not None
                root = self._start_root(self.target)
                self._writer.meta["root_pid"] = root.pid
                if self._writer.meta["command"] is None:
                    self._writer.meta["command"] = _cmdline(root.pid)
        except BaseException:
            self._pool.shutdown()
            # nothing was recorded: do not leave an empty session behind (the root's own
            # recorder removed nothing it had not created either)
            shutil.rmtree(self.out, ignore_errors=True)
            raise
        # (the tables are first written by the discovery thread: pyarrow's first table
        # imports pandas, most of a second that must not delay the root's recording)
        self._thread = threading.Thread(target=self._run, name="pmviz-session", daemon=True)
        self._thread.start()
        self._flush_thread = threading.Thread(
            target=self._flush_loop, name="pmviz-session-writer", daemon=True
        )
        self._flush_thread.start()
        if self._account is not None:
            self._accounting_thread = threading.Thread(
                target=self._accounting_loop, name="pmviz-session-accounting", daemon=True
            )
            self._accounting_thread.start()
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
        """Block until the session ends; returns it (read back from ``out``).

        Raises
        ------
        Error
            The session failed (a write error, ...); what was written is still readable.
        """
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
        return (
            f"<SessionRecorder {self.scope} {state} live={len(self.pids)} "
            f"seen={self._stats['seen']}>"
        )

    # -- the loop -----------------------------------------------------------------------------
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
                # Discovery runs at the deadline; a recorder started now takes its first
                # snapshot at once, as this tick's (its deadline has passed).
                delay = deadline - time.monotonic_ns()
                if delay > 0 and self._stop.wait(delay / 1e9):
                    break
                if self._stop.is_set():
                    break
                now = time.monotonic_ns()
                self._collect_started()
                self._collect_ended(now)
                ended = self._discover(now)
                if ended is not None:
                    reason = ended
                    break
                self._stats["ticks"] += 1
                self._stats["max_live"] = max(self._stats["max_live"], len(self._procs))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"{len(self._procs)} live", refresh=False)
                work = time.monotonic_ns() - deadline
                self._work_ns = [self._work_ns[0] + work, max(self._work_ns[1], work)]
                now = time.monotonic_ns()
                nxt = max(tick + 1, -((self.t0 - now) // self.interval_ns))
                self._stats["skipped_ticks"] += int(nxt - tick - 1)
                tick = int(nxt)
        except BaseException as err:  # surfaced by wait()/stop()
            self.error = err if isinstance(err, Error) else Error(f"session failed: {err!r}")
            reason = f"error: {err}"
        finally:
            if reason is None:
                reason = self._stop_reason or "stopped"
            try:
                self._finish(reason)
            except BaseException as err:
                if self.error is None:
                    self.error = (
                        err if isinstance(err, Error) else Error(f"session failed: {err!r}")
                    )
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
                roots = list(self._procs)
            if not roots and not self._waiting_status:
                return "every process of the tree has exited"
            # alive but unrecordable members (setuid, ...) still have descendants to find
            self._known = {p: t for p, t in self._known.items() if _present(p, t)}
            roots += list(self._known)
            found = proctree.descendants(roots) if roots else set()
            candidates = sorted(found - set(roots))
        elif self.scope == "cgroup":
            assert self.cgroup is not None
            try:
                members = set(proctree.cgroup_procs(self.cgroup))
            except FileNotFoundError:
                return "the cgroup was removed"
            self._leave(set(self._procs) - members, now)
            self._known = {p: t for p, t in self._known.items() if p in members}
            candidates = sorted(members - set(self._procs))
        else:
            every = set(proctree.all_pids())
            self._known = {p: t for p, t in self._known.items() if p in every}
            candidates = sorted(every - set(self._procs))
        for pid in candidates:
            self._add(pid, now)
        return None

    def _add(self, pid: int, now: int, recorder: Recorder | None = None) -> _Proc | None:
        """A newly seen process: its row and event, then its recorder starts (or why not)."""
        try:
            st = read_stat(pid)
        except Error:
            if recorder is None:
                return None  # gone already: never seen (a process shorter than a tick)
            st = ProcStat("X", os.getpid(), 0, -1)  # the launched root, gone already
        if self._known.get(pid) == st.starttime:
            return None
        command = _cmdline(pid)
        start_ns = (
            int(st.starttime * 1_000_000_000 // _CLK_TCK) + self._boot_offset
            if st.starttime >= 0
            else None
        )
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
        self._stats["seen"] += 1
        fork = self.scope == "tree" and (st.ppid in self._procs or st.ppid in self._known)
        self._event(
            start_ns if fork and start_ns else now,
            "fork" if fork else "appear",
            proc,
            row["command"],
        )
        if recorder is not None:  # the root: started already
            self._attach(proc, recorder, self._hold(proc, root=True)[0])
            with self._lock:
                self._procs[pid] = proc
            return proc
        reason = self._unrecordable(pid, st)
        if reason is not None:
            self._skip(proc, reason, now)
            return None
        assert self._pool is not None
        proc.future = self._pool.submit(self._open, proc)
        with self._lock:
            self._procs[pid] = proc
        return proc

    def _unrecordable(self, pid: int, st: Any) -> str | None:
        if st.flags & proctree.PF_KTHREAD:
            return "kernel thread (no user address space)"
        if not st.alive:
            return "exited before it could be recorded (a zombie)"
        if pid == os.getpid():
            return "the recording process itself"
        return None

    def _skip(self, proc: _Proc, reason: str, now: int) -> None:
        """A process seen but not recorded: a final row with the reason, and a skip event."""
        row = proc.row
        row["reason"] = reason
        if reason.startswith("exited"):
            row["end_time_ns"] = now
        self._known[proc.pid] = proc.starttime
        self._close_handle(proc)
        self._event(now, "skip", proc, reason)
        with self._lock:
            self._procs.pop(proc.pid, None)
            self._final(row)

    def _hold(self, proc: _Proc, *, root: bool = False) -> tuple[ProcessHandle | None, str | None]:
        """A pidfd on ``proc`` (for its exit status later), or why not."""
        try:
            handle = ProcessHandle(proc.pid)
        except Error as err:
            if root:
                return None, None  # the root is gone already; its recorder has its status
            if isinstance(err, NoSuchProcess):
                return None, "exited before it could be recorded"
            return None, f"cannot hold the process: {err}"
        if handle.starttime != proc.starttime:
            handle.close()
            return None, None if root else "exited before it could be recorded (pid reused)"
        return handle, None

    def _open(self, proc: _Proc) -> tuple[Recorder | None, ProcessHandle | None, str | None]:
        """(start worker) ``proc``'s recorder, started, and its pidfd; or why not."""
        if self._stopping:
            return None, None, "the session ended before it could be recorded"
        assert self._writer is not None
        handle, reason = self._hold(proc)
        if handle is None:
            return None, None, reason
        rel = self._writer.capture_dir(proc.pid)
        writes, note = self.writes, None
        if proc.ppid == os.getpid() and writes == "auto":
            # Our own child (a tree rooted at "self"): whoever here waits for it (Popen.wait)
            # would also collect the ptrace stops of an injection, which then never completes.
            writes, note = "none", _OWN_CHILD
        rec = Recorder(
            proc.pid,
            interval=self.interval_ns / 1e9,
            out=os.path.join(self.out, rel),
            writes=writes,
            progress=False,
            flush_interval=self.flush_interval,
            follow_exec=True,
        )
        rec.schedule_start_ns = self.t0
        try:
            rec.start()  # (its "no written sets" warning is filtered: the table says why)
        except NoSuchProcess:
            reason = "exited before it could be recorded"
        except AccessDenied as err:
            reason = f"access denied: {err}"
        except Error as err:
            reason = f"cannot be recorded: {err}"
        if reason is not None:
            handle.close()
            return None, None, reason
        if note is not None:
            rec.meta.extra["writes_reason"] = note
        return rec, handle, None

    def _collect_started(self, *, wait: bool = False) -> None:
        """Recorders the start workers have started (or failed to): attach them."""
        with self._lock:
            starting = [p for p in self._procs.values() if p.future is not None]
        now = time.monotonic_ns()
        for proc in starting:
            fut = proc.future
            assert fut is not None
            if not wait and not fut.done():
                continue
            proc.future = None
            try:
                rec, handle, reason = fut.result()
            except BaseException as err:  # a bug in a worker: say it in the table
                rec, handle, reason = None, None, f"cannot be recorded: {err!r}"
            if rec is None:
                self._skip(proc, str(reason), now)
            else:
                self._attach(proc, rec, handle)

    def _attach(self, proc: _Proc, rec: Recorder, handle: ProcessHandle | None) -> None:
        proc.recorder = rec
        proc.handle = handle
        meta = rec.meta
        assert rec.out is not None
        proc.row.update(
            recorded=True,
            capture=os.path.relpath(rec.out, self.out),
            write_mechanism=meta.write_mechanism,
            writes_reason=str(meta.extra.get("writes_reason")),
        )
        self._stats["recorded"] += 1

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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PmvizWarning)  # the table says why, if so
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
                self._event(now, "leave", proc, proctree.cgroup_of(pid))
                proc.recorder.request_stop("left the cgroup")

    def _collect_ended(self, now: int) -> None:
        """Release the recorders that have ended; fill in end time and exit status."""
        with self._lock:
            recording = [p for p in self._procs.values() if p.recorder is not None]
        for proc in recording:
            if proc.recorder is not None and not proc.recorder.running:
                self._end(proc, now)
            else:
                self._new_execs(proc)
        self._resolve_statuses(now, final=False)

    def _end(self, proc: _Proc, now: int) -> None:
        rec = proc.recorder
        assert rec is not None
        rec.join()
        meta = rec.meta
        row = proc.row
        row["end_reason"] = meta.end_reason or (f"error: {rec.error}" if rec.error else None)
        row["n_snapshots"] = _n_snapshots(rec)
        self._new_execs(proc)
        exited = proc.handle is None or proc.handle.exited()
        if meta.exit_status is not None:
            row["exit_status"] = int(meta.exit_status)
        if exited:
            row["end_time_ns"] = now
        proc.recorder = None  # its threads have ended: what it holds goes with it
        self._known[proc.pid] = proc.starttime  # (a zombie is still listed: not a new one)
        with self._lock:
            self._procs.pop(proc.pid, None)
            if exited and row["exit_status"] is None and proc.handle is not None:
                proc.exit_wait_until = now + _EXIT_STATUS_WAIT_NS
                self._waiting_status.append(proc)
                return
            self._final(row)
        self._close_handle(proc)
        if exited:
            self._event(now, "exit", proc, _status_text(row["exit_status"]))

    def _new_execs(self, proc: _Proc) -> None:
        """The execs its recorder has followed since we last looked, as session events."""
        assert proc.recorder is not None
        events = proc.recorder.meta.extra.get("events", [])
        n = len(events)  # (then the slice: an exec appended in between waits for next time)
        new, proc.n_events = events[proc.n_events : n], n
        for ev in new:  # (the recorder thread only appends to this list)
            if ev.get("kind") == "exec":
                self._event(
                    int(ev["time_ns"]), "exec", proc, shlex.join(ev.get("command") or ["?"])
                )

    def _resolve_statuses(self, now: int, *, final: bool) -> None:
        """Exit statuses of ended processes: once reaped (pidfd), or while zombies (stat)."""
        still = []
        for proc in list(self._waiting_status):
            assert proc.handle is not None
            status = proctree.pidfd_exit_status(proc.handle.pidfd)
            if status is None:
                status = proctree.zombie_exit_status(proc.pid, proc.starttime)
            if status is None and not final and now < proc.exit_wait_until:
                still.append(proc)
                continue
            proc.row["exit_status"] = status
            self._event(proc.row["end_time_ns"] or now, "exit", proc, _status_text(status))
            self._close_handle(proc)
            self._final(proc.row)
        with self._lock:
            self._waiting_status = still

    @staticmethod
    def _close_handle(proc: _Proc) -> None:
        if proc.handle is not None:
            proc.handle.close()
            proc.handle = None

    def _event(self, t: int, kind: str, proc: _Proc, detail: str | None) -> None:
        assert self._table is not None
        self._table.event(t, kind, proc.pid, proc.ppid, detail)

    def _final(self, row: dict[str, Any]) -> None:
        assert self._table is not None
        self._table.final(row)

    def _accounting_loop(self) -> None:
        """``accounting=True``: the live processes' memory at each deadline, in its own thread
        (reading every process's pages takes long; discovery must not wait for it). A tick
        that starts after the next deadline skips the deadlines it missed.
        """
        import pyarrow as pa

        tick = 0
        step = self.interval_ns
        while True:
            deadline = self.t0 + tick * step
            delay = deadline - time.monotonic_ns()
            if self._accounting_done.wait(max(delay, 0) / 1e9):
                return
            pids = self.pids
            if pids:
                try:
                    table = self._account(pids)
                except Exception as err:  # noqa: BLE001 - said in session.json, not fatal
                    self._accounting_error = f"accounting stopped at tick {tick}: {err!r}"
                    return
                table = table.add_column(
                    0, "time_ns", pa.array([deadline] * len(table), pa.int64())
                )
                self._table.accounting(table)  # type: ignore[union-attr]
            tick = max(tick + 1, -((self.t0 - time.monotonic_ns()) // step))

    # -- files --------------------------------------------------------------------------------
    def _live_rows(self) -> list[dict[str, Any]]:
        """Rows of the processes not final yet (starting, recording, awaiting a status)."""
        with self._lock:
            procs = [*self._procs.values(), *self._waiting_status]
        rows = []
        for p in procs:
            row = dict(p.row)
            if p.recorder is not None:
                row["n_snapshots"] = _n_snapshots(p.recorder)
            rows.append(row)
        return rows

    def _flush(self) -> None:
        assert self._table is not None
        self._table.flush(self._live_rows)

    def _flush_loop(self) -> None:
        """The session's tables go to disk here, every flush_interval: disk latency (fsync
        on a loaded machine) never delays discovery.
        """
        while not self._flushing_done.wait(self.flush_interval):
            try:
                self._flush()
            except BaseException as err:  # a write error ends the session, reported
                if self.error is None:
                    self.error = (
                        err if isinstance(err, Error) else Error(f"writing failed: {err!r}")
                    )
                self.request_stop(f"write error: {err}")
                return

    def _finish(self, reason: str) -> None:
        """Stop every recorder, then write the final tables and metadata."""
        assert self._writer is not None and self._pool is not None
        self._stopping = True
        self._accounting_done.set()
        if self._accounting_thread is not None:
            self._accounting_thread.join()
        self._pool.shutdown(wait=True)  # starts under way finish (new ones are refused)
        self._collect_started(wait=True)
        with self._lock:
            live = list(self._procs.values())
        for proc in live:  # all at once: each then ends within one of its ticks
            if proc.recorder is not None:
                proc.recorder.request_stop(reason)
        now = time.monotonic_ns()
        for proc in live:
            if proc.recorder is not None:
                self._end(proc, now)
        # a process still running keeps end_time null; give reaping a moment for the rest
        deadline = time.monotonic_ns() + 200_000_000
        while self._waiting_status and time.monotonic_ns() < deadline:
            time.sleep(0.01)
            self._resolve_statuses(time.monotonic_ns(), final=False)
        self._resolve_statuses(time.monotonic_ns(), final=True)
        self._flushing_done.set()
        if self._flush_thread is not None:
            self._flush_thread.join()
        self._flush()
        self._writer.merge()
        ticks = max(self._stats["ticks"], 1)
        self._writer.meta.update(
            end_reason=reason,
            end_monotonic_ns=time.monotonic_ns(),
            ticks=self._stats["ticks"],
            skipped_ticks=self._stats["skipped_ticks"],
            processes_seen=self._stats["seen"],
            processes_recorded=self._stats["recorded"],
            max_live=self._stats["max_live"],
            # time from a deadline to the end of that tick's discovery and flushing
            tick_work_ns_mean=self._work_ns[0] // ticks,
            tick_work_ns_max=self._work_ns[1],
        )
        if self._accounting_error is not None:
            self._writer.meta["accounting_error"] = self._accounting_error
        self._writer.write_meta(complete=True)

    def _progress_bar(self) -> Any:
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        total = self.count
        if total is None and self.duration_ns is not None:
            total = -(-self.duration_ns // self.interval_ns)
        return tqdm(total=total, unit="tick", desc=f"pmviz record ({self.scope})")


def _present(pid: int, starttime: int) -> bool:
    """Whether process ``pid`` (started at ``starttime``) is still listed, zombie or not."""
    try:
        return read_stat(pid).starttime == starttime
    except Error:
        return False


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
        assert self._rec._table is not None
        return self._rec._table.processes(self, self._rec._live_rows)

    @property
    def events(self) -> Any:
        assert self._rec._table is not None
        return self._rec._table.events(self)

    def _open_capture(self, rel: str) -> Capture:
        with self._rec._lock:
            for p in self._rec._procs.values():
                if p.recorder is not None and p.row["capture"] == rel:
                    return p.recorder.capture
        return super()._open_capture(rel)

    def capture(self, pid: int, incarnation: int = 1) -> Capture:
        # no cache: a live capture grows
        return self._open_capture(self._capture_path(int(pid), incarnation))
