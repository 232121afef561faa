"""The recorder against the real kernel: schedule, exactness, target life cycle, faults."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from layouts import Area, spawn_layout

import pmviz
from pmviz import CaptureError, Category, Regions
from pmviz.recorder import Recorder, record
from pmviz.storage import open as open_capture

# Every test also runs under a real swap file (as root): swap is where tracking and
# scanning meet (markers read as SWAPPED), and the recorder must be exact there too.
pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("under_swap")]

GROWER = (
    "import time\n"
    "bufs = []\n"
    "for i in range(400):\n"
    "    bufs.append(bytearray(1 << 20))\n"
    "    time.sleep(0.01)\n"
    "time.sleep(60)\n"
)


def test_record_a_growing_child_on_schedule():
    cap = record([sys.executable, "-c", GROWER], interval=0.1, duration=1.5, progress=False)
    m = cap.meta
    assert m.end_reason == "duration reached"
    assert m.exit_status == -signal.SIGTERM  # the launched program ends with its recording
    skipped = cap.telemetry["skipped_ticks"]
    # 1.5 s at 0.1 s is ticks 0..14; a tick skipped after the last snapshot is recorded
    # nowhere, so under load the count may come out one short, never over.
    assert cap.n_snapshots + int(skipped.sum()) in (14, 15)
    # absolute deadlines: the snapshot of tick n is taken within tick n, never drifting into
    # the next one (a later start would have been a skipped tick)
    ticks = np.arange(cap.n_snapshots) + np.cumsum(skipped)
    late = cap.time_ns - m.extra["schedule_start_ns"] - ticks * 100_000_000
    assert (late >= 0).all() and (late < 100_000_000).all(), late
    resident = [cap.regions_at(i).pages_with(Category.PRESENT) for i in range(cap.n_snapshots)]
    assert resident[-1] - resident[1] > 50 * 256  # > 50 MiB more resident at the end
    assert (cap.telemetry["n_regions"] == np.diff(cap.region_offsets)).all()
    assert (cap.telemetry["scan_ns"] > 0).all()
    assert m.pid > 0 and m.command[0] == sys.executable and m.start_wall_ns > 0
    assert m.scan_mask["return_mask"] == int(pmviz.features().categories)


def test_each_snapshot_equals_an_independent_scan_of_a_quiescent_child():
    areas = [
        Area("a", 1024, write=[[0, 1024, 3]]),
        Area("b", 512, kind="shared", write=[[0, 100]], read=[[200, 300]]),
        Area("c", 600, read=[[0, 600, 2]], guard=[599]),
    ]
    with spawn_layout(areas) as lay:
        before = pmviz.scan(lay.pid)
        cap = record(lay.pid, interval=0.05, count=5, writes="none", progress=False)
        after = pmviz.scan(lay.pid)
        maps = pmviz.read_maps(lay.pid)
    assert before == after  # the child really is quiescent
    assert cap.n_snapshots == 5 and not cap.has_written
    for i in range(5):
        assert cap.regions_at(i) == after
        assert cap.vmas_at(i) == maps
    assert len(cap.vma_tables) == 1  # stored once: it never changed
    lo, hi = lay.range("a")
    assert cap.regions_at(2).clip(lo, hi).pages_with(Category.PRESENT) == 342


class FakeSource:
    """A WriteSource reporting a different page each time."""

    mechanism = "fake"

    def __init__(self):
        self.pid = "self"
        self.n = 0
        self.closed = False

    def collect(self):
        self.n += 1
        base = 0x100000000 + self.n * 0x1000
        return Regions.from_arrays([base], [base + 0x1000 * self.n], int(Category.WRITTEN))

    def close(self):
        self.closed = True


def test_written_sets_from_a_write_source_reach_memory_and_disk(tmp_path):
    src = FakeSource()
    out = tmp_path / "w.pmviz"
    cap = record("self", interval=0.01, count=4, writes=src, out=out, progress=False)
    assert src.closed and cap.has_written and cap.meta.write_mechanism == "fake"
    for i in range(4):
        assert cap.written_at(i).n_pages == i + 1
    disk = open_capture(out)
    assert disk.complete and disk.meta.end_reason == "count reached"
    assert all(disk.written_at(i) == cap.written_at(i) for i in range(4))
    assert all(disk.regions_at(i) == cap.regions_at(i) for i in range(4))


@pytest.mark.skipif(not pmviz.features().uffd_wp_async, reason="needs uffd async WP")
def test_writes_auto_on_self_tracks_a_buffer_written_by_a_thread():
    buf = np.zeros(64 << 20, np.uint8)  # 16384 pages
    lo = buf.ctypes.data
    stop = threading.Event()

    def work():
        k = 0
        while not stop.is_set():
            buf[(k % 1000) * 4096 * 16] = 1  # pages 0, 16, 32 ... of the buffer
            k += 1
            time.sleep(0.0005)

    t = threading.Thread(target=work)
    t.start()
    try:
        cap = record("self", interval=0.1, count=6, progress=False)
    finally:
        stop.set()
        t.join()
    assert cap.meta.write_mechanism == "uffd-wp"
    lo_page = lo & ~4095  # the page holding buf[0]: the writes land on lo_page + 16k pages
    hits = [cap.written_at(i).clip(lo_page, lo_page + (16000 << 12)) for i in range(1, 6)]
    assert sum(h.n_pages for h in hits) > 100
    for h in hits:  # only the pages the thread writes
        assert ((h.start - lo_page) // 4096 % 16 == 0).all() and (h.page_counts == 1).all()


WRITER = (
    "import time\n"
    "buf = bytearray(8 << 20)\n"
    "print(hex(id(buf)), flush=True)\n"
    "k = 0\n"
    "while True:\n"
    "    buf[(k % 2048) * 4096] = 1\n"
    "    k += 1\n"
    "    time.sleep(0.002)\n"
)


def _no_swap():
    with open("/proc/swaps") as f:
        return len(f.read().splitlines()) <= 1


def _check_tracked(cap):
    assert cap.meta.write_mechanism == "uffd-wp", cap.meta.extra["writes_reason"]
    assert cap.has_written
    pages = [cap.written_at(i).n_pages for i in range(1, cap.n_snapshots)]
    assert sum(pages) > 50 and min(pages) > 0
    for i in range(1, cap.n_snapshots):
        w, r = cap.written_at(i), cap.regions_at(i)
        # written pages lie inside what the scan saw mapped
        hull = r.clip(int(w.start.min()), int(w.end.max()))
        assert hull.n_pages >= w.n_pages
        if _no_swap():  # markers are resolved: nothing reads as swapped without swap
            sw = r.select(Category.SWAPPED)
            assert sw.select(Category.GUARD).n_pages == sw.n_pages


@pytest.mark.root
@pytest.mark.skipif(not pmviz.features().uffd_wp_async, reason="needs uffd async WP")
def test_writes_auto_on_a_launched_command():
    cap = record([sys.executable, "-c", WRITER], interval=0.1, duration=0.8, progress=False)
    assert "injected" in cap.meta.extra["writes_reason"]
    _check_tracked(cap)


@pytest.mark.root
@pytest.mark.skipif(not pmviz.features().uffd_wp_async, reason="needs uffd async WP")
def test_writes_auto_on_a_pid():
    child = subprocess.Popen([sys.executable, "-c", WRITER], stdout=subprocess.PIPE)
    try:
        child.stdout.readline()
        cap = record(child.pid, interval=0.1, count=6, progress=False)
        assert child.poll() is None  # attached, tracked, and left running
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    _check_tracked(cap)


class CountingSource(FakeSource):
    def __init__(self):
        super().__init__()
        self.closes = 0

    def close(self):
        self.closes += 1


def test_a_recording_that_ends_before_start_returns_is_finished_once(tmp_path, monkeypatch):
    start = threading.Thread.start

    def start_and_let_the_recorder_run_to_its_end(thread):
        start(thread)
        if thread.name == "pmviz-recorder":
            thread.join()  # the recording ends before start() creates the writer thread

    monkeypatch.setattr(threading.Thread, "start", start_and_let_the_recorder_run_to_its_end)
    src = CountingSource()
    out = tmp_path / "early.pmviz"
    rec = Recorder("self", count=1, writes=src, out=out, progress=False).start()
    cap = rec.wait(timeout=30)
    assert src.closes == 1  # finished by the writer thread only, not a second time
    disk = open_capture(out)
    assert disk.complete and disk.meta.end_reason == "count reached"
    assert disk.n_snapshots == cap.n_snapshots == 1


def _wait_for_live_snapshots(rec, n, deadline):
    """Poll the live view until it holds ``n`` snapshots; the recording must go on meanwhile."""
    while (got := rec.capture.n_snapshots) < n:
        assert rec.running, f"the recording ended by itself: {rec.capture.meta.end_reason}"
        # a wall-clock bound only against a hang: a loaded machine may take seconds per scan
        assert time.monotonic() < deadline, f"{got} snapshots after 60 s"
        time.sleep(0.02)
    return got


def test_background_recorder_live_view_and_stop():
    rec = Recorder("self", interval=0.02, writes="none", progress=False).start()
    try:
        deadline = time.monotonic() + 60
        first = _wait_for_live_snapshots(rec, 3, deadline)
        _wait_for_live_snapshots(rec, first + 1, deadline)  # the live view keeps growing
    finally:
        cap = rec.stop()  # raises what ended the recording, if it failed
    assert not rec.running and cap.meta.end_reason == "stopped"
    n = cap.n_snapshots
    time.sleep(0.05)
    assert rec.capture.n_snapshots == n


@pytest.mark.parametrize(
    ("script", "reason", "status"),
    [
        ("import time; time.sleep(0.3)", "target exited with status 0", 0),
        ("import sys, time; time.sleep(0.3); sys.exit(3)", "target exited with status 3", 3),
        (
            "import os, time; time.sleep(0.3); os.kill(os.getpid(), 9)",
            "target killed by SIGKILL",
            -9,
        ),
        (  # a launched command is followed through exec, to the end of what it became
            "import os, time; time.sleep(0.3); os.execv('/bin/sleep', ['sleep', '0.3'])",
            "target exited with status 0",
            0,
        ),
    ],
    ids=["exits", "exit-status", "killed", "execs"],
)
def test_target_that_ends_mid_recording(script, reason, status):
    rec = Recorder([sys.executable, "-c", script], interval=0.02, progress=False).start()
    cap = rec.wait(timeout=20)
    assert cap.meta.end_reason == reason
    assert cap.meta.exit_status == status
    assert 3 <= cap.n_snapshots
    assert rec.process.poll() is not None  # nothing left running


def test_pid_target_that_exits():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    try:
        cap = record(child.pid, interval=0.02, duration=10, progress=False)
    finally:
        child.wait()
    assert cap.meta.end_reason == "target exited" and cap.times[-1] < 5


def test_kill_9_of_the_recorder_leaves_a_readable_capture(tmp_path):
    out = tmp_path / "k.pmviz"
    rec = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pmviz",
            "record",
            "-i",
            "20ms",
            "--no-progress",
            "-o",
            str(out),
            "--writes",
            "none",
            "--",
            sys.executable,
            "-c",
            GROWER,
        ],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while not (out / "snapshots").is_dir() or len(os.listdir(out / "snapshots")) < 3:
            assert time.monotonic() < deadline and rec.poll() is None
            time.sleep(0.05)
        time.sleep(0.4)
        killed_at = time.monotonic_ns()
        rec.kill()
        rec.wait()
    finally:
        cap_pid = None
        try:
            import json

            cap_pid = json.loads((out / "capture.json").read_text())["pid"]
            os.kill(cap_pid, signal.SIGKILL)  # the orphaned workload
        except (OSError, ValueError, TypeError, KeyError):
            pass
        if rec.poll() is None:
            rec.kill()
            rec.wait()
    cap = open_capture(out)
    assert not cap.complete and cap.meta.end_reason.startswith("incomplete")
    assert cap.n_snapshots >= 10
    # at most ~1 s lost: flushes happen every 0.5 s
    assert killed_at - cap.time_ns[-1] < 1_200_000_000
    assert (np.diff(cap.region_offsets) > 0).all()
    _ = cap.regions, cap.vmas_at(-1)  # every row readable


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_full_disk_stops_with_a_clear_error_and_a_readable_capture(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=320k", "tmpfs", str(mnt)], check=True)
    try:
        out = mnt / "full.pmviz"
        rec = Recorder(
            "self",
            interval=0.005,
            duration=30,
            out=out,
            writes="none",
            progress=False,
            flush_interval=0.05,
        ).start()
        with pytest.raises(CaptureError, match="disk full") as err:
            rec.wait(timeout=30)
        assert str(mnt) in str(err.value)
        cap = open_capture(out)
        assert cap.complete and cap.meta.end_reason == "disk full"
        assert 0 < cap.n_snapshots < rec.capture.n_snapshots
        last = cap.n_snapshots - 1
        assert all(cap.regions_at(i) == rec.capture.regions_at(i) for i in (0, last))
        assert not [n for d, _, fs in os.walk(out) for n in fs if n.startswith(".tmp-")]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_bad_arguments():
    with pytest.raises(ValueError, match="interval"):
        Recorder("self", interval=-1)
    with pytest.raises(ValueError, match="count"):
        Recorder("self", count=0)
    with pytest.raises(ValueError, match="writes must be one of"):
        Recorder("self", count=1, writes="bogus").start()
    with pytest.raises(ValueError, match="duration= or count="):
        record("self")
    with pytest.raises(TypeError, match="command"):
        Recorder([])
    with pytest.raises(ValueError, match="overlap"):
        Recorder("self", ranges=[(0, 0x2000), (0x1000, 0x3000)])
    with pytest.raises(pmviz.NoSuchProcess):
        record(2**22 + 12345, count=1, progress=False)
    with pytest.raises(pmviz.Error, match="cannot start"):
        record(["/nonexistent/prog"], count=1, progress=False)


class SlowOnce(FakeSource):
    """Takes 250 ms to collect at the third snapshot: an overrun of a 100 ms schedule."""

    def collect(self):
        if self.n == 2:
            time.sleep(0.25)
        return super().collect()


def test_an_overrun_skips_ticks_and_records_it():
    cap = record("self", interval=0.1, count=5, writes=SlowOnce(), progress=False)
    skipped = cap.telemetry["skipped_ticks"].tolist()
    # snapshot 2 started at 0.2 s and ended after 0.45 s: ticks 3 and 4 are skipped and the
    # next snapshot says so (a loaded machine may skip more, never fewer)
    assert skipped[3] >= 2, skipped
    ticks = np.arange(5) + np.cumsum(skipped)
    late = cap.time_ns - cap.meta.extra["schedule_start_ns"] - ticks * 100_000_000
    assert (late >= 0).all() and (late < 100_000_000).all(), late


def test_ranges_limit_the_scan():
    buf = np.ones(4 << 20, np.uint8)
    lo = (buf.ctypes.data + 4095) & ~4095
    hi = lo + (256 << 12)
    cap = record("self", interval=0.01, count=2, ranges=[(lo, hi)], writes="none", progress=False)
    r = cap.regions_at(1)
    assert int(r.start[0]) == lo and int(r.end[-1]) == hi
    assert r.pages_with(Category.PRESENT) == 256
    assert cap.meta.extra["ranges"] == [[lo, hi]]


def test_writes_auto_without_a_mechanism_warns_and_says_why(monkeypatch):
    from pmviz.recorder import _writes

    monkeypatch.setattr(_writes, "_make_source", lambda t, w: (None, "no mechanism here"))
    with pytest.warns(pmviz.PmvizWarning, match="no mechanism here"):
        cap = record("self", interval=0.01, count=2, progress=False)
    assert cap.meta.write_mechanism == "none" and not cap.has_written
    assert cap.meta.extra["writes_reason"] == "no mechanism here"
    with pytest.raises(pmviz.Error, match="not available"):
        record("self", interval=0.01, count=2, writes="uffd-wp", progress=False)


@pytest.mark.skipif(pmviz.features().soft_dirty, reason="this kernel has soft-dirty")
def test_soft_dirty_on_a_kernel_without_it_says_so():
    with pytest.raises(pmviz.UnsupportedKernel, match="CONFIG_MEM_SOFT_DIRTY"):
        record("self", interval=0.01, count=2, writes="soft-dirty", progress=False)


# -- under a real swap file -------------------------------------------------------------------
def _kernel_swap_pages(pid, lo, hi):
    """The pages in [lo, hi) on a swap device, straight from the classic pagemap entries."""
    from pmviz._kernel import pagemap, procfs
    from pmviz.swapped import is_swap_entry

    with procfs.open_fd(pid, "pagemap") as fd:
        entries = pagemap.read_entries(fd, lo, hi)
    return set((lo + np.flatnonzero(is_swap_entry(entries)) * 4096).tolist())


def _pages(regions, lo, hi, cat):
    r = regions.clip(lo, hi).select(cat)
    return {a for s, e in zip(r.start.tolist(), r.end.tolist()) for a in range(s, e, 4096)}


@pytest.mark.root
@pytest.mark.skipif(not pmviz.features().uffd_wp_async, reason="needs uffd async WP")
def test_write_tracked_recording_of_a_target_with_pages_in_swap(swapfile):
    """Regression: resolving markers vs. swap split regions and the recorder wrote them back
    into the old row count (``could not broadcast input array``)."""
    areas = [
        # swap and (once armed) markers alternate page by page: one SWAPPED region to the
        # kernel, 256 after resolution
        Area("swp", 512, write=[[0, 512]], dontneed=[[1, 256, 2]], pageout=[[0, 256, 2]]),
        Area("empty", 256, write=[[0, 8]]),  # armed-but-empty pages: uffd-wp markers
    ]
    with spawn_layout(areas) as lay:
        lo, hi = lay.span
        swapped = _kernel_swap_pages(lay.pid, lo, hi)
        assert len(swapped) > 100, "MADV_PAGEOUT swapped nothing"
        cap = record(lay.pid, interval=0.05, count=4, progress=False)
        present = _pages(pmviz.scan(lay.pid), lo, hi, Category.PRESENT)
        assert _kernel_swap_pages(lay.pid, lo, hi) == swapped  # quiet target
    assert cap.meta.write_mechanism == "uffd-wp", cap.meta.extra["writes_reason"]
    for i in range(cap.n_snapshots):
        r = cap.regions_at(i)
        assert _pages(r, lo, hi, Category.SWAPPED) == swapped  # markers are not swap
        assert _pages(r, lo, hi, Category.PRESENT) == present
        if i:
            assert cap.written_at(i).clip(lo, hi).n_pages == 0  # the target wrote nothing
    elo, ehi = lay.range("empty")
    assert _pages(cap.regions_at(1), elo + 8 * 4096, ehi, Category.SWAPPED) == set()


# -- short programs and programs that exec ----------------------------------------------------
@pytest.mark.parametrize("writes", ["auto", "none"])
def test_a_program_that_ends_before_the_first_scan_gives_an_empty_complete_capture(
    tmp_path, writes
):
    """Regression: ``pmviz record -- true`` failed 7 runs in 10 (pagemap opened too late)."""
    for i in range(20):
        prog = ["true"] if i % 2 else ["false"]
        out = tmp_path / f"short{i}.pmviz"
        cap = record(prog, interval=0.01, out=out, writes=writes, progress=False)
        status = 0 if i % 2 else 1
        assert cap.meta.exit_status == status
        assert cap.meta.end_reason == f"target exited with status {status}"
        disk = open_capture(out)
        assert disk.complete and disk.meta.exit_status == status
        assert disk.n_snapshots == cap.n_snapshots


# Allocates 32 MiB and writes a page of it every 2 ms for a while, then exits 7.
TAIL = (
    "import time\n"
    "buf = bytearray(b'\\1') * (32 << 20)\n"
    "t = time.monotonic()\n"
    "k = 0\n"
    "while time.monotonic() - t < 1.0:\n"
    "    buf[(k % 4096) * 4096] = 1\n"
    "    k += 1\n"
    "    time.sleep(0.002)\n"
    "raise SystemExit(7)\n"
)


def _check_followed(cap, n_exec, last_command):
    m = cap.meta
    assert m.end_reason == "target exited with status 7", m.end_reason
    assert m.exit_status == 7
    events = m.extra.get("events", [])
    # (an exec before the first scan, like /usr/bin/env's, happens before there is anything
    # to record: n_exec=None accepts it either way)
    assert [e["kind"] for e in events] == ["exec"] * (len(events) if n_exec is None else n_exec)
    if events:
        assert events[-1]["command"][: len(last_command)] == last_command
    t_exec = events[-1]["time_ns"] if events else 0
    after = np.flatnonzero(cap.time_ns >= t_exec)
    assert len(after) >= 3, "the program it became was hardly recorded"
    # the final program's 32 MiB buffer is seen resident (the last snapshot may be taken
    # while it exits, its buffer already freed)
    assert max(cap.regions_at(int(i)).pages_with(Category.PRESENT) for i in after) > 8192
    if cap.meta.write_mechanism == "uffd-wp":  # re-armed in the new image: writes seen again
        assert sum(cap.written_at(int(i)).n_pages for i in after[1:]) > 100


def test_a_launched_env_script_is_recorded_until_the_program_it_becomes_exits(tmp_path):
    script = tmp_path / "work.py"
    script.write_text("#!/usr/bin/env python3\n" + TAIL)
    script.chmod(0o755)
    rec = Recorder([str(script)], interval=0.05, progress=False).start()
    cap = rec.wait(timeout=60)
    # /usr/bin/env is what the kernel runs first; it execs python3
    _check_followed(cap, None, ["python3", str(script)])
    assert rec.process.returncode == 7  # never signalled


def test_a_shell_wrapper_ending_in_exec_and_a_double_exec(tmp_path):
    prog = tmp_path / "tail.py"
    prog.write_text(TAIL)
    wrapper = f"sleep 0.2; exec {sys.executable} {prog}"
    cap = record(["sh", "-c", wrapper], interval=0.05, progress=False)
    _check_followed(cap, 1, [sys.executable, str(prog)])
    double = f"sleep 0.2; exec sh -c 'sleep 0.2; exec {sys.executable} {prog}'"
    cap = record(["sh", "-c", double], interval=0.05, progress=False)
    _check_followed(cap, 2, [sys.executable, str(prog)])


def test_a_pid_recording_ends_at_exec_unless_follow_exec():
    script = "import os, time; time.sleep(0.3); os.execv('/bin/sleep', ['sleep', '1'])"
    for follow, reason in ((False, "target exec'd a new program"), (True, "target exited")):
        child = subprocess.Popen([sys.executable, "-c", script])
        try:
            cap = record(child.pid, interval=0.02, duration=20, follow_exec=follow, progress=False)
            assert cap.meta.end_reason == reason
            assert len(cap.meta.extra.get("events", [])) == int(follow)
        finally:
            child.kill()
            child.wait()


@pytest.mark.root
@pytest.mark.skipif(not pmviz.features().uffd_wp_async, reason="needs uffd async WP")
def test_a_second_recorder_of_the_same_pid_refuses_write_tracking_with_the_reason():
    """Regression: the second recorder claimed uffd-wp and recorded every written set empty
    (the first one's userfaultfd holds every VMA)."""
    child = subprocess.Popen([sys.executable, "-c", WRITER], stdout=subprocess.PIPE)
    try:
        child.stdout.readline()
        first = Recorder(child.pid, interval=0.1, count=6, progress=False).start()
        try:
            second = record(child.pid, interval=0.1, count=4, progress=False)
            with pytest.raises(pmviz.Error, match="another recorder or tracker"):
                record(child.pid, interval=0.1, count=2, writes="uffd-wp", progress=False)
        finally:
            cap = first.wait(timeout=60)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    _check_tracked(cap)  # the first one is unharmed
    m = second.meta
    assert m.write_mechanism == "none" and not second.has_written
    assert "another recorder or tracker" in m.extra["writes_reason"]
    assert m.extra["unarmed"] and all(
        u["reason"] == "registered by another userfaultfd" and u["end"] > u["start"]
        for u in m.extra["unarmed"]
    )
    assert second.n_snapshots == 4  # present/swapped still recorded


@pytest.mark.root
@pytest.mark.skipif(not pmviz.features().uffd_wp_async, reason="needs uffd async WP")
def test_written_sets_under_swap_are_exactly_the_pages_written(swapfile):
    """With pages in swap and markers around them, the recorded written sets hold exactly the
    pages the target wrote (swapped ones, marker ones, resident ones), nothing else."""
    areas = [Area("swp", 512, write=[[0, 512]], dontneed=[[1, 256, 2]], pageout=[[0, 256, 2]])]
    with spawn_layout(areas) as lay:
        lo, _ = lay.range("swp")
        rec = Recorder(lay.pid, interval=0.05, progress=False).start()
        try:
            deadline = time.monotonic() + 60
            n = _wait_for_live_snapshots(rec, 2, deadline)
            lay.do("write", "swp", [[0, 8], [100, 104], [300, 310]])  # swap, markers, resident
            _wait_for_live_snapshots(rec, n + 2, deadline)
        finally:
            cap = rec.stop()
    assert cap.meta.write_mechanism == "uffd-wp", cap.meta.extra["writes_reason"]
    written = set()
    for i in range(1, cap.n_snapshots):
        written |= _pages(cap.written_at(i), lo, lo + 512 * 4096, Category.WRITTEN)
    expected = {lo + p * 4096 for p in [*range(0, 8), *range(100, 104), *range(300, 310)]}
    assert written == expected
    # after the writes, those pages are resident and no longer swapped
    last = cap.regions_at(cap.n_snapshots - 1)
    assert expected <= _pages(last, lo, lo + 512 * 4096, Category.PRESENT)
    assert not expected & _pages(last, lo, lo + 512 * 4096, Category.SWAPPED)
