"""ptrace(2) through ctypes: the requests syscall injection needs, raw and untranslated.

Every call here must come from the thread that attached (the kernel ties a tracee to the
tracing *thread*); ``pmviz.injection`` routes them through one dedicated tracer thread.
Errors are ``OSError``; ``pmviz.injection`` turns them into pmviz exceptions with a remedy.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")

PTRACE_CONT = 7
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_DETACH = 17
PTRACE_SYSCALL = 24
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETSIGINFO = 0x4202
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_GETSIGMASK = 0x420A
PTRACE_SETSIGMASK = 0x420B

PTRACE_O_TRACESYSGOOD = 0x1
PTRACE_O_TRACEEXEC = 0x10
PTRACE_EVENT_EXEC = 4
PTRACE_EVENT_STOP = 128

WALL = 0x40000000  # __WALL: wait for clone (non-leader) threads too
SYSCALL_TRAP = signal.SIGTRAP | 0x80  # syscall-stop signal with PTRACE_O_TRACESYSGOOD

ARCH = platform.machine()

_libc = ctypes.CDLL(None, use_errno=True)
_ptrace = _libc.ptrace
_ptrace.restype = ctypes.c_long
_ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]


class UserRegs(ctypes.Structure):
    """x86-64 ``struct user_regs_struct`` (``sys/user.h``), field names verbatim."""

    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax "
            "rip cs eflags rsp ss fs_base gs_base ds es fs gs"
        ).split()
    ]

    def copy(self) -> UserRegs:
        out = UserRegs()
        ctypes.memmove(ctypes.byref(out), ctypes.byref(self), ctypes.sizeof(self))
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UserRegs):
            return NotImplemented
        return bytes(self) == bytes(other)

    __hash__ = None  # type: ignore[assignment]


def _call(request: int, tid: int, addr: int = 0, data: int | ctypes.c_void_p = 0) -> int:
    rc = _ptrace(
        request,
        tid,
        ctypes.c_void_p(addr),
        data if isinstance(data, ctypes.c_void_p) else ctypes.c_void_p(data),
    )
    if rc == -1:
        err = ctypes.get_errno()
        if err:
            raise OSError(err, f"ptrace({request:#x}, {tid}): {os.strerror(err)}")
    return int(rc)


def seize(tid: int, options: int = 0) -> None:
    _call(PTRACE_SEIZE, tid, 0, options)


def interrupt(tid: int) -> None:
    _call(PTRACE_INTERRUPT, tid)


def set_options(tid: int, options: int) -> None:
    _call(PTRACE_SETOPTIONS, tid, 0, options)


def cont(tid: int, sig: int = 0) -> None:
    _call(PTRACE_CONT, tid, 0, sig)


def resume_to_syscall(tid: int, sig: int = 0) -> None:
    """``PTRACE_SYSCALL``: run until the next syscall entry or exit."""
    _call(PTRACE_SYSCALL, tid, 0, sig)


def detach(tid: int, sig: int = 0) -> None:
    _call(PTRACE_DETACH, tid, 0, sig)


SI_TKILL = -6  # si_code of a signal sent to one thread (tgkill, tkill, pthread_kill)


def signal_is_thread_directed(tid: int) -> bool:
    """At a signal-delivery stop: whether the signal was sent to this thread only."""
    info = ctypes.create_string_buffer(128)  # siginfo_t: si_signo, si_errno, si_code, ...
    _call(PTRACE_GETSIGINFO, tid, 0, ctypes.c_void_p(ctypes.addressof(info)))
    return int.from_bytes(info.raw[8:12], "little", signed=True) == SI_TKILL


def get_regs(tid: int) -> UserRegs:
    regs = UserRegs()
    _call(PTRACE_GETREGS, tid, 0, ctypes.c_void_p(ctypes.addressof(regs)))
    return regs


def set_regs(tid: int, regs: UserRegs) -> None:
    _call(PTRACE_SETREGS, tid, 0, ctypes.c_void_p(ctypes.addressof(regs)))


def get_sigmask(tid: int) -> int:
    mask = ctypes.c_uint64()
    _call(PTRACE_GETSIGMASK, tid, 8, ctypes.c_void_p(ctypes.addressof(mask)))
    return int(mask.value)


def set_sigmask(tid: int, mask: int) -> None:
    """Set the tracee's blocked-signal mask (SIGKILL/SIGSTOP stay unblockable)."""
    value = ctypes.c_uint64(mask & (1 << 64) - 1)
    _call(PTRACE_SETSIGMASK, tid, 8, ctypes.c_void_p(ctypes.addressof(value)))


@dataclass(frozen=True)
class Stop:
    """What ``waitpid`` reported for one tracee."""

    kind: str  # "syscall", "event-stop", "group-stop", "signal", "exited"
    sig: int = 0  # stop signal, or the exit code / killing signal for "exited"
    event: int = 0
    status: int = 0

    def __str__(self) -> str:
        name = signal.Signals(self.sig & 0x7F).name if 0 < (self.sig & 0x7F) < 65 else self.sig
        return f"{self.kind}({name}, event={self.event})"


_GROUP_STOP_SIGNALS = {signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU}


WAIT_TIMEOUT = 10.0
"""Seconds :func:`wait_stop` waits by default: a thread in uninterruptible sleep (``D``: a
vfork parent, a stuck NFS read) reaches no ptrace stop until it wakes, maybe never."""


def wait_stop(tid: int, timeout: float | None = WAIT_TIMEOUT) -> Stop:
    """Wait until ``tid`` changes state and classify the stop (man 2 ptrace, "Stopped states").

    Raises ``TimeoutError`` (an ``OSError``, errno ``ETIMEDOUT``) when nothing happens within
    ``timeout`` seconds (``None``: wait forever). waitpid has no timeout and a pidfd only
    signals exit, not ptrace stops: poll with ``WNOHANG``, backing off from 50 µs to 5 ms.
    """
    if timeout is None:
        _, status = os.waitpid(tid, WALL)
    else:
        deadline = time.monotonic() + timeout
        pause = 50e-6
        while True:
            got, status = os.waitpid(tid, WALL | os.WNOHANG)
            if got:
                break
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    errno.ETIMEDOUT,
                    f"thread {tid} reached no ptrace stop within {timeout:g} s (is it in "
                    "uninterruptible sleep, state D?)",
                )
            time.sleep(pause)
            pause = min(pause * 2, 5e-3)
    if os.WIFEXITED(status):
        return Stop("exited", os.WEXITSTATUS(status), status=status)
    if os.WIFSIGNALED(status):
        return Stop("exited", -os.WTERMSIG(status), status=status)
    sig = os.WSTOPSIG(status)
    event = status >> 16
    if sig == SYSCALL_TRAP:
        return Stop("syscall", sig, status=status)
    if event == PTRACE_EVENT_STOP:
        kind = "group-stop" if sig in _GROUP_STOP_SIGNALS else "event-stop"
        return Stop(kind, sig, event, status)
    if event:
        return Stop("event-stop", sig, event, status)
    return Stop("signal", sig, status=status)


class TracerThread:
    """One thread that issues every ptrace request of a tracker, in order."""

    def __init__(self, name: str) -> None:
        self._queue: SimpleQueue[tuple[Callable[[], Any], Future] | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, future = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as err:  # handed to the caller's thread
                    future.set_exception(err)

    def submit(self, fn: Callable[[], T]) -> Future:
        future: Future = Future()
        self._queue.put((fn, future))
        return future

    def call(self, fn: Callable[[], T]) -> T:
        if threading.current_thread() is self._thread:
            return fn()
        return self.submit(fn).result()

    def stop(self, *, wait: bool = True) -> None:
        """End the thread after the requests already queued (``wait``: join it)."""
        self._queue.put(None)
        if wait and threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)
