"""Opening ``/proc/PID/*`` files, with every ``OSError`` translated in one place."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import AccessDenied, Error, NoSuchProcess, UnsupportedKernel

PROCFS = "/proc"

Pid = int | str  # an int pid or "self"


def normalize_pid(pid: Pid) -> int | str:
    """Accept ``"self"``, an int, or a numeric string; reject anything else clearly."""
    if pid == "self":
        return "self"
    if isinstance(pid, bool):
        raise TypeError("pid must be an int or 'self', not a bool")
    try:
        value = int(pid)
    except (TypeError, ValueError):
        raise TypeError(f"pid must be an int or 'self', got {pid!r}") from None
    if value <= 0:
        raise ValueError(f"pid must be positive, got {value}")
    return value


def proc_path(pid: Pid, name: str, procfs: str = PROCFS) -> str:
    return f"{procfs}/{pid}/{name}"


def translate(err: OSError, pid: Pid, what: str) -> Error:
    """Turn an ``OSError`` from ``/proc/PID/<what>`` into a pmviz exception with a remedy."""
    if err.errno == errno.ENOENT:
        return NoSuchProcess(pid, f"process {pid} does not exist or has exited ({what})")
    if err.errno == errno.ESRCH:
        # An open fd of a process that exited (or exec'd: its pagemap fd goes stale too).
        return NoSuchProcess(pid, f"process {pid} exited or exec'd while using /proc/{pid}/{what}")
    if err.errno == errno.ENOMEM:
        return Error(
            f"/proc/{pid}/{what}: the kernel ran out of memory (e.g. PAGEMAP_SCAN's bounce buffer)"
        )
    if err.errno == errno.EINTR:
        return Error(f"/proc/{pid}/{what}: interrupted by a fatal signal")
    if err.errno in (errno.EACCES, errno.EPERM) and pid in ("self", os.getpid()):
        # Only a process that is not dumpable is refused its own files.
        return AccessDenied(
            pid,
            f"may not access this process's own /proc/{pid}/{what}: it is not dumpable (it "
            "changed credentials, e.g. with setuid()); call prctl(PR_SET_DUMPABLE, 1) or run "
            "with CAP_SYS_PTRACE",
        )
    if err.errno in (errno.EACCES, errno.EPERM):
        return AccessDenied(
            pid,
            f"may not access /proc/{pid}/{what}: reading another user's process (or a "
            "non-dumpable one) needs CAP_SYS_PTRACE: run this one pmviz command as root "
            "(sudo), or run pmviz as the user who owns the process (with "
            "kernel.yama.ptrace_scope <= 1); writing clear_refs needs the same ownership",
        )
    if err.errno == errno.ENOTTY:
        return UnsupportedKernel(
            "PAGEMAP_SCAN",
            "this kernel has no PAGEMAP_SCAN ioctl (needs Linux >= 6.7); "
            "use backend='pagemap' for the classic per-page reader",
        )
    return Error(f"/proc/{pid}/{what}: {os.strerror(err.errno or 0)} (errno {err.errno})")


def open_raw(pid: Pid, name: str, flags: int = os.O_RDONLY, procfs: str = PROCFS) -> int:
    """Open ``/proc/PID/name`` as a raw fd the caller closes, translating errors.

    For ``pagemap`` the PTRACE_MODE_READ check happens here, at open: reads and ioctls on
    the fd are not checked again.
    """
    try:
        return os.open(proc_path(pid, name, procfs), flags | os.O_CLOEXEC)
    except OSError as err:
        raise translate(err, pid, name) from err


@contextmanager
def open_fd(pid: Pid, name: str, flags: int = os.O_RDONLY, procfs: str = PROCFS) -> Iterator[int]:
    """Open ``/proc/PID/name`` as a raw fd (closed on exit), translating errors."""
    fd = open_raw(pid, name, flags, procfs)
    try:
        yield fd
    finally:
        os.close(fd)


def read_fd(fd: int, pid: Pid, name: str) -> bytes:
    """All of an open ``/proc`` file (read in 64 KiB chunks), errors translated."""
    chunks = []
    try:
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    except OSError as err:
        raise translate(err, pid, name) from err
    return b"".join(chunks)


def read_text(pid: Pid, name: str, procfs: str = PROCFS) -> str:
    try:
        with open(proc_path(pid, name, procfs), encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except OSError as err:
        raise translate(err, pid, name) from err


def write_text(pid: Pid, name: str, text: str, procfs: str = PROCFS) -> None:
    try:
        with open(proc_path(pid, name, procfs), "w") as f:
            f.write(text)
    except OSError as err:
        raise translate(err, pid, name) from err
