"""May pmviz ptrace this process, and which thread should it borrow? (For ``pmviz.injection``.)

``preflight`` refuses what must not be injected into; ``denied`` turns a failed
``PTRACE_SEIZE`` into an ``AccessDenied`` naming the rule that forbids it and the fix.
"""

from __future__ import annotations

import errno
import os

from ..errors import AccessDenied, Error, NoSuchProcess
from . import procfs
from .process import read_stat

CAP_SYS_PTRACE = 19
PF_KTHREAD = 0x00200000  # task flag of kernel threads (include/linux/sched.h)


def status(pid: int) -> dict[str, str]:
    text = procfs.read_text(pid, "status")
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def has_cap_sys_ptrace() -> bool:
    caps = int(status(os.getpid()).get("CapEff", "0"), 16)
    return bool(caps >> CAP_SYS_PTRACE & 1)


def ptrace_scope() -> int | None:
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def preflight(pid: int) -> None:
    """Refuse what we must not inject into, naming the reason and the remedy."""
    if pid == os.getpid():
        raise ValueError("pmviz cannot inject into its own process; use pmviz.WriteTracker()")
    st = status(pid)
    if st.get("State", "").startswith(("Z", "X")):
        raise NoSuchProcess(pid, f"process {pid} has exited (it is a zombie)")
    tracer = int(st.get("TracerPid", "0"))
    if tracer and tracer != os.getpid():
        raise AccessDenied(
            pid,
            f"process {pid} is already traced by process {tracer} ({comm(tracer)}), e.g. a "
            "debugger; "
            "a process can have only one tracer: detach it first (gdb: `detach`, strace: "
            "Ctrl-C), then attach pmviz",
        )
    if st.get("Seccomp", "0").strip() != "0":
        raise AccessDenied(
            pid,
            f"process {pid} runs under seccomp (mode {st['Seccomp'].strip()}): an injected "
            "userfaultfd() could be answered by its filter with SIGSYS and kill it, so pmviz "
            "does not inject; record it without write tracking",
        )
    try:
        with open(f"/proc/{pid}/maps") as f:
            has_maps = bool(f.read(1))
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EPERM):
            raise denied(pid, err) from err  # the same rules as ptrace: say which one
        raise procfs.translate(err, pid, "maps") from err
    if not has_maps:
        # No user memory: a kernel thread, or a process exiting (its mm already released).
        if read_stat(pid).flags & PF_KTHREAD:
            raise ValueError(f"process {pid} is a kernel thread: no user memory to track")
        raise NoSuchProcess(pid, f"process {pid} is exiting (its memory is already gone)")


def comm(pid: int) -> str:
    try:
        return procfs.read_text(pid, "comm").strip()
    except Error:
        return "?"


def denied(pid: int, err: OSError) -> Error:
    """``PTRACE_SEIZE`` failed: say which rule forbids it and how to lift it."""
    if err.errno == errno.ESRCH:
        return NoSuchProcess(pid)
    if err.errno == errno.ETIMEDOUT:
        return Error(
            f"process {pid} could not be stopped for the injection: {err.strerror}; retry "
            "when it is not blocked in the kernel, or record with `--writes none`"
        )
    if err.errno not in (errno.EPERM, errno.EACCES):
        return Error(f"ptrace attach to {pid}: {os.strerror(err.errno or 0)}")
    scope = ptrace_scope()
    cap = has_cap_sys_ptrace()
    try:
        st = status(pid)
    except Error as gone:
        return gone
    tracer = int(st.get("TracerPid", "0"))
    uids = {int(u) for u in st.get("Uid", "").split()}
    if tracer:
        why = f"it is already traced by process {tracer} ({comm(tracer)}); detach that first"
    elif scope == 3:
        why = (
            "kernel.yama.ptrace_scope=3 forbids every ptrace attach until reboot; record "
            "without write tracking"
        )
    elif scope == 2 and not cap:
        why = (
            "kernel.yama.ptrace_scope=2 allows attaching only with CAP_SYS_PTRACE: run this "
            "one pmviz command as root (sudo), or record with `--writes none`"
        )
    elif uids != {os.geteuid()} and not cap:
        why = (
            f"it belongs to another user (uid {sorted(uids)}): attaching to another user's "
            "process needs CAP_SYS_PTRACE (run pmviz as root)"
        )
    elif scope == 1 and not cap:
        why = (
            "kernel.yama.ptrace_scope=1 allows attaching only to your own descendants: "
            "launch the program through pmviz (`pmviz record -- CMD`, pmviz.track), or "
            "`sudo sysctl kernel.yama.ptrace_scope=0`, or run as root"
        )
    else:
        why = (
            "it is not dumpable (a setuid/setgid program, or prctl(PR_SET_DUMPABLE, 0)) or a "
            "security module (SELinux/AppArmor) denies ptrace; that needs CAP_SYS_PTRACE"
        )
    return AccessDenied(pid, f"may not attach to process {pid} with ptrace: {why}")


def starttime(pid: int) -> int | None:
    """The start time of a live (not zombie) process, its identity with the pid; or None."""
    try:
        st = read_stat(pid)
    except Error:
        return None
    return st.starttime if st.alive else None


def has_memory(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            return bool(f.read(1))
    except OSError:
        return False


def pick_thread(pid: int) -> int:
    """A thread to borrow: the leader unless it is asleep uninterruptibly (``D``: a vfork
    parent, disk I/O), where ``PTRACE_INTERRUPT`` could wait indefinitely, or already dead.
    """
    try:
        tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return pid
    for tid in [pid] + [t for t in tids if t != pid]:
        try:
            state = read_stat(pid, tid).state
        except Error:
            continue
        if state in "RS":
            return tid
    return pid
