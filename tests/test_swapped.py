"""Swap versus uffd-wp markers (spec gotcha 9): only really swapped pages stay SWAPPED."""

from __future__ import annotations

import ctypes
import mmap

import numpy as np
import pytest

import pmviz
from pmviz import Category, Regions
from pmviz import swapped as sw
from pmviz._intervals import page_addresses
from pmviz._kernel import pagemap
from pmviz.regions import REGION_DTYPE
from pmviz.tracking import WriteTracker

P = mmap.PAGESIZE
S, W, PR, WP, G = (
    int(c)
    for c in (
        Category.SWAPPED,
        Category.WRITTEN,
        Category.PRESENT,
        Category.WPALLOWED,
        Category.GUARD,
    )
)
MARKER = 0x420000000000003F  # spec §5
GUARD_MARKER = 0x440000000000009F
UFFD = 1 << 57


def swap_entry(swap_type: int, offset: int, wp: bool = True) -> int:
    return pagemap.PM_SWAP | (UFFD if wp else 0) | (offset << 5) | swap_type


def regions(*rows) -> Regions:
    return Regions(np.array(list(rows), dtype=REGION_DTYPE))


def swapped_pages(r: Regions) -> set[int]:
    addrs, _ = page_addresses(r.select(Category.SWAPPED).array)
    return set(addrs.tolist())


# -- pure decode on recorded entries -------------------------------------------------------------


def test_is_marker_on_recorded_entries():
    entries = np.array(
        [
            MARKER,
            GUARD_MARKER,
            swap_entry(0, 77),
            swap_entry(1, 5, wp=False),
            0,
            0x8300000000012345,
            MARKER | (1 << 55),
        ],
        dtype=np.uint64,
    )
    assert is_marker_list(entries) == [True, True, False, False, False, False, True]


def is_marker_list(entries):
    return sw.is_marker(entries).tolist()


def test_resolve_splits_regions_by_entry_vectorised():
    base = 0x10000000
    r = regions(
        (base, base + 4 * P, WP | PR | W),  # present, written: untouched
        (base + 4 * P, base + 12 * P, WP | S),  # ambiguous: markers and real swap mixed
        (base + 12 * P, base + 14 * P, WP | S | W),  # written swap: really swapped
        (base + 14 * P, base + 16 * P, WP | S | W | G),  # guard: untouched
    )
    table = {base + i * P: MARKER for i in range(4, 12)}
    table[base + 6 * P] = swap_entry(0, 100)
    table[base + 7 * P] = swap_entry(0, 101)
    table[base + 11 * P] = swap_entry(2, 9)

    def read(start, end):
        return np.array([table[a] for a in range(start, end, P)], dtype=np.uint64)

    out = sw._resolve(r, np.array([False, True, False, False]), read)
    got = [(int(s - base) // P, int(e - base) // P, int(c)) for s, e, c in out.array.tolist()]
    assert got == [
        (0, 4, WP | PR | W),
        (4, 6, WP),
        (6, 8, WP | S),
        (8, 11, WP),
        (11, 12, WP | S),
        (12, 14, WP | S | W),
        (14, 16, WP | S | W | G),
    ]


def test_nothing_ambiguous_returns_the_same_object():
    r = regions((0x1000, 0x3000, PR | W), (0x3000, 0x4000, S | W))
    assert sw.resolve_swapped("self", r) is r


def test_no_swap_device_clears_all_ambiguous_and_merges(monkeypatch):
    monkeypatch.setattr(sw, "_swap_in_use", lambda: False)
    r = regions((0x1000, 0x3000, WP), (0x3000, 0x5000, WP | S), (0x5000, 0x6000, WP | S | W))
    out = sw.resolve_swapped("self", r)
    assert out.array.tolist() == [(0x1000, 0x5000, WP), (0x5000, 0x6000, WP | S | W)]


# -- the real kernel: a swap file, MADV_PAGEOUT, tracked memory ---------------------------------


@pytest.mark.kernel
@pytest.mark.root
def test_only_really_paged_out_pages_are_swapped(swapfile):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    buf = mmap.mmap(-1, 64 * P, flags=mmap.MAP_PRIVATE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    for i in range(32):
        buf[i * P] = 1  # pages 32..63 stay empty: armed, they become uffd-wp markers
    try:
        with WriteTracker((base, base + 64 * P)) as tracker:
            buf[20 * P] = 2  # written after arming: unprotected when paged out
            for lo, hi in ((8, 16), (20, 21)):
                assert libc.madvise(base + lo * P, (hi - lo) * P, 21) == 0  # MADV_PAGEOUT
            with pmviz.Pagemap("self") as pm:
                raw = pm.scan(base, base + 64 * P)
                entries = pagemap.read_entries(pm.fd, base, base + 64 * P)
                resolved = sw.resolve_swapped(pm, raw)
            really = {
                base + i * P
                for i in np.flatnonzero((entries & np.uint64(pagemap.PM_SWAP)) != 0)
                if not sw.is_marker(entries[i : i + 1])[0]
            }
            if really != {base + i * P for i in [*range(8, 16), 20]}:
                pytest.skip(f"MADV_PAGEOUT swapped {len(really)} of 9 pages (memory pressure?)")
            # The kernel says SWAPPED for the 32 markers as well (gotcha 9) ...
            assert len(swapped_pages(raw)) == 9 + 32
            # ... pmviz only for the pages on the swap file.
            assert swapped_pages(resolved) == really
            assert resolved.n_pages == raw.n_pages
            assert swapped_pages(sw.resolve_swapped("self", raw)) == really
            tracker.collect()
    finally:
        buf.close()


@pytest.mark.kernel
@pytest.mark.root
def test_tracking_keeps_written_swapped_pages_and_drops_rearmed_empty_ones(swapfile):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    buf = mmap.mmap(-1, 32 * P, flags=mmap.MAP_PRIVATE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    for i in range(32):
        buf[i * P] = 1
    try:
        with WriteTracker((base, base + 32 * P)) as tracker:
            for i in (3, 4, 10):
                buf[i * P] = 2
            assert libc.madvise(base + 3 * P, 2 * P, 21) == 0  # written, then swapped out
            assert libc.madvise(base + 10 * P, P, 4) == 0  # written, then discarded
            with pmviz.Pagemap("self") as pm:
                entries = pagemap.read_entries(pm.fd, base + 3 * P, base + 5 * P)
            if sw.is_marker(entries).any() or not (entries & np.uint64(pagemap.PM_SWAP)).all():
                pytest.skip("MADV_PAGEOUT did not swap the pages out")
            addrs, _ = page_addresses(tracker.collect().array)
            assert set(addrs.tolist()) == {base + 3 * P, base + 4 * P}
            assert tracker.collect().n_pages == 0
    finally:
        buf.close()


def test_is_swap_entry_needs_a_swap_entry_that_is_not_a_marker():
    entries = np.array(
        [MARKER, swap_entry(0, 3), 0, 0x8300000000012345, GUARD_MARKER], dtype=np.uint64
    )
    assert sw.is_swap_entry(entries).tolist() == [False, True, False, False, False]


def test_marker_written_between_scan_and_read_is_not_swap():
    base = 0x20000000
    r = regions((base, base + 3 * P, WP | S))
    now = {base: MARKER, base + P: 0x8300000000012345, base + 2 * P: swap_entry(0, 1)}

    def read(start, end):
        return np.array([now[a] for a in range(start, end, P)], dtype=np.uint64)

    out = sw._resolve(r, np.array([True]), read)
    assert out.array.tolist() == [(base, base + 2 * P, WP), (base + 2 * P, base + 3 * P, WP | S)]
