"""``Recorder`` and ``record()``: the recording loop, its writer thread, and their ending."""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._kernel import pagemap_scan as pms
from .._kernel import procfs
from .._units import MAX_SECONDS
from ..capture import Capture, CaptureMeta
from ..errors import CaptureError, Error, NoSuchProcess, PmvizWarning
from ..features import features
from ..maps import Vmas
from ..regions import Regions
from ..scanning import _full_mask
from ..sidetables import (
    ACCESS_TELEMETRY,
    ACCESS_TELEMETRY_DTYPE,
    KNOWN_SIDE_TABLES,
    PROBED,
    REFERENCED,
)
from ._builder import CaptureBuilder, ScanPair
from ._target import _cmdline, _parse_ranges, _Target, _TargetPagemap
from ._writes import _open_writes, unarmed

__all__ = ["record", "Recorder"]


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
        Flushed rows leave memory (the recorder's memory stays flat); without ``out`` the
        recorder keeps the capture in memory as keyframes + changes, growing with what
        changes between snapshots.
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
        Seconds between flushes to ``out`` (the first snapshot is flushed at once).
    follow_exec : bool, optional
        Go on recording when the target calls ``execve``: reopen its pagemap, re-arm write
        tracking in the new image and record the exec in ``meta.extra["events"]``. Default:
        True for a launched command (a ``#!/usr/bin/env`` script or a shell wrapper ending in
        ``exec`` is recorded until the program it becomes exits), False for a pid (the
        recording ends at the exec, with that reason).
    max_size : int, optional
        With ``out``: keep the capture's parts under about this many bytes by dropping the
        oldest segments (a ring); ``meta.extra["dropped_snapshots"]`` and
        ``["first_snapshot"]`` say what was dropped, snapshot numbers stay as recorded.
    accessed : {"none", "vma", "probe"}
        Also record what the target *accessed* (reads too), per snapshot (``pmviz.accessed``):
        ``"vma"`` per-VMA referenced bytes (``clear_refs`` + ``smaps``: exact per VMA),
        ``"probe"`` a bounded random sample of resident pages paged out and checked at the
        next snapshot (per page, estimated, at the price of refaults; private anonymous
        memory needs swap). Stored as the ``referenced`` / ``probed`` side tables
        (``Capture.referenced_at``, ``probed_at``, ``accessed_at``).
    accessed_options : mapping, optional
        With ``accessed="probe"``: the budget and regions of :class:`pmviz.accessed.AccessProbe`
        (``pages_per_s`` default 4096, ``max_fraction`` default 0.02, ``anon``,
        ``min_regions``, ``max_regions``, ``seed``).

    Notes
    -----
    Recording ends at ``count`` / ``duration``, on :meth:`stop`, when the target exits or is
    killed, when it calls ``execve`` and ``follow_exec`` is off, or when writing ``out``
    fails; ``meta.end_reason`` says which. A program that ends before the first scan gives an
    empty, complete capture with its exit status. A program the recorder launched and that
    is still running when the recording reaches ``count``/``duration`` or is stopped gets
    SIGTERM (SIGKILL after 2 s); ``meta.exit_status`` records its status. An attached pid is
    left running.
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
        follow_exec: bool | None = None,
        max_size: int | None = None,
        accessed: str = "none",
        accessed_options: Mapping[str, Any] | None = None,
    ) -> None:
        from ..accessed import ACCESSED_MODES

        if accessed not in ACCESSED_MODES:
            raise ValueError(f"accessed must be one of {ACCESSED_MODES}, got {accessed!r}")
        if accessed_options and accessed != "probe":
            raise ValueError("accessed_options are the budget of accessed='probe'")
        self.accessed = accessed
        self._accessed_options = dict(accessed_options or {})
        self._access: Any = None
        if not isinstance(interval, (int, float)) or not 0 <= interval <= MAX_SECONDS:
            raise ValueError(
                f"interval must be a number of seconds in [0, {MAX_SECONDS:g}], got {interval!r}"
            )
        if duration is not None and not 0 < duration <= MAX_SECONDS:
            raise ValueError(f"duration must be in (0, {MAX_SECONDS:g}] seconds, got {duration!r}")
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
        if max_size is not None and (out is None or isinstance(max_size, bool) or max_size <= 0):
            raise ValueError(
                f"max_size needs out= and a positive number of bytes, got {max_size!r}"
            )
        self.max_size = max_size
        self._write_failed = False
        self._ranges = _parse_ranges(ranges)
        self._target = _Target(target)
        self.follow_exec = (
            self._target.launch_command is not None if follow_exec is None else bool(follow_exec)
        )
        self._writes_arg = writes
        self._stop = threading.Event()
        self._done = threading.Event()
        self._stop_reason: str | None = None
        self.error: BaseException | None = None
        """What ended the recording abnormally (write error, scan error), if anything."""
        self._builder: CaptureBuilder | None = None
        self._thread: threading.Thread | None = None
        self._writer_thread: threading.Thread | None = None
        self.schedule_start_ns: int | None = None
        """Deadline 0 of the tick schedule (``CLOCK_MONOTONIC`` ns; default: the start). Set
        before start() so that several recorders tick together (a session); a recorder that
        starts later then takes its first snapshot at once, as the current tick's."""
        self.out_for_pid: Any = None
        """A function pid -> ``out``, called by start() once the target's pid is known (a
        launched command): a session names each process's capture by its pid."""

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

    def mark(self, label: str, *, time_ns: int | None = None) -> None:
        """Record a named instant (``capture.marks``; stored with the capture).

        ``time_ns``: when it happened (``CLOCK_MONOTONIC`` ns, as ``time.monotonic_ns()``);
        now by default. A mark received from elsewhere (a FIFO, ``pmviz.mark``) keeps the
        time it was sent at.
        """
        if self._builder is None:
            raise RuntimeError("the recorder has not started; call start()")
        self._builder.mark(time.monotonic_ns() if time_ns is None else int(time_ns), label)

    def start(self) -> Recorder:
        """Open the target and start recording in a background thread; returns ``self``."""
        if self._thread is not None:
            raise RuntimeError("a Recorder records once; create a new one")
        self._target.open()
        self._refused: list[dict[str, Any]] = []
        try:
            source, reason = _open_writes(self._target, self._writes_arg, self._refused)
        except BaseException:
            self._target.close()
            raise
        if source is None and self._writes_arg == "auto":
            warnings.warn(f"recording without written sets: {reason}", PmvizWarning, stacklevel=2)
        try:
            if self._target.launch_command is not None and self._target.process is None:
                self._target.launch()
            self._source = source
            self._pagemap = _TargetPagemap(self._target)
            self._access = self._open_access()
            meta = self._initial_meta(source, reason)
            side = self._side_tables()
            self._builder = CaptureBuilder(meta, has_written=source is not None, side_tables=side)
            self._writer = None
            if self.out_for_pid is not None:
                self.out = os.fspath(self.out_for_pid(self._target.real_pid))
            if self.out is not None:
                from ..storage import CaptureWriter

                out = self.out
                self._writer = CaptureWriter(
                    out,
                    meta,
                    has_written=source is not None,
                    overwrite=self.overwrite,
                    max_size=self.max_size,
                    on_segment_full=self._builder.force_keyframe,
                    side_tables=side,
                )
                # flushed rows leave memory; the live view reads them back from the file
                self._builder.set_disk(lambda: _open_live(out))
        except BaseException:
            if source is not None:
                source.close()
            if self._access is not None:
                self._access.close()
            self._kill_launched()
            raise
        self._thread = threading.Thread(target=self._run, name="pmviz-recorder", daemon=True)
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

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the recording (and its file) to end, without building the capture;
        whether it has ended. ``self.error`` / ``self.meta`` then say how it ended.
        """
        if self._thread is None or not self._done.wait(timeout):
            return False
        self._thread.join()
        if self._writer_thread is not None:
            self._writer_thread.join()
        return True

    @property
    def meta(self) -> CaptureMeta:
        """The capture's metadata as it stands (``end_reason``, ``exit_status`` at the end)."""
        if self._builder is None:
            raise RuntimeError("the recorder has not started; call start()")
        return self._builder.meta

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
        from .. import __version__

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
                # VMAs the write source could not arm: their writes are not in written sets
                "unarmed": unarmed(source) or self._refused,
                "ranges": [[a, b] for a, b in self._ranges],
                "flush_interval_s": self.flush_interval,
                # uffd-wp markers read as SWAPPED; pmviz.swapped clears them in each scan
                "swapped_resolved": getattr(source, "mechanism", "") == "uffd-wp",
                **self._accessed_extra(),
            },
            accessed_mechanism=self.accessed,
        )

    # -- access sampling (accessed=) -----------------------------------------------------------
    def _open_access(self) -> Any:
        """The access source of ``accessed=`` (None for "none"); raises when it cannot be."""
        if self.accessed == "none":
            return None
        from ..accessed import open_access_source

        options = dict(self._accessed_options)
        if self.accessed == "probe":
            options.setdefault("interval", max(self.interval_ns / 1e9, 0.01))
        return open_access_source(self._target.real_pid, self.accessed, **options)

    def _side_tables(self) -> dict[str, np.dtype]:
        if self.accessed == "none":
            return {}
        table = REFERENCED if self.accessed == "vma" else PROBED
        return {table: KNOWN_SIDE_TABLES[table], ACCESS_TELEMETRY: ACCESS_TELEMETRY_DTYPE}

    def _accessed_extra(self) -> dict[str, Any]:
        if self.accessed == "none":
            return {"accessed_reason": "access sampling off (accessed='none')"}
        if self.accessed == "vma":
            return {"accessed_reason": "clear_refs + smaps Referenced per VMA"}
        a = self._access
        return {
            "accessed_reason": "pageout probes (process_madvise MADV_PAGEOUT)",
            "accessed_options": {
                "pages_per_s": a.pages_per_s,
                "max_fraction": a.max_fraction,
                "min_regions": a.min_regions,
                "max_regions": a.max_regions,
                "merge_threshold": a.merge_threshold,
                "anon": bool(self._accessed_options.get("anon", True)),
            },
        }

    def _collect_access(self, builder: CaptureBuilder, raw_scan: np.ndarray) -> int:
        """One access sample into the next snapshot's side tables (the probe reads the scan
        just taken, before swap resolution rewrites it); returns when it ended.
        """
        src = self._access
        t = time.monotonic_ns()
        if src is None:
            return t
        tel = np.zeros(1, ACCESS_TELEMETRY_DTYPE)
        if src.mechanism == "probe":
            scan = Regions._trusted(raw_scan, builder.meta.page_size)
            sample = src.collect(scan=scan)
            builder.add_side(PROBED, sample.rows)
            tel["refaults"] = int(sample.accessed_pages.sum())
        else:
            builder.add_side(REFERENCED, src.collect().rows)
        end = time.monotonic_ns()
        tel["accessed_ns"] = end - t
        builder.add_side(ACCESS_TELEMETRY, tel)
        return end

    def _reopen_access(self) -> None:
        """After an exec the old mm's files read nothing: sample the new image afresh."""
        if self._access is not None:
            with contextlib.suppress(Exception):
                self._access.close()
            self._access = self._open_access()

    def _scan_into(self, builder: CaptureBuilder | ScanPair, room: int) -> tuple[int, int]:
        """Scan every range straight into the builder's next rows; (rows, resumed calls).

        (Or into a :class:`ScanPair`, when the scan is post-processed before it is stored.)

        One ioctl per range with an output vector of ``room`` regions returns exactly what an
        unbounded call returns (spec §3.4). Only when the vector comes back full do we resume,
        from the end of the last region (never from the stale ``walk_end``, gotcha 2), with
        twice the room.
        """
        pm = self._pagemap.get()
        if pm is None:  # a launched program that is already gone
            raise NoSuchProcess(self._target.pid)
        fd = pm.fd
        n = retries = 0
        arg = pms.PmScanArg(size=96, **self._scan_fields)
        for lo, hi in self._ranges:
            arg.start, arg.end = lo, hi
            while True:
                rows = builder.region_tail(n + room, keep=n)  # (growing keeps the rows so far)
                arg.vec = rows.ctypes.data + n * rows.itemsize
                arg.vec_len = room
                try:
                    rc = pms.ioctl_scan(fd, arg)
                except OSError as err:
                    raise procfs.translate(err, self._target.pid, "pagemap (PAGEMAP_SCAN)") from err
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
        raw = self._target.read("maps")
        if raw == previous:
            return raw, None
        return raw, Vmas.parse(raw.decode("utf-8", "surrogateescape"))

    def _run(self) -> None:
        builder = self._builder
        assert builder is not None
        self._scan_fields = builder.meta.scan_mask  # scan with exactly what meta records
        bar = self._progress_bar()
        maps_raw: bytes | None = None
        room = 1 << 16
        interval = self.interval_ns
        reason = None
        t0 = time.monotonic_ns()
        wall0 = time.time_ns()
        tick = 0  # index of the deadline the next snapshot belongs to
        if self.schedule_start_ns is not None:  # a shared schedule (see schedule_start_ns)
            wall0 -= t0 - self.schedule_start_ns
            t0 = self.schedule_start_ns
            tick = max(0, (time.monotonic_ns() - t0) // interval) if interval else 0
        builder.meta.extra["schedule_start_ns"] = t0  # deadline k is t0 + k * interval
        skipped = 0
        resolve = self._swapped_resolver()
        raw = None if resolve is None else ScanPair()  # raw scans, compared before resolving
        if resolve is not None:
            from ..swapped import markers_only
        pure_last = False  # whether the last raw scan's resolution depended on it alone
        shares_maps = bool(getattr(self._source, "takes_maps", False))
        # (a scan of a few ranges says nothing about registrations outside them)
        whole = self._ranges == _parse_ranges(None)
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
                repeat = False  # the snapshot repeats the previous one (known from its raw scan)
                same = False  # the raw scan repeats the last raw scan
                try:
                    if raw is None:
                        n_rows, retries = self._scan_into(builder, room)
                        t_scanned = time.monotonic_ns()
                        self._collect_access(builder, builder.region_tail(n_rows))
                    else:
                        n_rows, retries = self._scan_into(raw, room)
                        t_scanned = time.monotonic_ns()
                        # (the probe reads the scan before swap resolution rewrites it)
                        self._collect_access(builder, raw.region_tail(n_rows))
                        # With no swap device on, every ambiguous page is a marker: the
                        # resolution depends on the raw scan alone, so a raw scan that repeats
                        # the last one resolves to the previous snapshot (no work at all).
                        pure = markers_only()
                        same = builder.n > 0 and raw.same_as_last(n_rows)
                        repeat = pure and pure_last and same
                        pure_last = pure
                        if repeat:
                            raw.done(n_rows)
                            n_rows = builder.last_rows
                        else:
                            # Resolution works in place (on a copy: the raw scan is kept for
                            # the next comparison); it may also merge rows, or split regions
                            # where markers and swap alternate, needing more rows (ask again).
                            scanned = builder.region_tail(n_rows, keep=0)
                            scanned[:] = raw.region_tail(n_rows)
                            raw.done(n_rows)
                            resolved = resolve(scanned)
                            if resolved is not scanned:
                                n_rows = len(resolved)
                                builder.region_tail(n_rows, keep=0)[:] = resolved
                    # maps first: a write source that takes them (uffd-wp) reads no maps
                    # of its own for this snapshot
                    new_raw, vmas = self._read_maps(maps_raw)
                    t_maps = time.monotonic_ns()
                    written = None
                    if self._source is not None:
                        written = (
                            # (a repeated raw scan: no registration changed since the last
                            # collect, which the tracker would otherwise ask the kernel)
                            self._source.collect(
                                maps=new_raw, scan_repeats=same and whole and vmas is None
                            )
                            if shares_maps
                            else self._source.collect()
                        ).array
                    maps_raw = new_raw
                    t_collected = time.monotonic_ns()
                except NoSuchProcess:
                    if self._followed_exec(builder):
                        maps_raw = None
                        self._reopen_access()
                        if raw is not None:
                            raw.forget()
                        continue  # the same tick, in the new program
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
                    None if repeat else n_rows,
                    written,
                    vmas,
                    {
                        "scan_ns": t_scanned - t_snap,
                        "n_regions": n_rows,
                        "retries": retries,
                        "skipped_ticks": skipped,
                        "collect_ns": t_collected - t_maps,
                        "snapshot_ns": time.monotonic_ns() - t_snap,
                    },
                )
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
            if isinstance(err, Error):
                self.error = err
            else:  # a bug of ours: keep its traceback for whoever reads self.error
                self.error = Error(f"recording failed: {err!r}")
                self.error.__cause__ = err
            reason = f"error: {err}"
        finally:
            if reason is None:
                reason = self._stop_reason or "stopped"
            builder.meta = builder.meta.replace(end_reason=reason)
            if self._source is not None:  # VMAs that appeared later may not be armable either
                with contextlib.suppress(Exception):
                    builder.meta.extra["unarmed"] = unarmed(self._source)
            self._end_launched()
            self._target.close()
            if bar is not None:  # (ending early leaves it short of its total: say why)
                bar.set_postfix_str(reason, refresh=False)
                bar.close()
            self._stop.set()
            # (not _writer_thread: start() may not have assigned it yet when this runs)
            if self._writer is None:
                self._finish()

    def _swapped_resolver(self) -> Any:
        """On uffd-wp tracking, markers read as SWAPPED (spec gotcha 9): clear them per scan."""
        if self._source is None or getattr(self._source, "mechanism", "") != "uffd-wp":
            return None
        try:
            from ..swapped import resolve_rows
        except ModuleNotFoundError as err:
            if err.name != "pmviz.swapped":
                raise
            return None
        target = self._pagemap

        def resolve(rows: Any) -> Any:
            pm = target.get()
            if pm is None:  # (only after a launched program has ended: the scan failed first)
                raise NoSuchProcess(self._target.pid)
            return resolve_rows(pm, rows)  # (the scan buffer: changed in place)

        return resolve

    def _followed_exec(self, builder: CaptureBuilder) -> bool:
        """If the target exec'd and we follow it: reopen its pagemap, record the event."""
        pid = self._target.real_pid
        if not self.follow_exec or not self._target.exec_happened():
            return False
        try:
            if self._pagemap.reopen() is None:
                return False
        except NoSuchProcess:
            return False
        # (the write source re-arms itself in the new image at its next collect())
        command = _cmdline(pid)
        event = {"time_ns": time.monotonic_ns(), "kind": "exec", "command": command}
        builder.meta.extra.setdefault("events", []).append(event)
        mark = getattr(builder, "mark", None)
        if mark is not None:
            mark(event["time_ns"], "exec " + " ".join(command or ["?"]))
        return True

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
            # the first snapshot goes to disk as soon as it exists, then every flush_interval
            while builder.n == 0 and not self._stop.wait(0.005):
                pass
            while True:
                self._flush_pending()
                if self._stop.wait(self.flush_interval):
                    break  # _finish flushes the rest once the recording thread has ended
        except CaptureError as err:
            self._write_failed = True
            if self.error is None:
                self.error = err
            self._stop_reason = "disk full" if "ENOSPC" in str(err) else f"write error: {err}"
            self._stop.set()
        # the recording thread has ended (or will, having seen _stop): wait, then finish
        self._thread.join()  # type: ignore[union-attr]
        if self._write_failed and self._stop_reason:
            builder.meta = builder.meta.replace(end_reason=self._stop_reason)
        self._finish()

    def _flush_pending(self) -> None:
        """Write what is in memory, then drop it from memory (the live view reads the file)."""
        writer, builder = self._writer, self._builder
        assert writer is not None and builder is not None
        first, pending = builder.pending()
        done = writer.flush(pending, first)
        builder.release(done)

    def _finish(self) -> None:
        builder = self._builder
        assert builder is not None
        try:
            if self._writer is not None:
                # Every snapshot taken goes to disk, whatever ended the recording (an error
                # included); `complete` says the recorder finished, end_reason why it ended
                # ("disk full" / "write error: ...": snapshots after the failure are missing).
                if not self._write_failed:
                    try:
                        self._flush_pending()
                        self._writer.merge()
                    except CaptureError as err:
                        reason = "disk full" if "ENOSPC" in str(err) else f"write error: {err}"
                        builder.meta = builder.meta.replace(end_reason=reason)
                        if self.error is None:
                            self.error = err
                try:
                    self._writer.finish(builder.meta)
                except CaptureError:
                    pass  # the capture stays readable; only end_reason is not on disk
        finally:
            for src in (self._source, self._access):
                if src is not None:
                    try:
                        src.close()
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
        """start() failed: end a program we launched, and let go of the target."""
        self._target.close()
        p = self._target.process
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()


def _open_live(path: str) -> Capture:
    from ..storage import open as open_capture

    return open_capture(path)


def _summarized(cap: Capture, out: str | os.PathLike[str] | None) -> Capture:
    if out is not None:  # summary.parquet (docs/capture-format.md §8); analysis sits above us
        from ..summary import summarize_recording

        summarize_recording(out)
    return cap


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
    follow_exec: bool | None = None,
    max_size: int | None = None,
    accessed: str = "none",
    accessed_options: Mapping[str, Any] | None = None,
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
        The target cannot be scanned, or ``accessed=`` cannot be set up (``"probe"`` of
        anonymous memory without swap, ``process_madvise`` without CAP_SYS_NICE; the message
        says what to do).
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
        follow_exec=follow_exec,
        max_size=max_size,
        accessed=accessed,
        accessed_options=accessed_options,
    )
    rec.start()
    try:
        return _summarized(rec.wait(), out)
    except KeyboardInterrupt:
        return _summarized(rec.stop("interrupted"), out)
    finally:
        if rec.running:
            rec.stop("interrupted")

