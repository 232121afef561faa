"""Write tracking of unmodified programs by syscall injection: ``track(cmd)`` and ``attach(pid)``.

The uffd that async write-protect tracking needs must be created *inside* the target (its
context belongs to the creator's mm). pmviz borrows one thread of the target for two
syscalls, ``userfaultfd()`` and ``close()``, and takes a duplicate of the uffd with
``pidfd_getfd`` in between (``pmviz._kernel.inject`` explains how the thread is borrowed and
given back with its registers and syscall-restart state intact). Registration, arming and
harvesting then happen from outside, through that duplicate and ``/proc/PID/pagemap``
(``pmviz.tracking.UffdTracker``). Consequences worth knowing:

* Apart from those two syscalls the target runs untraced: no ptrace stops, no TracerPid, its
  own debugger can attach later; its other threads never stop at all.
* Refused, with the reason and the fix: ptrace not permitted (``kernel.yama.ptrace_scope``,
  CAP_SYS_PTRACE, another user's process, an existing tracer), a job-control-stopped target,
  and targets under a seccomp filter (an injected syscall it forbids could kill it).
* VMAs larger than ``max_vma_bytes`` are not tracked: arming a VMA costs one page table per
  2 MiB of it, populated or not (a sanitizer's terabytes of shadow would exhaust memory).
* The target holds no extra file descriptor. pmviz holds the only reference to the uffd, so
  when pmviz ends, whichever way (``close()``, an exception, Ctrl-C, even SIGKILL), the
  kernel unregisters every VMA and drops every write protection: the target is left as found.
  Only a SIGKILL of pmviz *during* the two injected syscalls (tens of microseconds, once per
  attach) could leave the borrowed thread with wrong registers: the registers are given back
  right after them, before the registration work, and the thread waits in a stop from which
  the kernel resumes it correctly even if pmviz dies. So no watchdog process is needed.
* ``exec`` in the target gives it a new mm: pmviz notices at the next ``collect()`` and
  injects again (``events`` records it; writes between the exec and that collect are not
  reported). ``fork``: the child is not tracked (the kernel drops the registrations of a
  forked mm). ``mremap``/``munmap``: see ``UffdTracker``.
* A launched program's writes in its last interval before exit cannot be harvested (its mm
  is gone): ``collect()`` then raises ``NoSuchProcess``.

All ptrace requests go through one tracer thread per tracker (the kernel ties a tracee to
the thread that attached), so ``collect()`` may be called from any thread.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import select
import shutil
import stat
import subprocess
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, NamedTuple

from ._kernel import inject, procfs, ptrace
from ._kernel import ptrace_access as access
from ._kernel import uffd as kuffd
from ._kernel.process import ProcessHandle
from .errors import AccessDenied, Error, NoSuchProcess, PmvizWarning, UnsupportedKernel
from .features import features
from .regions import Regions
from .tracking._engine import MAX_VMA_BYTES, UffdTracker

__all__ = ["InjectedTracker", "WriteSourceChoice", "attach", "track", "open_write_source"]


# -- the tracker -------------------------------------------------------------------------------
_live: weakref.WeakSet[InjectedTracker] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for tracker in list(_live):
        with contextlib.suppress(Exception):
            tracker.close()


class InjectedTracker:
    """Pages another process writes, tracked through a uffd injected into it (``WriteSource``).

    Create with :func:`attach` or :func:`track`. ``collect()`` may be called from any thread.

    Attributes
    ----------
    mechanism : str
        ``"uffd-wp"``.
    pid : int
        The tracked process.
    process : subprocess.Popen or None
        The launched program (:func:`track`), ``None`` when attached.
    events : list of str
        Things that happened to tracking: re-injection after an exec, lost tracking.
    attach_seconds : float
        How long the target was stopped for the injection.
    """

    mechanism = "uffd-wp"

    def __init__(
        self,
        pid: int,
        process: subprocess.Popen | None,
        tracer: ptrace.TracerThread,
        max_vma_bytes: int = MAX_VMA_BYTES,
    ):
        self.pid = pid
        self.max_vma_bytes = int(max_vma_bytes)
        self.process = process
        self.events: list[str] = []
        self.attach_seconds = 0.0
        self._tracer = tracer
        self._inner: UffdTracker | None = None
        self._lost = ""
        self._lock = threading.RLock()
        self._closed = False
        # pidfd + start time: "alive" and wait() never mean a process that reused the pid
        self._proc = ProcessHandle(pid)
        _live.add(self)

    # -- WriteSource ---------------------------------------------------------------------------
    takes_maps = True  # collect(maps=...): see UffdTracker.collect

    def collect(self, *, maps: bytes | None = None, scan_repeats: bool = False) -> Regions:
        """Pages written since the previous ``collect()`` (the first: since tracking began).

        VMAs that appeared since the last call are registered and their pages holding data
        reported (see ``pmviz.tracking.UffdTracker``); after an ``exec`` of the target the
        uffd is injected again and the result is empty for that interval. ``maps``: the
        target's ``/proc/PID/maps`` if the caller just read it (not read again then);
        ``scan_repeats``: as in ``UffdTracker.collect``.

        Returns
        -------
        Regions
            Sorted runs, categories ``WRITTEN``.

        Raises
        ------
        NoSuchProcess
            The process has exited (its last interval's writes are lost with its memory).
        ValueError
            The tracker is closed.
        """
        with self._lock:
            if self._closed:
                raise ValueError("collect() on a closed InjectedTracker")
            if self._inner is None:
                raise Error(f"write tracking of process {self.pid} was lost: {self._lost}")
            try:
                return self._inner.collect(maps=maps, scan_repeats=scan_repeats)
            except NoSuchProcess:
                # Exiting (its mm already gone, maps empty) or exited: that is the end.
                if not (self.alive and access.has_memory(self.pid)):
                    raise
            # Alive but its old mm is gone: it called execve. Track the new image.
            self._inner.close()
            self._inner = None
            try:
                self._tracer.call(self._inject_seized)
            except Error as err:
                if not self.alive:
                    raise NoSuchProcess(self.pid) from err
                self._lost = f"it called exec and tracking could not be set up again: {err}"
                self.events.append(f"exec: {self._lost}")
                raise Error(f"write tracking of process {self.pid} was lost: {self._lost}") from err
            self.events.append("exec: the target executed a new program; uffd injected again")
            warnings.warn(
                f"process {self.pid} called exec; write tracking was set up again for the new "
                "program (writes between the exec and now are not reported)",
                PmvizWarning,
                stacklevel=2,
            )
            return Regions()

    def close(self) -> None:
        """Stop tracking and leave the process running as found. Idempotent.

        Unregisters every tracked VMA (which also removes all write protection) and closes
        pmviz's uffd; the target holds none. A launched process keeps running: ``wait()``
        for it.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._inner is not None:
                    self._inner.close()
                    self._inner = None
            finally:
                self._tracer.stop()
                self._proc.close()
                _live.discard(self)

    # -- process handling ----------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        """Whether the tracked process is still running (not exited, not a zombie)."""
        # Never waitpid() here: for a launched child that is also our tracee, a waitpid from
        # this thread could swallow a ptrace stop meant for the tracer thread.
        if self.process is not None and self.process.returncode is not None:
            return False
        try:
            self._proc.check()
        except NoSuchProcess:
            return False
        return True

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the process to end; its exit status (``None`` for an attached process,
        whose status only its parent can read).

        Raises
        ------
        subprocess.TimeoutExpired
            It is still running after ``timeout`` seconds.
        """
        if self.process is not None and self.process.returncode is not None:
            return self.process.returncode
        if self._proc.pidfd < 0:  # closed: only a launched program can still be waited for
            if self.process is None:
                raise ValueError("wait() on a closed InjectedTracker of an attached process")
            return self.process.wait(timeout)
        # Wait on the pidfd (readable once the process has exited), not with waitpid: see alive.
        poller = select.poll()
        poller.register(self._proc.pidfd, select.POLLIN)
        ms = None if timeout is None else max(0, int(timeout * 1000))
        if not poller.poll(ms):
            what = f"pid {self.pid}"
            if self.process is not None:  # (its args start with the launcher's)
                args: Any = self.process.args
                what = " ".join(map(str, args[len(_LAUNCHER) :]))
            raise subprocess.TimeoutExpired(what, timeout or 0)
        return self.process.wait() if self.process is not None else None

    @property
    def registered(self) -> Regions:
        """The address ranges registered for tracking now."""
        return self._inner.registered if self._inner is not None else Regions()

    @property
    def skipped(self) -> list:
        """VMAs that could not be registered, with the reason (``SkippedRange``)."""
        return self._inner.skipped if self._inner is not None else []

    def __del__(self) -> None:
        # Forgotten without close(): the engine closes its own fd (the kernel then drops all
        # tracking state); only the idle tracer thread is left to end.
        with contextlib.suppress(Exception):
            if not self._closed:
                self._tracer.stop(wait=False)

    def __enter__(self) -> InjectedTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self.alive else "exited")
        return f"<InjectedTracker pid={self.pid} {self.mechanism} {state}>"

    # -- injection (tracer thread only) --------------------------------------------------------
    def _inject_seized(self) -> None:
        access.preflight(self.pid)
        tid = access.pick_thread(self.pid)
        try:
            remote = inject.Remote.seize(self.pid, tid)
        except ChildProcessError as err:
            raise Error(
                f"process {self.pid} is stopped (job control, e.g. SIGSTOP or Ctrl-Z); "
                f"continue it first (kill -CONT {self.pid})"
            ) from err
        except ProcessLookupError as err:
            raise NoSuchProcess(self.pid) from err
        except OSError as err:
            raise access.denied(self.pid, err) from err
        self._setup(remote)

    def _setup(self, remote: inject.Remote) -> None:
        """With the target stopped: create its uffd, take it, register and arm, release."""
        t0 = time.perf_counter()
        fd = -1
        try:
            try:
                target_fd = inject.create_uffd(remote)
            except inject.InjectionError as err:
                raise _uffd_refused(self.pid, err) from err
            try:
                fd = inject.take_fd(self.pid, target_fd)
            finally:
                inject.close_fd(remote, target_fd)
                # Registers back now: the rest needs the thread stopped, not borrowed, and
                # so a SIGKILL of pmviz from here on cannot hurt it (see Remote.restore).
                remote.restore()
            try:
                kuffd.api(fd)
            except OSError as err:
                raise UnsupportedKernel(
                    "uffd-wp-async",
                    f"UFFDIO_API with WP_ASYNC failed ({os.strerror(err.errno or 0)}): needs "
                    "Linux >= 6.7 with CONFIG_PTE_MARKER_UFFD_WP",
                ) from err
            # Registered and armed while the target is stopped: tracking begins here.
            # UffdTracker owns the fd from here on, and closes it itself if it fails.
            owned, fd = fd, -1
            self._inner = UffdTracker(
                self.pid,
                owned,
                owns_fd=True,
                max_vma_bytes=self.max_vma_bytes,
                process=self._proc,
            )
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        finally:
            remote.release()
            self.attach_seconds = time.perf_counter() - t0


def _uffd_refused(pid: int, err: OSError) -> Error:
    if err.errno == errno.ENOSYS:
        return UnsupportedKernel(
            "userfaultfd", "the kernel has no userfaultfd (CONFIG_USERFAULTFD)"
        )
    if err.errno in (errno.EPERM, errno.EACCES):
        return AccessDenied(
            pid,
            f"userfaultfd() was refused inside process {pid} (an LSM or a container policy); "
            "write tracking of it is not possible",
        )
    return Error(f"userfaultfd() inside process {pid}: {os.strerror(err.errno or 0)}")


def _check_kernel() -> None:
    f = features()
    if not (f.pagemap_scan and f.uffd_wp_async):
        raise UnsupportedKernel(
            "uffd-wp-async",
            f"kernel {f.kernel_release} lacks PAGEMAP_SCAN or userfaultfd async write-protect "
            f"({f.uffd_reason}); needs Linux >= 6.7",
        )
    if ptrace.ARCH != "x86_64":
        raise UnsupportedKernel(
            "injection", f"syscall injection is implemented for x86_64 only, not {ptrace.ARCH}"
        )


# -- public entry points -----------------------------------------------------------------------
def attach(pid: int, *, max_vma_bytes: int = MAX_VMA_BYTES) -> InjectedTracker:
    """Track the writes of a running process, from now on.

    The process is stopped for well under a millisecond to inject ``userfaultfd()``; it
    then runs untraced. :meth:`InjectedTracker.close` (or leaving the ``with`` block, or
    pmviz ending in any way) leaves it as found.

    Parameters
    ----------
    pid : int
        The process (any thread of it keeps running during the injection but one).
    max_vma_bytes : int
        Larger VMAs are not tracked (listed in ``skipped``): arming costs the target one page
        table per 2 MiB of VMA, populated or not (a sanitizer's shadow would need GiBs).

    Returns
    -------
    InjectedTracker

    Raises
    ------
    AccessDenied
        ptrace is not permitted: the message names the rule (``kernel.yama.ptrace_scope``,
        CAP_SYS_PTRACE, another user's process, an existing tracer, seccomp) and the fix.
    NoSuchProcess
        No such process.
    UnsupportedKernel
        No async write-protect (Linux < 6.7) or not x86-64.

    Examples
    --------
    >>> import subprocess, pmviz.injection
    >>> p = subprocess.Popen(["sleep", "1"])
    >>> with pmviz.injection.attach(p.pid) as t:
    ...     t.collect().n_pages >= 0
    True
    >>> p.wait()
    0
    """
    normalized = procfs.normalize_pid(pid)
    if not isinstance(normalized, int):
        raise ValueError("attach() needs a pid; for this process use pmviz.WriteTracker()")
    pid = normalized
    _check_kernel()
    access.preflight(pid)
    tracer = ptrace.TracerThread(f"pmviz-tracer-{pid}")
    tracker = InjectedTracker(pid, None, tracer, max_vma_bytes)
    _run_setup(tracker, tracker._inject_seized)
    return tracker


def track(
    cmd: Sequence[str], *, max_vma_bytes: int = MAX_VMA_BYTES, **popen_kwargs: Any
) -> InjectedTracker:
    """Launch an unmodified program with its writes tracked from its first instruction.

    Any executable works (C, Go, Rust, Java, Python ...): no recompiling, no LD_PRELOAD. The
    child stops at its ``execve``, the uffd is injected and every writable VMA registered
    and armed, then it runs untraced.

    Parameters
    ----------
    cmd : sequence of str
        The program and its arguments (as for ``subprocess.Popen``).
    max_vma_bytes : int
        As for :func:`attach`.
    **popen_kwargs
        Passed to ``subprocess.Popen`` (``stdout=``, ``cwd=``, ``env=`` ...).

    Returns
    -------
    InjectedTracker
        With ``.process``, the ``Popen``; call ``.wait()`` for its exit status.

    Raises
    ------
    AccessDenied
        ptrace is forbidden (``kernel.yama.ptrace_scope=3``), or the program is setuid
        (under ptrace the kernel would run it without its privileges, changing what it does).
    FileNotFoundError
        No such program.

    Examples
    --------
    >>> import pmviz
    >>> with pmviz.track(["true"]) as t:
    ...     status = t.wait()
    >>> status
    0
    """
    if isinstance(cmd, (str, bytes)):
        raise TypeError("cmd must be a list of arguments, e.g. ['ls', '-l'], not a string")
    cmd = [os.fspath(c) for c in cmd]
    if not cmd:
        raise ValueError("cmd is empty")
    _check_kernel()
    exe = shutil.which(cmd[0], path=(popen_kwargs.get("env") or os.environ).get("PATH"))
    if exe and os.stat(exe).st_mode & (stat.S_ISUID | stat.S_ISGID):
        raise AccessDenied(
            None,
            f"{exe} is setuid/setgid: under ptrace the kernel runs it without those "
            "privileges, so tracked it would behave differently; record it without write "
            "tracking",
        )
    if popen_kwargs.get("preexec_fn") is not None:
        raise ValueError(
            "preexec_fn is not supported: forking a threaded process with one can deadlock "
            "(see the subprocess docs); use env=, cwd=, start_new_session= instead"
        )
    popen_kwargs.pop("preexec_fn", None)
    if exe is None and os.sep in cmd[0] and popen_kwargs.get("cwd") is not None:
        exe = shutil.which(os.path.join(os.fspath(popen_kwargs["cwd"]), cmd[0]))
    if exe is None:  # (the launcher shell would only exit 127)
        raise FileNotFoundError(errno.ENOENT, f"no such program (or not executable): {cmd[0]!r}")
    tracer = ptrace.TracerThread(f"pmviz-tracer-{cmd[0]}")

    def launch() -> InjectedTracker:
        # The child is a tiny shell that stops itself, then execs the command: the tracer
        # thread seizes it while stopped and takes it at the exec, before the program's first
        # instruction. Popen runs on the tracer thread: the seizing *thread* is the tracer.
        try:
            proc = subprocess.Popen([*_LAUNCHER, *cmd], **popen_kwargs)
        except OSError as err:
            raise Error(f"cannot start {cmd[0]!r}: {err.strerror}") from err
        tracker = InjectedTracker(proc.pid, proc, tracer, max_vma_bytes)
        try:
            try:
                remote = inject.Remote.at_exec_of_stopped(proc.pid)
            except ProcessLookupError as err:
                raise Error(f"{cmd[0]!r} could not be started: {err.strerror}") from err
            except OSError as err:
                raise access.denied(proc.pid, err) from err
            tracker._setup(remote)
        except BaseException:
            _kill(proc)
            tracker._closed = True
            tracker._proc.close()
            _live.discard(tracker)
            raise
        return tracker

    try:
        return _wait_future(tracer.submit(launch), tracer)
    except BaseException:
        tracer.stop()
        raise


# ``sh -c SCRIPT NAME CMD...``: stop until pmviz has seized us, then become CMD ("$@").
_LAUNCHER = ["/bin/sh", "-c", 'kill -STOP "$$" && exec "$@"', "pmviz-launch"]


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(OSError):
        proc.kill()
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)


def _run_setup(tracker: InjectedTracker, fn: Callable[[], None]) -> None:
    future = tracker._tracer.submit(fn)
    try:
        _wait_future(future, tracker._tracer)
    except BaseException:
        # Ctrl-C while waiting: the injection finishes on the tracer thread, then is undone.
        def undo(_: Future) -> None:
            if tracker._inner is not None:
                tracker._inner.close()
                tracker._inner = None

        future.add_done_callback(undo)
        tracker._closed = True
        tracker._tracer.stop()
        tracker._proc.close()
        _live.discard(tracker)
        raise


def _wait_future(future: Future, tracer: ptrace.TracerThread) -> Any:
    """``future.result()``; on Ctrl-C the injection still finishes cleanly, then is undone."""
    try:
        return future.result()
    except KeyboardInterrupt:

        def undo(f: Future) -> None:
            result = None if f.cancelled() or f.exception() else f.result()
            if isinstance(result, InjectedTracker):
                result.close()

        future.add_done_callback(undo)
        raise


# -- choice of mechanism -----------------------------------------------------------------------
class WriteSourceChoice(NamedTuple):
    """What :func:`open_write_source` chose: the source (or ``None``) and why."""

    source: Any
    reason: str


def open_write_source(target: int) -> WriteSourceChoice:
    """The best write-tracking mechanism for a running process, and why it was chosen.

    Tries syscall injection (``"uffd-wp"``); where that is not permitted or not possible,
    soft-dirty when the kernel has it; else ``None``: record present/swapped only. The reason
    belongs in the capture's metadata and on stderr.

    Parameters
    ----------
    target : int
        The pid.

    Returns
    -------
    WriteSourceChoice
        ``(source, reason)``; unpacks as a tuple.
    """
    try:
        return WriteSourceChoice(attach(target), "uffd-wp (userfaultfd injected by ptrace)")
    except NoSuchProcess:
        raise
    except Error as err:  # AccessDenied, UnsupportedKernel, a failed injection
        why = f"injection not possible: {err}"
    if not features().soft_dirty:
        return WriteSourceChoice(
            None,
            f"present/swapped-only recording: {why}; soft-dirty unavailable (kernel built "
            "without CONFIG_MEM_SOFT_DIRTY)",
        )
    from .softdirty import SoftDirtyTracker  # only where the kernel has soft-dirty

    try:
        return WriteSourceChoice(SoftDirtyTracker(target), f"soft-dirty ({why})")
    except Error as err:
        return WriteSourceChoice(
            None, f"present/swapped-only recording: {why}; soft-dirty failed: {err}"
        )
