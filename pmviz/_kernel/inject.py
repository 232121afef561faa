"""Remote syscalls in a stopped thread of another process (x86-64).

pmviz injects exactly one syscall that matters, ``userfaultfd()``: a uffd's context belongs to
the mm of the process that *creates* it, and every later ioctl on it (``UFFDIO_API``,
``UFFDIO_REGISTER``, ``UFFDIO_UNREGISTER``) acts on that mm whoever calls it. So pmviz creates
the uffd inside the target, takes a duplicate with ``pidfd_getfd(2)``, closes the target's
copy (a second injected syscall), and does everything else from outside
(``pmviz.tracking.UffdTracker``). The target ends up holding no extra fd at all, and if pmviz
dies, even by SIGKILL, the kernel closes pmviz's fd, the last reference, and
``userfaultfd_release()`` unregisters every VMA and drops all write protection: the target is
left as it was found.

How a thread is borrowed (``Remote``), and why each step is there:

1. Stop it at a ptrace stop *inside the kernel's signal path*: ``PTRACE_SEIZE`` +
   ``PTRACE_INTERRUPT`` gives a ``PTRACE_EVENT_STOP`` in ``get_signal()``. A thread
   interrupted in a blocking syscall sits there with ``rax = -ERESTARTSYS`` (or another
   ``-ERESTART*``) and ``orig_rax = nr``: the restart fix-up (``rax = orig_rax; rip -= 2``,
   or ``restart_syscall`` for ``-ERESTART_RESTARTBLOCK``) has **not** happened yet; the kernel
   does it when ``get_signal()`` returns with no signal to deliver
   (``arch_do_signal_or_restart``). A launched child taken at its ``PTRACE_EVENT_EXEC`` stop
   has ``rax = 0``: nothing to restart.
2. Save the registers, the signal mask and the rseq critical-section pointer; block every
   signal (``PTRACE_SETSIGMASK``) so no handler can run on borrowed registers. Signals that
   arrive meanwhile stay pending and are delivered normally afterwards.
3. Each injected syscall: the saved registers with ``rip`` at an existing ``syscall``
   instruction (``0f 05`` found in the target's executable memory: no byte of code is
   changed, so the other threads, which keep running, never see anything),
   ``orig_rax = -1`` (no restart fix-up may apply to this fake state), arguments in
   rdi/rsi/rdx/r10/r8/r9; ``PTRACE_SYSCALL`` to the syscall-enter stop and again to the
   exit stop, where ``rax`` is the result. No user instruction but that ``syscall`` runs.
4. Restore (``Remote.restore``, right after the last injected syscall): the registers, the
   signal mask and the rseq pointer (the kernel clears it while our ``rip`` is outside the
   critical section), then, for a seized thread, ``PTRACE_INTERRUPT`` + ``PTRACE_CONT`` so
   that it stops once more in ``get_signal()``, now with its *original* registers; detach
   from there (``Remote.release``), possibly after more work from outside. The kernel then performs exactly
   the restart it would have performed without us (or ``-EINTR``/the handler, if a signal
   became deliverable). gdb's inferior calls and CRIU's compel keep the same contract;
   here the kernel does the fix-up instead of a re-implementation of it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import struct
import time

from . import ptrace
from .process import tgkill

SYS_close = 3
SYS_userfaultfd = 323

O_NONBLOCK = 0o4000
O_CLOEXEC = 0o2000000
UFFD_USER_MODE_ONLY = 1

PTRACE_GET_RSEQ_CONFIGURATION = 0x420F
_U64 = (1 << 64) - 1
_NO_SYSCALL = _U64  # orig_rax = -1: "not in a syscall", so no restart fix-up applies


class InjectionError(OSError):
    """An injected syscall failed in the target (``errno`` is the target's errno)."""


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


class Remote:
    """One thread of another process, stopped under ptrace and able to run syscalls.

    Use :meth:`seize` (running thread) or :meth:`at_exec_of_stopped` (a child taken at its
    exec), then :meth:`syscall`, :meth:`write`, and always :meth:`release`.
    """

    def __init__(self, pid: int, tid: int, *, seized: bool) -> None:
        if ptrace.ARCH != "x86_64":
            raise NotImplementedError(
                f"syscall injection is implemented for x86_64, not {ptrace.ARCH}"
            )
        self.pid, self.tid, self.seized = pid, tid, seized
        self.saved: ptrace.UserRegs | None = None
        self.saved_sigmask = 0
        # (signal, thread-directed): re-raised at release exactly as they were sent
        self.deferred_signals: list[tuple[int, bool]] = []
        self.detached = False
        self.restored = False
        self.syscall_addr = 0
        self._rseq_cs_addr = 0
        self._rseq_cs = 0
        self.mem_fd = os.open(f"/proc/{pid}/mem", os.O_RDWR | os.O_CLOEXEC)

    # -- stopping ---------------------------------------------------------------------------
    @classmethod
    def seize(cls, pid: int, tid: int) -> Remote:
        """Attach to running thread ``tid`` of ``pid`` and stop it in ``get_signal()``.

        Raises ``OSError`` from ``PTRACE_SEIZE`` (EPERM: not permitted), ``ProcessLookupError``
        when it exits, ``ChildProcessError`` when it is stopped by job control.
        """
        remote = cls(pid, tid, seized=True)  # opens /proc/PID/mem first: nothing to undo
        try:
            ptrace.seize(tid, ptrace.PTRACE_O_TRACESYSGOOD)
        except BaseException:
            os.close(remote.mem_fd)
            raise
        try:
            ptrace.interrupt(tid)
            while True:
                stop = ptrace.wait_stop(tid)
                if stop.kind == "exited":
                    raise ProcessLookupError(errno.ESRCH, f"thread {tid} exited while attaching")
                if stop.kind == "event-stop" and stop.event == ptrace.PTRACE_EVENT_STOP:
                    break
                if stop.kind == "group-stop":
                    # Detaching from a group-stop leaves it stopped, as we found it.
                    ptrace.detach(tid, 0)
                    remote.seized = False
                    remote.detached = True
                    raise ChildProcessError(
                        errno.EBUSY, f"process {pid} is stopped by job control ({stop})"
                    )
                if stop.kind == "signal":
                    # A signal that raced our attach: deliver it exactly as without us.
                    ptrace.cont(tid, stop.sig)
                    continue
                ptrace.cont(tid, 0)
            remote._begin()
            return remote
        except BaseException:
            remote._abort()
            raise

    @classmethod
    def at_exec_of_stopped(cls, pid: int, timeout: float = 60.0) -> Remote:
        """Take our child ``pid`` at its next exec: it has stopped itself (SIGSTOP) just
        before; seize it, continue it, and return it stopped at ``PTRACE_EVENT_EXEC``, before
        the new program's first instruction. (No ``PTRACE_TRACEME`` in a ``preexec_fn``:
        forking a threaded Python process with one risks deadlock.)
        """
        deadline = time.monotonic() + timeout
        while True:  # WUNTRACED: a job-control stop of a child we do not trace yet
            got, status = os.waitpid(pid, os.WUNTRACED | os.WNOHANG)
            if got and not os.WIFSTOPPED(status):
                raise ProcessLookupError(errno.ESRCH, f"process {pid} exited before exec")
            if got:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(errno.ETIMEDOUT, f"process {pid} did not stop before exec")
            time.sleep(0.0005)
        ptrace.seize(pid, ptrace.PTRACE_O_TRACESYSGOOD | ptrace.PTRACE_O_TRACEEXEC)
        try:
            os.kill(pid, signal.SIGCONT)  # our unreaped child: the pid cannot be reused
            while True:
                stop = ptrace.wait_stop(pid, timeout=max(0.1, deadline - time.monotonic()))
                if stop.kind == "exited":
                    raise ProcessLookupError(
                        errno.ESRCH, f"process {pid} exited before exec (status {stop.sig})"
                    )
                if stop.kind == "event-stop" and stop.event == ptrace.PTRACE_EVENT_EXEC:
                    break
                ptrace.cont(pid, stop.sig if stop.kind == "signal" else 0)
            # The exec event is reported inside execve(); step to its syscall-exit stop so
            # that injected syscalls start from a finished one (as at a signal stop).
            ptrace.resume_to_syscall(pid)
            while (stop := ptrace.wait_stop(pid)).kind != "syscall":
                if stop.kind == "exited":
                    raise ProcessLookupError(errno.ESRCH, f"process {pid} died at exec")
                ptrace.resume_to_syscall(pid, stop.sig if stop.kind == "signal" else 0)
        except BaseException:
            _quiet_detach(pid)
            raise
        remote = cls(pid, pid, seized=True)
        try:
            # (no rseq to save: the kernel reports this stop before it clears the old
            # image's rseq registration, whose address means nothing in the new mm)
            remote._begin(rseq=False)
        except BaseException:
            remote._abort()
            raise
        return remote

    def _begin(self, *, rseq: bool = True) -> None:
        self.saved = ptrace.get_regs(self.tid)
        self.saved_sigmask = ptrace.get_sigmask(self.tid)
        ptrace.set_sigmask(self.tid, _U64)
        if rseq:
            self._save_rseq()
        self.syscall_addr = find_syscall_instruction(self.pid, self.mem_fd)

    def _save_rseq(self) -> None:
        # struct ptrace_rseq_configuration { u64 rseq_abi_pointer; u32 len, sig, flags, pad }
        conf = ctypes.create_string_buffer(24)
        try:
            ptrace._call(
                PTRACE_GET_RSEQ_CONFIGURATION, self.tid, 24, ctypes.c_void_p(ctypes.addressof(conf))
            )
        except OSError:
            return
        abi = struct.unpack_from("<Q", conf.raw)[0]
        if abi:
            self._rseq_cs_addr = abi + 8  # struct rseq: cpu_id_start, cpu_id, rseq_cs
            self._rseq_cs = struct.unpack("<Q", self.read(self._rseq_cs_addr, 8))[0]

    # -- memory and syscalls ----------------------------------------------------------------
    def read(self, addr: int, size: int) -> bytes:
        return os.pread(self.mem_fd, size, addr)

    def write(self, addr: int, data: bytes) -> None:
        if os.pwrite(self.mem_fd, data, addr) != len(data):
            raise OSError(errno.EIO, f"short write to {addr:#x} in process {self.pid}")

    def syscall(self, nr: int, *args: int) -> int:
        """Run syscall ``nr`` in the target; return its result, raising ``InjectionError``."""
        rc = self.raw_syscall(nr, *args)
        if -4096 < rc < 0:
            raise InjectionError(-rc, f"{os.strerror(-rc)} (syscall {nr} in process {self.pid})")
        return rc

    def raw_syscall(self, nr: int, *args: int) -> int:
        """Run syscall ``nr`` in the target and return the raw (signed) ``rax``."""
        assert self.saved is not None
        regs = self.saved.copy()
        a = [int(x) & _U64 for x in args] + [0] * (6 - len(args))
        regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9 = a
        regs.rax, regs.orig_rax, regs.rip = nr, _NO_SYSCALL, self.syscall_addr
        ptrace.set_regs(self.tid, regs)
        for _ in range(2):  # syscall-enter stop, then syscall-exit stop
            ptrace.resume_to_syscall(self.tid)
            self._wait_syscall_stop()
        return _signed(ptrace.get_regs(self.tid).rax)

    def _wait_syscall_stop(self) -> None:
        while True:
            stop = ptrace.wait_stop(self.tid)
            if stop.kind == "syscall":
                return
            if stop.kind == "exited":
                raise ProcessLookupError(errno.ESRCH, f"process {self.pid} died during injection")
            if stop.kind == "signal" and stop.sig in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL):
                # Only our borrowed rip can fault here; never deliver that to the target.
                raise OSError(
                    errno.EFAULT, f"injected syscall faulted in process {self.pid}: {stop}"
                )
            if stop.kind == "signal":
                # Unblockable (SIGSTOP) or forced: hold it back, re-raise it at release.
                try:
                    to_thread = ptrace.signal_is_thread_directed(self.tid)
                except OSError:
                    to_thread = False
                self.deferred_signals.append((stop.sig, to_thread))
            ptrace.resume_to_syscall(self.tid)

    # -- release ----------------------------------------------------------------------------
    def restore(self) -> None:
        """Give the thread back its registers, signal mask and rseq pointer, keep it stopped.

        A seized thread is parked in a fresh ``PTRACE_EVENT_STOP`` inside ``get_signal()``
        (module docstring, step 4): from there, even if pmviz dies and the kernel detaches it,
        it resumes exactly as it would have without us. Idempotent.
        """
        if self.restored or self.detached:
            return
        self.restored = True
        tid = self.tid
        if self._rseq_cs_addr:
            self.write(self._rseq_cs_addr, struct.pack("<Q", self._rseq_cs))
        if self.saved is not None:
            ptrace.set_regs(tid, self.saved)
            ptrace.set_sigmask(tid, self.saved_sigmask)
        if self.seized:
            ptrace.interrupt(tid)
            ptrace.cont(tid, 0)
            while True:
                stop = ptrace.wait_stop(tid)
                if stop.kind == "exited":
                    self.detached = True  # gone: nothing left to detach from
                    return
                if stop.kind == "event-stop" and stop.event == ptrace.PTRACE_EVENT_STOP:
                    return
                ptrace.cont(tid, stop.sig if stop.kind == "signal" else 0)

    def release(self) -> None:
        """Restore everything (if not done yet) and let the thread go."""
        try:
            if not self.detached:
                self.restore()
            if not self.detached:
                ptrace.detach(self.tid, 0)
        except ProcessLookupError:
            pass
        finally:
            self.detached = True
            if self.mem_fd >= 0:
                os.close(self.mem_fd)
                self.mem_fd = -1
            for sig, to_thread in self.deferred_signals:
                try:
                    if to_thread:  # to the borrowed thread, not to whichever thread takes it
                        tgkill(self.pid, self.tid, sig)
                    else:
                        os.kill(self.pid, sig)
                except OSError:
                    pass
            self.deferred_signals = []

    def _abort(self) -> None:
        """Best-effort release after an error of ours: never leave the thread stopped."""
        try:
            self.release()
        except OSError:
            _quiet_detach(self.tid)


def _quiet_detach(tid: int) -> None:
    try:
        ptrace.detach(tid, 0)
    except OSError:
        pass


def find_syscall_instruction(pid: int, mem_fd: int) -> int:
    """Address of a ``syscall`` instruction (``0f 05``) in executable memory of ``pid``.

    The vDSO (a few KiB, holding the clock fallbacks) is tried first, then the other
    executable mappings; ``[vsyscall]`` is never used (executing it faults on modern kernels).
    """
    with open(f"/proc/{pid}/maps") as f:
        lines = f.read().splitlines()
    spans = []
    for line in lines:
        parts = line.split()
        if len(parts) < 2 or "x" not in parts[1] or line.endswith("[vsyscall]"):
            continue
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        spans.append((0 if line.endswith("[vdso]") else 1, lo, hi))
    for _, lo, hi in sorted(spans):
        addr = lo
        while addr < hi:
            size = min(hi - addr, 1 << 20)
            try:
                chunk = os.pread(mem_fd, size + 1, addr)  # +1: an insn across the chunk edge
            except OSError:
                break
            i = chunk.find(b"\x0f\x05")
            if 0 <= i < size:
                return addr + i
            addr += size
    raise OSError(errno.ENOEXEC, f"no syscall instruction found in process {pid}")


# -- the two syscalls pmviz injects ---------------------------------------------------------
def create_uffd(remote: Remote) -> int:
    """``userfaultfd(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY)`` in the target; its fd.

    ``UFFD_USER_MODE_ONLY`` keeps it working for unprivileged targets whatever
    ``vm.unprivileged_userfaultfd`` says (write-protect tracking never needs kernel faults).
    """
    return remote.syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY)


def close_fd(remote: Remote, fd: int) -> int:
    """``close(fd)`` in the target; returns 0 or the target's errno."""
    rc = remote.raw_syscall(SYS_close, fd)
    return -rc if rc < 0 else 0


SYS_pidfd_getfd = 438
_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def take_fd(pid: int, fd: int) -> int:
    """A duplicate (``O_CLOEXEC``) of ``pid``'s file descriptor ``fd`` in this process.

    ``pidfd_getfd(2)`` (Linux >= 5.6) needs the same permission as ptrace attach.
    """
    pidfd = os.pidfd_open(pid)
    try:
        rc = _syscall(
            ctypes.c_long(SYS_pidfd_getfd),
            ctypes.c_long(pidfd),
            ctypes.c_long(fd),
            ctypes.c_long(0),
        )
        if rc < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"pidfd_getfd({pid}, {fd}): {os.strerror(err)}")
        return int(rc)
    finally:
        os.close(pidfd)
