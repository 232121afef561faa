"""Write tracking (uffd async WP + PM_SCAN_WP_MATCHING) against the live kernel: exact sets."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import sys
import textwrap
import threading

import numpy as np
import pytest
from privileges import as_nobody

import pmviz
from pmviz import AccessDenied, Category, NoSuchProcess, Regions, UnsupportedKernel
from pmviz._intervals import page_addresses
from pmviz._kernel import uffd
from pmviz.tracking import (
    TrackedChild,
    UffdTracker,
    WriteSource,
    WriteTracker,
    _engine,
    harvest_written,
    spawn_tracked_python,
)

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.usefixtures("under_swap"),  # tracking must hold with a swap device on (root)
    pytest.mark.skipif(
        not pmviz.features().uffd_wp_async, reason="needs userfaultfd async WP (Linux >= 6.7)"
    ),
]

P = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.mremap.restype = ctypes.c_void_p
libc.mremap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_void_p,
]
libc.sbrk.restype = ctypes.c_void_p
libc.sbrk.argtypes = [ctypes.c_long]

PROT_NONE, PROT_READ, PROT_RW = 0, 1, 3
MAP_PRIVATE_ANON, MAP_FIXED = 0x22, 0x10
MADV_DONTNEED = 4
MAP_FAILED = ctypes.c_void_p(-1).value


def mmap_anon(n_pages: int, *, at: int | None = None, prot: int = PROT_RW) -> int:
    flags = MAP_PRIVATE_ANON | (MAP_FIXED if at else 0)
    addr = libc.mmap(at, n_pages * P, prot, flags, -1, 0)
    assert addr not in (None, MAP_FAILED), os.strerror(ctypes.get_errno())
    return addr


def reserve(n_pages: int, align: int = 2 << 20) -> int:
    """An aligned, unmapped-again hole of ``n_pages`` (for MAP_FIXED tests)."""
    raw = mmap_anon(n_pages + align // P, prot=PROT_NONE)
    base = (raw + align - 1) & ~(align - 1)
    libc.munmap(raw, n_pages * P + align)
    return base


def write(addr: int, pages) -> None:
    for p in pages:
        ctypes.memset(addr + p * P, 0x5A, 1)


def read(addr: int, pages) -> None:
    for p in pages:
        ctypes.c_char.from_address(addr + p * P).value  # noqa: B018


def page_set(regions: Regions, lo: int | None = None, hi: int | None = None) -> set[int]:
    if lo is not None:
        regions = regions.clip(lo, hi)
    addrs, _ = page_addresses(regions.array)
    return set(addrs.tolist())


def pages(addr: int, idx) -> set[int]:
    return {addr + i * P for i in idx}


def shrink_heap_back(ours: int, brk0: int) -> None:
    """Undo our sbrk only if nothing (malloc) moved the break since: never cut its memory."""
    if libc.sbrk(0) == ours:
        libc.sbrk(brk0 - ours)


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def area():
    """A dedicated 64-page anonymous mapping, 2 MiB aligned, written before tracking starts."""
    base = mmap_anon(64, at=reserve(64))
    write(base, range(0, 64, 2))  # pre-existing data must never count as written
    yield base
    libc.munmap(base, 64 * P)


# -- in-process, exact -----------------------------------------------------------------------


def test_np_sort_writes_exactly_the_pages_of_the_array():
    buf = mmap.mmap(-1, 1024 * P)  # page-aligned backing store: the array owns its pages
    a = np.frombuffer(buf, dtype=np.float64)
    a[:] = np.random.default_rng(1).random(a.size)
    base = a.__array_interface__["data"][0]
    with WriteTracker(a) as tracker:
        assert tracker.collect().n_pages == 0  # counts from tracking start, not "present"
        np.sort(a)  # returns a sorted copy: the source pages stay clean
        assert page_set(tracker.collect()) == set()
        a[: a.size // 2].sort()  # in place, first half only
        assert page_set(tracker.collect()) == pages(base, range(512))
        a.sort()
        written = tracker.collect()
        assert page_set(written) == pages(base, range(1024))
        assert set(written.categories.tolist()) == {int(Category.WRITTEN)}
        assert len(written) == 1  # merged runs
    del a
    buf.close()


def test_exact_sets_per_collect_random_patterns(area):
    rng = np.random.default_rng(7)
    with WriteTracker((area, area + 64 * P)) as tracker:
        for _ in range(20):
            chosen = set(rng.choice(64, size=rng.integers(0, 20), replace=True).tolist())
            write(area, chosen)
            read(area, rng.choice(64, size=10).tolist())  # reads never count
            assert page_set(tracker.collect()) == pages(area, chosen)
        assert tracker.collect().n_pages == 0


def test_numpy_strided_writes(area):
    view = np.frombuffer((ctypes.c_uint8 * (64 * P)).from_address(area), dtype=np.uint8)
    with WriteTracker(view) as tracker:
        view[:: 5 * P] = 3  # every fifth page
        assert page_set(tracker.collect()) == pages(area, range(0, 64, 5))
        view[10 * P : 20 * P] += 1  # a contiguous slice
        assert page_set(tracker.collect()) == pages(area, range(10, 20))


def test_new_mapping_inside_tracked_range_is_picked_up():
    hole = reserve(128)
    with WriteTracker((hole, hole + 128 * P)) as tracker:
        assert tracker.registered.n_pages == 0
        new = mmap_anon(32, at=hole + 16 * P)
        write(new, [0, 5, 6, 31])
        read(new, [10, 11])  # zero page: not data
        assert page_set(tracker.collect()) == pages(new, [0, 5, 6, 31])
        assert tracker.registered.n_pages == 32
        write(new, [7])
        assert page_set(tracker.collect()) == pages(new, [7])
        libc.munmap(new, 32 * P)


def test_whole_process_mode_contains_heap_growth_and_new_mmaps():
    with WriteTracker() as tracker:
        assert tracker.skipped == [], tracker.skipped
        tracker.collect()
        brk0 = libc.sbrk(0)
        grown = libc.sbrk(64 * P)
        assert grown == brk0
        try:
            new = mmap_anon(16)
            write(grown, range(0, 64, 3))
            write(new, [1, 2, 15])
            written = tracker.collect()
            assert page_set(written, grown, grown + 64 * P) >= pages(grown, range(0, 64, 3))
            assert page_set(written, new, new + 16 * P) == pages(new, [1, 2, 15])
            write(new, [4])
            assert page_set(tracker.collect(), new, new + 16 * P) == pages(new, [4])
            libc.munmap(new, 16 * P)
        finally:
            shrink_heap_back(grown + 64 * P, brk0)


def test_dontneed_leaves_no_phantom_writes_and_rearms(area):
    with WriteTracker((area, area + 64 * P)) as tracker:
        write(area, [1, 2, 9])
        # DONTNEED zaps anon pages to unprotected pte_none, which the kernel reports WRITTEN
        # (spec §3.8); they hold no data, so like munmapped writes they are not reported.
        libc.madvise(area, 8 * P, MADV_DONTNEED)
        assert page_set(tracker.collect()) == pages(area, [9])
        read(area, range(8))  # zero pages now, not writes
        assert page_set(tracker.collect()) == set()
        libc.madvise(area, 8 * P, MADV_DONTNEED)
        assert page_set(tracker.collect()) == set()
        write(area, [3])
        assert page_set(tracker.collect()) == pages(area, [3])


def test_mprotect_keeps_tracking(area):
    with WriteTracker((area, area + 64 * P)) as tracker:
        write(area, [20])
        libc.mprotect(area + 16 * P, 16 * P, PROT_READ)
        assert page_set(tracker.collect()) == pages(area, [20])  # write before the mprotect
        libc.mprotect(area + 16 * P, 16 * P, PROT_RW)
        write(area, [17, 40])
        assert page_set(tracker.collect()) == pages(area, [17, 40])


def test_munmap_of_part_keeps_the_rest_exact(area):
    with WriteTracker((area, area + 64 * P)) as tracker:
        write(area, [3, 40])
        libc.munmap(area + 32 * P, 32 * P)  # 40's write vanishes with its mapping
        assert page_set(tracker.collect()) == pages(area, [3])
        write(area, [5])
        assert page_set(tracker.collect()) == pages(area, [5])
        remapped = mmap_anon(32, at=area + 32 * P)  # same addresses, a new VMA
        write(remapped, [1])
        assert page_set(tracker.collect()) == pages(remapped, [1])


def test_mremap_moved_vma_is_reregistered_and_reported_by_content():
    dst = reserve(64)
    src = mmap_anon(16)
    write(src, [0, 1, 2])
    with WriteTracker([(src, src + 16 * P), (dst, dst + 64 * P)]) as tracker:
        write(src, [1])
        moved = libc.mremap(src, 16 * P, 16 * P, 3, dst)  # MREMAP_MAYMOVE | MREMAP_FIXED
        assert moved == dst
        # The kernel drops the registration on mremap (no UFFD_FEATURE_EVENT_REMAP): the moved
        # VMA is picked up again and its data pages are reported (spec §3.8).
        assert page_set(tracker.collect()) == pages(dst, [0, 1, 2])
        write(dst, [9])
        assert page_set(tracker.collect()) == pages(dst, [9])
    libc.munmap(dst, 16 * P)


def test_concurrent_writers_lose_no_write(area):
    stop = threading.Event()
    written_by: list[set[int]] = [set(), set()]

    def writer(k: int) -> None:
        rng = np.random.default_rng(k)
        while not stop.is_set():
            p = int(rng.integers(k * 32, k * 32 + 32))
            write(area, [p])
            written_by[k].add(area + p * P)

    with WriteTracker((area, area + 64 * P)) as tracker:
        seen: set[int] = set()
        threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for _ in range(200):
            seen |= page_set(tracker.collect())
        stop.set()
        for t in threads:
            t.join()
        seen |= page_set(tracker.collect())
    assert seen == written_by[0] | written_by[1]


# -- lifecycle, errors, fds ------------------------------------------------------------------


def test_protocol_close_idempotent_and_no_fd_leak(area):
    before = open_fds()
    tracker = WriteTracker((area, area + 64 * P))
    assert isinstance(tracker, WriteSource) and tracker.mechanism == "uffd-wp"
    assert tracker.pid == "self"
    tracker.close()
    tracker.close()
    with pytest.raises(ValueError, match="closed"):
        tracker.collect()
    with WriteTracker() as whole:
        whole.collect()
    assert open_fds() == before
    # closing dropped every registration: the memory can be registered again
    with WriteTracker((area, area + 64 * P)) as again:
        assert again.registered.n_pages == 64


def test_bad_ranges_raise_and_leak_nothing():
    before = open_fds()
    with pytest.raises(TypeError, match="ranges must be"):
        WriteTracker("heap")
    with pytest.raises(ValueError, match="start < end"):
        WriteTracker((0x20000, 0x10000))
    with pytest.raises(TypeError, match="each range"):
        WriteTracker([(0x1000, 0x2000), "x"])
    assert open_fds() == before


def test_busy_vma_is_skipped_with_reason(area):
    with WriteTracker((area, area + 64 * P)) as first:
        with WriteTracker((area, area + 64 * P)) as second:
            assert second.registered.n_pages == 0
            (skip,) = second.skipped
            assert (skip.start, skip.end) == (area, area + 64 * P)
            assert "another userfaultfd" in skip.reason
            write(area, [9])
            assert page_set(second.collect()) == set()
        assert page_set(first.collect()) == pages(area, [9])


@pytest.mark.parametrize(
    ("err", "exc", "words"),
    [
        (errno.EPERM, AccessDenied, "vm.unprivileged_userfaultfd"),
        (errno.ENOSYS, UnsupportedKernel, "CONFIG_USERFAULTFD"),
    ],
)
def test_userfaultfd_refusal_names_cause_and_fix(monkeypatch, err, exc, words):
    def refuse(**_kw):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(uffd, "create", refuse)
    with pytest.raises(exc, match=words):
        WriteTracker()


def test_missing_wp_async_names_kernel_and_fallback(monkeypatch):
    before = open_fds()

    def old_kernel(fd, features):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(uffd, "api", old_kernel)
    with pytest.raises(UnsupportedKernel, match="WP_ASYNC.*6.7.*soft-dirty"):
        WriteTracker()
    assert open_fds() == before  # the half-made uffd was closed


def test_collect_raises_no_such_process_after_exit():
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    fd = _engine.open_uffd()  # a uffd of *this* mm: enough to test the exit path
    tracker = UffdTracker(proc.pid, fd, [(0x10000, 0x20000)])
    proc.stdin.close()
    proc.wait()
    with pytest.raises(NoSuchProcess):
        tracker.collect()
    tracker.close()


# -- other processes ----------------------------------------------------------------------------


def test_harvest_written_through_another_process_pagemap(layout_factory):
    from layouts import Area

    lay = layout_factory([Area("a", 64, write=[[0, 64]], uffd=True, write_after_arm=[3, [10, 13]])])
    lo, hi = lay.range("a")
    assert page_set(harvest_written(lay.pid, (lo, hi))) == pages(lo, [3, 10, 11, 12])
    assert harvest_written(lay.pid, (lo, hi)).n_pages == 0  # cleared: re-armed
    with pmviz.Pagemap(lay.pid) as pm:  # an open pagemap, whole address space
        assert page_set(harvest_written(pm), lo, hi) == set()


CHILD = textwrap.dedent(
    """
    import ctypes, mmap, sys
    P = mmap.PAGESIZE
    m = mmap.mmap(-1, 64 * P, flags=mmap.MAP_PRIVATE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(m))
    print(base, flush=True)
    extra = []
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "w":
            for p in args:
                m[int(p) * P] = 1
        elif cmd == "new":  # a new mapping after tracking began
            extra.append(mmap.mmap(-1, 8 * P, flags=mmap.MAP_PRIVATE))
            x = extra[-1]
            x[0] = 1
            x[7 * P] = 1
            print(ctypes.addressof(ctypes.c_char.from_buffer(x)), flush=True)
            continue
        print("ok", flush=True)
    m[63 * P] = 2  # the last write before exit
    """
)


def test_spawned_child_is_harvested_exactly(tmp_path):
    import subprocess

    script = tmp_path / "child.py"
    script.write_text(CHILD)
    before = open_fds()
    with spawn_tracked_python(
        [str(script)],
        hold_at_exit=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert isinstance(child, (TrackedChild, WriteSource)) and child.mechanism == "uffd-wp"
        base = int(child.proc.stdout.readline())
        span = (base, base + 64 * P)

        def do(cmd: str) -> str:
            child.proc.stdin.write(cmd + "\n")
            child.proc.stdin.flush()
            return child.proc.stdout.readline()

        child.collect()
        do("w 1 2 3 40")
        assert page_set(child.collect(), *span) == pages(base, [1, 2, 3, 40])
        assert page_set(child.collect(), *span) == set()
        new = int(do("new"))
        assert page_set(child.collect(), new, new + 8 * P) == pages(new, [0, 7])
        do("w 5")
        assert page_set(child.collect(), *span) == pages(base, [5])
        child.proc.stdin.close()
        intervals = child.collect_until_exit(interval=0.02)
        final = Regions.concat(intervals) if intervals else Regions()
        assert page_set(final, *span) == pages(base, [63])
        assert child.proc.returncode == 0
    assert open_fds() == before


def test_spawned_child_errors_are_clear():
    before = open_fds()
    with pytest.raises(TypeError, match="argv"):
        spawn_tracked_python("script.py")
    with pytest.raises(pmviz.Error, match="exited .*before handing over"):
        spawn_tracked_python(["-c", "pass"], python="/bin/true")
    assert open_fds() == before
    with spawn_tracked_python(["-c", "raise SystemExit(3)"]) as child:
        assert child.wait(10) == 3
        with pytest.raises(NoSuchProcess):
            child.collect()


def test_interleaved_trackers_do_not_consume_each_others_writes():
    base = mmap_anon(48, at=reserve(48))
    x, y, z = base, base + 16 * P, base + 32 * P
    try:
        with WriteTracker([(x, x + 16 * P), (z, z + 16 * P)]) as outer:
            with WriteTracker((y, y + 16 * P)) as inner:
                write(base, [1, 17, 33])  # one page in each of x, y, z
                assert page_set(outer.collect()) == pages(base, [1, 33])
                assert page_set(inner.collect()) == pages(base, [17])
            # the whole-process tracker's hull covers `outer`'s memory: it stays outer's
            with WriteTracker() as whole:
                write(base, [2, 34])
                w = whole.collect()
                assert page_set(w, base, base + 48 * P) == set()
                assert {(s.start, s.end) for s in whole.skipped} >= {
                    (x, x + 16 * P),
                    (z, z + 16 * P),
                }
                assert page_set(outer.collect()) == pages(base, [2, 34])
    finally:
        libc.munmap(base, 48 * P)


def test_guard_pages_are_never_reported_and_stay_guards(area):
    with WriteTracker((area, area + 64 * P)) as tracker:
        assert libc.madvise(area + 4 * P, 2 * P, 102) == 0  # MADV_GUARD_INSTALL
        assert page_set(tracker.collect()) == set()
        write(area, [7])
        assert page_set(tracker.collect()) == pages(area, [7])
        with pmviz.Pagemap("self") as pm:
            guards = pm.scan(area, area + 64 * P).select(Category.GUARD)
        assert page_set(guards) == pages(area, [4, 5])


def test_thp_write_reports_one_page():
    base = mmap_anon(1024, at=reserve(1024))
    try:
        libc.madvise(base, 1024 * P, 14)  # MADV_HUGEPAGE
        write(base, range(1024))
        with WriteTracker((base, base + 1024 * P)) as tracker:
            write(base, [3, 700])  # an armed THP splits on its first write (spec §3.8)
            assert page_set(tracker.collect()) == pages(base, [3, 700])
            assert tracker.collect().n_pages == 0
    finally:
        libc.munmap(base, 1024 * P)


def test_file_mappings_private_reads_are_not_writes_shared_writes_are(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * (16 * P // 256))
    hole = reserve(64)
    with open(path, "r+b") as f, WriteTracker((hole, hole + 64 * P)) as tracker:
        # Appear after tracking began: the first look keeps only anonymous (COWed) pages.
        priv = libc.mmap(hole, 16 * P, PROT_RW, 0x02 | MAP_FIXED, f.fileno(), 0)
        shared = libc.mmap(hole + 32 * P, 16 * P, PROT_RW, 0x01 | MAP_FIXED, f.fileno(), 0)
        read(priv, range(16))
        write(priv, [2])
        read(shared, range(16))
        assert page_set(tracker.collect()) == pages(priv, [2])
        write(priv, [5])
        write(shared, [1, 9])  # written in place: page cache is the data here
        read(priv, [6])
        assert page_set(tracker.collect()) == pages(priv, [5]) | pages(shared, [1, 9])
        libc.munmap(priv, 16 * P)
        libc.munmap(shared, 16 * P)


@pytest.mark.root
def test_unprivileged_user_tracks_through_user_mode_only_uffd():
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to nobody")

    def track() -> str:
        base = mmap_anon(16)
        with WriteTracker((base, base + 16 * P)) as tracker:
            write(base, [2, 3])
            return str(sorted((a - base) // P for a in page_set(tracker.collect())))

    assert as_nobody(track) == ("ok", "[2, 3]")


@pytest.mark.root
def test_unprivileged_userfaultfd_refusal_is_access_denied_naming_the_sysctl():
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to nobody")
    with open("/proc/sys/vm/unprivileged_userfaultfd") as f:
        if f.read().strip() != "0":
            pytest.skip("vm.unprivileged_userfaultfd=1 allows it")

    def refused() -> str:
        real = uffd.create
        uffd.create = lambda **_kw: real(user_mode_only=False)  # what the sysctl governs
        try:
            WriteTracker()
            return "no error"
        finally:
            uffd.create = real

    kind, text = as_nobody(refused)
    assert kind == "AccessDenied" and "vm.unprivileged_userfaultfd=1" in text, (kind, text)


def test_unregistrable_vmas_are_skipped_with_the_reason(tmp_path):
    from pmviz.tracking._maps import read_vma_rows

    vmas = read_vma_rows("self")
    special = {vmas.path(i): tuple(p) for i, p in enumerate(vmas.pairs.tolist())}
    path = tmp_path / "ro.bin"
    path.write_bytes(b"x" * 2 * P)
    with open(path, "rb") as f:
        ro = mmap.mmap(f.fileno(), 2 * P, prot=mmap.PROT_READ, flags=mmap.MAP_SHARED)
        view = np.frombuffer(ro, np.uint8)
        wanted = [view] + [special[k] for k in ("[vvar]", "[vdso]") if k in special]
        before = open_fds()
        with WriteTracker(wanted) as tracker:
            assert tracker.registered.n_pages == 0
            reasons = {s.path: s.reason for s in tracker.skipped}
            assert tracker.collect().n_pages == 0
        assert open_fds() == before
        del view, wanted
        ro.close()
    assert "VM_MAYWRITE" in reasons[str(path)]
    if "[vvar]" in special:
        assert "VM_PFNMAP" in reasons["[vvar]"]
    if "[vdso]" in special:
        assert "special mapping" in reasons["[vdso]"]


def test_heap_growth_inside_a_tracked_range_is_exact():
    brk0 = libc.sbrk(0)
    lo = (brk0 + P - 1) & ~(P - 1)
    with WriteTracker((lo, lo + 256 * P)) as tracker:
        assert tracker.registered.n_pages == 0  # nothing mapped there yet
        assert libc.sbrk(lo + 64 * P - brk0) == brk0  # grow the heap by 64 pages
        try:
            write(lo, [0, 9, 63])
            assert page_set(tracker.collect(), lo, lo + 256 * P) == pages(lo, [0, 9, 63])
            assert tracker.registered.n_pages == 64
            write(lo, [10])
            assert page_set(tracker.collect(), lo, lo + 256 * P) == pages(lo, [10])
        finally:
            shrink_heap_back(lo + 64 * P, brk0)


@pytest.mark.kernel
def test_whole_process_tracker_skips_huge_sparse_vmas():
    # Arming a 64 GiB reservation would allocate 128 MiB of page tables for nothing; the
    # engine lists it in `skipped` instead (one limit for WriteTracker and injection).
    big = mmap.mmap(
        -1, 64 << 30, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x4000
    )  # MAP_NORESERVE
    lo = ctypes.addressof(ctypes.c_char.from_buffer(big))
    try:
        with pmviz.WriteTracker() as t:
            assert any(s.start <= lo < s.end and "max_vma_bytes" in s.reason for s in t.skipped)
            reg = t.registered
            assert not ((reg.start <= lo) & (reg.end > lo)).any()
            big[0] = 1
            assert not (t.collect().start == lo).any()
    finally:
        big.close()


def test_written_memory_gone_before_the_content_scan_is_not_reported():
    """The target runs between the get-and-clear and the content scan: when every page the
    first reported is unmapped by the second, the harvest reports nothing (it raised
    IndexError on the empty content scan once, ending a recording)."""
    from pmviz._kernel import pagemap_scan as pms
    from pmviz.tracking._harvest import keep_data

    m = mmap.mmap(-1, 8 * P)
    lo = ctypes.addressof(ctypes.c_char.from_buffer(m))
    written = np.array([[lo, lo + 2 * P], [lo + 4 * P, lo + 5 * P]], dtype=np.uint64)
    m.close()  # the written pages are gone: unmapped
    with pmviz.Pagemap("self") as pm:
        got = keep_data(pm.fd, written, "self", file_is_data=True)
    assert got.shape == (0, 2) and got.dtype == np.uint64
    assert pms.PAGE_SIZE == P
