"""/proc/PID/maps as a typed VMA table."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from layouts import Area

import pmviz
from pmviz import NoSuchProcess, VmaKind, Vmas, read_maps

SAMPLE = """\
55d0c0a00000-55d0c0a02000 r--p 00000000 fe:00 260131                     /usr/bin/cat
55d0c0a02000-55d0c0a07000 r-xp 00002000 fe:00 260131                     /usr/bin/cat
55d0c1d3b000-55d0c1d5c000 rw-p 00000000 00:00 0                          [heap]
600000000000-640000000000 ---p 00000000 00:00 0
7f0000000000-7f0000200000 rw-s 00000000 00:01 1234                       /dev/zero (deleted)
7f0000200000-7f0000201000 rw-s 00000000 00:01 99                         /memfd:pmviz (deleted)
7f0000300000-7f0000400000 rw-p 00000000 00:00 0                          [anon:my arena]
7f0000400000-7f0000500000 rw-p 00000000 00:00 0
7f0000500000-7f0000600000 r--p 00001000 08:01 42                         /data/file with spaces.bin
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]
7ffc00100000-7ffc00104000 r--p 00000000 00:00 0                          [vvar]
7ffc00104000-7ffc00106000 r-xp 00000000 00:00 0                          [vdso]
100000000000-100000001000 rw-p 00000000 00:00 0
"""


def test_parse_columns_and_kinds():
    v = Vmas.parse(SAMPLE)
    assert len(v) == 13
    assert int(v.start[0]) == 0x55D0C0A00000 and int(v.end[0]) == 0x55D0C0A02000
    assert int(v.array["offset"][1]) == 0x2000
    assert (int(v.array["dev_major"][0]), int(v.array["dev_minor"][0])) == (0xFE, 0)
    assert int(v.array["inode"][0]) == 260131
    assert v.array["perms"][2] == b"rw-p"
    assert v.paths[8] == "/data/file with spaces.bin"
    kinds = [VmaKind(k) for k in v.kind]
    assert kinds == [
        VmaKind.FILE,
        VmaKind.FILE,
        VmaKind.HEAP,
        VmaKind.GUARD,
        VmaKind.SHM,
        VmaKind.SHM,
        VmaKind.ANON,
        VmaKind.ANON,
        VmaKind.FILE,
        VmaKind.STACK,
        VmaKind.VDSO,
        VmaKind.VDSO,
        VmaKind.ANON,  # inside ASan's HighShadow, but no ASan signature in this table
    ]


def test_find_is_vectorised_and_exact():
    v = Vmas.parse(SAMPLE)
    addrs = np.array([0x55D0C0A00000, 0x55D0C0A01FFF, 0x55D0C0A02000, 0x1, 0x7F00001FFFFF])
    assert v.find(addrs).tolist() == [0, 0, 1, -1, 4]
    assert Vmas().find(np.array([5])).tolist() == [-1]


def test_labels_and_selections():
    v = Vmas.parse(SAMPLE)
    assert v.label(0) == "cat"
    assert v.label(2) == "[heap]"
    assert v.label(7) == "anon"
    assert v.label(12) == "anon"  # no sanitizer signature: see the shadow test below
    rw = v.writable_private()
    assert all(p == b"rw-p" for p in rw.array["perms"])
    assert len(rw) == 5
    assert v[2:4] == Vmas(v.array[2:4], v.paths[2:4])
    assert len(v[3]) == 1 and v[3].paths[0] == ""
    assert "13 VMAs" in v._repr_html_()
    assert v.size == int((v.end - v.start).sum())


def test_read_maps_of_a_real_layout(layout_factory):
    layout = layout_factory(
        [
            Area("anon", 16, write=[0]),
            Area("shm", 16, kind="shared"),
            Area("memfd", 16, kind="memfd"),
            Area("file", 16, kind="file_private", read=[0]),
            Area("none", 16, prot=""),
        ]
    )
    v = read_maps(layout.pid)
    text = open(f"/proc/{layout.pid}/maps").read()
    assert len(v) == len(text.splitlines())
    expect = {
        "anon": VmaKind.ANON,
        "shm": VmaKind.SHM,
        "memfd": VmaKind.SHM,
        "file": VmaKind.FILE,
        "none": VmaKind.GUARD,
    }
    for name, kind in expect.items():
        lo, hi = layout.range(name)
        (i,) = v.find(np.array([lo])).tolist()
        assert i >= 0 and int(v.start[i]) == lo and int(v.end[i]) == hi, name
        assert VmaKind(int(v.kind[i])) == kind, (name, v.paths[i])
    kinds = set(VmaKind(k) for k in v.kind)
    assert {VmaKind.HEAP, VmaKind.STACK, VmaKind.VDSO, VmaKind.FILE} <= kinds
    # Every scanned page lies in a VMA (the scan never reports the gaps).
    r = pmviz.scan(layout.pid)
    assert np.all(v.find(r.start) >= 0) and np.all(v.find(r.end - np.uint64(1)) >= 0)


def test_read_maps_errors():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(NoSuchProcess):
        read_maps(proc.pid)
    with pytest.raises(TypeError):
        read_maps("nope")


def test_procfs_root_is_configurable(tmp_path):
    (tmp_path / "123").mkdir()
    (tmp_path / "123" / "maps").write_text(SAMPLE)
    assert read_maps(123, procfs_root=str(tmp_path)) == Vmas.parse(SAMPLE)


def test_shadow_needs_the_sanitizers_signature():
    asan = (
        "7fff7000-8fff7000 rw-p 00000000 00:00 0\n"  # LowShadow: its VMA starts a page low
        "8fff7000-2008fff7000 ---p 00000000 00:00 0\n"  # ShadowGap
        "2008fff7000-10007fff8000 rw-p 00000000 00:00 0\n"  # HighShadow, 15 TiB
        "7f0000000000-7f0000100000 rw-p 00000000 00:00 0\n"  # an ordinary anonymous VMA
    )
    kinds = [VmaKind(k) for k in Vmas.parse(asan).kind]
    assert kinds == [VmaKind.SHADOW] * 3 + [VmaKind.ANON]
    assert Vmas.parse(asan).label(2) == "shadow"
    # A 1 MiB arena that happens to land in MSan's range is not shadow.
    arena = "10000000000-10000100000 rw-p 00000000 00:00 0\n"
    assert [VmaKind(k) for k in Vmas.parse(arena).kind] == [VmaKind.ANON]
    assert VmaKind(Vmas.parse(asan, detect_shadow=False).kind[2]) == VmaKind.ANON


def test_trackable_takes_shared_memory_not_devices():
    from pmviz.maps import is_shared_memory_path

    lines = "\n".join(
        [
            "7f0000000000-7f0000001000 rw-p 00000000 00:00 0 ",
            "7f0000001000-7f0000002000 rw-s 00000000 00:01 1024                       /memfd:pool (deleted)",
            "7f0000002000-7f0000003000 rw-s 00000000 00:1a 7                          /dev/shm/psm_1",
            "7f0000003000-7f0000004000 rw-s 00000000 00:01 2048                       /dev/zero (deleted)",
            "7f0000004000-7f0000005000 rw-s 00001000 08:01 99                         /var/db/data.bin",
            "7f0000005000-7f0000006000 rw-s 00000000 00:05 412                        /dev/dri/renderD128",
            "7f0000006000-7f0000007000 rw-s 00000000 00:0f 13                         anon_inode:[io_uring]",
            "7f0000007000-7f0000008000 r--s 00000000 00:01 4096                       /memfd:ro (deleted)",
            "7f0000008000-7f0000009000 r--p 00000000 08:01 5                          /usr/lib/libc.so.6",
        ]
    )  # fmt: skip
    v = Vmas.parse(lines)
    assert v.trackable().tolist() == [True, True, True, True, True, False, False, False, False]
    assert is_shared_memory_path(b"/SYSV00000000 (deleted)") and not is_shared_memory_path("[vvar]")
    # the trackers' own maps reader makes the same choice from the raw lines
    from pmviz.tracking._maps import parse_vma_rows

    assert parse_vma_rows(lines.encode()).trackable().tolist() == [0, 1, 2, 3, 4]
