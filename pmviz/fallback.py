"""The classic-pagemap backend: ``PAGEMAP_SCAN`` emulated from 8-byte ``/proc/PID/pagemap``.

For kernels without ``PAGEMAP_SCAN`` (< 6.7), and as an independent cross-check of it. Every
VMA in the range is read (never the gaps between them, which the kernel does not report
either), decoded page by page with numpy and run-length encoded into the regions an
unfiltered ``PAGEMAP_SCAN`` returns; :meth:`Mask.apply` then does any filtering, output
masking and ``max_pages`` truncation exactly as the kernel would.

What the classic entry can and cannot say (spec §5, §3.5):

======================  ======================================================================
PRESENT, SWAPPED        bits 63, 62 (SWAPPED includes uffd-wp and guard markers, as in the
                        ioctl).
GUARD, SOFT_DIRTY       bits 58, 55.
FILE                    bit 61, except that the *huge* zero page reads as file in the classic
                        pagemap and not in PAGEMAP_SCAN: a present "file" page in a private
                        anonymous VMA (a private /dev/zero mapping is one) can only be the
                        huge zero page, and is reported as PFNZERO instead.
PFNZERO                 the 4 KiB zero page is recognised by its PFN, which the kernel shows
                        only to CAP_SYS_ADMIN; without it PFNZERO is never set for 4 KiB pages
                        (the huge zero page is recognised without PFNs, see FILE).
WRITTEN                 "not uffd-write-protected": the inverse of bit 57 for present and
                        swapped pages. For an empty entry the ioctl says WRITTEN for a
                        ``pte_none`` in an existing page table and nothing for a PMD hole
                        (non-uffd VMA, Linux 6.18). The classic entry is 0 for both, so an empty
                        page counts as in a hole when no page of its 2 MiB block is mapped or
                        swapped, and as ``pte_none`` (WRITTEN) otherwise. Wrong for blocks
                        whose pages were all mapped once and unmapped since (MADV_DONTNEED;
                        reclaim or MADV_PAGEOUT of shmem and file pages, which leave
                        ``pte_none``): the page table stays and the ioctl says WRITTEN. Also
                        wrong for holes in uffd-wp VMAs (the ioctl says WRITTEN).
HUGE, WPALLOWED         unknown: never set. A mask that filters on them warns.
======================  ======================================================================

VM_PFNMAP VMAs, which the ioctl skips, are recognised by name (``[vvar]``, ``[vvar_vclock]``);
a device driver's PFN mapping would be reported by the fallback and skipped by the ioctl.
Cost: 8 bytes read per page of every VMA in the range (a 16 TiB reservation is 32 GiB of
reads), which is why PAGEMAP_SCAN exists. Decoding adds about a third to the read when runs
span tens of pages, and about 1.5 times the read when every page is a region of its own
(``benchmarks/RESULTS-kernel.md``, (e)).
"""

from __future__ import annotations

import functools
import mmap
import os
import re
import threading
import warnings

import numpy as np

from ._kernel import pagemap as pm
from ._kernel import procfs
from ._kernel.pagemap_scan import PAGE_SHIFT, PAGE_SIZE, REGION_DTYPE, RegionBuffer
from ._kernel.procfs import Pid
from .categories import ALL_CATEGORIES, Category, category_names
from .errors import NoSuchProcess, PmvizWarning
from .mask import Mask
from .regions import Regions

__all__ = ["scan_pagemap", "KNOWN_CATEGORIES", "UNKNOWN_CATEGORIES"]

UNKNOWN_CATEGORIES = Category.HUGE | Category.WPALLOWED
"""Categories the classic pagemap cannot express; the fallback never sets them."""
KNOWN_CATEGORIES = ALL_CATEGORIES & ~UNKNOWN_CATEGORIES
"""Categories the fallback reports (see the module docstring for the caveats)."""

_ALL = int(ALL_CATEGORIES)
_NO_MASK = Mask()
_PFNMAP_NAMES = frozenset({"[vvar]", "[vvar_vclock]"})  # skipped by the ioctl (spec §3.2)
_BLOCK_PAGES = 1 << (21 - PAGE_SHIFT)  # pages per PMD: one page table
_CHUNK_PAGES = 1 << 17  # pages read and decoded at once (1 MiB of entries: stays in L2)
_SMALL_REGIONS = 1 << 13  # results up to this size are built in scratch, then copied out
# Pages run-length encoded at once when runs are many (see _append). Their temporaries (up
# to 160 KiB) are then recycled by malloc; at 32K pages they were page-faulted in every time.
_DENSE_PAGES = 1 << 14
# numpy scalars for the ufunc calls, made once (a Python int is converted on every call).
_U64_PAGE_SHIFT = np.uint64(PAGE_SHIFT)
_U64_TOP_SHIFT = np.uint64(55)  # bits 55..63 of an entry become a page's key

# A page's key: bits 55..63 of its entry (bit 56 "exclusive" cleared), plus ZERO and HOLE.
# Equal keys run-length encode together; _lut() maps a key to the ioctl's categories.
_EXCLUSIVE = 1 << 1
_PRESENT = 1 << 8
_FILE = 1 << 6
_ZERO_SHAPE = _PRESENT | 1 << 7 | _EXCLUSIVE  # present, swapped, exclusive
_ZERO = 1 << 9
_HOLE = 1 << 10
_NONEMPTY_MIN = 1 << 7  # SWAPPED (62) or PRESENT (63) set
_KEY_MASK = 0x7FF & ~_EXCLUSIVE
_U16 = {
    name: np.uint16(value)
    for name, value in [
        ("zero_shape", _ZERO_SHAPE),
        ("present", _PRESENT),
        ("key_mask", _KEY_MASK),
        ("nonempty_min", _NONEMPTY_MIN),
        ("hole", _HOLE),
        ("file", _FILE),
    ]
}


@functools.cache
def _lut() -> np.ndarray:
    key = np.arange(1 << 11, dtype=np.uint64)
    bit = lambda k: (key >> np.uint64(k)) & np.uint64(1)  # noqa: E731
    present, swapped, file, guard, wp, sd = bit(8), bit(7), bit(6), bit(3), bit(2), bit(0)
    zero, hole = bit(9), bit(10)
    empty = (present | swapped) ^ np.uint64(1)
    written = ((present | swapped) & (wp ^ np.uint64(1))) | (empty & (hole ^ np.uint64(1)))
    cats = (
        present * np.uint64(Category.PRESENT)
        | swapped * np.uint64(Category.SWAPPED)
        | file * np.uint64(Category.FILE)
        | guard * np.uint64(Category.GUARD)
        | sd * np.uint64(Category.SOFT_DIRTY)
        | written * np.uint64(Category.WRITTEN)
        | zero * np.uint64(Category.PFNZERO)
    )
    return cats


@functools.cache
def _zero_pfn() -> int:
    """The PFN of the 4 KiB zero page, or 0 when PFNs are hidden (no CAP_SYS_ADMIN)."""
    page = mmap.mmap(-1, PAGE_SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    view = np.frombuffer(page, dtype=np.uint8)
    try:
        page.madvise(mmap.MADV_NOHUGEPAGE)
        int(view[0])  # a read fault on untouched private memory maps the zero page
        addr = view.ctypes.data
        fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        try:
            (entry,) = pm.read_entries(fd, addr, addr + PAGE_SIZE).tolist()
        finally:
            os.close(fd)
        return entry & pm.PM_PFN_MASK if entry & pm.PM_PRESENT else 0
    except OSError:
        return 0
    finally:
        del view
        page.close()


def _is_anon(path: str) -> bool:
    """Whether a *private* VMA with this maps path is anonymous to the kernel.

    A private mapping of /dev/zero is: ``mmap_zero()`` makes it anonymous
    (``vma_set_anonymous``), keeping only the file for maps to show, so the ioctl reports
    its huge zero page as PFNZERO, never FILE.
    """
    return not path or path in ("[heap]", "[stack]", "/dev/zero") or path.startswith("[anon:")


def _vma_spans(pid: Pid, lo: int, hi: int) -> list[tuple[int, int, str, bool]]:
    """``(start, end, path, shared)`` of the VMAs meeting ``[lo, hi)``, clipped to it.

    Only what the fallback needs from ``/proc/PID/maps``: much cheaper than ``read_maps``,
    which classifies every VMA. The kernel formats maps as it is read, about 1.5 us per VMA
    (most of the fallback's fixed cost), so it is read in growing pieces (1 KiB, then four
    times more each time) and no further than the first VMA past ``hi``. Mappings are placed
    top-down, so the most recent large ones (the usual targets) come right after the heap,
    within the first few records.
    """
    spans: list[tuple[int, int, str, bool]] = []
    with procfs.open_fd(pid, "maps") as fd:
        tail, size = b"", 1 << 10
        while True:
            try:
                piece = os.read(fd, size)
            except OSError as err:
                raise procfs.translate(err, pid, "maps") from err
            if not piece:
                return spans
            text = tail + piece
            cut = text.rfind(b"\n") + 1  # a record may straddle two reads
            tail = text[cut:]
            for first, last, share, path in _MAPS_LINE.findall(text, 0, cut):
                start, end = int(first, 16), int(last, 16)
                if start >= hi:
                    return spans  # maps is sorted by address
                if end > lo:
                    name = path.decode("utf-8", "surrogateescape")
                    spans.append((max(start, lo), min(end, hi), name, share == b"s"))
            size = min(size * 4, 1 << 20)


# "start-end perms offset dev inode   path": the fields the fallback needs, one regex pass.
_MAPS_LINE = re.compile(rb"^([0-9a-f]+)-([0-9a-f]+) \S{3}(\S) \S+ \S+ \S+ *(.*)$", re.MULTILINE)


def scan_pagemap(
    pid: Pid = "self",
    start: int | None = None,
    end: int | None = None,
    *,
    mask: Mask | None = None,
    max_pages: int = 0,
) -> Regions:
    """Scan a process from the classic ``/proc/PID/pagemap`` (no ``PAGEMAP_SCAN`` needed).

    Returns what ``PAGEMAP_SCAN`` would, for the categories the classic entries can express:
    see the module docstring for HUGE and WPALLOWED (never set), the WRITTEN heuristic for
    empty pages, and PFNZERO without CAP_SYS_ADMIN.

    Parameters
    ----------
    pid : int or "self"
        The process (PTRACE_MODE_READ access needed, as for the ioctl).
    start, end : int, optional
        Address range, validated like the ioctl's (default: the whole user address space).
    mask : Mask, optional
        Filter and report mask, applied exactly as the kernel would (default: everything).
    max_pages : int
        Stop after this many matching pages (0 = unlimited).

    Returns
    -------
    Regions

    Raises
    ------
    NoSuchProcess, AccessDenied
        The process vanished, or may not be read (the message names CAP_SYS_PTRACE).
    ValueError, TypeError
        Bad range, mask or ``max_pages``.

    Warns
    -----
    PmvizWarning
        When ``mask`` filters on a category this backend cannot know.

    Examples
    --------
    >>> import pmviz
    >>> from pmviz.fallback import scan_pagemap
    >>> scan_pagemap().pages_with(pmviz.Category.PRESENT) > 0
    True
    """
    from .scanning import check_scan_args

    pid = procfs.normalize_pid(pid)
    if mask is None:
        mask = _NO_MASK
    lo, hi = check_scan_args(start, end, mask, max_pages)
    _warn_unknown(mask)
    # Round like the ioctl (spec §2 check 10): end up to a page.
    hi = -(-hi // PAGE_SIZE) * PAGE_SIZE
    fd = procfs.open_raw(pid, "pagemap")
    try:
        out = _Writer(fd, pid)
        for s, e, path, shared in _vma_spans(pid, lo, hi):
            # Per VMA (not per page): a few hundred, at most a few thousand.
            if path not in _PFNMAP_NAMES:
                out.add_vma(s, e, not shared and _is_anon(path))
        runs = out.result()
    except OSError as err:  # pread after the target exited, or lost access
        raise procfs.translate(err, pid, "pagemap") from err
    finally:
        os.close(fd)
    if not (max_pages or mask.category_mask or mask.category_anyof_mask) and (
        mask.return_mask & _ALL == _ALL
    ):
        return Regions(runs)  # runs of distinct keys are already the kernel's regions
    return mask.apply(Regions(runs), max_pages=max_pages)


def _warn_unknown(mask: Mask) -> None:
    used = mask.category_mask | mask.category_anyof_mask
    unknown = used & int(UNKNOWN_CATEGORIES)
    if not _zero_pfn():
        unknown |= used & int(Category.PFNZERO)
    if unknown:
        warnings.warn(
            f"the classic pagemap cannot tell {category_names(unknown)}; the fallback treats it as never set "
            "(PFNZERO needs CAP_SYS_ADMIN to see PFNs)",
            PmvizWarning,
            stacklevel=3,
        )


class _Scratch(threading.local):
    """Per-thread work arrays for one chunk, reused across scans.

    Fresh arrays above glibc's mmap threshold are page-faulted in on every allocation, which
    costs more than decoding them; a chunk's arrays (about 2.3 MiB) are kept instead.
    """

    def __init__(self) -> None:
        c = _CHUNK_PAGES
        runs = max(c >> 4, _DENSE_PAGES)  # most runs ever written at once (see _append)
        self.entries = np.empty(c, dtype=np.uint64)
        self.keys = np.empty(c, dtype=np.uint16)
        self.tmp = np.empty(c, dtype=np.uint16)
        self.flags = np.empty(c, dtype=bool)
        self.addrs = np.empty(runs, dtype=np.uint64)
        self.run_keys = np.empty(runs, dtype=np.uint16)
        self.cats = np.empty(runs, dtype=np.uint64)
        self.out = np.empty(_SMALL_REGIONS, dtype=REGION_DTYPE)
        # Byte offset of each page in a dense block, and the first page of each 2 MiB block
        # of an aligned chunk: constants, made once.
        self.offsets = np.arange(_DENSE_PAGES, dtype=np.uint64) << _U64_PAGE_SHIFT
        self.blocks = np.arange(0, c, _BLOCK_PAGES)


_scratch = _Scratch()


class _Writer:
    """Decodes VMAs chunk by chunk into one growing region array, merging across chunks.

    The output starts in per-thread scratch and moves to a ``RegionBuffer`` (no copy however
    large) when it outgrows it. Adjacent equal runs are merged at chunk, block and VMA
    boundaries, so for an unfiltered mask the result is already what the kernel returns and
    ``Mask.apply`` passes it through untouched.
    """

    def __init__(self, fd: int, pid: Pid) -> None:
        self.fd, self.pid = fd, pid
        self.zero_pfn = _zero_pfn()
        self.lut = _lut()
        # Small results are written to scratch and copied out: cheaper than setting up a
        # RegionBuffer (mremap, array interface), which takes over when they grow.
        self.buffer: RegionBuffer | None = None
        self.regions = _scratch.out
        self.n = 0
        # The last region written, as Python ints (cheaper than reading numpy scalars back).
        self.last_end = self.last_categories = -1

    def add_vma(self, start: int, end: int, anon: bool) -> None:
        vpn, last = start >> PAGE_SHIFT, end >> PAGE_SHIFT
        scratch = _scratch
        while vpn < last:
            # Read and decode one cache-sized chunk at a time, so that the entries are still
            # in L2 when decoded. Chunks end on 2 MiB boundaries: a page table never
            # straddles two chunks.
            stop = min(last, (vpn + _CHUNK_PAGES) // _BLOCK_PAGES * _BLOCK_PAGES)
            entries = scratch.entries[: stop - vpn]
            if pm.pread_entries(self.fd, vpn << PAGE_SHIFT, entries) != stop - vpn:
                # A short read inside a VMA: the process exited under us (its mm is gone).
                raise NoSuchProcess(self.pid, f"process {self.pid} exited during the scan")
            keys = np.right_shift(entries, _U64_TOP_SHIFT, out=scratch.keys[: stop - vpn])
            _mark_holes(self.fd, keys, vpn)
            self._append(keys, entries, vpn, anon)
            vpn = stop

    def _reserve(self, k: int) -> np.ndarray:
        """Room for ``k`` more regions; returns the writable view of everything so far."""
        need = self.n + k
        if need <= len(self.regions):
            return self.regions
        if self.buffer is None:
            # Sized for now, not more: it reuses the memory of the last large result, and
            # growing it to a usual size would cost a mremap on every scan.
            self.buffer = RegionBuffer(need)
            view = self.buffer.view(self.buffer.capacity)
            view[: self.n].view(np.uint64)[:] = self.regions[: self.n].view(np.uint64)
            self.regions = view
        while self.buffer.capacity < need:
            self.regions = np.empty(0, dtype=REGION_DTYPE)  # no view across a move
            self.buffer.grow()
        if len(self.regions) < need:
            self.regions = self.buffer.view(self.buffer.capacity)
        return self.regions

    def _append(self, keys: np.ndarray, entries: np.ndarray, vpn: int, anon: bool) -> None:
        """Run-length encode one chunk's raw keys into the buffer.

        One pass finds where the key changes. When runs are few, they are gathered by index
        and finished at run level: unless a run may hold zero pages, clearing "exclusive"
        (not a category) and merging the runs that differed only in it gives the same runs
        as clearing it page by page, for a few passes over the runs instead of four over the
        pages. Otherwise the keys are finished page by page and encoded again; many runs are
        gathered by boolean mask (cheaper per run), a cache-sized block at a time.
        """
        m = keys.shape[0]
        scratch = _scratch
        base = vpn << PAGE_SHIFT
        change = scratch.flags[:m]
        np.not_equal(keys[1:], keys[:-1], out=change[1:])
        change[0] = True
        k = int(np.count_nonzero(change))
        if k <= m >> 4:
            first = np.flatnonzero(change).view(np.uint64)
            run_keys = np.take(keys, first, out=scratch.run_keys[:k], mode="clip")
            if not _may_hold_zero_pages(run_keys, self.zero_pfn, anon):
                np.bitwise_and(run_keys, _U16["key_mask"], out=run_keys)
                new = np.not_equal(run_keys[1:], run_keys[:-1])
                if not new.all():
                    keep = np.concatenate(([True], new))
                    first, run_keys = first[keep], run_keys[keep]
                offsets = np.left_shift(first, _U64_PAGE_SHIFT, out=scratch.addrs[: len(first)])
                self._write(offsets, run_keys, base, m)
                return
        _finish_keys(keys, entries, self.zero_pfn, anon)  # (uses the flags as scratch too)
        np.not_equal(keys[1:], keys[:-1], out=change[1:])
        change[0] = True
        k = int(np.count_nonzero(change))
        if k <= m >> 4:
            first = np.flatnonzero(change).view(np.uint64)
            offsets = np.left_shift(first, _U64_PAGE_SHIFT, out=scratch.addrs[:k])
            run_keys = np.take(keys, first, out=scratch.run_keys[:k], mode="clip")
            self._write(offsets, run_keys, base, m)
            return
        for lo in range(0, m, _DENSE_PAGES):
            hi = min(m, lo + _DENSE_PAGES)
            block = change[lo:hi]
            block[0] = True  # a run cut here is merged back by _write
            offsets = scratch.offsets[: hi - lo][block]
            self._write(offsets, keys[lo:hi][block], (vpn + lo) << PAGE_SHIFT, hi - lo)

    def _write(self, offsets: np.ndarray, run_keys: np.ndarray, base: int, m: int) -> None:
        """Append the runs starting at ``base + offsets`` (of ``m`` pages in all).

        Everything is uint64: a ufunc writes a strided field of the output directly only
        when no cast is needed (otherwise numpy buffers, several times slower).
        """
        k = offsets.shape[0]
        categories = np.take(self.lut, run_keys, out=_scratch.cats[:k], mode="clip")
        # The first run may continue the last region (across a chunk or VMA edge).
        merge = self.last_end == base and self.last_categories == int(categories[0])
        n = self.n - merge
        regions = self._reserve(k - merge)[n : n + k]
        starts, ends = regions["start"], regions["end"]
        prev_start = int(starts[0]) if merge else 0
        np.add(offsets, base, out=starts)
        np.copyto(ends[:-1], starts[1:])
        self.last_end = ends[-1] = base + (m << PAGE_SHIFT)
        regions["categories"] = categories
        self.last_categories = int(categories[-1])
        if merge:
            starts[0] = prev_start
        self.n = n + k

    def result(self) -> np.ndarray:
        if self.buffer is None:
            # Copied as plain words: numpy copies a structured array field by field, 8x slower.
            return self.regions[: self.n].view(np.uint64).copy().view(REGION_DTYPE)
        self.regions = np.empty(0, dtype=REGION_DTYPE)  # drop the view before trimming
        self.buffer.trim(self.n)
        return np.asarray(self.buffer)


# A page's key is bits 55..63 of its entry (one contiguous shift-and-narrow pass, twice as
# fast as reading the entries' top uint16 with a stride of 4), finished by _finish_keys.


def _may_hold_zero_pages(keys: np.ndarray, zero_pfn: int, anon: bool) -> bool:
    """Whether ``_finish_keys`` would change any page with one of these raw keys.

    Zero pages are present, not swapped and not exclusive (vm_normal_page() is NULL);
    anonymous memory is almost always exclusive. Such "file" pages matter only in anonymous
    VMAs (the huge zero page), others only when the zero page's PFN is known.
    """
    shaped = (keys & _U16["zero_shape"]) == _U16["present"]
    if not (anon and zero_pfn):
        file = (keys & _U16["file"]) != 0
        shaped &= file if anon else ~file if zero_pfn else False
    return bool(shaped.any())


def _finish_keys(keys: np.ndarray, entries: np.ndarray, zero_pfn: int, anon: bool) -> None:
    """Raw keys to final keys in place: "exclusive" cleared, _ZERO for zero pages.

    Distinct final keys mean distinct categories, so runs of equal keys are the kernel's
    regions.
    """
    m = keys.shape[0]
    maybe = np.bitwise_and(keys, _U16["zero_shape"], out=_scratch.tmp[:m])
    shaped = np.equal(maybe, _U16["present"], out=_scratch.flags[:m])
    if shaped.any():
        candidates = np.flatnonzero(shaped)
        file = (keys[candidates] & _U16["file"]) != 0
        if anon:
            # The huge zero page reads as "file" (spec §5); in a private anonymous VMA
            # nothing else can, and the ioctl calls it PFNZERO, not FILE.
            huge = candidates[file]
            keys[huge] ^= np.uint16(_FILE | _ZERO)
        if zero_pfn:
            small = candidates[~file]
            pfns = entries[small] & np.uint64(pm.PM_PFN_MASK)
            keys[small[pfns == np.uint64(zero_pfn)]] |= np.uint16(_ZERO)
    np.bitwise_and(keys, _U16["key_mask"], out=keys)


def _mark_holes(fd: int, keys: np.ndarray, vpn: int) -> None:
    """Flag the pages of 2 MiB blocks with no page table (PMD holes), spec §3.5.

    A block has a table when any page in it is mapped or swapped; pages of the block outside
    this chunk (other VMAs, or parts outside the scanned range) are read separately, only for
    edge blocks that look empty here.
    """
    n = keys.shape[0]
    head = (-vpn) % _BLOCK_PAGES  # pages before the first block boundary
    if head:
        bounds = np.concatenate(([0], np.arange(head, n, _BLOCK_PAGES)))
    else:
        bounds = _scratch.blocks[: -(-n // _BLOCK_PAGES)]
    # Mapped and swapped pages have the largest keys: one maximum per block, one pass.
    maxima = np.maximum.reduceat(keys, bounds)
    if maxima.min() >= _NONEMPTY_MIN:
        return
    has_table = maxima >= _U16["nonempty_min"]
    lengths = np.diff(np.append(bounds, n))
    # Edge blocks only partly inside the chunk: look at the rest of the block.
    for j in {0, len(bounds) - 1}:
        if not has_table[j] and lengths[j] < _BLOCK_PAGES:
            block = ((vpn + int(bounds[j])) // _BLOCK_PAGES) * _BLOCK_PAGES
            whole = np.empty(_BLOCK_PAGES, dtype=np.uint64)
            got = pm.pread_entries(fd, block << PAGE_SHIFT, whole)
            has_table[j] = bool(((whole[:got] >> np.uint64(62)) != 0).any())
    hole = np.repeat(~has_table, lengths)
    np.bitwise_or(keys, _U16["hole"], out=keys, where=hole)
