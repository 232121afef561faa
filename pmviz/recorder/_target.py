"""The process a recording is of: ``"self"``, a pid, or a command the recorder launches."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from .._kernel import pagemap_scan as pms
from .._kernel import procfs
from .._kernel.process import ProcessHandle, read_stat
from ..errors import Error, NoSuchProcess
from ..scanning import Pagemap, check_range


class _Target:
    """The process being recorded: ``"self"``, an existing pid, or a command we launched."""

    def __init__(self, target: str | int | Sequence[str]) -> None:
        self.process: Any = None  # a Popen-like object when we launched the program
        # pidfd + start time: a pid target that exits is never confused with a successor
        self.handle: ProcessHandle | None = None
        self.launch_command: list[str] | None = None
        self.command: list[str] | None = None  # what meta records
        if isinstance(target, str) and target == "self":
            self.pid: int | str = "self"
            self.real_pid = os.getpid()
            self.command = _cmdline(self.real_pid)
        elif isinstance(target, (list, tuple)):
            if not target or not all(isinstance(a, str) for a in target):
                raise TypeError(f"a command target must be a non-empty list of str, got {target!r}")
            self.launch_command = self.command = list(target)
            self.pid = self.real_pid = -1  # set by launch()
            if shutil.which(target[0]) is None:
                raise Error(
                    f"cannot start {target[0]!r}: no such program (or not executable) on PATH"
                )
        else:
            pid = procfs.normalize_pid(target)  # type: ignore[arg-type]  # str/int left
            if pid == "self":  # pragma: no cover - handled above
                raise AssertionError
            self.pid = self.real_pid = int(pid)
            self.command = _cmdline(self.real_pid)

    def open(self) -> None:
        """Take hold of a pid target (pidfd + start time) when the recording starts."""
        if self.handle is None and self.launch_command is None and self.pid != "self":
            self.handle = ProcessHandle(self.real_pid)

    def launch(self, process: Any = None) -> None:
        if process is None:
            cmd = self.launch_command
            assert cmd is not None
            try:
                process = subprocess.Popen(cmd)
            except OSError as err:
                raise Error(f"cannot start {cmd[0]!r}: {err.strerror}") from err
        self.process = process
        self.pid = self.real_pid = int(process.pid)
        try:
            self.handle = ProcessHandle(self.real_pid)
        except NoSuchProcess:
            self.handle = None  # already gone (and unreaped: its pid cannot be reused)

    def exit_status(self) -> int | None:
        """The launched program's status once it has exited (``-N`` = killed by signal N)."""
        if self.process is None:
            return None
        return self.process.poll()

    def end_reason(self) -> tuple[str, int | None]:
        """Why the target can no longer be scanned."""
        status = None
        if self.process is not None:
            try:
                status = self.process.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                status = None
        if status is not None:
            return _describe_status(status), status
        if self.exec_happened():
            # Our pagemap fd pins the old mm: ESRCH while the pid has an mm means execve().
            return "target exec'd a new program", None
        return "target exited", None

    def read(self, name: str) -> bytes:
        """``/proc/PID/name`` of the target (identity-checked when it is another process)."""
        if self.handle is not None:
            return self.handle.read(name)
        with procfs.open_fd(self.pid, name) as fd:
            return procfs.read_fd(fd, self.pid, name)

    def exec_happened(self) -> bool:
        """Whether the target is alive with a new program image (our pagemap went stale)."""
        h = self.handle
        if h is None or h.exited():
            return False
        return _has_new_mm(h.pid) and not h.exited()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


class _TargetPagemap:
    """The target's open pagemap, reopened when it execs (the old fd answers ESRCH).

    A launched program may be gone before its pagemap could be opened at all (``true``):
    then :meth:`get` returns None and the recording ends with the program's exit status.
    """

    def __init__(self, target: _Target) -> None:
        self._target = target
        self._pm: Pagemap | None = None
        self.get()

    def get(self) -> Pagemap | None:
        """The open pagemap (opening it if needed); None if a launched program has ended."""
        if self._pm is None:
            try:
                # (through the handle: never a process that reused the pid)
                self._pm = Pagemap(self._target.pid, process=self._target.handle)
            except NoSuchProcess:
                if self._target.process is None:
                    raise
                return None
        return self._pm

    def reopen(self) -> Pagemap | None:
        """After an exec: the new program's pagemap (None if it has already ended too)."""
        self.close()
        return self.get()

    def close(self) -> None:
        if self._pm is not None:
            self._pm.close()
            self._pm = None


def _describe_status(status: int) -> str:
    if status < 0:
        import signal

        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"target killed by {name}"
    return f"target exited with status {status}"


def _alive(pid: int) -> bool:
    try:
        return read_stat(pid).alive
    except Error:
        return False


def _has_new_mm(pid: int) -> bool:
    """Whether ``pid`` can be scanned through a fresh pagemap (an exiting process cannot)."""
    if not _alive(pid):
        return False
    try:
        with Pagemap(pid) as pm:
            pm.scan(0, pms.PAGE_SIZE)
    except Error:
        return False
    return True


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = procfs.read_text(pid, "cmdline")
    except Error:
        return None
    return [a for a in raw.split("\0") if a] or None


def _parse_ranges(ranges: Sequence[tuple[int, int]] | None) -> list[tuple[int, int]]:
    if ranges is None:
        return [check_range(None, None)]
    out = sorted(check_range(int(a), int(b)) for a, b in ranges)
    for (_, e), (s, _) in zip(out, out[1:]):
        if s < e:
            raise ValueError(f"ranges overlap at {s:#x}; give disjoint [start, end) pairs")
    return out
