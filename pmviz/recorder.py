"""Recording: periodic full-category scans of a process into a :class:`~pmviz.capture.Capture`.

One ``/proc/PID/pagemap`` stays open for the whole recording. Every tick takes, in order: the
scan (every VMA, no filter, every category the kernel knows: spec §9, so that any mask can be
applied later offline), the pages written since the previous tick (when a write source is on),
and ``/proc/PID/maps`` (stored only when its text changed). Ticks follow absolute deadlines
``t0 + k * interval``, so there is no drift; a tick that starts after its successor's deadline
skips the ticks it missed and records how many. A second thread writes the growing capture to
disk at least every ``flush_interval`` seconds (see ``pmviz.storage``).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from ._kernel import pagemap_scan as pms
from ._kernel import procfs
from .capture import Capture, CaptureBuilder, CaptureMeta
from .errors import CaptureError, Error, NoSuchProcess
from .features import features
from .maps import Vmas
from .regions import Regions
from .scanning import Pagemap, _full_mask, _translate_scan_error, check_range

__all__ = ["record", "Recorder", "WriteSource"]

WRITES_CHOICES = ("auto", "none", "uffd-wp", "soft-dirty")


class WriteSource(Protocol):
    """Where written sets come from (``pmviz.tracking`` / ``pmviz.softdirty`` / injection)."""

    mechanism: str
    pid: int | str

    def collect(self) -> Regions:
        """Pages written since the previous call."""
        ...

    def close(self) -> None: ...


class _Target:
    """The process being recorded: ``"self"``, an existing pid, or a command we launched."""

    def __init__(self, target: str | int | Sequence[str]) -> None:
        self.process: Any = None  # a Popen-like object when we launched the program
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
            pid = procfs.normalize_pid(target)
            if pid == "self":  # pragma: no cover - handled above
                raise AssertionError
            self.pid = self.real_pid = int(pid)
            self.command = _cmdline(self.real_pid)

    def launch(self, process: Any = None) -> None:
        if process is None:
            try:
                assert self.launch_command is not None
                process = subprocess.Popen(self.launch_command)
            except OSError as err:
                raise Error(f"cannot start {self.launch_command[0]!r}: {err.strerror}") from err
        self.process = process
        self.pid = self.real_pid = int(process.pid)

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
        if self.real_pid != os.getpid() and _has_new_mm(self.real_pid):
            # Our pagemap fd pins the old mm: ESRCH while the pid has an mm means execve().
            return "target exec'd a new program", None
        return "target exited", None


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
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


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


def _open_writes(target: _Target, writes: Any) -> tuple[Any, str]:
    """A write source for ``target`` (or None) and the reason/mechanism, per ``writes``.

    The mechanisms live in ``pmviz.tracking`` (in-process uffd-wp), ``pmviz.injection``
    (uffd-wp inside another process) and ``pmviz.softdirty``; they are imported lazily so a
    recording without write tracking needs none of them.
    """
    if writes is None or writes == "none":
        return None, "write tracking off (writes='none')"
    if not isinstance(writes, str):
        if not hasattr(writes, "collect"):
            raise TypeError(
                "writes must be a WriteSource (with collect()) or one of "
                f"{WRITES_CHOICES}, got {writes!r}"
            )
        return writes, getattr(writes, "mechanism", "custom")
    if writes not in WRITES_CHOICES:
        raise ValueError(f"writes must be one of {WRITES_CHOICES}, got {writes!r}")
    try:
        source, reason = _make_source(target, writes)
    except ImportError as err:
        source, reason = None, f"write tracking is not available in this pmviz ({err})"
    except Error as err:
        if writes != "auto":
            raise
        source, reason = None, f"no write tracking: {err}"
    if source is None and writes != "auto":
        raise Error(f"writes={writes!r} is not available for this target: {reason}")
    return source, reason


def _make_source(target: _Target, writes: str) -> tuple[Any, str]:
    if writes == "soft-dirty":
        from .softdirty import SoftDirtyTracker

        return SoftDirtyTracker(target.real_pid), "soft-dirty"
    if target.pid == "self":
        from .tracking import WriteTracker

        tracker = WriteTracker()
        return tracker, f"{tracker.mechanism}: in-process WriteTracker"
    if target.launch_command is not None and target.process is None:
        from .injection import track

        tracked = track(target.launch_command)
        target.launch(tracked.process)
        return tracked, f"{tracked.mechanism}: injected into the launched program"
    from .injection import open_write_source

    source, reason = open_write_source(target.real_pid)
    if source is not None and writes == "uffd-wp" and source.mechanism != "uffd-wp":
        source.close()
        return None, f"uffd-wp could not be set up ({reason})"
    return source, reason


class Recorder:
    """Record a process in a background thread; ``.capture`` is the live, growing result.

    Parameters
    ----------
    target : "self", int or list of str
        This process, a running process's pid, or a command to launch (``["prog", "arg"]``).
    interval : float
        Seconds between snapshots (``0`` = back to back, as fast as the scans go).
    duration : float, optional
        Stop after this many seconds.
    count : int, optional
        Stop after this many snapshots.
    out : str, optional
        Also write the capture to this ``NAME.pmviz`` directory, flushed at least every
        ``flush_interval`` seconds so that killing the recorder loses at most that much.
    writes : {"auto", "none", "uffd-wp", "soft-dirty"} or WriteSource
        Write tracking. ``"auto"`` uses the best mechanism available for the target and
        records without written sets (saying why in ``meta.extra["writes_reason"]``) when
        there is none; a named mechanism raises if it cannot be set up.
    ranges : list of (start, end), optional
        Address ranges to scan (default: the whole user address space).
    progress : bool
        Show a tqdm progress bar.
    overwrite : bool
        Replace an existing capture at ``out``.
    flush_interval : float
        Seconds between flushes to ``out``.

    Notes
    -----
    Recording ends at ``count`` / ``duration``, on :meth:`stop`, when the target exits, is
    killed or calls ``execve`` (our pagemap belongs to the old program), or when writing
    ``out`` fails; ``meta.end_reason`` says which. A program the recorder launched lives as
    long as its recording: if it is still running at the end it gets SIGTERM (SIGKILL after
    2 s), and ``meta.exit_status`` records its status. An attached pid is left running.
    With uffd-wp tracking, each scan goes through :func:`pmviz.swapped.resolve_swapped`
    (markers of armed pages otherwise read as SWAPPED).

    Examples
    --------
    >>> import pmviz
    >>> rec = pmviz.Recorder("self", interval=0.05, count=3, progress=False).start()
    >>> cap = rec.wait()
    >>> cap.n_snapshots
    3
    """

    def __init__(
        self,
        target: str | int | Sequence[str] = "self",
        *,
        interval: float = 0.1,
        duration: float | None = None,
        count: int | None = None,
        out: str | os.PathLike[str] | None = None,
        writes: Any = "auto",
        ranges: Sequence[tuple[int, int]] | None = None,
        progress: bool = True,
        overwrite: bool = False,
        flush_interval: float = 0.5,
    ) -> None:
        if not isinstance(interval, (int, float)) or not math.isfinite(interval) or interval < 0:
            raise ValueError(f"interval must be a finite number of seconds >= 0, got {interval!r}")
        if duration is not None and not duration > 0:
            raise ValueError(f"duration must be > 0 seconds, got {duration!r}")
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or count < 1
        ):
            raise ValueError(f"count must be a positive int, got {count!r}")
        self.interval_ns = int(round(interval * 1e9))
        self.duration_ns = None if duration is None else int(duration * 1e9)
        self.count = count
        self.out = None if out is None else os.fspath(out)
        self.progress = progress
        self.overwrite = overwrite
        self.flush_interval = flush_interval
        self._ranges = _parse_ranges(ranges)
        self._target = _Target(target)
        self._writes_arg = writes
        self._stop = threading.Event()
        self._done = threading.Event()
        self._stop_reason: str | None = None
        self.error: BaseException | None = None
        """What ended the recording abnormally (write error, scan error), if anything."""
        self._builder: CaptureBuilder | None = None
        self._thread: threading.Thread | None = None
        self._writer_thread: threading.Thread | None = None

    # -- public -------------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        return self._target.real_pid

    @property
    def process(self) -> Any:
        """The launched program (a ``subprocess.Popen``-like object), or None."""
        return self._target.process

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._done.is_set()

    @property
    def capture(self) -> Capture:
        """Everything recorded so far (a consistent view; grows while recording)."""
        if self._builder is None:
            raise RuntimeError("the recorder has not started; call start()")
        return self._builder.capture()

    def start(self) -> Recorder:
        """Open the target and start recording in a background thread; returns ``self``."""
        if self._thread is not None:
            raise RuntimeError("a Recorder records once; create a new one")
        source, reason = _open_writes(self._target, self._writes_arg)
        try:
            if self._target.launch_command is not None and self._target.process is None:
                self._target.launch()
            self._source = source
            self._pagemap = Pagemap(self._target.pid)
            meta = self._initial_meta(source, reason)
            self._builder = CaptureBuilder(meta, has_written=source is not None)
            self._writer = None
            if self.out is not None:
                from .storage import CaptureWriter

                self._writer = CaptureWriter(
                    self.out, meta, has_written=source is not None, overwrite=self.overwrite
                )
        except BaseException:
            if source is not None:
                source.close()
            self._kill_launched()
            raise
        self._thread = threading.Thread(target=self._run, name="pmviz-recorder", daemon=True)
        self._prefault_wanted = threading.Event()
        self._prefault_rows = (0, 0)
        threading.Thread(target=self._prefault_loop, name="pmviz-prefault", daemon=True).start()
        self._thread.start()
        if self._writer is not None:
            self._writer_thread = threading.Thread(
                target=self._write_loop, name="pmviz-writer", daemon=True
            )
            self._writer_thread.start()
        return self

    def request_stop(self, reason: str = "stopped") -> None:
        """Ask the recording to end (returns at once; safe in a signal handler)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop.set()

    def stop(self, reason: str = "stopped") -> Capture:
        """Stop recording, finish the file, and return the capture.

        Raises
        ------
        CaptureError
            Writing the file failed (for example the disk filled up); what was written is
            still readable, and ``self.capture`` holds everything recorded.
        """
        self.request_stop(reason)
        return self.wait()

    def wait(self, timeout: float | None = None) -> Capture:
        """Block until the recording ends (count, duration, target exit, stop()); see stop()."""
        if self._thread is None:
            raise RuntimeError("the recorder has not started; call start()")
        if not self._done.wait(timeout):
            raise TimeoutError(f"still recording after {timeout} s")
        self._thread.join()
        if self._writer_thread is not None:
            self._writer_thread.join()
        if self.error is not None:
            raise self.error
        return self.capture

    def __enter__(self) -> Recorder:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None and not self._done.is_set():
            self.stop()

    def __repr__(self) -> str:
        state = "recording" if self.running else "idle" if self._thread is None else "done"
        n = self._builder.n if self._builder is not None else 0
        return f"<Recorder pid={self.pid} {state} snapshots={n}>"

    # -- internals ----------------------------------------------------------------------------
    def _initial_meta(self, source: Any, reason: str) -> CaptureMeta:
        from . import __version__

        f = features()
        return CaptureMeta(
            pid=self._target.real_pid,
            command=self._target.command,
            kernel_release=f.kernel_release,
            page_size=pms.PAGE_SIZE,
            interval_ns=self.interval_ns,
            write_mechanism=getattr(source, "mechanism", "none") if source else "none",
            features=f.as_dict(),
            scan_mask=_full_mask().kernel_fields(),
            pmviz_version=__version__,
            extra={
                "writes_reason": reason,
                "ranges": [[a, b] for a, b in self._ranges],
                "flush_interval_s": self.flush_interval,
                # uffd-wp markers read as SWAPPED; pmviz.swapped clears them in each scan
                "swapped_resolved": getattr(source, "mechanism", "") == "uffd-wp",
            },
        )

    def _scan_into(self, builder: CaptureBuilder, room: int) -> tuple[int, int]:
        """Scan every range straight into the builder's next rows; (rows, resumed calls).

        One ioctl per range with an output vector of ``room`` regions returns exactly what an
        unbounded call returns (spec §3.4). Only when the vector comes back full do we resume,
        from the end of the last region (never from the stale ``walk_end``, gotcha 2), with
        twice the room.
        """
        fd = self._pagemap.fd
        n = retries = 0
        arg = pms.PmScanArg(size=96, **self._scan_fields)
        for lo, hi in self._ranges:
            arg.start, arg.end = lo, hi
            while True:
                rows = builder.region_tail(n + room)
                arg.vec = rows.ctypes.data + n * rows.itemsize
                arg.vec_len = room
                try:
                    rc = pms.ioctl_scan(fd, arg)
                except OSError as err:
                    raise _translate_scan_error(err, self._target.pid) from err
                n += rc
                if rc < room:
                    break
                retries += 1
                arg.start = int(rows["end"][n - 1])
                if arg.start >= hi:
                    break
                room *= 2
        return n, retries

    def _read_maps(self, previous: bytes | None) -> tuple[bytes, Vmas | None]:
        try:
            with open(f"/proc/{self._target.pid}/maps", "rb") as f:
                raw = f.read()
        except OSError as err:
            raise procfs.translate(err, self._target.pid, "maps") from err
        if raw == previous:
            return raw, None
        return raw, Vmas.parse(raw.decode("utf-8", "surrogateescape"))

    def _run(self) -> None:
        builder = self._builder
        assert builder is not None
        self._scan_fields = _full_mask().kernel_fields()
        bar = self._progress_bar()
        maps_raw: bytes | None = None
        room = 1 << 16
        interval = self.interval_ns
        reason = None
        t0 = time.monotonic_ns()
        wall0 = time.time_ns()
        builder.meta.extra["schedule_start_ns"] = t0  # deadline k is t0 + k * interval
        tick = 0  # index of the deadline the next snapshot belongs to
        skipped = 0
        resolve = self._swapped_resolver()
        try:
            while True:
                deadline = t0 + tick * interval
                elapsed = (deadline if interval else time.monotonic_ns()) - t0
                if self.duration_ns is not None and elapsed >= self.duration_ns:
                    reason = "duration reached"
                    break
                delay = deadline - time.monotonic_ns()
                if delay > 0 and self._stop.wait(delay / 1e9):
                    break
                if self._stop.is_set():
                    break
                if self._target.exit_status() is not None:
                    reason, status = self._target.end_reason()
                    builder.meta = builder.meta.replace(exit_status=status)
                    break
                t_snap = time.monotonic_ns()
                try:
                    n_rows, retries = self._scan_into(builder, room)
                    t_scanned = time.monotonic_ns()
                    if resolve is not None:
                        rows = builder.region_tail(n_rows)
                        resolved = resolve(rows)
                        n_rows = len(resolved)
                        rows[:n_rows] = resolved
                    written = None
                    if self._source is not None:
                        written = self._source.collect().array
                    t_collected = time.monotonic_ns()
                    maps_raw, vmas = self._read_maps(maps_raw)
                except NoSuchProcess:
                    reason, status = self._target.end_reason()
                    builder.meta = builder.meta.replace(exit_status=status)
                    break
                room = max(room, 1 << (2 * n_rows).bit_length())  # next scan fits in one call
                if builder.n == 0:
                    builder.meta = builder.meta.replace(
                        start_wall_ns=wall0 + (t_snap - t0), start_monotonic_ns=t_snap
                    )
                builder.append(
                    t_snap,
                    n_rows,
                    written,
                    vmas,
                    {
                        "scan_ns": t_scanned - t_snap,
                        "n_regions": n_rows,
                        "retries": retries,
                        "skipped_ticks": skipped,
                        "collect_ns": t_collected - t_scanned,
                        "snapshot_ns": time.monotonic_ns() - t_snap,
                    },
                )
                # room for the next scan, faulted in by the helper thread
                self._prefault_rows = (room, 2 * len(written) if written is not None else 0)
                self._prefault_wanted.set()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"{n_rows} regions", refresh=False)
                if self.count is not None and builder.n >= self.count:
                    reason = "count reached"
                    break
                # (the first deadline not yet passed; count the ones we overran)
                now = time.monotonic_ns()
                nxt = tick + 1 if interval == 0 else max(tick + 1, -((t0 - now) // interval))
                skipped = int(nxt - tick - 1)
                tick = int(nxt)
        except BaseException as err:  # surfaced by wait()/stop()
            self.error = err if isinstance(err, Error) else Error(f"recording failed: {err!r}")
            reason = f"error: {err}"
        finally:
            if reason is None:
                reason = self._stop_reason or "stopped"
            builder.meta = builder.meta.replace(end_reason=reason)
            self._end_launched()
            if bar is not None:
                bar.close()
            self._stop.set()
            if self._writer_thread is None:
                self._finish()

    def _prefault_loop(self) -> None:
        """Fault in the row store ahead of the scans, off the recording thread (2+ CPUs)."""
        builder = self._builder
        assert builder is not None
        while not self._done.is_set():
            if not self._prefault_wanted.wait(0.2):
                continue
            self._prefault_wanted.clear()
            builder.prefault(*self._prefault_rows)

    def _swapped_resolver(self) -> Any:
        """On uffd-wp tracking, markers read as SWAPPED (spec gotcha 9): clear them per scan."""
        if self._source is None or getattr(self._source, "mechanism", "") != "uffd-wp":
            return None
        try:
            from .swapped import resolve_swapped
        except ImportError:
            return None
        pm = self._pagemap
        return lambda regions: resolve_swapped(pm, Regions(regions)).array

    def _progress_bar(self) -> Any:
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        total = self.count
        if total is None and self.duration_ns is not None and self.interval_ns:
            total = math.ceil(self.duration_ns / self.interval_ns)
        return tqdm(total=total, unit="snap", desc=f"pmviz record pid {self.pid}")

    def _write_loop(self) -> None:
        writer = self._writer
        builder = self._builder
        assert writer is not None and builder is not None
        try:
            while not self._stop.wait(self.flush_interval):
                writer.flush(builder.capture())
        except CaptureError as err:
            self.error = err
            self._stop_reason = "disk full" if "ENOSPC" in str(err) else f"write error: {err}"
            self._stop.set()
        # the recording thread has ended (or will, having seen _stop): wait, then finish
        self._thread.join()  # type: ignore[union-attr]
        if self.error is not None and self._stop_reason and self._stop_reason != "stopped":
            builder.meta = builder.meta.replace(end_reason=self._stop_reason)
        self._finish()

    def _finish(self) -> None:
        builder = self._builder
        assert builder is not None
        try:
            if self._writer is not None:
                try:
                    if self.error is None:
                        self._writer.close(builder.capture(), builder.meta)
                    else:
                        self._writer.finish(builder.meta)
                except CaptureError as err:
                    builder.meta = builder.meta.replace(end_reason="disk full")
                    if self.error is None:
                        self.error = err
                    try:
                        self._writer.finish(builder.meta)
                    except CaptureError:
                        pass  # the capture stays readable; only end_reason is not on disk
        finally:
            if self._source is not None:
                try:
                    self._source.close()
                except Exception:  # noqa: BLE001 - closing must not hide the recording
                    pass
            self._pagemap.close()
            self._done.set()

    def _end_launched(self) -> None:
        """A program we launched lives as long as its recording: SIGTERM, then SIGKILL."""
        p = self._target.process
        if p is None:
            return
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self._builder is not None and self._builder.meta.exit_status is None:
            self._builder.meta = self._builder.meta.replace(exit_status=p.returncode)

    def _kill_launched(self) -> None:
        p = self._target.process
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()


def record(
    target: str | int | Sequence[str] = "self",
    *,
    interval: float = 0.1,
    duration: float | None = None,
    count: int | None = None,
    out: str | os.PathLike[str] | None = None,
    writes: Any = "auto",
    ranges: Sequence[tuple[int, int]] | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Capture:
    """Record a process until ``duration``/``count`` is reached or it exits; return the capture.

    Parameters are those of :class:`Recorder`; without ``duration`` and ``count`` a launched
    command is recorded until it exits. Ctrl-C ends the recording cleanly (``end_reason``
    "interrupted") and returns what was recorded.

    Returns
    -------
    Capture
        Also written to ``out`` when given (reopen it with ``pmviz.open``).

    Raises
    ------
    NoSuchProcess, AccessDenied, UnsupportedKernel
        The target cannot be scanned.
    CaptureError
        ``out`` exists, or the disk filled up (what was written is still readable).
    ValueError
        Bad interval, duration, count, ranges or writes; also when nothing would stop the
        recording (a pid or "self" with neither duration nor count).

    Examples
    --------
    >>> import pmviz
    >>> cap = pmviz.record("self", interval=0.02, count=5, progress=False)
    >>> len(cap.times)
    5
    """
    if duration is None and count is None and isinstance(target, (str, int)):
        raise ValueError(
            "give duration= or count= (only a launched command ends the recording by itself); "
            "use pmviz.Recorder for open-ended recording"
        )
    rec = Recorder(
        target,
        interval=interval,
        duration=duration,
        count=count,
        out=out,
        writes=writes,
        ranges=ranges,
        progress=progress,
        overwrite=overwrite,
    )
    rec.start()
    try:
        return rec.wait()
    except KeyboardInterrupt:
        return rec.stop("interrupted")
    finally:
        if rec.running:
            rec.stop("interrupted")
