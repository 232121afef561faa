"""``%load_ext pmviz``: the ``%%pmviz`` cell magic and the ``%pmviz`` line magic.

``%%pmviz`` records the notebook's own kernel process while the cell runs and shows what the
cell did to memory: written and resident totals, the heatmap of the cell's run with the
notebook's objects named on the address axis, and the VMAs it wrote most::

    %load_ext pmviz

    %%pmviz --interval 20ms
    a = np.zeros(8_000_000)
    a[:] = 1.0

The scanning runs in a helper process (``python -m pmviz.magic``), not in the kernel: a
recorder inside the kernel would write memory of its own at every snapshot and appear in
its own picture. The helper attaches to the kernel as ``pmviz record --pid`` does (write
tracking by injecting a userfaultfd, ``pmviz.injection``); the kernel allows that with
``PR_SET_PTRACER`` where Yama restricts ptrace to descendants. Where tracking cannot be set
up the recording has present/swapped pages only and says why.

Start and stop are synchronised: the cell runs only after the helper has taken its first
snapshot (the state just before the cell), and the helper stops after a snapshot taken once
the cell has ended. The first snapshot's written set (writes between attaching and that
snapshot, before the cell) is left out. ``pmviz.mark("label")`` in the cell marks a phase.

The magic's value is the :class:`~pmviz.capture.Capture` (reuse it as ``_`` or
``cap = %pmviz open run.pmviz``); ``meta.extra["names"]`` lists the named objects and
``meta.extra["cell"]`` the cell's start and end (``CLOCK_MONOTONIC`` ns).

Line magics: ``%pmviz record PID [--duration 5s] [--interval 100ms] [--out PATH]`` records
another process; ``%pmviz open PATH`` shows a saved capture.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import html
import io
import json
import os
import select
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ._intervals import union_columns
from ._units import human_bytes, parse_seconds
from .capture import Capture, Mark
from .categories import Category
from .errors import Error, PmvizWarning
from .names import (
    NamedRange,
    _overlap,
    _written_union,
    as_records,
    capture_names,
    from_records,
    object_ranges,
)

__all__ = [
    "load_ipython_extension",
    "record_cell",
    "CaptureReport",
    "annotate_names",  # noqa: F822 - lazy, see __getattr__
    "vma_table",
]

_PR_SET_PTRACER = 0x59616D61
_HELPER_TIMEOUT_S = 60.0


# -- the helper process (runs `python -m pmviz.magic ...`) -------------------------------------
def __getattr__(name: str) -> Any:
    # pmviz.magic.annotate_names lives in pmviz.plotting; imported on use, so that the helper
    # process (``python -m pmviz.magic``) does not load matplotlib
    if name == "annotate_names":
        from .plotting._names import annotate_names

        return annotate_names
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _send(msg: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def _helper_main(argv: Sequence[str]) -> int:
    """Record ``--pid`` for the kernel: JSON lines on stdout, commands on stdin.

    stdin ``start`` -> record; stdout ``{"ready": ...}`` once the first snapshot is taken.
    stdin ``stop <monotonic_ns>`` (or end of file) -> stop after a snapshot at or after that
    time; stdout ``{"done": ...}`` with the marks heard on ``--marks``.
    """
    from .marks import record_marks
    from .recorder import Recorder

    p = argparse.ArgumentParser(prog="python -m pmviz.magic")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--interval", type=float, required=True)
    p.add_argument("--writes", default="auto")
    p.add_argument("--accessed", default="none")
    p.add_argument("--out", required=True)
    p.add_argument("--marks")
    args = p.parse_args(argv)
    if sys.stdin.readline().strip() != "start":
        return 1
    warnings.simplefilter("ignore", PmvizWarning)  # the reason goes back in "ready"
    try:
        rec = Recorder(
            args.pid,
            interval=args.interval,
            out=args.out,
            writes=args.writes,
            accessed=args.accessed,
            progress=False,
        ).start()
    except Error as err:
        _send({"error": f"{type(err).__name__}: {err}"})
        return 1
    marks = record_marks(rec, args.marks)
    poll = min(max(args.interval / 4, 0.001), 0.01)
    while rec.running and rec.capture.n_snapshots < 1:
        time.sleep(poll)
    meta = rec.capture.meta
    if not rec.running and rec.capture.n_snapshots < 1:
        marks.close()
        _send({"error": f"no first snapshot: {rec.error or meta.end_reason}"})
        return 1
    _send(
        {
            "ready": True,
            "writes": meta.write_mechanism,
            "reason": meta.extra.get("writes_reason", ""),
            "accessed": meta.accessed_mechanism,
            "accessed_reason": meta.extra.get("accessed_reason", ""),
        }
    )
    line = sys.stdin.readline().split()
    t_stop = int(line[1]) if len(line) > 1 and line[0] == "stop" else time.monotonic_ns()
    while rec.running:
        cap = rec.capture
        if cap.n_snapshots and int(cap.time_ns[-1]) >= t_stop:
            break
        time.sleep(poll)
    try:
        cap = rec.stop("cell finished")
        error = None
    except Error as err:
        cap, error = rec.capture, f"{type(err).__name__}: {err}"
    got = marks.close()
    _send(
        {
            "done": True,
            "error": error,
            "end_reason": cap.meta.end_reason,
            "marks": [[m.time_ns, m.label] for m in got],
        }
    )
    return 0


# -- the kernel's side -------------------------------------------------------------------------
def _allow_ptrace(pid: int) -> bool:
    """Let ``pid`` (our helper) ptrace us where Yama allows only descendants (scope 1)."""
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            scope = int(f.read())
    except (OSError, ValueError):
        return False  # no Yama: the classic rules already allow a same-user child
    if scope != 1:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(_PR_SET_PTRACER, ctypes.c_ulong(pid), 0, 0, 0) == 0


def _disallow_ptrace() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PTRACER, ctypes.c_ulong(0), 0, 0, 0)


class _Helper:
    """The helper process and its line protocol, seen from the kernel."""

    def __init__(self, cmd: list[str]) -> None:
        env = dict(os.environ)
        env.pop("PMVIZ_MARKS", None)
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        self._buf = b""
        self._allowed = _allow_ptrace(self.proc.pid)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def receive(self, timeout: float = _HELPER_TIMEOUT_S) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Error(f"the pmviz recording helper did not answer within {timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise Error(f"the pmviz recording helper ended unexpectedly: {self._stderr()}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def _stderr(self) -> str:
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        assert self.proc.stderr is not None
        text = self.proc.stderr.read().decode("utf-8", "replace").strip()
        return text.splitlines()[-1] if text else f"exit status {self.proc.returncode}"

    def close(self) -> None:
        if self._allowed:
            _disallow_ptrace()
            self._allowed = False
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # type: ignore[union-attr]
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr, self.proc.stdin):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def record_cell(
    run: Callable[[], Any],
    *,
    interval: float = 0.05,
    writes: str = "auto",
    accessed: str = "none",
    namespace: Mapping[str, Any] | None = None,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> Capture:
    """Record this process from a helper process while ``run()`` runs (what ``%%pmviz`` does).

    Parameters
    ----------
    run : callable
        The work to record; its exceptions propagate after the recording is finished.
    interval : float
        Seconds between snapshots.
    writes : {"auto", "none", "uffd-wp"}
        Write tracking (as ``pmviz.record``; the helper attaches to this process).
    accessed : {"none", "vma", "probe"}
        Reads too (as ``pmviz.record``): ``"vma"`` clears and reads this process's
        referenced bits per VMA each snapshot, ``"probe"`` samples pages by paging them out
        (needs swap).
    namespace : mapping, optional
        Where to look for named objects (``pmviz.names.object_ranges``), at the start and
        the end of the run; by default none.
    out : path, optional
        Also save the capture there.
    overwrite : bool
        Replace an existing capture at ``out``.

    Returns
    -------
    Capture
        In memory. Snapshot 0 is the state just before ``run()``, the last one was taken
        after it returned; ``meta.extra["names"]`` holds the named objects,
        ``meta.extra["cell"]`` the run's start/end and how write tracking went.

    Raises
    ------
    pmviz.Error
        The helper could not record this process (the message says why).
    """
    from .marks import ENV

    tmp = tempfile.mkdtemp(prefix="pmviz-cell-")
    path = os.path.join(tmp, "cell.pmviz")
    fifo = os.path.join(tmp, "marks")
    cmd = [
        sys.executable,
        "-m",
        "pmviz.magic",
        "--pid",
        str(os.getpid()),
        "--interval",
        repr(float(interval)),
        "--writes",
        writes,
        "--accessed",
        accessed,
        "--out",
        path,
        "--marks",
        fifo,
    ]
    names_before = object_ranges(namespace) if namespace is not None else []
    failure: BaseException | None = None
    try:
        helper = _Helper(cmd)
        try:
            helper.send("start")
            ready = helper.receive()
            if "error" in ready:
                raise Error(f"cannot record this kernel: {ready['error']}")
            if not ready.get("ready"):
                raise Error("the recording helper stopped before its first snapshot")
            with _environ(ENV, fifo):  # pmviz.mark() in the cell reaches the helper
                t_start = time.monotonic_ns()
                try:
                    run()
                except BaseException as err:  # recorded anyway; re-raised below
                    failure = err
                t_end = time.monotonic_ns()
            helper.send(f"stop {t_end}")
            done = helper.receive()
            if done.get("error"):
                raise Error(f"recording the cell failed: {done['error']}") from failure
        finally:
            helper.close()
        from .storage import open as open_capture

        cap = open_capture(path).select(slice(None))  # in memory: the files go now
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    names_after = object_ranges(namespace) if namespace is not None else []
    cap = _cell_capture(
        cap,
        names=_merge_names(names_after, names_before),
        marks=[Mark(int(t), str(label)) for t, label in done.get("marks", [])],
        cell={
            "start_ns": t_start,
            "end_ns": t_end,
            "writes": ready.get("writes"),
            "writes_reason": ready.get("reason"),
            "accessed": ready.get("accessed", "none"),
            "accessed_reason": ready.get("accessed_reason", ""),
        },
    )
    if out is not None:
        from .storage import save

        save(cap, os.fspath(out), overwrite=overwrite)
    if failure is not None:
        failure.pmviz_capture = cap  # type: ignore[attr-defined]
        raise failure
    return cap


def _merge_names(after: list[NamedRange], before: list[NamedRange]) -> list[NamedRange]:
    """Objects alive at the end, plus those the cell freed (their range not reused)."""
    if not before:
        return after
    s = np.array([r.start for r in after], np.uint64)
    e = np.array([r.end for r in after], np.uint64)
    out = list(after)
    for r in before:
        i = np.searchsorted(s, r.start, side="right")
        overlaps = (i > 0 and e[i - 1] > r.start) or (i < s.size and s[i] < r.end)
        if not overlaps:
            out.append(NamedRange(r.start, r.end, f"{r.label} (freed)"))
    return sorted(out)


def _cell_capture(
    cap: Capture, *, names: list[NamedRange], marks: list[Mark], cell: dict[str, Any]
) -> Capture:
    """The recorded capture without the writes before the cell, with names and marks."""
    written, woff = cap.written, cap.written_offsets
    dropped = 0
    if written is not None and woff is not None and cap.n_snapshots:
        k = int(woff[1])
        dropped = int(((written["end"][:k] - written["start"][:k]) // cap.page_size).sum())
        written, woff = written[k:], np.concatenate([[0, 0], woff[2:] - k])
    extra = dict(cap.meta.extra)
    extra["names"] = as_records(names)
    extra["cell"] = dict(cell, pages_written_before_cell=dropped)
    all_marks = sorted(set(cap.marks) | set(marks))
    if all_marks:
        # kept in meta as well until the capture files store marks themselves
        extra["marks"] = [[m.time_ns, m.label] for m in all_marks]
    return Capture(
        cap.meta.replace(extra=extra),
        cap.time_ns,
        cap.regions,
        cap.region_offsets,
        written=written,
        written_offsets=woff,
        vma_tables=cap.vma_tables,
        vma_index=cap.vma_index,
        telemetry=cap.telemetry,
        marks=all_marks,
        side_tables={
            name: (cap.side_rows(name), cap.side_offsets(name)) for name in cap.side_tables
        },
    )


# -- what is shown -----------------------------------------------------------------------------
def _present(cap: Capture, i: int) -> tuple[np.ndarray, np.ndarray]:
    r = cap.regions_at(i).array
    r = r[(r["categories"] & np.uint64(int(Category.PRESENT))) != 0]
    return union_columns(r["start"], r["end"])


def _distinct_vmas(cap: Capture) -> tuple[np.ndarray, np.ndarray, Callable[[int], str]]:
    """The VMAs of the capture, sorted by start: starts, ends, and ``label(i)``.

    The newest table's VMAs, plus those of older tables that no newer VMA overlaps (unmapped
    during the capture); a grown heap appears once, as last seen. Labels are made on demand
    (only the rows shown need one). One pass per table.
    """
    tables = [t for t in cap.vma_tables if len(t)]
    parts: list[tuple[np.ndarray, np.ndarray, int, np.ndarray]] = []
    us = ue = np.empty(0, np.uint64)
    for k in range(len(tables) - 1, -1, -1):  # newest first
        a = tables[k].array
        sel = np.arange(len(a))
        if us.size:
            i = np.searchsorted(ue, a["start"], side="right")
            hit = (i < us.size) & (us[np.minimum(i, us.size - 1)] < a["end"])
            sel = sel[~hit]
        parts.append((a["start"][sel], a["end"][sel], k, sel))
        us, ue = union_columns(np.concatenate([us, a["start"]]), np.concatenate([ue, a["end"]]))
    if not parts:
        return np.empty(0, np.uint64), np.empty(0, np.uint64), str
    starts = np.concatenate([p[0] for p in parts])
    ends = np.concatenate([p[1] for p in parts])
    which = np.concatenate([np.full(p[3].size, p[2]) for p in parts])
    row = np.concatenate([p[3] for p in parts])
    order = np.argsort(starts, kind="stable")

    def label(i: int) -> str:
        return tables[int(which[order[i]])].label(int(row[order[i]]))

    return starts[order], ends[order], label


def vma_table(capture: Capture, *, top: int = 10) -> list[dict[str, Any]]:
    """The VMAs a capture wrote most (by written bytes; by resident bytes without writes).

    Returns
    -------
    list of dict
        ``start``, ``end``, ``label``, ``size``, ``written`` (bytes written at least once),
        ``resident`` (bytes present in the last snapshot), ``objects`` (names from
        ``meta.extra["names"]`` inside the VMA).
    """
    if not capture.n_snapshots:
        return []
    vs, ve, label = _distinct_vmas(capture)
    if not vs.size:
        return []
    ws, we = _written_union(capture)
    written = _overlap(ws, we, vs, ve) if ws.size else np.zeros(vs.size, np.int64)
    ps, pe = _present(capture, -1)
    resident = _overlap(ps, pe, vs, ve) if ps.size else np.zeros(vs.size, np.int64)
    names = from_records(capture.meta.extra.get("names"))
    key = written if capture.has_written and written.any() else resident
    order = np.argsort(-key, kind="stable")[:top]
    rows = []
    for i in order.tolist():
        if key[i] <= 0:
            break
        inside = [n.label for n in names if n.start < int(ve[i]) and n.end > int(vs[i])]
        rows.append(
            {
                "start": int(vs[i]),
                "end": int(ve[i]),
                "label": label(i),
                "size": int(ve[i] - vs[i]),
                "written": int(written[i]),
                "resident": int(resident[i]),
                "objects": inside,
            }
        )
    return rows


def totals(capture: Capture) -> dict[str, Any]:
    """Written and resident bytes of a capture (numbers, for the report and for tests).

    ``written`` counts each page once however often it was written (``None`` without write
    tracking); ``resident_*`` are present bytes in the first and last snapshot, and the peak;
    ``accessed_peak`` is the most bytes accessed (read or written) in one interval after the
    first snapshot (``None`` without access sampling; an estimate with ``accessed="probe"``).
    """
    n = capture.n_snapshots
    if not n:
        raise ValueError("the capture has no snapshots")
    r = capture.regions
    present = (r["categories"] & np.uint64(int(Category.PRESENT))) != 0
    nbytes = np.where(present, (r["end"] - r["start"]).astype(np.int64), 0)
    per_snapshot = np.add.reduceat(np.append(nbytes, 0), capture.region_offsets[:-1])
    per_snapshot[np.diff(capture.region_offsets) == 0] = 0
    ws, we = _written_union(capture)
    return {
        "written": int((we - ws).astype(np.int64).sum()) if capture.has_written else None,
        "resident_start": int(per_snapshot[0]),
        "resident_end": int(per_snapshot[-1]),
        "resident_peak": int(per_snapshot.max()),
        "duration_s": float(capture.times[-1]),
        "snapshots": n,
        "accessed_peak": _accessed_peak(capture),
    }


def _accessed_peak(capture: Capture) -> int | None:
    if capture.accessed_mechanism == "none":
        return None
    from .analysis.accessed import AccessSeries

    # sample 0 covers the time before the first snapshot (before the cell, for %%pmviz)
    per_interval = AccessSeries.from_capture(capture).accessed_bytes()[1:]
    return int(per_interval.max()) if per_interval.size else 0


class CaptureReport:
    """What ``%%pmviz`` shows: totals, heatmaps with names and marks, the top VMAs.

    Displays as one self-contained HTML block (the figure embedded as PNG, so that static
    exports keep it); :meth:`png` is the figure alone.

    Parameters
    ----------
    capture : Capture
    categories : sequence of str
        One heatmap per category (``"written"`` is skipped without write tracking).
    axis : str
        The address axis kind (``pmviz.analysis.address_axis``).
    top : int
        Rows of the VMA table.
    title : str, optional
    """

    def __init__(
        self,
        capture: Capture,
        categories: Sequence[str] = ("written", "present"),
        *,
        axis: str = "auto",
        top: int = 10,
        title: str | None = None,
    ) -> None:
        self.capture = capture
        self.categories = [c for c in categories if c != "written" or capture.has_written] or [
            "present"
        ]
        self.axis = axis
        self.top = top
        self.title = title
        self._png: bytes | None = None

    def figure(self) -> Any:
        """A new matplotlib Figure (not registered with pyplot)."""
        from matplotlib.figure import Figure

        from .analysis.axis import address_axis
        from .plotting import heatmap

        cap = self.capture
        k = len(self.categories)
        fig = Figure(figsize=(6.4 * k, 4.6), layout="constrained")
        axes = fig.subplots(1, k, squeeze=False)[0]
        ax_obj = address_axis(cap, kind=self.axis)
        names = capture_names(cap)
        for ax, cat in zip(axes, self.categories):
            # heatmap draws the capture's marks; names given so that every panel gets them
            heatmap(cap, cat, ax=ax, axis=ax_obj, addr_bins=384, title=f"{cat} pages", names=names)
        return fig

    def png(self) -> bytes:
        """The figure as PNG bytes (made once)."""
        if self._png is None:
            buf = io.BytesIO()
            self.figure().savefig(buf, format="png", dpi=90)
            self._png = buf.getvalue()
        return self._png

    def _totals_html(self) -> str:
        cap = self.capture
        t = totals(cap)
        cell = cap.meta.extra.get("cell") or {}
        rows = []
        if cell:
            rows.append(("cell ran", f"{(cell['end_ns'] - cell['start_ns']) / 1e9:.3f} s"))
        rows.append(
            (
                "snapshots",
                f"{t['snapshots']} over {t['duration_s']:.3f} s "
                f"(every {cap.meta.interval_ns / 1e6:g} ms)",
            )
        )
        if t["written"] is not None:
            rows.append(
                (
                    "written",
                    f"{human_bytes(t['written'])} "
                    f"({t['written'] // cap.page_size:,} pages, each counted once)",
                )
            )
        else:
            why = cell.get("writes_reason") or cap.meta.extra.get("writes_reason") or ""
            rows.append(("written", f"not recorded: {why}"))
        rows.append(
            (
                "resident",
                f"{human_bytes(t['resident_start'])} → {human_bytes(t['resident_end'])}"
                f" (peak {human_bytes(t['resident_peak'])})",
            )
        )
        if t["accessed_peak"] is not None:
            how = (
                "estimated from pageout probes"
                if cap.accessed_mechanism == "probe"
                else "exact per VMA"
            )
            rows.append(
                (
                    "accessed",
                    f"up to {human_bytes(t['accessed_peak'])} per "
                    f"{cap.meta.interval_ns / 1e6:g} ms interval, reads too ({how})",
                )
            )
        marks = [m.label for m in cap.marks]
        if marks:
            rows.append(("marks", ", ".join(marks)))
        body = "".join(
            f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        return f"<table>{body}</table>"

    def _vmas_html(self) -> str:
        rows = vma_table(self.capture, top=self.top)
        if not rows:
            return ""
        by = "written" if self.capture.has_written and rows[0]["written"] else "resident"
        head = "".join(
            f"<th style='text-align:{a}'>{h}</th>"
            for h, a in [
                ("VMA", "left"),
                ("", "left"),
                ("size", "right"),
                ("written", "right"),
                ("resident", "right"),
                ("objects", "left"),
            ]
        )
        body = "".join(
            "<tr>"
            f"<td style='text-align:left;font-family:monospace'>{r['start']:#x}–{r['end']:#x}</td>"
            f"<td style='text-align:left'>{html.escape(r['label'])}</td>"
            f"<td style='text-align:right'>{human_bytes(r['size'])}</td>"
            f"<td style='text-align:right'>{human_bytes(r['written'])}</td>"
            f"<td style='text-align:right'>{human_bytes(r['resident'])}</td>"
            f"<td style='text-align:left'>{html.escape(', '.join(r['objects']))}</td>"
            "</tr>"
            for r in rows
        )
        return (
            f"<details open><summary>top {len(rows)} VMAs by {by} bytes</summary>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></details>"
        )

    def _repr_html_(self) -> str:
        png = base64.b64encode(self.png()).decode()
        title = html.escape(self.title or "pmviz")
        return (
            f"<div class='pmviz-report'><b>{title}</b>{self._totals_html()}"
            f"<img src='data:image/png;base64,{png}' style='max-width:100%'/>"
            f"{self._vmas_html()}</div>"
        )


# -- IPython -----------------------------------------------------------------------------------
class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit the kernel
        raise _ArgumentError(f"{self.prog}: {message}")


def _seconds(text: str) -> float:
    try:
        return parse_seconds(text)
    except ValueError as err:  # argparse shows an ArgumentTypeError's own message
        raise argparse.ArgumentTypeError(str(err)) from None


def _categories(text: str) -> list[str]:
    cats = [c.strip() for c in text.split(",") if c.strip()]
    if not cats:
        raise argparse.ArgumentTypeError("give at least one category, e.g. written,present")
    return cats


def _common(p: argparse.ArgumentParser, interval: float, axis: str = "auto") -> None:
    p.add_argument(
        "--interval",
        "-i",
        type=_seconds,
        default=interval,
        help="time between snapshots (e.g. 20ms)",
    )
    p.add_argument(
        "--category",
        "-c",
        type=_categories,
        default=["written", "present"],
        help="heatmaps to draw, comma-separated (written,present,swapped,...)",
    )
    p.add_argument("--out", "-o", help="also save the capture there (NAME.pmviz)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument(
        "--writes",
        choices=("auto", "none", "uffd-wp"),
        default="auto",
        help="write tracking (none: present/swapped only)",
    )
    p.add_argument(
        "--accessed",
        choices=("none", "vma", "probe"),
        default="none",
        help="reads too: per-VMA referenced bytes (vma) or pageout probes (probe, needs swap)",
    )
    p.add_argument(
        "--axis",
        choices=("auto", "compact", "occupied"),
        default=axis,
        help=f"address axis of the heatmaps (default {axis})",
    )


def _cell_parser() -> _Parser:
    p = _Parser(prog="%%pmviz", description="record this kernel while the cell runs")
    # a kernel reserves much it never touches (thread stacks, allocator arenas): leave it out
    _common(p, 0.05, "occupied")
    p.add_argument("--no-names", action="store_true", help="do not name notebook objects")
    return p


def _line_parser() -> _Parser:
    p = _Parser(prog="%pmviz")
    sub = p.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="record another process")
    rec.add_argument("pid", type=int)
    rec.add_argument("--duration", "-d", type=_seconds, default=5.0)
    _common(rec, 0.1)
    op = sub.add_parser("open", help="show a saved capture")
    op.add_argument("path")
    op.add_argument("--category", "-c", type=_categories, default=["written", "present"])
    op.add_argument("--axis", choices=("auto", "compact", "occupied"), default="auto")
    return p


def _display(obj: Any) -> None:
    from IPython.display import display

    display(obj)


def _magics_class() -> type:
    from IPython.core.error import UsageError
    from IPython.core.magic import Magics, line_cell_magic, magics_class

    @magics_class
    class PmvizMagics(Magics):
        """``%%pmviz`` (record this kernel while the cell runs) and ``%pmviz record|open``."""

        @line_cell_magic
        def pmviz(self, line: str, cell: str | None = None) -> Capture | None:
            """Record the kernel while the cell runs; or ``%pmviz record PID`` / ``open PATH``.

            ::

              %%pmviz [--interval 50ms] [--category written,present] [--out run.pmviz]
                      [--writes auto|none|uffd-wp] [--accessed none|vma|probe]
                      [--axis auto|compact|occupied] [--no-names]
              %pmviz record PID [--duration 5s] [--interval 100ms] [--out PATH] ...
              %pmviz open PATH [--category present]
            """
            try:
                if cell is None:
                    return self._line(line)
                opts = _cell_parser().parse_args(shlex.split(line))
            except _ArgumentError as err:
                raise UsageError(str(err)) from None
            shell = self.shell
            assert shell is not None

            def run() -> None:
                # shown by IPython itself; the recording and its report go on
                shell.run_cell(cell, store_history=False)

            cap = record_cell(
                run,
                interval=opts.interval,
                writes=opts.writes,
                accessed=opts.accessed,
                namespace=None if opts.no_names else shell.user_ns,
                out=opts.out,
                overwrite=opts.overwrite,
            )
            _display(CaptureReport(cap, opts.category, axis=opts.axis, title="%%pmviz: this cell"))
            return cap

        def _line(self, line: str) -> Capture:
            from . import open as open_capture
            from . import record

            opts = _line_parser().parse_args(shlex.split(line))
            cap: Capture
            if opts.command == "open":
                cap = open_capture(opts.path)
                title = f"%pmviz open {opts.path}"
            else:
                cap = record(
                    opts.pid,
                    interval=opts.interval,
                    duration=opts.duration,
                    out=opts.out,
                    writes=opts.writes,
                    accessed=opts.accessed,
                    overwrite=opts.overwrite,
                )
                title = f"%pmviz record {opts.pid}"
            _display(CaptureReport(cap, opts.category, axis=opts.axis, title=title))
            return cap

    return PmvizMagics


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%pmviz`` / ``%pmviz`` (what ``%load_ext pmviz`` calls)."""
    ipython.register_magics(_magics_class()(ipython))


if __name__ == "__main__":
    sys.exit(_helper_main(sys.argv[1:]))
