"""Memory of a set of processes, shared pages counted once: RSS, PSS, USS, shared, swap.

How shared pages are identified (docs/sessions.md, "Shared memory, counted once"):

- ``mode="pfn"`` (root: CAP_SYS_ADMIN and ``/proc/kpagecount``). PAGEMAP_SCAN finds the
  present ranges; only those entries of the classic ``/proc/PID/pagemap`` are read (holes
  cost nothing); the PFN in each entry names the physical page, ``/proc/kpagecount`` says how
  many times it is mapped machine-wide. Per-process figures then follow the kernel's own
  arithmetic in ``smaps_account()`` (fs/proc/task_mmu.c): RSS counts every mapped page, a page
  mapped once is private (USS), else shared, and PSS adds ``(PAGE_SIZE << 12) // mapcount``
  per page in 12-bit fixed point. Tree-wide, each distinct PFN counts once.
- ``mode="inode"`` (anyone who may read the processes' pagemap). PFNs read as 0, so a page
  cache or shmem page (``PM_FILE``) is named by ``(device, inode, page offset)`` of its VMA in
  ``/proc/PID/maps`` -- memfd, SysV and POSIX shm, ``MAP_SHARED`` files and the unwritten pages
  of private file mappings. An anonymous page mapped once (``PM_MMAP_EXCLUSIVE``) is this
  process's alone. An anonymous page mapped more than once (copy-on-write after ``fork``, KSM)
  cannot be matched to its other mappers without PFNs: it is reported as *unknown sharing*
  (``unknown_bytes``, with ``reason``), never guessed. PSS and swap come from
  ``smaps_rollup`` in this mode (kB precision), the rest from the page tables.

Pages the kernel does not count in ``Rss`` are left out here too: the shared zero page
(PAGEMAP_SCAN's ``PFNZERO``) and ``VM_PFNMAP`` mappings without ``struct page``
(``[vvar]``, ``[vvar_vclock]``; see ``vm_normal_page()``).

The processes should be quiescent while they are read (as for any snapshot of several
processes): a page mapped or unmapped between reading two processes is seen by one only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from ._kernel import kpage, procfs, smaps
from ._kernel import pagemap as pm
from ._kernel import pagemap_scan as pms
from ._kernel.process import ProcessHandle
from .categories import Category
from .errors import NoSuchProcess
from .features import features, user_address_limit
from .maps import Vmas
from .regions import Regions

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Mode", "PageIdentities", "identify", "account", "written_attribution", "COLUMNS"]

Mode = Literal["auto", "pfn", "inode"]

UNKNOWN = -1
"""Key of an anonymous page mapped more than once whose other mappers cannot be named."""
EXCLUSIVE = -2
"""Key of an anonymous page mapped exactly once (machine-wide): nobody else has it."""

UNKNOWN_REASON = (
    "anonymous pages mapped more than once (copy-on-write after fork, or KSM): without "
    "CAP_SYS_ADMIN the kernel hides PFNs, so the processes sharing them cannot be named; "
    "run as root to count them exactly"
)

COLUMNS = (
    "pid",
    "mode",
    "rss_bytes",
    "pss_bytes",
    "uss_bytes",
    "shared_bytes",
    "swap_bytes",
    "tree_shared_bytes",
    "counted_bytes",
    "unknown_bytes",
    "written_bytes",
    "shared_written_bytes",
    "reason",
)
"""Columns of :func:`account`'s table, in order."""

_PSS_SHIFT = 12  # fs/proc/task_mmu.c: PSS is summed in 12-bit fixed point
_NO_STRUCT_PAGE = ("[vvar]", "[vvar_vclock]")  # VM_PFNMAP special mappings: not in Rss
_READ_THROUGH_PAGES = 512  # read pagemap through holes shorter than this (4 KiB of entries)
_FILE_KEY_SHIFT = 40  # key = file id << 40 | page offset in the file


@dataclass(frozen=True)
class ProcessPages:
    """The counted resident pages of one process, with their identity.

    Attributes
    ----------
    pid : int
    pages : numpy.ndarray
        Virtual page numbers (``address >> page_shift``), ascending, ``uint64``.
    keys : numpy.ndarray
        ``int64`` identity of each page: a PFN (``mode="pfn"``), a file page key
        (``mode="inode"``), or :data:`EXCLUSIVE` / :data:`UNKNOWN`.
    mapcount : numpy.ndarray or None
        How many times each page is mapped machine-wide (``/proc/kpagecount``; pfn mode).
    exclusive : numpy.ndarray
        ``PM_MMAP_EXCLUSIVE``: the page is mapped exactly once.
    swap_pages : int
        Pages on swap (from the page tables; pfn mode).
    rollup : dict
        ``smaps_rollup`` of the process (inode mode: the source of PSS and swap).
    """

    pid: int
    pages: np.ndarray
    keys: np.ndarray
    mapcount: np.ndarray | None
    exclusive: np.ndarray
    swap_pages: int
    rollup: dict[str, int]


@dataclass(frozen=True)
class PageIdentities:
    """Which physical page each resident virtual page of each process is.

    Built by :func:`identify`; consumed by :func:`account` and :func:`written_attribution`.
    """

    mode: Literal["pfn", "inode"]
    page_size: int
    processes: tuple[ProcessPages, ...]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]


def identify(pids: Iterable[int], *, mode: Mode = "auto") -> PageIdentities:
    """Read the resident pages of live processes and name the physical page behind each.

    Parameters
    ----------
    pids : iterable of int
        The processes. One that has exited by the time it is read is left out (it maps
        nothing any more).
    mode : {"auto", "pfn", "inode"}
        ``"pfn"`` needs root (CAP_SYS_ADMIN and ``/proc/kpagecount``); ``"inode"`` works for
        anyone who may read the processes; ``"auto"`` picks ``"pfn"`` when allowed.

    Returns
    -------
    PageIdentities

    Raises
    ------
    AccessDenied
        ``mode="pfn"`` without CAP_SYS_ADMIN or kpagecount access, or a process this caller
        may not read (the message names the capability).
    ValueError
        An unknown mode.
    """
    if mode not in ("auto", "pfn", "inode"):
        raise ValueError(f"mode must be 'auto', 'pfn' or 'inode', got {mode!r}")
    can_pfn = smaps.has_cap_sys_admin() and os.access(kpage.KPAGECOUNT, os.R_OK)
    if mode == "pfn" and not can_pfn:
        raise kpage.pfn_access_error("mode='pfn'")
    use_pfn = mode == "pfn" or (mode == "auto" and can_pfn)
    raw: list[_Raw] = []
    handles: list[ProcessHandle] = []
    try:
        for pid in dict.fromkeys(int(p) for p in pids):  # each once, in the given order
            try:
                handle = ProcessHandle(pid)
            except NoSuchProcess:
                continue
            handles.append(handle)
            try:
                raw.append(_read_process(handle, use_pfn))
            except NoSuchProcess:
                handles.pop().close()
        if use_pfn:
            processes = _with_mapcounts(raw)
            # A process that exited after its pages were read and before the map counts
            # were lowered the others' counts: its rows would make PSS add up to more than
            # the pages (counted twice). It maps nothing now: leave it out.
            gone = {h.pid for h in handles if h.exited()}
            processes = [p for p in processes if p.pid not in gone]
        else:
            processes = _with_file_keys(raw)
    finally:
        for h in handles:
            h.close()
    return PageIdentities("pfn" if use_pfn else "inode", pms.PAGE_SIZE, tuple(processes))


def account(
    pids: Iterable[int],
    *,
    page_size: int | None = None,
    mode: Mode = "auto",
    written: Mapping[int, Regions] | None = None,
) -> pa.Table:
    """Per-process memory figures of a set of processes, shared pages counted once.

    Parameters
    ----------
    pids : iterable of int
        Live processes (one that exits meanwhile is left out).
    page_size : int, optional
        The page size the caller records with; must be this machine's.
    mode : {"auto", "pfn", "inode"}
        How shared pages are identified (module docstring).
    written : mapping of pid to Regions, optional
        Each process's written ranges: fills ``written_bytes`` and ``shared_written_bytes``
        (see :func:`written_attribution`); null without it.

    Returns
    -------
    pyarrow.Table
        One row per process, columns :data:`COLUMNS`. ``rss_bytes``, ``uss_bytes``,
        ``shared_bytes`` and (pfn mode) ``swap_bytes`` equal ``smaps_rollup``'s ``Rss``,
        ``Private_*``, ``Shared_*`` and ``Swap`` to the byte (the kernel prints kB, truncated).
        ``pss_bytes`` is the kernel's fixed-point sum shifted down: it is below the exact
        rational PSS by less than ``1 + n_pages / 4096`` bytes, and ``pss_bytes // 1024`` is ``smaps_rollup``'s
        ``Pss`` exactly. ``tree_shared_bytes``: resident bytes also mapped by another process
        of the set. ``counted_bytes``: this process's part when every distinct page of the
        set is counted once (attributed to the first process, in the given order, that
        maps it); their sum is the set's distinct resident memory, apart from
        ``unknown_bytes`` (inode mode: anonymous pages whose sharers cannot be named;
        ``reason`` says why). The schema metadata holds ``mode`` and ``page_size``.

    Examples
    --------
    >>> import os
    >>> from pmviz.accounting import account
    >>> t = account([os.getpid()])
    >>> t.column("rss_bytes")[0].as_py() > 0
    True
    """
    import pyarrow as pa

    if page_size is not None and int(page_size) != pms.PAGE_SIZE:
        raise ValueError(f"page_size={page_size} is not this machine's ({pms.PAGE_SIZE})")
    ids = identify(pids, mode=mode)
    n = len(ids.processes)
    size = ids.page_size
    rss = np.array([len(p.pages) for p in ids.processes], dtype=np.int64)
    if ids.mode == "pfn":
        uss = np.zeros(n, np.int64)
        pss = np.zeros(n, np.int64)
        for i, p in enumerate(ids.processes):  # per process; the work inside is numpy
            assert p.mapcount is not None
            uss[i], pss[i] = _uss_pss(p.mapcount, size)
        swap = np.array([p.swap_pages * size for p in ids.processes], dtype=np.int64)
    else:
        uss = np.array([int(p.exclusive.sum()) * size for p in ids.processes], np.int64)
        pss = np.array([p.rollup.get("Pss", 0) for p in ids.processes], np.int64)
        swap = np.array([p.rollup.get("Swap", 0) for p in ids.processes], np.int64)
    tree_shared, counted, unknown = _tree_counts(ids)
    columns: dict[str, object] = {
        "pid": pa.array(ids.pids, pa.int64()),
        "mode": pa.array([ids.mode] * n, pa.string()),
        "rss_bytes": rss * size,
        "pss_bytes": pss,
        "uss_bytes": uss,
        "shared_bytes": rss * size - uss,
        "swap_bytes": swap,
        "tree_shared_bytes": tree_shared * size,
        "counted_bytes": counted * size,
        "unknown_bytes": unknown * size,
    }
    if written is not None:
        w = written_attribution(written, ids)
        columns["written_bytes"] = w["written_bytes"]
        columns["shared_written_bytes"] = w["shared_written_bytes"]
    else:
        columns["written_bytes"] = pa.nulls(n, pa.int64())
        columns["shared_written_bytes"] = pa.nulls(n, pa.int64())
    columns["reason"] = pa.array(
        [UNKNOWN_REASON if u else "" for u in unknown.tolist()], pa.string()
    )
    arrays = [
        pa.array(columns[c], pa.int64()) if c.endswith("bytes") else columns[c] for c in COLUMNS
    ]
    return pa.Table.from_arrays(
        arrays, names=list(COLUMNS), metadata={"mode": ids.mode, "page_size": str(size)}
    )


def written_attribution(
    written: Mapping[int, Regions], identities: PageIdentities
) -> dict[str, np.ndarray]:
    """Written and shared-written bytes per process: a page written by several is every writer's.

    Parameters
    ----------
    written : mapping of pid to Regions
        The written ranges of each process (every range counts as written, whatever its
        categories), e.g. ``capture.written_at(i)``. A pid not in ``identities`` is ignored.
    identities : PageIdentities
        From :func:`identify` at the same moment.

    Returns
    -------
    dict
        ``pid``, ``written_bytes`` (all pages in the written ranges) and
        ``shared_written_bytes`` (those whose physical page another process of the set wrote
        too), arrays parallel to ``identities.processes``. A written page that is not resident
        any more, or whose sharing is unknown, is never counted as shared-written.
    """
    size = identities.page_size
    shift = size.bit_length() - 1
    n = len(identities.processes)
    written_pages = np.zeros(n, np.int64)
    keys_per_proc = []
    for i, p in enumerate(identities.processes):
        regions = written.get(p.pid)
        if regions is None or len(regions) == 0:
            keys_per_proc.append(np.zeros(0, np.int64))
            continue
        lo = regions.start >> np.uint64(shift)
        hi = -(-regions.end.astype(np.int64) // size)  # a partial page at the end counts
        written_pages[i] = int((hi - lo.astype(np.int64)).sum())
        j = np.searchsorted(lo, p.pages, side="right") - 1
        inside = (j >= 0) & (p.pages.astype(np.int64) < hi[np.maximum(j, 0)])
        k = p.keys[inside]
        keys_per_proc.append(k[k >= 0])
    shared_pages = np.zeros(n, np.int64)
    proc = np.repeat(np.arange(n), [len(k) for k in keys_per_proc])
    keys = np.concatenate(keys_per_proc) if keys_per_proc else np.zeros(0, np.int64)
    if len(keys):
        writers, _ = _key_groups(keys, proc)
        shared_pages = np.bincount(proc[writers >= 2], minlength=n).astype(np.int64)
    return {
        "pid": np.array(identities.pids, np.int64),
        "written_bytes": written_pages * size,
        "shared_written_bytes": shared_pages * size,
    }


# -- reading one process ------------------------------------------------------------------------


@dataclass
class _Raw:
    pid: int
    pages: np.ndarray  # uint64 virtual page numbers of counted present pages
    entries: np.ndarray  # their classic pagemap entries
    swap_pages: int
    vmas: Vmas
    rollup: dict[str, int]


def _read_process(handle: ProcessHandle, use_pfn: bool) -> _Raw:
    """Read one process's maps and resident entries (the caller holds and closes the handle)."""
    pid = handle.pid
    vmas = Vmas.parse(handle.read("maps").decode("utf-8", "surrogateescape"))
    fd = handle.open("pagemap")
    try:
        ranges = _resident_ranges(fd, pid, vmas)
        pages, entries = _read_entries(fd, pid, ranges)
    finally:
        os.close(fd)
    rollup = {} if use_pfn else smaps.parse_rollup(handle.read("smaps_rollup").decode())
    handle.check()
    present = (entries & np.uint64(pm.PM_PRESENT)) != 0
    swapped = (entries & np.uint64(pm.PM_SWAP)) != 0
    # A uffd-wp or guard marker reads as a swap entry of type 31 (or with PM_GUARD_REGION):
    # not a page on swap, and smaps does not count it either.
    real_swap = (
        swapped
        & ((entries & np.uint64(pm.PM_GUARD_REGION)) == 0)
        & ((entries & np.uint64(pm.PM_SWAP_TYPE_MASK)) != pm.MARKER_SWAP_TYPE)
    )
    # Pages the kernel does not count in Rss: VM_PFNMAP mappings (no struct page).
    vi = vmas.find(pages << np.uint64(pms.PAGE_SHIFT))
    nostruct = np.isin(vmas.paths, _NO_STRUCT_PAGE)
    keep = present & ~((vi >= 0) & nostruct[np.maximum(vi, 0)] if len(vmas) else False)
    if use_pfn and keep.any() and not (entries[keep] & np.uint64(pm.PM_PFN_MASK)).any():
        raise kpage.pfn_access_error(f"reading PFNs of process {pid}")
    return _Raw(pid, pages[keep], entries[keep], int(real_swap.sum()), vmas, rollup)


def _resident_ranges(fd: int, pid: int, vmas: Vmas) -> np.ndarray:
    """``[start, end)`` page-number ranges of present (non-zero-page) and swapped pages."""
    if not features().pagemap_scan:  # the classic reader: every mapped page
        return np.stack(
            [vmas.start >> np.uint64(pms.PAGE_SHIFT), vmas.end >> np.uint64(pms.PAGE_SHIFT)], 1
        )
    try:
        regions = pms.scan_range(
            fd,
            0,
            user_address_limit(),
            category_anyof_mask=int(Category.PRESENT | Category.SWAPPED),
            return_mask=int(Category.PRESENT | Category.SWAPPED | Category.PFNZERO),
        )
    except OSError as err:
        raise procfs.translate(err, pid, "pagemap (PAGEMAP_SCAN)") from err
    # The shared zero page is mapped but is not in Rss (vm_normal_page() returns NULL).
    regions = regions[(regions["categories"] & np.uint64(Category.PFNZERO)) == 0]
    shift = np.uint64(pms.PAGE_SHIFT)
    return np.stack([regions["start"] >> shift, regions["end"] >> shift], 1)


def _read_entries(fd: int, pid: int, ranges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Page numbers in ``ranges`` and their classic pagemap entries.

    Ranges closer than ``_READ_THROUGH_PAGES`` are read as one span (a few KiB of extra
    entries cost less than another syscall); one pread per span, never per page.
    """
    if len(ranges) == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    lo, hi = ranges[:, 0], ranges[:, 1]
    pages = _expand(lo, hi)
    cut = np.flatnonzero(lo[1:] - hi[:-1] >= np.uint64(_READ_THROUGH_PAGES)) + 1
    span_lo = lo[np.concatenate(([0], cut))]
    span_hi = hi[np.concatenate((cut - 1, [len(hi) - 1]))]
    span_len = (span_hi - span_lo).astype(np.int64)
    offsets = np.concatenate(([0], np.cumsum(span_len)))
    buf = np.zeros(int(offsets[-1]), np.uint64)
    try:
        for s, o, n in zip(span_lo.tolist(), offsets[:-1].tolist(), span_len.tolist()):
            pm.pread_entries(fd, s << pms.PAGE_SHIFT, buf[o : o + n])
    except OSError as err:
        raise procfs.translate(err, pid, "pagemap") from err
    span = np.searchsorted(span_lo, pages, side="right") - 1
    return pages, buf[offsets[span] + (pages - span_lo[span]).astype(np.int64)]


def _expand(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Every integer of the ranges ``[lo, hi)``, concatenated (no Python loop)."""
    n = (hi - lo).astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(n)[:-1]))
    return (np.repeat(lo.astype(np.int64) - starts, n) + np.arange(int(n.sum()))).astype(np.uint64)


# -- identities ---------------------------------------------------------------------------------


def _without_zero_pages(raw: list[_Raw]) -> list[_Raw]:
    """Drop pages that map the shared zero page, named by ``KPF_ZERO_PAGE`` in kpageflags.

    Without PAGEMAP_SCAN (Linux < 6.7) there is no ``PFNZERO`` category to skip them by, and
    the kernel does not count them in ``Rss`` (``vm_normal_page()`` returns NULL for them).
    """
    if not raw:
        return raw
    pfns = np.concatenate([r.entries & np.uint64(pm.PM_PFN_MASK) for r in raw])
    fd = kpage.open_kpage(kpage.KPAGEFLAGS)
    try:
        flags = kpage.read_frames(fd, pfns)
    finally:
        os.close(fd)
    zero = ((flags >> np.uint64(kpage.KPF_ZERO_PAGE)) & np.uint64(1)).astype(bool)
    bounds = np.cumsum([0] + [len(r.pages) for r in raw])
    out = []
    for i, r in enumerate(raw):
        keep = ~zero[bounds[i] : bounds[i + 1]]
        out.append(_Raw(r.pid, r.pages[keep], r.entries[keep], r.swap_pages, r.vmas, r.rollup))
    return out


def _with_mapcounts(raw: list[_Raw]) -> list[ProcessPages]:
    if not features().pagemap_scan:
        raw = _without_zero_pages(raw)
    pfns = [r.entries & np.uint64(pm.PM_PFN_MASK) for r in raw]
    fd = kpage.open_kpage(kpage.KPAGECOUNT)
    try:
        counts = kpage.read_frames(fd, np.concatenate(pfns)) if raw else np.zeros(0, np.uint64)
    finally:
        os.close(fd)
    bounds = np.cumsum([0] + [len(p) for p in pfns])
    out = []
    for i, r in enumerate(raw):
        mc = counts[bounds[i] : bounds[i + 1]].astype(np.int64)
        out.append(
            ProcessPages(r.pid, r.pages, pfns[i].astype(np.int64), mc, mc < 2, r.swap_pages, {})
        )
    return out


def _with_file_keys(raw: list[_Raw]) -> list[ProcessPages]:
    """Key page-cache/shmem pages by (device, inode, page offset); anonymous ones by sharing."""
    shift = np.uint64(pms.PAGE_SHIFT)
    files, pgoffs, which = [], [], []
    for r in raw:
        is_file = (r.entries & np.uint64(pm.PM_FILE)) != 0
        vi = r.vmas.find(r.pages[is_file] << shift)
        v = r.vmas.array[np.maximum(vi, 0)]
        dev = (v["dev_major"].astype(np.uint64) << np.uint64(32)) | v["dev_minor"]
        files.append(np.stack([dev, v["inode"]], 1))
        pgoffs.append((v["offset"] >> shift) + r.pages[is_file] - (v["start"] >> shift))
        which.append(is_file)
    all_files = np.concatenate(files) if files else np.zeros((0, 2), np.uint64)
    _, file_id = np.unique(all_files, axis=0, return_inverse=True)
    file_id = file_id.reshape(-1).astype(np.int64)
    bounds = np.cumsum([0] + [len(f) for f in files])
    out = []
    for i, r in enumerate(raw):
        exclusive = (r.entries & np.uint64(pm.PM_MMAP_EXCLUSIVE)) != 0
        keys = np.where(exclusive, EXCLUSIVE, UNKNOWN).astype(np.int64)
        keys[which[i]] = (file_id[bounds[i] : bounds[i + 1]] << _FILE_KEY_SHIFT) | pgoffs[i].astype(
            np.int64
        )
        out.append(ProcessPages(r.pid, r.pages, keys, None, exclusive, r.swap_pages, r.rollup))
    return out


# -- tree-wide counting -------------------------------------------------------------------------


def _uss_pss(mapcount: np.ndarray, page_size: int) -> tuple[int, int]:
    """USS and PSS bytes exactly as ``smaps_account()`` sums them (12-bit fixed point)."""
    one = page_size << _PSS_SHIFT
    private = mapcount < 2
    shared_pss = (one // mapcount[~private]).sum(dtype=np.int64)
    fixed = int(private.sum()) * one + int(shared_pss)
    return int(private.sum()) * page_size, fixed >> _PSS_SHIFT


def _key_groups(keys: np.ndarray, proc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per entry: how many distinct processes have its key; per distinct key: its first process.

    ``proc`` must be non-decreasing (entries concatenated process by process): one stable
    sort by key then keeps each key's entries in process order, so a key's first entry is
    its first process and a change of process within a key's run is one more sharer.
    """
    order = np.argsort(keys, kind="stable")
    k, p = keys[order], proc[order]
    new_key = np.empty(len(k), bool)
    new_key[:1] = True
    new_key[1:] = k[1:] != k[:-1]
    new_pair = new_key.copy()
    new_pair[1:] |= p[1:] != p[:-1]
    group = np.cumsum(new_key) - 1
    sharers = np.bincount(group, weights=new_pair).astype(np.int64)
    per_entry = np.empty(len(k), np.int64)
    per_entry[order] = sharers[group]
    return per_entry, p[new_key]


def _tree_counts(ids: PageIdentities) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per process: pages shared within the set, pages counted once, pages of unknown sharing."""
    n = len(ids.processes)
    keys = np.concatenate([p.keys for p in ids.processes]) if n else np.zeros(0, np.int64)
    proc = np.repeat(np.arange(n), [len(p.keys) for p in ids.processes])
    named = keys >= 0
    tree_shared = np.zeros(n, np.int64)
    counted = np.bincount(proc[keys == EXCLUSIVE], minlength=n).astype(np.int64)
    unknown = np.bincount(proc[keys == UNKNOWN], minlength=n).astype(np.int64)
    if named.any():
        p = proc[named]
        sharers, owners = _key_groups(keys[named], p)
        tree_shared = np.bincount(p[sharers >= 2], minlength=n).astype(np.int64)
        # Each distinct key once, to the first process (in the given order) that maps it.
        counted += np.bincount(owners, minlength=n).astype(np.int64)
    return tree_shared, counted, unknown
