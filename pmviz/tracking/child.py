"""Start a Python child whose writes the parent harvests (``spawn_tracked_python``).

Design: the child (``python -m pmviz.tracking ARGV``) creates a userfaultfd with async WP,
hands it to the parent over a ``SOCK_SEQPACKET`` socketpair (``SCM_RIGHTS``), closes its own
copy and waits. The parent registers and arms every writable VMA of memory of the child
*through that uffd* — ``UFFDIO_REGISTER`` and ``PAGEMAP_SCAN`` act on the uffd's mm and on the
pagemap's process, not on the caller's — and then lets the child run the script. New VMAs of
the child (mmaps, heap growth, thread stacks) need no handshake: every ``collect()`` reads the
child's maps and registers what appeared, again through the uffd. The parent holds the only
reference to the uffd, so the tracking state lives exactly as long as the parent's tracker.

The one thing the parent cannot do alone is harvest after the child is gone: with
``hold_at_exit=True`` the child, when its script ends, announces it and waits until the
parent's next ``collect()`` (or ``close()``) so the final writes are not lost.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import select
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from ..errors import AccessDenied, Error, NoSuchProcess, UnsupportedKernel
from ..regions import Regions
from ._engine import UffdTracker

__all__ = ["spawn_tracked_python", "TrackedChild"]

_ENV_FD = "PMVIZ_TRACKING_FD"
_ENV_HOLD = "PMVIZ_TRACKING_HOLD"
_MSG = 256


class TrackedChild:
    """A running Python child and the parent-side tracker of its writes (``WriteSource``).

    Attributes
    ----------
    proc : subprocess.Popen
        The child process.
    tracker : UffdTracker
        The engine (``registered``, ``skipped``).
    """

    mechanism = "uffd-wp"

    def __init__(self, proc: subprocess.Popen, tracker: UffdTracker, sock: socket.socket):
        self.proc = proc
        self.tracker = tracker
        self._sock = sock

    @property
    def pid(self) -> int:
        return self.proc.pid

    def collect(self) -> Regions:
        """Pages the child wrote since the previous collect (see ``WriteSource``).

        Raises
        ------
        NoSuchProcess
            The child has exited (and was not started with ``hold_at_exit=True``).
        """
        exiting = self._exit_announced()
        written = self.tracker.collect()
        if exiting:
            # Everything up to the child's exit is harvested now; let it go.
            with contextlib.suppress(OSError):
                self._sock.send(b"ack")
        return written

    def collect_until_exit(self, interval: float = 0.1) -> list[Regions]:
        """Collect every ``interval`` seconds until the child exits; one ``Regions`` per call.

        Start the child with ``hold_at_exit=True`` so the last interval is harvested before
        the child's memory disappears.
        """
        out: list[Regions] = []
        while True:
            exiting = self._exit_announced()
            try:
                out.append(self.tracker.collect())
            except NoSuchProcess:
                break
            if exiting:
                with contextlib.suppress(OSError):
                    self._sock.send(b"ack")
                break
            if self.proc.poll() is not None:
                break
            time.sleep(interval)
        self.proc.wait()
        return out

    def _exit_announced(self) -> bool:
        if self._sock.fileno() < 0:
            return False
        try:
            msg = self._sock.recv(_MSG, socket.MSG_DONTWAIT)
        except OSError:  # nothing sent yet (BlockingIOError), or the socket is gone
            return False
        return msg == b"exit"

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child to exit (collect first when started with ``hold_at_exit``)."""
        return self.proc.wait(timeout)

    def close(self) -> None:
        """Stop tracking (the child keeps running). Idempotent."""
        self.tracker.close()
        self._sock.close()  # releases a child that waits at exit

    def __enter__(self) -> TrackedChild:
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop tracking, kill and reap the child if it is still running, close its pipes."""
        self.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def __repr__(self) -> str:
        return f"<TrackedChild pid={self.pid} returncode={self.proc.returncode}>"


def spawn_tracked_python(
    argv: Sequence[str],
    *,
    ranges: Any = None,
    hold_at_exit: bool = False,
    python: str | None = None,
    timeout: float = 30.0,
    **popen_kwargs: Any,
) -> TrackedChild:
    """Start ``python ARGV`` with write tracking on; the parent harvests its writes.

    Parameters
    ----------
    argv : sequence of str
        What follows ``python`` on a command line: ``["script.py", "arg"]``,
        ``["-m", "module", ...]`` or ``["-c", "code", ...]``.
    ranges : optional
        Child addresses to track (see :class:`pmviz.WriteTracker`); ``None`` = every private
        writable VMA of the child, now and later.
    hold_at_exit : bool
        When the script ends, the child waits for the parent's next ``collect()`` (or
        ``close()``) so its last writes are harvested.
    python : str, optional
        The interpreter (default ``sys.executable``); it must be able to import pmviz.
    timeout : float
        Seconds to wait for the child to hand over its uffd.
    **popen_kwargs
        Passed to ``subprocess.Popen`` (``stdin``, ``stdout``, ``env``, ``cwd`` ...).

    Returns
    -------
    TrackedChild
        Its ``collect()`` returns the pages the child wrote since the previous call; the
        first call counts from the moment the script started.

    Raises
    ------
    UnsupportedKernel, AccessDenied
        The child could not create an async-WP userfaultfd.
    Error
        The child exited or timed out before handing over its uffd.

    Examples
    --------
    >>> from pmviz.tracking import spawn_tracked_python
    >>> code = "import numpy as np; a = np.ones(1 << 18)"  # writes 2 MiB
    >>> with spawn_tracked_python(["-c", code], hold_at_exit=True) as child:
    ...     intervals = child.collect_until_exit(interval=0.05)
    >>> sum(r.n_pages for r in intervals) >= 512
    True
    """
    if isinstance(argv, (str, bytes)) or not argv:
        raise TypeError("argv must be a non-empty list such as ['script.py'] or ['-c', code]")
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = dict(popen_kwargs.pop("env", None) or os.environ)
    env[_ENV_FD] = str(child.fileno())
    env[_ENV_HOLD] = "1" if hold_at_exit else "0"
    pass_fds = tuple(popen_kwargs.pop("pass_fds", ())) + (child.fileno(),)
    try:
        proc = subprocess.Popen(
            [python or sys.executable, "-m", "pmviz.tracking", *argv],
            env=env,
            pass_fds=pass_fds,
            **popen_kwargs,
        )
    except BaseException:
        parent.close()
        child.close()
        raise
    child.close()
    tracker = None
    try:
        uffd_fd = _receive_uffd(parent, proc, timeout)
        tracker = UffdTracker(proc.pid, uffd_fd, ranges, owns_fd=True)
        parent.send(b"go")
        return TrackedChild(proc, tracker, parent)
    except BaseException:
        if tracker is not None:
            tracker.close()
        parent.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        raise


def _receive_uffd(sock: socket.socket, proc: subprocess.Popen, timeout: float) -> int:
    ready, _, _ = select.select([sock], [], [], timeout)
    if not ready:
        raise Error(f"tracked child {proc.pid} did not hand over its userfaultfd in {timeout} s")
    msg, fds, _flags, _addr = socket.recv_fds(sock, _MSG, 1)
    if msg == b"uffd" and len(fds) == 1:
        return fds[0]
    for fd in fds:
        os.close(fd)
    if msg.startswith(b"error "):
        kind, _, text = msg[6:].decode(errors="replace").partition(" ")
        # The child's open_uffd() raised one of these (see run_child).
        if kind == "UnsupportedKernel":
            raise UnsupportedKernel("uffd-wp-async", text)
        if kind == "AccessDenied":
            raise AccessDenied(None, text)
        raise Error(text)
    proc.wait()
    raise Error(
        f"tracked child {proc.pid} exited (code {proc.returncode}) before handing over its "
        "userfaultfd; is pmviz importable by its interpreter?"
    )


# -- the child side (``python -m pmviz.tracking``) -----------------------------------------------


def run_child(argv: list[str]) -> None:  # pragma: no cover - runs in the child
    """Entry point of ``python -m pmviz.tracking ARGV`` (started by spawn_tracked_python)."""
    from ._engine import open_uffd

    if _ENV_FD not in os.environ or not argv:
        sys.exit(
            "usage: python -m pmviz.tracking (script.py | -m module | -c code) [args...]\n"
            "(started by pmviz.tracking.spawn_tracked_python, which passes "
            f"{_ENV_FD})"
        )
    sock = socket.socket(fileno=int(os.environ.pop(_ENV_FD)))
    hold = os.environ.pop(_ENV_HOLD, "0") == "1"
    try:
        fd = open_uffd()
    except Error as err:
        sock.send(f"error {type(err).__name__} {err}".encode()[:_MSG])
        sys.exit(1)
    socket.send_fds(sock, [b"uffd"], [fd])
    os.close(fd)  # the parent's copy keeps the tracking state alive
    if sock.recv(_MSG) != b"go":
        sys.exit(1)  # the parent gave up
    if not hold:
        sock.close()
    namespace: dict = {}
    try:
        namespace = _run_target(argv)
    finally:
        if hold:
            with contextlib.suppress(OSError):
                sock.send(b"exit")
                sock.recv(_MSG)  # the parent's ack (after its final harvest) or EOF
            sock.close()
        del namespace  # the script's globals stay alive until the final harvest


def _run_target(argv: list[str]) -> dict:  # pragma: no cover - runs in the child
    if argv[0] == "-c":
        sys.argv = ["-c", *argv[2:]]
        sys.path.insert(0, "")
        code = compile(argv[1], "<string>", "exec")
        namespace = {"__name__": "__main__", "__builtins__": __builtins__}
        exec(code, namespace)
        return namespace
    elif argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        sys.path.insert(0, os.getcwd())
        return runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(argv)
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
        return runpy.run_path(argv[0], run_name="__main__")
