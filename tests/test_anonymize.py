"""Anonymization: addresses rebased consistently, layout within groups exact, nothing leaks."""

import json
import os
import re
import sys

import numpy as np
import pyarrow.parquet as pa_parquet
import pyarrow.types as pa_types
import pytest

import pmviz
from pmviz import Regions
from pmviz.anonymize import ALIGN, BASE, anonymize
from pmviz.capture import Capture, CaptureMeta
from pmviz.maps import Vmas
from pmviz.storage import save

MAPS1 = (
    "55d0c0a00000-55d0c0a02000 r--p 00000000 08:01 1234 /home/alice/secret/prog\n"
    "55d0c0a02000-55d0c0a05000 r-xp 00002000 08:01 1234 /home/alice/secret/prog\n"
    "55d0c1000000-55d0c1400000 rw-p 00000000 00:00 0 [heap]\n"
    "7f1234200000-7f1234600000 rw-p 00000000 00:00 0 [anon:alice-cache]\n"
    "7f1234600000-7f1234610000 r-xp 00000000 08:01 99 /usr/lib/libc.so.6\n"
    "7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]\n"
)
MAPS2 = MAPS1.replace("55d0c1400000", "55d0c1800000").replace(
    "7ffc00000000",
    "7f1234800000-7f1234810000 r--p 00000000 08:01 1234 /home/alice/secret/prog\n7ffc00000000",
)


def capture():
    v1, v2 = Vmas.parse(MAPS1), Vmas.parse(MAPS2)
    snaps = []
    for i in range(4):
        v = v1 if i < 2 else v2
        r = Regions.from_arrays(
            v.start, np.minimum(v.start + 0x3000 * (i + 1), v.end), np.arange(len(v)) + 8
        )
        w = Regions.from_arrays([0x55D0C1000000 + 0x1000 * i], [0x55D0C1002000 + 0x1000 * i], 2)
        snaps.append((i * 10**8, r, w, v))
    meta = CaptureMeta(
        pid=4242,
        command=["/home/alice/secret/prog", "--token=hunter2"],
        extra={"writes_reason": "x", "ranges": [[0, 1]], "keep": 1},
    )
    return Capture.from_snapshots(meta, snaps)


def test_rebase_is_consistent_and_keeps_layout_within_groups():
    cap = capture()
    a = anonymize(cap)
    for i in range(cap.n_snapshots):
        v0, v1 = cap.vmas_at(i), a.vmas_at(i)
        r0, r1 = cap.regions_at(i), a.regions_at(i)
        assert np.array_equal(r0.page_counts, r1.page_counts)
        assert np.array_equal(r0.categories, r1.categories)
        # every region sits at the same offset inside the same VMA as before
        k0, k1 = v0.find(r0.start), v1.find(r1.start)
        assert np.array_equal(k0, k1) and (k0 >= 0).all()
        assert np.array_equal(r0.start - v0.start[k0], r1.start - v1.start[k1])
        w0, w1 = cap.written_at(i), a.written_at(i)
        kw = v1.find(w1.start)
        assert np.array_equal(w0.start - v0.start[v0.find(w0.start)], w1.start - v1.start[kw])
        # huge-page alignment kept, absolute addresses not
        assert np.array_equal(v0.start % ALIGN, v1.start % ALIGN)
        assert not np.isin(v1.start, v0.start).any()
        assert (np.diff(v1.start.astype(np.int64)) > 0).all()  # order kept
    assert int(a.vmas_at(0).start.min()) >= BASE
    # adjacent VMAs (prog r--p / r-xp) stay adjacent: same group
    v = a.vmas_at(0)
    assert v.end[0] == v.start[1]


def test_paths_and_metadata_are_stripped():
    a = anonymize(capture())
    p1, p2 = list(a.vmas_at(0).paths), list(a.vmas_at(3).paths)
    assert p1 == ["file1", "file1", "[heap]", "[anon]", "file2", "[stack]"]
    assert p2[-2] == "file1"  # the same file keeps its name in every table
    for v in a.vma_tables:
        assert (v.array["inode"] == 0).all() and (v.array["dev_major"] == 0).all()
    m = a.meta
    assert m.anonymized and m.pid is None and m.command is None
    assert m.extra == {"keep": 1}
    assert "alice" not in repr(m) and "hunter2" not in repr(m)


def test_anonymize_a_recording_and_its_file(tmp_path):
    cap = pmviz.record("self", interval=0.01, count=3, writes="none", progress=False)
    path = save(cap, str(tmp_path / "c.pmviz"))
    a = pmviz.open(path).anonymize()
    assert a.n_snapshots == 3 and a.meta.anonymized
    for i in range(3):
        assert np.array_equal(a.regions_at(i).page_counts, cap.regions_at(i).page_counts)
    assert not np.isin(a.regions["start"], cap.regions["start"]).any()
    b = pmviz.open(save(a, str(tmp_path / "a.pmviz")))
    assert b.meta.anonymized and b.regions_at(2) == a.regions_at(2)


def test_empty_capture():
    a = anonymize(Capture.from_snapshots(CaptureMeta(), []))
    assert a.n_snapshots == 0


def test_layout_that_cannot_fit_raises():
    huge = Regions.from_arrays([0x1000], [0x7FFF00000000], 8)
    cap = Capture.from_snapshots(CaptureMeta(), [(0, huge, None, None)])
    with pytest.raises(ValueError, match="47-bit"):
        anonymize(cap)


MAPPER = """
import mmap, sys, time
f = open(sys.argv[1], "rb")
m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
m[:1]
time.sleep(float(sys.argv[2]))
"""


def _strings_of_every_file(root):
    """Every file of a capture as text: raw bytes, and Parquet parts decoded column by column
    (their pages are compressed, so raw bytes alone would hide what they hold)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            text = open(path, "rb").read().decode("latin-1")
            ints = []
            if name.endswith(".parquet"):
                t = pa_parquet.read_table(path)
                text += repr(t.schema.metadata) + repr(t.to_pydict())
                for col in t.columns:
                    if pa_types.is_integer(col.type):
                        ints.append(
                            np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
                        )
            out[os.path.relpath(path, root)] = (text, np.concatenate(ints) if ints else np.empty(0))
    return out


def test_an_anonymized_recording_keeps_no_identifying_value(tmp_path):
    secret_dir = tmp_path / "alice-zq9-private"
    secret_dir.mkdir()
    data = secret_dir / "ledger-q7x.dat"
    data.write_bytes(b"x" * (1 << 20))
    out = str(secret_dir / "run-zq9.pmviz")
    cap = pmviz.record(
        [sys.executable, "-c", MAPPER, str(data), "0.6", "--token=hunter2"],
        interval=0.05,
        out=out,
        progress=False,
        writes="none",
    )
    assert cap.n_snapshots >= 3
    src = pmviz.open(out)
    assert any("ledger-q7x" in str(p) for v in src.vma_tables for p in v.paths)
    # what a failed run could leave in the metadata: the output path in end_reason and extra
    src.meta = src.meta.replace(
        end_reason=f"error: {out}/regions/000000000-000000004.parquet: cannot write",
        extra={
            **src.meta.extra,
            "note": f"written by pid {cap.meta.pid} to {out}",
            "mark_time_ns": int(src.time_ns[1]),
            "slice": {"from_s": 0.1, "addr_range": [int(src.regions["start"][0]), 2**47]},
        },
    )
    src.marks = [pmviz.capture.Mark(int(src.time_ns[1]), f"opened {data}")]
    anon = anonymize(src)
    assert anon.time_ns[0] == 0 and anon.marks[0].time_ns == src.time_ns[1] - src.time_ns[0]
    assert anon.meta.end_reason == "error (details removed)"
    path = save(anon, str(tmp_path / "shared.pmviz"))

    m = src.meta
    words = [
        out,
        str(secret_dir),
        "alice-zq9-private",
        "ledger-q7x",
        "run-zq9",
        "hunter2",
        "--token",
    ]
    numbers = [
        m.start_wall_ns,
        m.start_monotonic_ns,
        *src.time_ns.tolist(),
        m.extra["schedule_start_ns"],
        int(src.regions["start"][0]),  # an absolute address
    ]
    offsets = {int(o) for v in src.vma_tables for o in v.array["offset"]} - {0}
    assert offsets  # the recording did map files at non-zero offsets
    pid = str(cap.meta.pid)
    for name, (text, ints) in _strings_of_every_file(path).items():
        for w in words:
            assert w not in text, (name, w)
        assert not re.search(rf"(?<!\d){pid}(?!\d)", text), (name, pid)
        for n in numbers:
            assert str(n) not in text, (name, n)
            assert not np.isin(ints, [float(n)]).any(), (name, n)
        # nothing that looks like a boot-relative or wall-clock time: all times are < 1 h
        if name.startswith("snapshots"):
            t = pa_parquet.read_table(os.path.join(path, name), columns=["time_ns"]).column(0)
            assert max(t.to_pylist()) < 3600 * 10**9
        if name.startswith("vmas"):
            o = pa_parquet.read_table(os.path.join(path, name), columns=["offset"]).column(0)
            assert set(o.to_pylist()) == {0}
    meta = json.load(open(os.path.join(path, "capture.json")))
    assert meta["start_wall_ns"] == 0 and meta["start_monotonic_ns"] == 0
    assert meta["extra"]["schedule_start_ns"] == m.extra["schedule_start_ns"] - int(src.time_ns[0])
    assert "<path>" in meta["extra"]["note"] and "<removed>" in meta["extra"]["note"]
    assert meta["extra"]["slice"] == {"from_s": 0.1}
    # what is kept is still exact
    b = pmviz.open(path)
    for i in range(src.n_snapshots):
        assert np.array_equal(b.regions_at(i).page_counts, src.regions_at(i).page_counts)
        assert np.array_equal(b.regions_at(i).categories, src.regions_at(i).categories)
    assert np.array_equal(np.diff(b.time_ns), np.diff(src.time_ns))


def test_known_end_reasons_are_kept():
    for reason in (
        "count reached",
        "target exited with status 3",
        "target killed by SIGKILL",
        "stopped",
        None,
    ):
        cap = Capture.from_snapshots(CaptureMeta(end_reason=reason), [])
        assert anonymize(cap).meta.end_reason == reason
