"""Phases on the time axis: ``pmviz.mark("sort")`` in a recorded program, read by the recorder.

A mark is a named instant (:class:`pmviz.capture.Mark`: ``CLOCK_MONOTONIC`` nanoseconds, the
clock of the capture's ``time_ns``, and a label). A recorded program sends marks with
:func:`mark`; the recorder hears them on a FIFO whose path is in the environment variable
``PMVIZ_MARKS`` (set by ``pmviz record --marks FIFO`` for the command it launches, and by the
``%%pmviz`` cell magic for the notebook's own kernel). Any program can write marks without
pmviz: one line per mark, either ``label`` (timed when the recorder reads it) or
``<monotonic_ns> label`` (``clock_gettime(CLOCK_MONOTONIC)`` in nanoseconds, exact; never
the wall clock)::

    echo sort > "$PMVIZ_MARKS"          # from a shell script

Lines of at most ``PIPE_BUF`` (4096) bytes are written atomically, so several threads or
processes may share one FIFO.

:func:`between` cuts a capture to the snapshots of one phase (``between(cap, "fill",
"sort")``); :func:`capture_marks` reads a capture's marks.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import select
import stat
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .capture import Capture, Mark
from .errors import PmvizWarning

__all__ = ["ENV", "mark", "MarkReader", "MarkRecording", "record_marks", "capture_marks", "between"]

ENV = "PMVIZ_MARKS"
"""The environment variable naming the FIFO a recorder reads marks from."""

_PIPE_BUF = 4096


class UnknownMarkError(KeyError, ValueError):
    """No mark with that label in the capture (a ``KeyError`` and a ``ValueError``)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


_LINE = re.compile(rb"^\s*(\d+)\s+(.*?)\s*$")
_warned: set[str] = set()
_local: list[Callable[[int, str], None]] = []
_local_lock = threading.Lock()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, PmvizWarning, stacklevel=3)


def mark(label: str) -> None:
    """Mark the start of a phase of this program's recording (a no-op when nothing records).

    The mark goes to every in-process listener (a ``%%pmviz`` cell or :func:`record_marks` in
    this process) and to the FIFO named by ``$PMVIZ_MARKS``. It costs one ``open``/``write``/
    ``close`` (a few microseconds) and never blocks: when nobody reads the FIFO the mark is
    dropped with a single warning.

    Parameters
    ----------
    label : str
        The phase's name (one line; newlines are replaced by spaces).

    Examples
    --------
    >>> import pmviz
    >>> pmviz.mark("fill")  # doctest: +SKIP
    """
    t = time.monotonic_ns()
    label = " ".join(str(label).splitlines()).strip()
    if not label:
        raise ValueError("a mark needs a non-empty label")
    with _local_lock:
        listeners = list(_local)
    for callback in listeners:
        callback(t, label)
    path = os.environ.get(ENV)
    if not path:
        if not listeners:
            _warn_once(
                "unset",
                f"pmviz.mark({label!r}): nothing records marks here (${ENV} is not set); "
                "marks are ignored",
            )
        return
    data = f"{t} {label}".encode("utf-8", "replace")[: _PIPE_BUF - 1] + b"\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        why = "no recorder is reading it" if err.errno == errno.ENXIO else err.strerror
        _warn_once(path, f"pmviz.mark({label!r}): cannot send marks to {path} ({why}); ignored")
        return
    try:
        os.write(fd, data)
    except BlockingIOError:
        _warn_once(path + ":full", f"pmviz.mark: the FIFO {path} is full; a mark was dropped")
    finally:
        os.close(fd)


def _add_listener(callback: Callable[[int, str], None]) -> None:
    with _local_lock:
        _local.append(callback)


def _remove_listener(callback: Callable[[int, str], None]) -> None:
    with _local_lock:
        with contextlib.suppress(ValueError):
            _local.remove(callback)


def parse_line(line: bytes, now_ns: int) -> Mark | None:
    """One FIFO line as a mark: ``<monotonic_ns> label`` or ``label`` (timed ``now_ns``)."""
    m = _LINE.match(line)
    if m is not None and m.group(2):
        return Mark(int(m.group(1)), m.group(2).decode("utf-8", "replace"))
    text = line.decode("utf-8", "replace").strip()
    return Mark(now_ns, text) if text else None


class MarkReader:
    """A thread reading marks from a FIFO and handing each to ``callback(mark)``.

    The FIFO is created (mode 0600) when ``path`` does not exist, and removed again by
    :meth:`close`; an existing FIFO is used as is. The reader holds a write end of its own, so
    writers may come and go (each ``pmviz.mark`` opens and closes it) without an end of file.

    Parameters
    ----------
    path : str
        The FIFO.
    callback : callable
        Called with each :class:`~pmviz.capture.Mark`, on the reader thread.
    """

    def __init__(self, path: str | os.PathLike[str], callback: Callable[[Mark], Any]) -> None:
        self.path = os.fspath(path)
        self.callback = callback
        self._created = False
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            os.mkfifo(self.path, 0o600)
            self._created = True
        else:
            if not stat.S_ISFIFO(st.st_mode):
                raise ValueError(f"{self.path} exists and is not a FIFO; give a new path")
        self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self._keep = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._buf = b""
        self._thread = threading.Thread(target=self._run, name="pmviz-marks", daemon=True)
        self._closed = False

    def start(self) -> MarkReader:
        self._thread.start()
        return self

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                return
            self._buf += chunk
            *lines, self._buf = self._buf.split(b"\n")
            now = time.monotonic_ns()
            for line in lines:
                m = parse_line(line, now)
                if m is None:
                    continue
                try:
                    self.callback(m)
                except Exception as err:  # noqa: BLE001 - one bad mark must not end the reader
                    _warn_once(
                        f"callback:{self.path}", f"a mark from {self.path} was lost: {err!r}"
                    )

    def _run(self) -> None:
        while True:
            ready, _, _ = select.select([self._fd, self._wake_r], [], [])
            self._drain()
            if self._wake_r in ready:
                return

    def close(self) -> None:
        """Read what is left in the FIFO, stop the thread, remove a FIFO we created."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            os.write(self._wake_w, b"x")
            self._thread.join()
        else:
            self._drain()
        for fd in (self._fd, self._keep, self._wake_r, self._wake_w):
            os.close(fd)
        if self._created:
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def __enter__(self) -> MarkReader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class MarkRecording:
    """Marks for one recording, from a FIFO and from ``pmviz.mark`` in this process.

    Made by :func:`record_marks`; :attr:`marks` lists what arrived, in order. Each mark also
    goes to ``recorder.mark(label, time_ns=...)`` (or ``recorder.mark(label)``) when the
    recorder has that method (then the capture stores it); otherwise to ``meta.extra["marks"]`` of its live capture, which the
    file keeps and :func:`capture_marks` reads.
    """

    def __init__(self, recorder: Any = None, path: str | os.PathLike[str] | None = None) -> None:
        self.recorder = recorder
        self._recorder_mark = getattr(recorder, "mark", None)
        self._mark_takes_time = False
        if self._recorder_mark is not None:
            import inspect

            params = inspect.signature(self._recorder_mark).parameters
            self._mark_takes_time = "time_ns" in params
        self.marks: list[Mark] = []
        self.path = None if path is None else os.fspath(path)
        self._lock = threading.Lock()
        self._reader = None if self.path is None else MarkReader(self.path, self._add).start()
        self._saved_env = os.environ.get(ENV)
        if self.path is not None:
            # for programs launched from here (pmviz record -- CMD): they inherit it
            os.environ[ENV] = self.path
        _add_listener(self._local)
        self._closed = False

    def _local(self, t: int, label: str) -> None:
        self._add(Mark(t, label))

    def _add(self, m: Mark) -> None:
        with self._lock:
            self.marks.append(m)
        rec = self.recorder
        if rec is None:
            return
        if self._recorder_mark is not None:
            if self._mark_takes_time:
                self._recorder_mark(m.label, time_ns=m.time_ns)
            else:  # timed by the recorder when it gets it (a few microseconds later)
                self._recorder_mark(m.label)
            return
        with contextlib.suppress(RuntimeError):  # not started yet: kept in self.marks only
            extra = rec.capture.meta.extra  # the live meta's dict: written with the capture
            extra.setdefault("marks", []).append([m.time_ns, m.label])

    def close(self) -> list[Mark]:
        """Stop listening; returns the marks, sorted by time."""
        if not self._closed:
            self._closed = True
            _remove_listener(self._local)
            if self._reader is not None:
                self._reader.close()
            if self.path is not None:
                if self._saved_env is None:
                    os.environ.pop(ENV, None)
                else:
                    os.environ[ENV] = self._saved_env
        return sorted(self.marks)

    def apply(self, capture: Capture) -> Capture:
        """Add the marks the capture does not have yet to ``capture.marks``; returns it."""
        have = set(capture.marks)
        capture.marks = sorted(have | set(self.marks))
        return capture

    def __enter__(self) -> MarkRecording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def record_marks(recorder: Any = None, path: str | os.PathLike[str] | None = None) -> MarkRecording:
    """Collect marks for ``recorder`` from the FIFO ``path`` and from this process.

    Sets ``$PMVIZ_MARKS`` to ``path`` until :meth:`MarkRecording.close`, so that commands
    launched meanwhile send their marks there.

    Examples
    --------
    >>> import pmviz
    >>> from pmviz.marks import record_marks
    >>> rec = pmviz.Recorder(["python3", "work.py"], interval=0.05)  # doctest: +SKIP
    >>> with record_marks(rec, "/tmp/work.marks") as marks:  # doctest: +SKIP
    ...     cap = marks.apply(rec.start().wait())
    """
    return MarkRecording(recorder, path)


def capture_marks(capture: Capture) -> list[Mark]:
    """A capture's marks sorted by time: ``capture.marks`` and any kept in ``meta.extra``."""
    extra = capture.meta.extra.get("marks") or []
    both = set(capture.marks) | {Mark(int(t), str(label)) for t, label in extra}
    return sorted(both)


def between(capture: Capture, start: str, end: str | None = None) -> Capture:
    """The part of a capture from mark ``start`` to mark ``end`` (a phase).

    Keeps the snapshots taken at or after the first ``start`` mark and before the first
    ``end`` mark after it, plus the first snapshot at or after ``end``: its written set holds
    the phase's last writes. Without ``end`` (or when that mark never came) the phase runs to
    the end of the capture.

    Parameters
    ----------
    capture : Capture
    start, end : str
        Mark labels.

    Returns
    -------
    Capture
        ``capture.slice(...)`` of the phase, with the marks from ``start`` to its last
        snapshot.

    Raises
    ------
    UnknownMarkError
        There is no ``start`` mark (the message lists the labels there are); it is both a
        ``KeyError`` and a ``ValueError``.

    Examples
    --------
    >>> from pmviz.marks import between
    >>> sort_phase = between(cap, "sort", "done")  # doctest: +SKIP
    """
    marks = capture_marks(capture)
    ta = next((m.time_ns for m in marks if m.label == start), None)
    if ta is None:
        have = sorted({m.label for m in marks})
        raise UnknownMarkError(f"no mark {start!r} in this capture (marks: {have or 'none'})")
    tb = None
    if end is not None:
        tb = next((m.time_ns for m in marks if m.label == end and m.time_ns >= ta), None)
    t = capture.time_ns
    if not t.size:
        return capture.select(slice(0, 0))
    t0 = (ta - int(t[0])) / 1e9
    t1 = None
    if tb is not None:
        i = int(np.searchsorted(t, tb, side="left"))  # first snapshot at or after the end
        if i < t.size:
            # a hair past that snapshot's time: slice() keeps times < t1
            t1 = float(capture.times[i]) + 1e-9
    out = capture.slice(t0, t1)
    # the phase's own marks, its start mark included (it comes before the first snapshot kept)
    hi = int(out.time_ns[-1]) if out.n_snapshots else ta
    out.marks = [m for m in marks if ta <= m.time_ns <= hi]
    return out
