"""Make a capture safe to share: rebase addresses, strip paths and command lines.

The scheme (also in ``docs/capture-format.md``):

1. **Groups.** Every address range the capture ever saw (each VMA of each VMA table, each
   region and written range of each snapshot) is unioned into maximal contiguous spans, the
   *groups*. A group is typically one mapped object with its neighbours (an executable and
   its heap, a run of adjacent library mappings, a thread stack and its guard page).
2. **Rebase.** Groups keep their order and their size; group ``k`` moves to
   ``new_start[k] = new_end[k-1] + GAP`` (``GAP`` = 16 MiB; the first group starts near
   ``BASE`` = 4 GiB), then rounded up so that ``new_start[k] ≡ start[k] (mod 2 MiB)``. Every
   address inside a group moves by the same amount, so the relative layout within a group,
   page counts, and huge-page (PMD) alignment are exact; gaps between groups and every
   absolute address are not kept. What leaks: group sizes and order, and per group the 9 bits
   of its page offset inside a 2 MiB frame (ASLR randomises 28+ bits per mapping base).
3. **Strip.** VMA paths become ``file1``, ``file2`` ... (numbered by first appearance, the same
   file gets the same name in every table); kernel names (``[heap]``, ``[stack]``, ``[vdso]``
   ...) stay; ``[anon:NAME]`` becomes ``[anon]``. Inodes, device numbers and file offsets
   become 0. The command line, pid, write-tracking reason and scan ranges are removed from
   the metadata.
4. **Times.** Every time becomes relative to the first snapshot (``time_ns[0] = 0``, marks
   likewise): ``CLOCK_MONOTONIC`` values tell how long the machine had been up, so
   ``start_monotonic_ns`` and the wall-clock ``start_wall_ns`` become 0, and integers under
   metadata keys ending in ``time_ns`` or ``start_ns`` are rebased too; keys containing
   ``wall`` are dropped, and so are ``addr_range`` / ``ranges`` keys (absolute addresses, as
   ``pmviz slice`` records). Intervals and durations stay.
   Side tables (access samples) keep their values; their address ranges are rebased with
   the regions (they count among the ranges of step 1).
5. **Text.** ``end_reason`` keeps only the recorder's fixed vocabulary (``count reached``,
   ``target exited with status 0`` ...); anything else (an error naming a file) keeps its
   first word. Every other string of the metadata and mark labels lose anything path-like
   (a token with ``/`` or ending in ``.pmviz``) and any word of the command line or the pid.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from . import _intervals as iv
from .capture import Capture, CaptureMeta, Mark
from .maps import Vmas

__all__ = ["anonymize", "BASE", "GAP", "ALIGN"]

BASE = 1 << 32
GAP = 16 << 20
ALIGN = 2 << 20
_LIMIT = (1 << 47) - 4096  # x86-64 4-level TASK_SIZE_MAX: where user addresses end
_KERNEL_NAMES = {
    "[heap]",
    "[stack]",
    "[vdso]",
    "[vvar]",
    "[vvar_vclock]",
    "[vsyscall]",
    "[uprobes]",
}


def _groups(ranges: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted disjoint ``(starts, ends)`` covering every ``(n, 2)`` range given."""
    pairs = np.concatenate([r for r in ranges if len(r)] or [np.empty((0, 2), np.uint64)])
    return iv.union_columns(pairs[:, 0], pairs[:, 1])  # touching ranges stay one group


def _new_starts(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Where each group goes (step 2 of the scheme); per group, not per region."""
    out = np.empty(len(starts), np.uint64)
    cursor = BASE
    for k, (s, e) in enumerate(zip(starts.tolist(), ends.tolist())):
        new = cursor + ((s - cursor) % ALIGN)
        out[k] = new
        cursor = new + (e - s) + GAP
    if len(starts) and int(out[-1]) + int(ends[-1] - starts[-1]) > _LIMIT:
        raise ValueError("the rebased layout does not fit in a 47-bit address space")
    return out


class _Rebase:
    def __init__(self, starts: np.ndarray, new_starts: np.ndarray) -> None:
        self.starts = starts
        self.delta = new_starts.astype(np.int64) - starts.astype(np.int64)

    def __call__(self, addr: np.ndarray, *, is_end: bool = False) -> np.ndarray:
        a = np.asarray(addr, np.uint64)
        probe = a - np.uint64(1) if is_end else a  # an end belongs to the group before it
        k = np.searchsorted(self.starts, probe, side="right") - 1
        return (a.astype(np.int64) + self.delta[np.maximum(k, 0)]).astype(np.uint64)

    def rows(self, arr: np.ndarray) -> np.ndarray:
        out = arr.copy()
        out["start"] = self(arr["start"])
        out["end"] = self(arr["end"], is_end=True)
        return out


def _strip_paths(tables: list[Vmas]) -> dict[str, str]:
    """New name of every path to replace (kernel names and "" keep theirs)."""
    names: dict[str, str] = {}
    n_files = 0
    for v in tables:
        for p in v.paths:
            p = str(p)
            if p in _KERNEL_NAMES or p == "" or p in names:
                continue
            if p.startswith("[anon:"):
                names[p] = "[anon]"
            elif p.startswith("[stack:"):
                names[p] = "[stack]"
            else:
                n_files += 1
                names[p] = f"file{n_files}"
    return names


_END_REASONS = re.compile(
    r"count reached|duration reached|stopped|interrupted \(SIGINT\)|terminated \(SIGTERM\)"
    r"|target exited( with status -?\d+)?|target killed by SIG[A-Z0-9]+"
    r"|target exec'd a new program|disk full|incomplete: the recorder did not finish"
)
_DROP_KEYS = ("wall", "addr_range", "ranges")
_PATHLIKE = re.compile(r"\S*/\S*|\S+\.pmviz\b")


class _Scrub:
    """Removes from strings what identifies the process and its files."""

    def __init__(self, meta: CaptureMeta, path: str | None) -> None:
        words = {w for arg in meta.command or () for w in re.split(r"[\s=/:,]+", str(arg))}
        if path:
            words |= set(re.split(r"[/]+", path))
        words = {w for w in words if len(w) >= 3 and not w.isdigit()}
        alts = sorted(map(re.escape, words), key=len, reverse=True)
        if meta.pid is not None:
            alts.append(str(meta.pid))
        self._secret = re.compile(rf"(?<!\w)(?:{'|'.join(alts)})(?!\w)") if alts else None

    def text(self, s: str) -> str:
        s = _PATHLIKE.sub("<path>", s)
        return self._secret.sub("<removed>", s) if self._secret is not None else s

    def end_reason(self, s: str | None) -> str | None:
        if s is None or _END_REASONS.fullmatch(s):
            return s
        head = re.match(r"[A-Za-z][A-Za-z ']*", s)
        return self.text(head.group(0).strip() if head else "ended") + " (details removed)"

    def value(self, v: Any, t0: int, key: str = "") -> Any:
        """Scrub strings, rebase monotonic times, drop wall-clock times, recursively."""
        if isinstance(v, dict):  # absolute addresses (a slice's range) would undo the rebase
            keep = {k: x for k, x in v.items() if not any(d in str(k) for d in _DROP_KEYS)}
            return {k: self.value(x, t0, str(k)) for k, x in keep.items()}
        if isinstance(v, list):
            return [self.value(x, t0, key) for x in v]
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, int) and not isinstance(v, bool) and key.endswith(("time_ns", "start_ns")):
            return v - t0
        return v


def anonymize(capture: Capture, *, time_origin_ns: int | None = None) -> Capture:
    """Return an anonymized copy of ``capture`` (see the module docstring for the scheme).

    Parameters
    ----------
    capture : Capture
        In memory or opened from disk (it is loaded whole).
    time_origin_ns : int, optional
        The ``CLOCK_MONOTONIC`` time that becomes 0 (default: the first snapshot's). A
        session passes its own start, so that its processes' captures stay on one clock.

    Returns
    -------
    Capture
        Same snapshots, times, categories and page counts; rebased addresses; no paths,
        command line or pid. ``meta.anonymized`` is True.

    Examples
    --------
    >>> import pmviz
    >>> from pmviz.capture import Capture, CaptureMeta
    >>> r = pmviz.Regions.from_arrays([0x7F0000001000], [0x7F0000003000], [8])
    >>> cap = Capture.from_snapshots(CaptureMeta(command=["secret"]), [(0, r, None, None)])
    >>> anon = cap.anonymize()
    >>> hex(anon.regions_at(0)[0].start), anon.meta.command
    ('0x100001000', None)
    """
    tables = capture.vma_tables
    pairs = [np.column_stack([v.start, v.end]) for v in tables]
    pairs.append(np.column_stack([capture.regions["start"], capture.regions["end"]]))
    if capture.written is not None:
        pairs.append(np.column_stack([capture.written["start"], capture.written["end"]]))
    side = {name: capture.side_rows(name) for name in capture.side_tables}
    ranged = [k for k, v in side.items() if {"start", "end"} <= set(v.dtype.names or ())]
    for name in ranged:  # side tables of address ranges (access samples) move with the rest
        pairs.append(np.column_stack([side[name]["start"], side[name]["end"]]))
    starts, ends = _groups(pairs)
    rebase = _Rebase(starts, _new_starts(starts, ends))
    names = _strip_paths(tables)
    new_tables = []
    for v in tables:
        arr = rebase.rows(v.array)
        arr["inode"] = 0
        arr["dev_major"] = 0
        arr["dev_minor"] = 0
        arr["offset"] = 0  # file layout (which segment of which library version) identifies
        new_tables.append(Vmas(arr, [names.get(str(p), str(p)) for p in v.paths]))
    m = capture.meta
    t0 = int(capture.time_ns[0]) if capture.n_snapshots else m.start_monotonic_ns
    if time_origin_ns is not None:
        t0 = int(time_origin_ns)
    scrub = _Scrub(m, getattr(capture, "path", None))
    extra = {k: v for k, v in m.extra.items() if k not in ("writes_reason", "ranges")}
    meta = m.replace(
        pid=None,
        command=None,
        anonymized=True,
        start_wall_ns=0,
        start_monotonic_ns=0,
        end_reason=scrub.end_reason(m.end_reason),
        features=scrub.value(m.features, t0),
        extra=scrub.value(extra, t0),
    )
    return Capture(
        meta,
        capture.time_ns - t0,
        rebase.rows(capture.regions),
        capture.region_offsets.copy(),
        written=None if capture.written is None else rebase.rows(capture.written),
        written_offsets=None if capture.written_offsets is None else capture.written_offsets.copy(),
        vma_tables=new_tables,
        vma_index=capture.vma_index.copy(),
        telemetry={k: v.copy() for k, v in capture.telemetry.items()},
        marks=[Mark(t - t0, scrub.text(label)) for t, label in capture.marks],
        side_tables={
            k: (rebase.rows(v) if k in ranged else v.copy(), capture.side_offsets(k).copy())
            for k, v in side.items()
        },
    )
