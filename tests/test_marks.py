"""pmviz.mark / MarkReader / record_marks / between / draw_marks, on real FIFOs and processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import pmviz
from pmviz import marks as pm
from pmviz.capture import Capture, CaptureMeta, Mark

# A recorded program: marks two phases; prints the monotonic clock before and after each mark.
PROGRAM = """
import time
import pmviz
def mark(label):
    t0 = time.monotonic_ns(); pmviz.mark(label); t1 = time.monotonic_ns()
    print(label, t0, t1, flush=True)
time.sleep(0.25)
mark("fill")
time.sleep(0.4)
mark("sort")
time.sleep(0.25)
"""


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(pm.ENV, raising=False)
    monkeypatch.setattr(pm, "_warned", set())


def _collect(path):
    got: list[Mark] = []
    return got, pm.MarkReader(path, got.append)


def _wait_for(got, n, timeout=10.0):
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        time.sleep(0.005)


def test_mark_without_recorder_warns_once(no_env):
    with pytest.warns(pmviz.PmvizWarning, match="nothing records marks"):
        pmviz.mark("a")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pmviz.mark("b")  # the second one is silent
    with pytest.raises(ValueError, match="non-empty"):
        pmviz.mark("  ")


def test_mark_to_fifo_without_reader_never_blocks(no_env, tmp_path, monkeypatch):
    fifo = tmp_path / "m"
    os.mkfifo(fifo)
    monkeypatch.setenv(pm.ENV, str(fifo))
    with pytest.warns(pmviz.PmvizWarning, match="no recorder is reading it"):
        pmviz.mark("lost")


def test_reader_gets_exact_times_and_plain_labels(no_env, tmp_path, monkeypatch):
    path = tmp_path / "marks.fifo"
    got, reader = _collect(path)
    assert path.exists()  # created (a FIFO) ...
    with reader:
        monkeypatch.setenv(pm.ENV, str(path))
        before = time.monotonic_ns()
        pmviz.mark("fill\nphase")  # one line
        after = time.monotonic_ns()
        with open(path, "w") as f:  # any program: a bare label, and an explicit time
            f.write("sort\n12345 explicit label\n\n")
        _wait_for(got, 3)
    assert not path.exists()  # ... and removed by close()
    assert [m.label for m in got] == ["fill phase", "sort", "explicit label"]
    assert before <= got[0].time_ns <= after
    assert got[1].time_ns >= after  # timed on arrival
    assert got[2].time_ns == 12345


def test_reader_keeps_an_existing_fifo_and_refuses_other_files(tmp_path):
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    got, reader = _collect(fifo)
    reader.start().close()
    assert fifo.exists()
    regular = tmp_path / "plain"
    regular.write_text("x")
    with pytest.raises(ValueError, match="not a FIFO"):
        pm.MarkReader(regular, print)


def test_in_process_marks_reach_a_recording(no_env):
    with pm.record_marks() as rec_marks:
        t0 = time.monotonic_ns()
        pmviz.mark("local")
    pmviz_marks = rec_marks.close()
    assert [m.label for m in pmviz_marks] == ["local"]
    assert pmviz_marks[0].time_ns >= t0
    assert pm._local == []  # listener removed


@pytest.mark.kernel
def test_marks_of_a_launched_program_land_at_their_times(no_env, tmp_path):
    fifo = tmp_path / "marks"
    rec = pmviz.Recorder(
        [sys.executable, "-c", PROGRAM], interval=0.05, writes="none", progress=False
    )
    with pm.record_marks(rec, fifo) as rm:
        assert os.environ[pm.ENV] == str(fifo)  # inherited by the launched program
        cap = rec.start().wait()
        rm.apply(cap)
    assert pm.ENV not in os.environ
    marks = pm.capture_marks(cap)
    assert [m.label for m in marks] == ["fill", "sort"]
    t = cap.time_ns
    for m in marks:  # inside the recording, between snapshots
        assert t[0] < m.time_ns < t[-1]
    gap = (marks[1].time_ns - marks[0].time_ns) / 1e9
    assert gap >= 0.4  # sent 0.4 s apart (plus the time of one mark call)
    phase = pm.between(cap, "fill", "sort")
    assert phase.time_ns[0] >= marks[0].time_ns
    assert phase.time_ns[-2] < marks[1].time_ns <= phase.time_ns[-1]
    assert [m.label for m in phase.marks] == ["fill", "sort"]


@pytest.mark.kernel
def test_cli_record_marks_fifo(tmp_path):
    fifo = tmp_path / "marks.fifo"
    out = tmp_path / "run.pmviz"
    env = {k: v for k, v in os.environ.items() if k != pm.ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "pmviz", "record", "-i", "50ms", "--writes", "none",
         "--no-progress", "--marks", str(fifo), "-o", str(out), "--",
         sys.executable, "-u", "-c", PROGRAM],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    sent = {w[0]: (int(w[1]), int(w[2])) for w in map(str.split, proc.stdout.splitlines())}
    cap = pmviz.open(out)
    marks = pm.capture_marks(cap)
    # the times the program took, carried through the FIFO and stored with the capture
    assert [m.label for m in marks] == ["fill", "sort"]
    for m in marks:
        before, after = sent[m.label]
        assert before <= m.time_ns <= after
    assert cap.time_ns[0] < marks[0].time_ns < marks[1].time_ns < cap.time_ns[-1]
    assert not fifo.exists()


def _synthetic(n=10, step_ns=100_000_000, marks=()):
    r = pmviz.Regions.from_arrays([0x10000], [0x20000], [int(pmviz.Category.PRESENT)])
    snaps = [(1_000_000_000 + i * step_ns, r, None, None) for i in range(n)]
    cap = Capture.from_snapshots(CaptureMeta(interval_ns=step_ns), snaps)
    cap.marks = [Mark(int(t), label) for t, label in marks]
    return cap


def test_between_cuts_the_phase():
    t0 = 1_000_000_000
    cap = _synthetic(marks=[(t0 + 250_000_000, "fill"), (t0 + 620_000_000, "sort")])
    phase = pm.between(cap, "fill", "sort")
    # snapshots at 300..600 ms, plus the one at 700 ms holding the phase's last writes
    assert ((phase.time_ns - t0) // 1_000_000).tolist() == [300, 400, 500, 600, 700]
    assert [m.label for m in phase.marks] == ["fill", "sort"]
    to_end = pm.between(cap, "sort")
    assert ((to_end.time_ns - t0) // 1_000_000).tolist() == [700, 800, 900]
    with pytest.raises(KeyError, match="no mark 'nope'.*fill"):
        pm.between(cap, "nope", "sort")


def test_capture_marks_reads_meta_extra_too():
    cap = _synthetic()
    cap.meta.extra["marks"] = [[1_200_000_000, "b"], [1_100_000_000, "a"]]
    cap.marks = [Mark(1_100_000_000, "a")]
    assert pm.capture_marks(cap) == [Mark(1_100_000_000, "a"), Mark(1_200_000_000, "b")]


def test_draw_marks_lines_and_merged_labels():
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from pmviz.plotting._marks import draw_marks

    t0 = 1_000_000_000
    cap = _synthetic(
        marks=[(t0 + 200_000_000, "a"), (t0 + 210_000_000, "b"), (t0 + 600_000_000, "c"),
               (t0 + 5_000_000_000, "outside")]
    )  # fmt: skip
    ax = Figure().subplots()
    ax.set_xlim(0, 1.0)
    artists = draw_marks(ax, cap)
    lines = [a for a in artists if a in ax.lines]
    texts = [a.get_text() for a in artists if a in ax.texts]
    assert len(lines) == 3  # the one outside the view is left out
    assert texts == ["a, b", "c"]  # 10 ms apart on a 1 s axis: one label
    ax2 = Figure().subplots()
    ax2.set_ylim(0, 1.0)
    hor = draw_marks(ax2, cap, axis="y")
    assert np.allclose([a.get_ydata()[0] for a in hor if a in ax2.lines], [0.2, 0.21, 0.6])
    with pytest.raises(ValueError):
        draw_marks(ax2, cap, axis="z")


def test_marks_go_to_recorder_mark_when_it_exists(no_env, tmp_path):
    class WithTime:
        def __init__(self):
            self.got = []

        def mark(self, label, *, time_ns=None):
            self.got.append((label, time_ns))

    class LabelOnly:
        def __init__(self):
            self.got = []

        def mark(self, label):
            self.got.append(label)

    a, b = WithTime(), LabelOnly()
    with pm.record_marks(a), pm.record_marks(b):
        t0 = time.monotonic_ns()
        pmviz.mark("x")
    assert b.got == ["x"]
    ((label, t),) = a.got
    assert label == "x" and t >= t0


def test_a_failing_callback_loses_one_mark_not_the_reader(no_env, tmp_path):
    path = tmp_path / "f"
    got = []

    def callback(m):
        if m.label == "bad":
            raise RuntimeError("boom")
        got.append(m.label)

    # (warnings.catch_warnings is process-wide: it sees the reader thread's warning too)
    with pytest.warns(pmviz.PmvizWarning, match="was lost: RuntimeError"):
        with pm.MarkReader(path, callback):
            with open(path, "w") as f:
                f.write("bad\ngood\n")
            _wait_for(got, 1)
    assert got == ["good"]


def _written_synthetic(marks=()):
    """A capture whose written sets move through the address space: each phase differs."""
    t0, step = 1_000_000_000, 100_000_000
    r = pmviz.Regions.from_arrays([0x10000], [0x30000], [int(pmviz.Category.PRESENT)])
    snaps = []
    for i in range(10):
        a = 0x10000 + i * 0x2000
        w = pmviz.Regions.from_arrays([a], [a + 0x1000], [int(pmviz.Category.WRITTEN)])
        snaps.append((t0 + i * step, r, w, None))
    cap = Capture.from_snapshots(CaptureMeta(interval_ns=step), snaps)
    cap.marks = [Mark(int(t), label) for t, label in marks]
    return cap


def test_analyses_take_between():
    from pmviz.analysis import cumulative_written, heatmap_grid, working_set_size

    t0 = 1_000_000_000
    cap = _written_synthetic(marks=[(t0 + 250_000_000, "a"), (t0 + 620_000_000, "b")])
    assert cap.has_written
    got = heatmap_grid(cap, "written", addr_bins=16, between=("a", "b"))
    want = heatmap_grid(cap.between("a", "b"), "written", addr_bins=16)
    full = heatmap_grid(cap, "written", addr_bins=16)
    np.testing.assert_array_equal(got.grid, want.grid)
    assert got.grid.shape[0] == 5 < full.grid.shape[0]
    np.testing.assert_array_equal(
        cumulative_written(cap, between=("a", "b")), cumulative_written(cap.between("a", "b"))
    )
    ws = working_set_size(cap, between=("a", "b"))
    assert len(ws.time) == 5
    with pytest.raises(ValueError, match="no mark 'nope'.*'a', 'b'"):
        heatmap_grid(cap, "present", between=("nope", "b"))
    with pytest.raises(ValueError, match="pair"):
        heatmap_grid(cap, "present", between="a")  # type: ignore[arg-type]
