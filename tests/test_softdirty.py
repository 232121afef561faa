"""Soft-dirty tracking: the decode on recorded/synthetic pagemap data, the error path for real."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import pmviz
from pmviz import Category, UnsupportedKernel
from pmviz import softdirty as sd
from pmviz._kernel import pagemap as pmb
from pmviz._kernel.process import ProcessHandle
from pmviz.regions import REGION_DTYPE
from pmviz.tracking import WriteSource

P = 4096
SD = pmb.PM_SOFT_DIRTY
PRESENT = pmb.PM_PRESENT | 0x1234  # a PFN, as root sees it
FILE = pmb.PM_FILE
SWAP = pmb.PM_SWAP | (7 << 5)  # swap type 0, offset 7
MARKER = 0x420000000000003F
GUARD = 0x440000000000009F
W = int(Category.WRITTEN)


def runs(regions, base):
    return [((s - base) // P, (e - base) // P) for s, e, _c in regions.array.tolist()]


# -- pure decode ----------------------------------------------------------------------------------


def test_decode_entries_counts_only_dirty_pages_with_content():
    base = 0x7F0000000000
    entries = np.array(
        [
            PRESENT | SD,  # 0 written anon page
            PRESENT | SD,  # 1
            PRESENT,  # 2 clean
            PRESENT | FILE | SD,  # 3 page cache of a private mapping: only read
            SWAP | SD,  # 4 written, then swapped out
            SD,  # 5 a hole in a new (VM_SOFTDIRTY) VMA: no content
            GUARD | SD,  # 6 guard page
            SWAP,  # 7 clean swap
            PRESENT | SD,  # 8
        ],
        dtype=np.uint64,
    )
    r = sd.decode_entries(entries, base)
    assert runs(r, base) == [(0, 2), (4, 5), (8, 9)]
    assert set(r.categories.tolist()) == {W}
    shared = sd.decode_entries(entries, base, file_is_data=True)
    assert runs(shared, base) == [(0, 2), (3, 5), (8, 9)]


def test_decode_entries_empty_and_all_dirty():
    assert len(sd.decode_entries(np.zeros(0, np.uint64), 0x1000)) == 0
    r = sd.decode_entries(np.full(1000, PRESENT | SD, np.uint64), 0x1000)
    assert r.array.tolist() == [(0x1000, 0x1000 + 1000 * P, W)]


def test_select_written_on_synthetic_scan_output():
    C = Category
    rows = [
        (0x1000, 0x3000, C.SOFT_DIRTY | C.PRESENT),
        (0x3000, 0x4000, C.SOFT_DIRTY | C.PRESENT | C.PFNZERO),  # zero page of a new VMA
        (0x4000, 0x5000, C.SOFT_DIRTY | C.PRESENT | C.FILE),
        (0x5000, 0x6000, C.SOFT_DIRTY),  # hole of a new VMA
        (0x6000, 0x7000, C.SOFT_DIRTY | C.SWAPPED),
        (0x7000, 0x8000, C.SOFT_DIRTY | C.SWAPPED | C.GUARD),
        (0x8000, 0x9000, C.PRESENT),
    ]
    a = np.array([(s, e, int(c)) for s, e, c in rows], dtype=REGION_DTYPE)
    assert sd.select_written(a).tolist() == [(0x1000, 0x3000, W), (0x6000, 0x7000, W)]
    shared = sd.select_written(a, file_is_data=True).tolist()
    assert shared == [(0x1000, 0x3000, W), (0x4000, 0x5000, W), (0x6000, 0x7000, W)]


# -- the tracker on a recorded procfs tree ----------------------------------------------------------


class FakeProc:
    """A recorded ``/proc/PID`` (maps, pagemap, clear_refs) that a test can make "dirty"."""

    def __init__(self, root, pid: int, vmas):
        self.dir = root / str(pid)
        self.dir.mkdir(parents=True)
        self.root = str(root)
        self.pid = pid
        lines = [
            f"{lo:x}-{hi:x} {perms} 00000000 00:00 0 {path}".rstrip()
            for lo, hi, perms, path in vmas
        ]
        (self.dir / "maps").write_text("\n".join(lines) + "\n")
        (self.dir / "clear_refs").write_text("")
        self.pagemap = self.dir / "pagemap"
        self.pagemap.write_bytes(b"")

    def set(self, addr: int, entries) -> None:
        with open(self.pagemap, "r+b") as f:
            f.seek(addr // P * 8)
            f.write(np.asarray(entries, dtype="<u8").tobytes())

    def cleared(self) -> bool:
        """Whether "4" was written since the last call (then emulate the kernel's clear)."""
        text = (self.dir / "clear_refs").read_text()
        (self.dir / "clear_refs").write_text("")
        return text == "4"


@pytest.fixture
def fake(tmp_path):
    heap, anon, lib, shm = 0x555500000000, 0x7F0000000000, 0x7F0000100000, 0x7F0000200000
    proc = FakeProc(
        tmp_path / "proc",
        4242,
        [
            (heap, heap + 16 * P, "rw-p", "[heap]"),
            (anon, anon + 32 * P, "rw-p", ""),
            (lib, lib + 4 * P, "r--p", "/usr/lib/libc.so.6"),
            (lib + 4 * P, lib + 8 * P, "rw-p", "/usr/lib/libc.so.6"),
            (shm, shm + 8 * P, "rw-s", "/dev/shm/x"),
        ],
    )
    proc.set(heap, [PRESENT] * 16)
    proc.set(anon, [PRESENT] * 32)
    proc.set(lib, [PRESENT | FILE] * 8)
    proc.set(shm, [PRESENT | FILE] * 8)
    proc.addrs = {"heap": heap, "anon": anon, "lib": lib, "shm": shm}
    return proc


def test_tracker_on_recorded_tree_collects_exactly_and_clears(fake):
    a = fake.addrs
    t = sd.SoftDirtyTracker(fake.pid, procfs_root=fake.root, freeze=False)
    assert isinstance(t, WriteSource) and t.mechanism == "soft-dirty" and t.backend == "pagemap"
    assert fake.cleared()  # tracking began with a clear
    assert t.collect().n_pages == 0 and fake.cleared()
    fake.set(a["heap"] + 3 * P, [PRESENT | SD, PRESENT | SD])
    fake.set(a["anon"] + 31 * P, [SWAP | SD])
    fake.set(a["lib"] + 5 * P, [PRESENT | SD])  # a COWed (anonymous now) page of libc's .data
    fake.set(a["lib"] + 6 * P, [PRESENT | FILE | SD])  # still page cache: not written
    fake.set(a["shm"], [PRESENT | FILE | SD])  # shared memory, written in place: tracked
    got = t.collect()
    assert fake.cleared()
    assert got.array.tolist() == sorted(
        [
            (a["heap"] + 3 * P, a["heap"] + 5 * P, W),
            (a["anon"] + 31 * P, a["anon"] + 32 * P, W),
            (a["lib"] + 5 * P, a["lib"] + 6 * P, W),
            (a["shm"], a["shm"] + P, W),
        ]
    )
    t.close()
    t.close()
    with pytest.raises(ValueError, match="closed"):
        t.collect()


def test_tracker_ranges_include_shared_memory(fake):
    a = fake.addrs
    with sd.SoftDirtyTracker(fake.pid, [(a["shm"], a["shm"] + 8 * P)], procfs_root=fake.root) as t:
        fake.set(a["shm"] + 2 * P, [PRESENT | FILE | SD])
        fake.set(a["heap"], [PRESENT | SD])  # outside the ranges
        assert t.collect().array.tolist() == [(a["shm"] + 2 * P, a["shm"] + 3 * P, W)]


def test_a_new_shared_mapping_counts_only_anonymous_content(fake):
    """A VMA created since the last clear is soft-dirty as a whole: in a new shared mapping,
    page cache that was only read must not count as written (an old one's does: written in
    place); the next interval it is an old VMA like any other."""
    a = fake.addrs
    t = sd.SoftDirtyTracker(fake.pid, procfs_root=fake.root, freeze=False)
    new = 0x7F0000400000
    maps = fake.dir / "maps"
    maps.write_text(maps.read_text() + f"{new:x}-{new + 4 * P:x} rw-s 00000000 00:01 77 /memfd:n\n")
    fake.set(new, [PRESENT | FILE | SD] * 4)  # VM_SOFTDIRTY: every page reads soft-dirty
    fake.set(a["shm"] + P, [PRESENT | FILE | SD])  # a write to the old shared mapping
    assert t.collect().array.tolist() == [(a["shm"] + P, a["shm"] + 2 * P, W)]
    fake.set(new, [PRESENT | FILE] * 4)  # the clear
    fake.set(a["shm"] + P, [PRESENT | FILE])
    fake.set(new + 2 * P, [PRESENT | FILE | SD])  # now a real write to the (old) new VMA
    assert t.collect().array.tolist() == [(new + 2 * P, new + 3 * P, W)]
    t.close()


def test_bad_arguments(fake):
    with pytest.raises(ValueError, match="backend"):
        sd.SoftDirtyTracker(fake.pid, procfs_root=fake.root, backend="magic")
    with pytest.raises(pmviz.NoSuchProcess):
        sd.SoftDirtyTracker(999999, procfs_root=fake.root)


# -- the real kernel -------------------------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.skipif(pmviz.features().soft_dirty, reason="this kernel has CONFIG_MEM_SOFT_DIRTY")
def test_missing_config_is_refused_naming_it_and_the_alternative():
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(UnsupportedKernel) as info:
        sd.SoftDirtyTracker(os.getpid())
    text = str(info.value)
    assert "CONFIG_MEM_SOFT_DIRTY" in text and "WriteTracker" in text
    assert info.value.feature == "soft-dirty"
    assert set(os.listdir("/proc/self/fd")) == before
    assert "soft-dirty" not in pmviz.features().write_mechanisms


@pytest.mark.kernel
def test_frozen_stops_and_resumes_a_real_process():
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        with ProcessHandle(proc.pid) as h:
            with sd._frozen(h):
                assert set(sd._state(h)) <= {"T", "t"}
            assert "T" not in sd._state(h)
            with pytest.raises(RuntimeError), sd._frozen(h):
                raise RuntimeError("an error inside the frozen block")
            assert "T" not in sd._state(h)  # resumed all the same
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.kernel
def test_frozen_never_signals_a_process_that_is_not_the_one_held():
    """Regression: SIGSTOP/SIGCONT went to a pid number, whoever holds it now."""
    proc = subprocess.Popen(["sleep", "30"])
    h = ProcessHandle(proc.pid)
    try:
        proc.kill()
        proc.wait()  # reaped: the pid is free for reuse
        with pytest.raises(pmviz.NoSuchProcess):
            with sd._frozen(h):
                pass
        # Whatever holds the pid number now, the handle's pidfd says its own process is gone.
        other = subprocess.Popen(["sleep", "30"])
        try:
            with pytest.raises(pmviz.NoSuchProcess):
                h.check()
            with pytest.raises(pmviz.NoSuchProcess):
                h.read("maps")
        finally:
            other.kill()
            other.wait()
    finally:
        h.close()


@pytest.mark.kernel
def test_a_handle_reads_nothing_of_a_process_whose_main_thread_exited_first():
    """The pidfd of a process whose leader thread exited while another thread runs does not
    poll readable, but its /proc files read empty: the read says the process is gone
    instead of handing over empty maps."""
    import time

    code = (
        "import ctypes, threading, time\n"
        "threading.Thread(target=time.sleep, args=(3,)).start()\n"
        "print('x', flush=True)\n"
        "ctypes.CDLL(None).pthread_exit(None)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    h = ProcessHandle(proc.pid)
    try:
        proc.stdout.readline()
        deadline = time.monotonic() + 5
        while not open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not h.exited()
        with pytest.raises(pmviz.NoSuchProcess):
            h.read("maps")
    finally:
        h.close()
        proc.kill()
        proc.wait()
        proc.stdout.close()


@pytest.mark.kernel
def test_ioctl_backend_plumbing_on_the_real_kernel(monkeypatch):
    """With the CONFIG check bypassed, every real call runs (clear_refs, PAGEMAP_SCAN with
    SOFT_DIRTY, SIGSTOP/SIGCONT); this kernel never sets the bit, so nothing is reported.
    """
    if pmviz.features().soft_dirty:
        pytest.skip("real soft-dirty kernel: the bypass is not needed")
    monkeypatch.setattr(sd, "_require_soft_dirty", lambda: None)
    code = "import sys; b = bytearray(1 << 20); sys.stdin.read()"
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    try:
        with sd.SoftDirtyTracker(proc.pid) as t:
            assert t.backend == "ioctl"
            got = t.collect()
            assert got.n_pages == 0  # CONFIG_MEM_SOFT_DIRTY=n: bit 55 / SOFT_DIRTY never set
            assert "T" not in sd._state(t._proc)  # resumed after the frozen read + clear
        with sd.SoftDirtyTracker(proc.pid, backend="pagemap", freeze=False) as t:
            assert t.collect().n_pages == 0
    finally:
        proc.stdin.close()
        proc.wait()
