"""Finding processes: children, descendants, cgroup v2 members, every pid; exit statuses.

* Children come from ``/proc/PID/task/TID/children`` (``CONFIG_PROC_CHILDREN``; one file per
  thread, since a child belongs to the thread that forked it). Without it, a scan of every
  ``/proc/PID/stat`` gives the parent of every process.
* A cgroup v2 directory lists its member processes in ``cgroup.procs``.
* Exit statuses of processes that are not our children: ``PIDFD_GET_INFO`` with
  ``PIDFD_INFO_EXIT`` on a pidfd taken while the process lived (Linux 6.15; available once the
  process has been reaped), else field 52 (``exit_code``) of ``/proc/PID/stat`` while it is a
  zombie (proc(5)).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

from ..errors import Error
from . import procfs
from .process import read_stat

__all__ = [
    "PF_KTHREAD",
    "children",
    "descendants",
    "parents",
    "all_pids",
    "is_kernel_thread",
    "cgroup_of",
    "cgroup_procs",
    "pidfd_exit_status",
    "zombie_exit_status",
    "decode_wait_status",
]

PF_KTHREAD = 0x00200000
"""``/proc/PID/stat`` flags bit of a kernel thread (include/linux/sched.h)."""

# struct pidfd_info (include/uapi/linux/pidfd.h), its first version: 64 bytes
_PIDFD_INFO_SIZE = 64
_PIDFD_INFO_EXIT = 1 << 3
_PIDFD_GET_INFO = (3 << 30) | (_PIDFD_INFO_SIZE << 16) | (0xFF << 8) | 11  # _IOWR(0xFF, 11)
_EXIT_CODE_OFFSET = 60


def all_pids(root: str = procfs.PROCFS) -> list[int]:
    """Every process id in ``/proc`` (thread ids are not listed there), sorted."""
    return sorted(int(n) for n in os.listdir(root) if n.isdigit())


def children(pid: int) -> list[int] | None:
    """The children of ``pid`` (every thread's), or None if the kernel lacks the files.

    A process that has exited has no children: ``[]``.
    """
    try:
        tids = os.listdir(f"{procfs.PROCFS}/{pid}/task")
    except FileNotFoundError:
        return []
    except PermissionError:
        return []
    out: list[int] = []
    for tid in tids:
        try:
            with open(f"{procfs.PROCFS}/{pid}/task/{tid}/children", "rb") as f:
                out += [int(x) for x in f.read().split()]
        except FileNotFoundError:
            if os.path.exists(f"{procfs.PROCFS}/{pid}/task/{tid}"):
                return None  # the thread is there, its children file is not: no PROC_CHILDREN
        except (ProcessLookupError, PermissionError):
            continue  # the thread exited meanwhile / not ours to read
    return out


def parents(pids: list[int] | None = None) -> dict[int, int]:
    """``{pid: ppid}`` of every process (or of ``pids``) from ``/proc/PID/stat``."""
    out = {}
    for pid in all_pids() if pids is None else pids:
        try:
            out[pid] = read_stat(pid).ppid
        except Error:
            continue  # exited meanwhile
    return out


def descendants(roots: list[int]) -> set[int]:
    """Every live descendant of ``roots`` (roots excluded), at this instant."""
    found: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        kids = children(pid)
        if kids is None:  # no children files: one scan of every parent link
            return _descendants_by_scan(roots)
        for k in kids:
            if k not in found:
                found.add(k)
                todo.append(k)
    return found - set(roots)


def _descendants_by_scan(roots: list[int]) -> set[int]:
    by_parent: dict[int, list[int]] = {}
    for pid, ppid in parents().items():
        by_parent.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for k in by_parent.get(todo.pop(), []):
            if k not in found:
                found.add(k)
                todo.append(k)
    return found - set(roots)


def is_kernel_thread(pid: int) -> bool:
    """Whether ``pid`` is a kernel thread (no user address space to scan)."""
    return bool(read_stat(pid).flags & PF_KTHREAD)


def cgroup_of(pid: int) -> str | None:
    """The cgroup v2 path of ``pid`` (``/user.slice/...``; the ``0::`` line), or None."""
    try:
        text = procfs.read_text(pid, "cgroup")
    except Error:
        return None
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def cgroup_procs(path: str) -> list[int]:
    """The processes of a cgroup v2 directory (its ``cgroup.procs``), sorted.

    Raises
    ------
    FileNotFoundError
        The directory (or its ``cgroup.procs``) does not exist (removed, or not cgroup v2).
    """
    with open(os.path.join(path, "cgroup.procs"), "rb") as f:
        return sorted({int(x) for x in f.read().split()})


def decode_wait_status(status: int) -> int:
    """A ``waitpid`` status as ``subprocess`` reports it: the exit code, or ``-SIGNAL``."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def pidfd_exit_status(pidfd: int) -> int | None:
    """The exit status of the process behind ``pidfd`` once it has been reaped, else None.

    ``subprocess`` convention (``-N``: killed by signal N). None also on kernels without
    ``PIDFD_GET_INFO`` (before 6.15) or without its exit information.
    """
    buf = bytearray(_PIDFD_INFO_SIZE)
    struct.pack_into("Q", buf, 0, _PIDFD_INFO_EXIT)
    try:
        fcntl.ioctl(pidfd, _PIDFD_GET_INFO, buf)
    except OSError as err:
        if err.errno in (errno.ESRCH, errno.ENOTTY, errno.EINVAL, errno.EBADF, errno.EOPNOTSUPP):
            return None
        raise
    (mask,) = struct.unpack_from("Q", buf, 0)
    if not mask & _PIDFD_INFO_EXIT:
        return None  # not reaped yet (a zombie: see zombie_exit_status)
    (status,) = struct.unpack_from("i", buf, _EXIT_CODE_OFFSET)
    return decode_wait_status(status)


def zombie_exit_status(pid: int, starttime: int) -> int | None:
    """The exit status of ``pid`` while it is a zombie (and the process started at
    ``starttime``), from ``/proc/PID/stat``; None otherwise.
    """
    try:
        text = procfs.read_text(pid, "stat")
    except Error:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] not in ("Z", "X") or int(fields[19]) != starttime or len(fields) < 50:
        return None
    return decode_wait_status(int(fields[49]))
