"""A capture being written: bounded builder memory, live views, concurrent readers, rings,
failed starts and SIGKILL (synthetic snapshots; the SIGKILL test records this process)."""

import errno
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from pmviz import CaptureError
from pmviz.capture import CaptureMeta
from pmviz.recorder import CaptureBuilder
from pmviz.storage import CaptureWriter
from pmviz.storage import format as fmt
from pmviz.storage import open as open_capture

sys.path.insert(0, os.path.dirname(__file__))
from test_capture_model import churn  # noqa: E402


def feed(builder, cap, a, b):
    for i in range(a, b):
        s = cap.snapshot(i)
        builder.append(
            int(s.time_ns), s.regions.array, s.written.array, s.vmas if i == 0 else None, {}
        )


def same_prefix(view, ref):
    n = view.n_snapshots
    assert np.array_equal(view.time_ns, ref.time_ns[:n])
    for i in range(n):
        assert view.regions_at(i) == ref.regions_at(i), i
        assert view.written_at(i) == ref.written_at(i), i


def test_builder_releases_flushed_rows_and_the_live_view_stays_exact(tmp_path):
    ref = churn(n=120, regions=400, rate=0.01)
    path = str(tmp_path / "live.pmviz")
    b = CaptureBuilder(ref.meta, has_written=True)
    w = CaptureWriter(
        path, ref.meta, has_written=True, merge_every=3, on_segment_full=b.force_keyframe
    )
    b.set_disk(lambda: open_capture(path))
    held = []
    for a in range(0, 120, 10):
        feed(b, ref, a, a + 10)
        first, pending = b.pending()
        b.release(w.flush(pending, first))
        held.append(b._rows.end - b._rows.base)
        same_prefix(b.capture(), ref)
    assert max(held) == 0  # everything flushed left memory
    w.merge()
    w.finish(ref.meta)
    same_prefix(open_capture(path), ref)
    assert open_capture(path).complete


def test_in_memory_builder_stores_change():
    ref = churn(n=200, regions=2000, rate=0.001, written=True)
    b = CaptureBuilder(ref.meta, has_written=True)
    feed(b, ref, 0, 200)
    cap = b.capture()
    same_prefix(cap, ref)
    assert b._rows.end < 0.05 * ref.n_regions


def test_reader_sees_a_consistent_prefix_while_parts_merge(tmp_path):
    ref = churn(n=300, regions=200, rate=0.02)
    path = str(tmp_path / "m.pmviz")
    w = CaptureWriter(path, ref.meta, has_written=True, merge_every=2, segment_rows=3000)
    done = threading.Event()
    errors = []

    def write():
        try:
            for n in range(1, 301, 2):
                w.flush(ref.select(slice(0, n)))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            done.set()

    t = threading.Thread(target=write)
    opened = 0
    t.start()
    try:
        while not done.is_set() or opened < 3:
            c = open_capture(path)
            k = c.n_snapshots
            if k:
                for i in {0, k // 2, k - 1}:
                    assert c.regions_at(i) == ref.regions_at(i)
            opened += 1
    finally:
        t.join()
    assert not errors and opened >= 3


def test_max_size_ring_drops_oldest_segments(tmp_path):
    ref = churn(n=300, regions=300, rate=0.05)
    path = str(tmp_path / "ring.pmviz")
    b = CaptureBuilder(ref.meta, has_written=True)
    w = CaptureWriter(
        path,
        ref.meta,
        has_written=True,
        merge_every=4,
        max_size=60_000,
        on_segment_full=b.force_keyframe,
    )
    b.set_disk(lambda: open_capture(path))
    for a in range(0, 300, 5):
        feed(b, ref, a, a + 5)
        first, pending = b.pending()
        b.release(w.flush(pending, first))
        live = b.capture()
        ids = live.snapshot_ids
        assert ids[-1] == a + 4 and np.array_equal(ids, np.arange(ids[0], a + 5))
    w.merge()
    w.finish(ref.meta)
    d = open_capture(path)
    size = sum(os.path.getsize(p.path) for t in fmt.TABLES for p in fmt.list_parts(path, t)[0])
    first = int(d.snapshot_ids[0])
    assert first > 0 and d.meta.extra["dropped_snapshots"] == first
    assert d.meta.extra["first_snapshot"] == first
    assert size <= 2 * 60_000
    same_prefix(d, ref.select(slice(first, None)))


def test_failed_start_leaves_nothing_and_overwrite_takes_a_skeleton(tmp_path, monkeypatch):
    path = str(tmp_path / "full.pmviz")

    def enospc(fd, off, n):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", enospc)
    with pytest.raises(CaptureError, match="disk full"):
        CaptureWriter(path, CaptureMeta(), has_written=False)
    assert not os.path.exists(path)
    monkeypatch.undo()
    # a skeleton left by an older pmviz (no capture.json yet): --overwrite replaces it
    os.makedirs(os.path.join(path, "regions"))
    open(os.path.join(path, fmt.RESERVE_FILE), "wb").write(b"\0" * 10)
    with pytest.raises(CaptureError, match="already exists"):
        CaptureWriter(path, CaptureMeta(), has_written=False)
    CaptureWriter(path, CaptureMeta(), has_written=False, overwrite=True).finish(CaptureMeta())
    assert open_capture(path).complete


CHILD = r"""
import sys, time, pmviz
rec = pmviz.Recorder("self", interval=0.01, out=sys.argv[1], writes="none", progress=False,
                     flush_interval=0.1).start()
while True:
    w = rec._writer
    print(rec._builder.n, w.flushed, flush=True)
    time.sleep(0.005)
"""


@pytest.mark.parametrize("min_on_disk", [1, 30])
def test_sigkill_loses_only_what_was_not_flushed(tmp_path, min_on_disk):
    path = str(tmp_path / "k.pmviz")
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, path],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        flushed = 0
        for line in p.stdout:
            n, flushed = map(int, line.split())
            if flushed >= min_on_disk:
                break
        p.send_signal(signal.SIGKILL)
    finally:
        p.kill()
        p.wait()
    cap = open_capture(path)
    assert not cap.complete
    assert cap.n_snapshots >= flushed  # every flush that returned is on disk
    # the first snapshot is flushed at once, not after a first flush interval (10 snapshots):
    # the first part holds the snapshots taken before the writer saw the first one
    first_part = fmt.list_parts(path, "snapshots")[0][0]
    assert first_part.first == 0 and first_part.end <= 3, first_part


def test_an_error_in_the_loop_leaves_every_snapshot_taken_on_disk(tmp_path, monkeypatch):
    import pmviz
    from pmviz.recorder import _recorder

    calls = {"n": 0}
    real = _recorder.Recorder._read_maps

    def failing(self, previous):
        calls["n"] += 1
        if calls["n"] == 40:
            raise RuntimeError("boom")
        return real(self, previous)

    monkeypatch.setattr(_recorder.Recorder, "_read_maps", failing)
    out = str(tmp_path / "e.pmviz")
    rec = pmviz.Recorder(
        "self", interval=0.005, out=out, writes="none", progress=False, flush_interval=10
    ).start()
    with pytest.raises(pmviz.Error, match="boom"):
        rec.wait(timeout=60)
    cap = open_capture(out)
    assert cap.n_snapshots == rec._builder.n == 39  # the flush interval had not come
    assert cap.meta.end_reason.startswith("error:") and "boom" in cap.meta.end_reason


def test_a_mapped_file_with_a_non_utf8_name_is_recorded_exactly(tmp_path):
    import mmap

    import pmviz

    name = os.path.join(os.fsencode(tmp_path), b"x\xff.dat")
    with open(name, "wb") as f:
        f.write(b"\0" * 8192)
    with open(name, "rb") as f:
        m = mmap.mmap(f.fileno(), 8192, prot=mmap.PROT_READ)
        try:
            out = str(tmp_path / "u.pmviz")
            pmviz.record("self", count=2, interval=0.01, out=out, writes="none", progress=False)
        finally:
            m.close()
    paths = {p.encode("utf-8", "surrogateescape") for p in open_capture(out).vmas_at(0).paths}
    assert name in paths


def test_recorder_max_size_keeps_a_ring_and_marks(tmp_path):
    import pmviz

    out = str(tmp_path / "r.pmviz")
    rec = pmviz.Recorder(
        "self",
        interval=0.002,
        count=400,
        out=out,
        writes="none",
        progress=False,
        flush_interval=0.02,
        max_size=60_000,
    ).start()
    cap = rec.wait(timeout=120)
    d = open_capture(out)
    assert d.complete and d.meta.extra["dropped_snapshots"] > 0
    first = d.meta.extra["first_snapshot"]
    assert d.snapshot_ids[0] == first and d.snapshot_ids[-1] == 399
    assert cap.n_snapshots == d.n_snapshots == 400 - first
    assert d.regions_at(0) == cap.regions_at(0) and d.regions_at(-1) == cap.regions_at(-1)
    size = sum(os.path.getsize(p.path) for t in fmt.TABLES for p in fmt.list_parts(out, t)[0])
    assert size < 2 * 60_000
    # marks are stored with the capture (the ring above dropped the segment holding its mark)
    out2 = str(tmp_path / "m.pmviz")
    rec = pmviz.Recorder("self", interval=0.01, count=5, out=out2, writes="none", progress=False)
    rec.start()
    rec.mark("begin")
    rec.wait(timeout=60)
    assert [m.label for m in open_capture(out2).marks] == ["begin"]
    with pytest.raises(ValueError, match="max_size"):
        pmviz.Recorder("self", count=1, max_size=10)  # a ring needs out=
