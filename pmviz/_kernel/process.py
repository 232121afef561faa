"""One handle on another process: a pidfd plus its start time, and /proc access through it.

A pid number alone names whichever process holds it *now*: once the target exits, the
number can be reused. :class:`ProcessHandle` pins the process with a pidfd (signals sent
through it can never reach a successor) and records its start time from ``/proc/PID/stat``;
every ``/proc/PID/*`` file is opened first and the pidfd polled after (a process that has
not exited keeps its pid, so a file opened before that check is the right one's).
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import signal
from dataclasses import dataclass

from ..errors import NoSuchProcess
from . import procfs
from .closing import Closing

__all__ = ["ProcStat", "ProcessHandle", "parse_stat", "read_stat", "tgkill"]


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/PID/stat`` pmviz uses (proc(5))."""

    state: str
    ppid: int
    flags: int
    starttime: int

    @property
    def alive(self) -> bool:
        """Not a zombie (``Z``) nor dead (``X``)."""
        return self.state not in ("Z", "X")


def parse_stat(text: str) -> ProcStat:
    """Parse ``/proc/PID/stat``; the command name may hold spaces and parentheses."""
    fields = text[text.rindex(")") + 2 :].split()
    return ProcStat(fields[0], int(fields[1]), int(fields[6]), int(fields[19]))


def read_stat(pid: int | str, task: int | None = None, root: str = procfs.PROCFS) -> ProcStat:
    """``/proc/PID/stat`` (or ``/proc/PID/task/TID/stat``), errors translated."""
    name = "stat" if task is None else f"task/{task}/stat"
    return parse_stat(procfs.read_text(pid, name, root))


_libc = ctypes.CDLL(None, use_errno=True)
_SYS_TGKILL = {"x86_64": 234, "aarch64": 131}.get(os.uname().machine, -1)


def tgkill(tgid: int, tid: int, sig: int) -> None:
    """Send ``sig`` to thread ``tid`` of process ``tgid`` only (a thread-directed signal)."""
    if _SYS_TGKILL < 0:  # pragma: no cover - other architectures
        os.kill(tgid, sig)
        return
    if _libc.syscall(_SYS_TGKILL, tgid, tid, sig) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"tgkill({tgid}, {tid}, {sig}): {os.strerror(err)}")


class ProcessHandle(Closing):
    """A process held by pidfd, identified by (pid, start time); never confused with a
    process that later reuses its pid.

    Parameters
    ----------
    pid : int
        The process.

    Raises
    ------
    NoSuchProcess
        It does not exist, or exits while the handle is made.
    """

    def __init__(self, pid: int) -> None:
        self.pid = int(pid)
        self.pidfd = -1
        try:
            self.pidfd = os.pidfd_open(self.pid)
        except OSError as err:
            raise procfs.translate(
                OSError(errno.ENOENT if err.errno == errno.ESRCH else err.errno, err.strerror),
                self.pid,
                "pidfd",
            ) from err
        try:
            # pidfd first, stat second: if the pid was reused in between, our pidfd's process
            # has exited, which exited() sees.
            self.starttime = read_stat(self.pid).starttime
            if self.exited():
                raise NoSuchProcess(self.pid)
        except BaseException:
            self.close()
            raise

    def exited(self) -> bool:
        """Whether the process has exited (a pidfd polls readable then, zombie or reaped)."""
        if self.pidfd < 0:
            return True
        p = select.poll()
        p.register(self.pidfd, select.POLLIN)
        return bool(p.poll(0))

    def check(self) -> None:
        """Raise ``NoSuchProcess`` unless the process is alive and still the one we hold.

        The pidfd alone answers both: a pid is reused only after its process is reaped, and
        the pidfd of an exited process polls readable from its exit on (pidfd_open(2)). So a
        ``/proc/PID`` file opened before a check that passes is this process's. (This runs
        twice per file a recorder reads each snapshot: it reads no ``/proc/PID/stat``.)
        """
        if self.exited():
            raise NoSuchProcess(self.pid)

    def stat(self) -> ProcStat:
        """Its ``/proc/PID/stat``, checked to be this process's."""
        st = read_stat(self.pid)
        if st.starttime != self.starttime or self.exited():
            raise NoSuchProcess(self.pid)
        return st

    def open(self, name: str, flags: int = os.O_RDONLY) -> int:
        """Open ``/proc/PID/name`` (a raw fd the caller closes), checked to be this process's."""
        fd = procfs.open_raw(self.pid, name, flags)
        try:
            self.check()
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read(self, name: str) -> bytes:
        """The whole of ``/proc/PID/name`` (``maps``, ``status``, ...), this process's."""
        fd = self.open(name)
        try:
            data = procfs.read_fd(fd, self.pid, name)
        finally:
            os.close(fd)
        self.check()  # (the read too: a process that exited meanwhile shows an empty file)
        if not data and not read_stat(self.pid).alive:
            # A thread-group leader that exited before its other threads is a zombie whose
            # pidfd does not poll readable yet; its files read empty (its mm is gone).
            raise NoSuchProcess(self.pid)
        return data

    def send_signal(self, sig: int) -> None:
        """Signal the process through its pidfd: never a process that reused the pid."""
        try:
            signal.pidfd_send_signal(self.pidfd, sig)
        except ProcessLookupError as err:
            raise NoSuchProcess(self.pid) from err
        except OSError as err:
            raise procfs.translate(err, self.pid, f"signal {sig}") from err

    def close(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1

    def __repr__(self) -> str:
        return f"<ProcessHandle pid={self.pid} starttime={self.starttime}>"
