"""The recorder's per-snapshot fast paths give exactly what the straightforward code gives.

The builder skips the encoder when a snapshot repeats the previous one byte for byte; swap
resolution works in place on the scan buffer, merges only around the rows it changed, reads
pagemap entries in clusters and splits only regions that mix markers and swap. Each is checked
here against the plain computation it replaces.
"""

from __future__ import annotations

import mmap

import numpy as np
import pytest

from pmviz import Category, Regions
from pmviz import _intervals as iv
from pmviz import swapped as sw
from pmviz.capture import CaptureMeta, _Encoder
from pmviz.recorder._builder import CaptureBuilder
from pmviz.regions import REGION_DTYPE

P = mmap.PAGESIZE
S, W, PR, WP, G, Z = (
    int(c)
    for c in (
        Category.SWAPPED,
        Category.WRITTEN,
        Category.PRESENT,
        Category.WPALLOWED,
        Category.GUARD,
        Category.PFNZERO,
    )
)
MARKER = 0x420000000000003F  # a uffd-wp marker's pagemap entry (swap type 31)
SWAP = (1 << 62) | (7 << 5) | 1  # a real swap entry: swap type 1, offset 7


def kernel_like(rng: np.random.Generator, n_pages: int, kinds: list[int]) -> np.ndarray:
    """Regions as a scan returns them: sorted, gaps between VMAs, equal neighbours merged."""
    cats = np.asarray(kinds, np.uint64)[rng.integers(0, len(kinds), n_pages)]
    addrs = (np.uint64(1 << 30) + np.arange(n_pages, dtype=np.uint64) * np.uint64(P)).copy()
    gaps = rng.random(n_pages) < 0.02  # now and then a hole (the next VMA starts further on)
    addrs += np.cumsum(gaps).astype(np.uint64) * np.uint64(16 * P)
    return iv.regions_array(*iv.merge_runs(addrs, addrs + np.uint64(P), cats))


def reference_resolve(a: np.ndarray, ambiguous: np.ndarray, entry_of) -> np.ndarray:
    """The page-by-page resolution (every ambiguous region split, then a global merge)."""
    amb = a[ambiguous]
    addrs, owner = iv.page_addresses(amb)
    if not len(addrs):
        return a
    entries = np.array([entry_of(x) for x in addrs.tolist()], dtype=np.uint64)
    cats = amb["categories"][owner]
    cats = np.where(sw.is_swap_entry(entries), cats, cats & ~np.uint64(S))
    split = iv.regions_array(*iv.merge_runs(addrs, addrs + np.uint64(P), cats))
    out = np.concatenate([a[~ambiguous], split])
    out = out[np.argsort(out["start"], kind="stable")]
    return iv.merge_equal_neighbours(out)


def counting_reader(entry_of):
    calls = []

    def read(start, end):
        calls.append((start, end))
        return np.array([entry_of(x) for x in range(start, end, P)], dtype=np.uint64)

    return read, calls


# -- pagemap entries in clusters ------------------------------------------------------------------


def test_entries_read_in_clusters_are_the_entries_of_each_page():
    rng = np.random.default_rng(1)
    a = kernel_like(rng, 3000, [WP | S, WP | PR | W, WP | Z])
    amb = a[sw._ambiguous(a)]
    read, calls = counting_reader(lambda x: x >> 12)
    got = sw._entries(read, amb)
    addrs, _ = iv.page_addresses(amb)
    assert got.tolist() == (addrs >> np.uint64(12)).tolist()
    assert 0 < len(calls) < len(amb)  # far fewer preads than regions
    # unsorted input (a caller's own regions): still every page's entry, in input order
    rev = amb[::-1].copy()
    addrs, _ = iv.page_addresses(rev)
    assert sw._entries(read, rev).tolist() == (addrs >> np.uint64(12)).tolist()


# -- swap resolution --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("swap_share", [0.0, 0.3, 1.0])
def test_resolution_matches_the_page_by_page_reference(seed, swap_share):
    rng = np.random.default_rng(seed)
    a = kernel_like(rng, 4000, [WP | S, WP | S, WP, WP | PR | W, WP | Z, WP | S | W, WP | S | G])
    on_swap = {x for x in iv.page_addresses(a)[0].tolist() if rng.random() < swap_share}

    def entry_of(x):
        return SWAP if x in on_swap else MARKER

    ambiguous = sw._ambiguous(a)
    want = reference_resolve(a, ambiguous, entry_of)
    read, _ = counting_reader(entry_of)
    got = sw._resolve_array(a.copy(), ambiguous, read, P)
    assert got.tolist() == want.tolist()
    out = sw._resolve(Regions(a), ambiguous, read)
    assert out.array.tolist() == want.tolist()


@pytest.mark.parametrize("seed", range(4))
def test_in_place_resolution_without_swap_matches_the_copying_one(seed, monkeypatch):
    monkeypatch.setattr(sw, "_swap_in_use", lambda: False)
    rng = np.random.default_rng(seed)
    a = kernel_like(rng, 5000, [WP | S, WP, WP | PR | W, WP | Z, WP | S | W])
    want = reference_resolve(a, sw._ambiguous(a), lambda x: MARKER)
    assert sw.resolve_swapped("self", Regions(a)).array.tolist() == want.tolist()
    rows = a.copy()
    got = sw.resolve_rows(None, rows)  # type: ignore[arg-type]  # no pagemap read without swap
    assert got.tolist() == want.tolist()
    # nothing ambiguous: the scan buffer itself comes back, untouched
    clean = want.copy()
    assert sw.resolve_rows(None, clean) is clean  # type: ignore[arg-type]


# -- the builder's steady-state path ----------------------------------------------------------------


def snapshots() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    base = kernel_like(rng, 2000, [PR | W, Z, 0, S])
    changed = base.copy()
    changed["categories"][[5, 9]] ^= np.uint64(PR)
    unsorted = np.concatenate([base[:10], base[5:6], base[10:]])  # a repeated start
    return [base, base, base, changed, changed, base, unsorted, unsorted, base, base, base[:-1]]


@pytest.mark.parametrize("force_at", [None, 2, 5])
def test_builder_stores_what_the_encoder_stores(force_at):
    b = CaptureBuilder(CaptureMeta(), has_written=False)
    enc = _Encoder()
    snaps = snapshots()
    for i, s in enumerate(snaps):
        if i == force_at:
            b.force_keyframe()
        b.region_tail(len(s))[:] = s  # as the recorder scans: into the builder's buffer
        b.append(i, len(s), None, None, {})
        enc.add(s.copy(), force=i == force_at)
    rows, kind, n_rows, crows, key = enc.arrays()
    assert b._rows.view(0, b._rows.end).tolist() == rows.tolist()
    assert b._kind.view(0, b._kind.end).tolist() == kind.tolist()
    assert b._key.view(0, b.n).tolist() == key.tolist()
    assert np.diff(b._coff.view(0, b.n + 1)).tolist() == crows.tolist()
    cap = b.capture()
    for i, s in enumerate(snaps):
        assert cap.regions_at(i).array.tolist() == s.tolist()


def test_region_tail_grows_keeping_only_the_rows_asked_for():
    b = CaptureBuilder(CaptureMeta(), has_written=False)
    first = b.region_tail(10)
    first[:] = np.arange(30, dtype=np.uint64).view(REGION_DTYPE)
    grown = b.region_tail(1 << 20, keep=4)
    assert len(grown) == 1 << 20
    assert grown[:4].tolist() == first[:4].tolist()
    again = b.region_tail(1 << 21)  # default: everything the buffer held is kept
    assert again[:4].tolist() == first[:4].tolist()


def _needs_uffd_wp() -> None:
    import pmviz

    f = pmviz.features()
    if not (f.pagemap_scan and f.uffd_wp_async):
        pytest.skip("needs PAGEMAP_SCAN and userfaultfd async write-protect")


def _counted(monkeypatch, module, name: str) -> list[int]:
    """Calls of ``module.name`` from now on, one entry each."""
    calls: list[int] = []
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a: calls.append(1) or real(*a))
    return calls


def _wait_snapshots(rec, n: int) -> None:
    import time

    while rec.capture.n_snapshots < n:
        time.sleep(0.005)


def _go(child) -> None:
    """Tell the child to do its step, and wait until it has."""
    child.stdin.write("go\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == "done"


def _written_pages(cap, lo: int, n_pages: int) -> set[int]:
    """Pages of ``[lo, lo + n_pages)`` in any of the capture's written sets."""
    w = cap.written
    pages = set()
    for s, e in zip(w["start"].tolist(), w["end"].tolist()):
        s, e = max(s, lo), min(e, lo + n_pages * 4096)
        pages.update(range((s - lo) // 4096, (e - lo) // 4096))
    return pages


@pytest.mark.kernel
def test_uffd_tracking_reuses_the_recorders_maps_read(monkeypatch):
    """With uffd-wp tracking the recorder reads maps once per snapshot and hands them to the
    write source: the tracker itself reads maps only when it starts, and the written sets
    are as exact as before."""
    import subprocess
    import sys

    import pmviz
    from pmviz.tracking import _engine

    _needs_uffd_wp()
    reads = _counted(monkeypatch, _engine, "read_maps_bytes")
    code = (
        "import mmap, sys, time\n"
        "m = mmap.mmap(-1, 64 * 4096)\n"
        "print(hex(__import__('ctypes').addressof(__import__('ctypes').c_char.from_buffer(m))),"
        " flush=True)\n"
        "sys.stdin.readline()\n"
        "for p in (3, 7, 8): m[p * 4096] = 1\n"
        "print('done', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        lo = int(child.stdout.readline(), 16)
        rec = pmviz.Recorder(child.pid, interval=0.02, writes="auto", progress=False).start()
        _wait_snapshots(rec, 3)
        started = len(reads)
        _go(child)
        _wait_snapshots(rec, rec.capture.n_snapshots + 3)
        cap = rec.stop()
        assert len(reads) == started  # no maps read of the tracker's own per snapshot
        assert _written_pages(cap, lo, 64) == {3, 7, 8}
    finally:
        child.stdin.close()
        child.wait()


@pytest.mark.kernel
def test_a_repeated_scan_skips_the_unregistered_memory_check_but_a_vma_replaced_in_place_is_tracked(
    monkeypatch,
):
    """While the recorder's full scans repeat, the tracker asks the kernel nothing about
    unregistered memory; an anonymous VMA replaced in place (MAP_FIXED, the same maps line)
    changes the next scan, is registered again, and the writes into it are reported."""
    import subprocess
    import sys

    import pmviz
    from pmviz.tracking import _engine

    _needs_uffd_wp()
    asked = _counted(monkeypatch, _engine, "scan_unregistered")
    code = (
        "import ctypes, mmap, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.mmap.restype = ctypes.c_void_p\n"
        "libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,"
        " ctypes.c_int, ctypes.c_long]\n"
        "P, N = mmap.PAGESIZE, 64\n"
        "a = libc.mmap(None, N * P, 3, 0x22, -1, 0)\n"
        "ctypes.memset(a, 1, P)\n"
        "print(hex(a), flush=True)\n"
        "sys.stdin.readline()\n"
        "b = libc.mmap(a, N * P, 3, 0x22 | 0x10, -1, 0)\n"  # MAP_FIXED: replaced in place
        "assert b == a\n"
        "for p in (2, 9): ctypes.memset(a + p * P, 1, 1)\n"
        "print('done', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        lo = int(child.stdout.readline(), 16)
        rec = pmviz.Recorder(child.pid, interval=0.01, writes="auto", progress=False).start()
        _wait_snapshots(rec, 5)
        n0, asked0 = rec.capture.n_snapshots, len(asked)
        _wait_snapshots(rec, n0 + 10)
        steady = (rec.capture.n_snapshots - n0, len(asked) - asked0)
        _go(child)
        _wait_snapshots(rec, rec.capture.n_snapshots + 4)
        cap = rec.stop()
        assert steady[1] < steady[0] // 2, steady  # most steady snapshots asked nothing
        assert _written_pages(cap, lo, 64) == {2, 9}
    finally:
        child.stdin.close()
        child.wait()
