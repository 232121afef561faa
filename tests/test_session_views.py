"""Session analyses and views: tree totals counted once, stacked series, tree, heatmaps."""

from __future__ import annotations

import os
import time

import matplotlib
import numpy as np
import pyarrow as pa
import pytest

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402
from test_accounting import run_tree  # noqa: E402

import pmviz  # noqa: E402
from pmviz.accounting import account  # noqa: E402
from pmviz.analysis.session import (  # noqa: E402
    accounting_series,
    process_series,
    process_tree,
    tree_totals,
)
from pmviz.plotting.session import (  # noqa: E402
    process_heatmaps,
    process_icicle,
    stacked_processes,
    tree_totals_lines,
)


@pytest.fixture(scope="module")
def recorded():
    """The shared tree: three accounting ticks and a short capture of each process."""
    with run_tree() as t:
        parts = []
        for _ in range(3):
            tick = account(t.pids)
            parts.append(tick.append_column("time_ns", pa.array([time.time_ns()] * len(tick))))
            time.sleep(0.02)
        caps = {
            pid: pmviz.record(pid, count=3, interval=0.02, writes="none", progress=False)
            for pid in t.pids
        }
        processes = pa.table(
            {
                "pid": t.pids,
                "parent": [os.getpid(), t.pid["parent"], t.pid["parent"]],
                "command": [["python3", "shared_tree.py"], ["child1"], ["child2"]],
            }
        )
        yield t, pa.concat_tables(parts), caps, processes


@pytest.mark.kernel
def test_tree_totals_count_shared_pages_once(recorded):
    t, acc, _, _ = recorded
    tot = tree_totals(acc)
    assert tot.time.size == 3 and tot.n_processes.tolist() == [3, 3, 3]
    per_tick = acc.filter(pa.compute.equal(acc["time_ns"], pa.scalar(int(tot.time_ns[-1]))))
    assert tot.counted[-1] == sum(per_tick["counted_bytes"].to_pylist())
    assert tot.rss_sum[-1] == sum(per_tick["rss_bytes"].to_pylist())
    # The 56 shared pages of the memfd and files alone make the naive sum larger.
    assert tot.rss_sum[-1] - tot.counted[-1] >= 2 * 56 * 4096
    assert "counted once" in repr(tot) and "<table>" in tot._repr_html_()


@pytest.mark.kernel
def test_series_and_tree(recorded):
    t, acc, caps, processes = recorded
    s = accounting_series(acc, "counted_bytes")
    assert s.values.shape == (3, 3) and (s.values.sum(axis=1) == tree_totals(acc).counted).all()
    r = process_series(caps, "resident")
    assert r.pids.tolist() == sorted(t.pids) and r.values.shape[1] == 3
    assert (r.values.max(axis=0) > 0).all()
    tree = process_tree(processes, acc)
    assert tree.pid.tolist() == t.pids and tree.depth.tolist() == [0, 1, 1]
    assert tree.subtree_counted[0] == tree_totals(acc).counted[-1]
    assert "child1" in repr(tree) and "padding-left:1.2em" in tree._repr_html_()


@pytest.mark.kernel
def test_views_return_their_artists(recorded):
    t, acc, caps, processes = recorded
    fig = Figure()
    ax = fig.add_subplot()
    polys = stacked_processes(process_series(caps, "resident"), ax=ax, top=2)
    assert len(polys) == 3 and polys[-1].get_label() == "others (1)"
    lines = tree_totals_lines(acc, ax=Figure().add_subplot())
    assert [ln.get_label() for ln in lines][:2] == ["counted once", "sum of RSS"]
    assert np.array_equal(lines[0].get_ydata(), tree_totals(acc).counted)
    bars = process_icicle(process_tree(processes, acc), ax=Figure().add_subplot())
    assert len(bars) == 3
    widths = [b.get_width() for b in bars]
    assert widths[0] == pytest.approx(
        widths[1] + widths[2] + process_tree(processes, acc).counted[0]
    )
    meshes = process_heatmaps(caps, "present", fig=Figure(), ncols=2)
    assert len(meshes) == 3 and all(m.get_array().shape[0] == 128 for m in meshes)
    with pytest.raises(ValueError, match="no capture for pid"):
        process_heatmaps(caps, pids=[1], fig=Figure())


class _Session:
    """What the report reads of a session: pids, capture(pid), processes, accounting."""

    def __init__(self, caps, processes, accounting):
        self._caps, self.processes, self.accounting = caps, processes, accounting
        self.pids = sorted(caps)

    def capture(self, pid):
        return self._caps[pid]


@pytest.mark.kernel
def test_session_report_has_a_tree_section_and_one_per_process(recorded):
    from pmviz.session_report import build_session_report

    t, acc, caps, processes = recorded
    text = build_session_report(_Session(caps, processes, acc), addr_bins=64)
    assert text.startswith("<!DOCTYPE html>") and text.count("<html") == 1
    assert "The whole tree" in text and "ProcessTree" in text and "TreeTotals" in text
    for pid in t.pids:
        assert f"id='pid-{pid}'" in text
    assert text.count("<h3>Address-space heatmaps</h3>") == 3
    assert text.count("data:image/png;base64") >= 3 + 3


# -- the bundled sample session ---------------------------------------------------------------
SAMPLE = os.path.join(os.path.dirname(__file__), "..", "sample_data", "shm-pool.pmviz")


def test_views_render_on_the_sample_session():
    s = pmviz.open(SAMPLE)
    assert len(s.pids) == 5
    tot = tree_totals(s)
    assert tot.mode == "pfn" and tot.n_processes.max() == 5
    # counted once lies between the sum of PSS (which also shares pages with processes outside
    # the tree) and the naive sum of RSS, at every tick
    assert (tot.pss_sum <= tot.counted).all() and (tot.counted <= tot.rss_sum).all()
    assert (accounting_series(s).values.sum(axis=1) == tot.counted).all()
    polys = stacked_processes(s, "resident", ax=Figure().add_subplot())
    assert sorted(p.get_label().split()[0] for p in polys) == [str(p) for p in sorted(s.pids)]
    written = stacked_processes(s, "written", ax=Figure().add_subplot())
    assert len(written) == 5
    # stacked in another order (by peak), but each process keeps its colour across panels
    colour = {p.get_label().split()[0]: tuple(p.get_facecolor()[0]) for p in polys}
    assert [p.get_label() for p in polys] != [p.get_label() for p in written]
    assert all(colour[p.get_label().split()[0]] == tuple(p.get_facecolor()[0]) for p in written)
    lines = tree_totals_lines(s, ax=Figure().add_subplot())
    assert np.array_equal(lines[1].get_ydata(), tot.rss_sum)
    tree = process_tree(s)
    assert (
        tree.depth.tolist() == [0, 1, 1, 1, 1] and tree.time_ns == tot.time_ns[tot.counted.argmax()]
    )
    assert tree.subtree_counted[0] == tot.counted.max()
    assert len(process_icicle(tree, ax=Figure().add_subplot())) == 5
    meshes = process_heatmaps(s, "present", fig=Figure(), ncols=3, addr_bins=32)
    assert len(meshes) == 5
    # every panel on the session clock: a worker's first column starts after the parent's
    starts = [m.get_coordinates()[0, 0, 0] for m in meshes]
    assert starts[0] == min(starts) and max(starts) > starts[0]


def test_session_report_cli_on_the_sample(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "session.html"
    r = subprocess.run(
        [sys.executable, "-m", "pmviz", "report", SAMPLE, "-o", str(out), "--no-progress",
         "--max-processes", "2", "--addr-bins", "64"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "session of 5 processes" in r.stdout
    text = out.read_text()
    assert "The whole tree" in text and text.count("<h2 id='pid-") == 2
    assert "3 more processes not shown" in text
    assert "SharedWrites" in text and "distinct shared bytes written" in text


FORKER = """
import os, sys, time
buf = bytearray(4 << 20)  # written: copy-on-write shared with the child after fork
pid = os.fork()
if pid == 0:
    time.sleep(0.6)
    os._exit(0)
time.sleep(0.6)
os.waitpid(pid, 0)
"""


@pytest.mark.kernel
def test_anonymize_session_renumbers_and_scrubs(tmp_path):
    import subprocess
    import sys

    from pmviz.storage.session_anonymize import anonymize_session

    raw = pmviz.record(
        [sys.executable, "-c", FORKER], scope="tree", out=str(tmp_path / "raw.pmviz"),
        accounting=True, interval=0.1, progress=False,
    )  # fmt: skip
    real = raw.pids
    assert len(real) == 2 and raw.accounting is not None
    out = anonymize_session(raw, tmp_path / "anon.pmviz")
    s = pmviz.open(out)
    assert s.pids == [1000, 1001] and s.meta["root_pid"] == 1000 and s.meta["anonymized"]
    p = s.processes.to_pylist()
    prog = os.path.basename(sys.executable)  # `python3 -c ...`: the program name only
    assert [r["command"] for r in p] == [prog, prog]
    assert [r["ppid"] for r in p] == [0, 1000]
    texts = (
        " ".join(
            str(v)
            for t in (s.processes, s.events, s.accounting)
            for col in t.columns
            for v in col.to_pylist()
        )
        + open(os.path.join(out, "session.json")).read()
    )
    assert sys.executable not in texts and "/" not in s.meta["command"]
    for pid in real:
        assert str(pid) not in texts.replace("1000", "").replace("1001", "")
    assert set(s.accounting.column("pid").to_pylist()) <= {1000, 1001}
    assert min(s.accounting.column("time_ns").to_pylist()) >= 0
    # one clock: the captures' times are relative to the session's start, not each its own
    cap = s.capture(1001)
    assert cap.meta.command is None and cap.time_ns[0] > 0
    # the CLI does the same
    r = subprocess.run(
        [sys.executable, "-m", "pmviz", "anonymize", str(tmp_path / "raw.pmviz"), "-o",
         str(tmp_path / "cli.pmviz")], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert pmviz.open(str(tmp_path / "cli.pmviz")).pids == [1000, 1001]


def test_shared_pages_counted_once_per_tick_and_attributed_to_each_writer():
    from pmviz.analysis.session import _PIECE, _count_once

    def piece(tick, proc, inode, lo, pages):
        p = np.zeros(1, _PIECE)
        p["snap"], p["proc"], p["dev"], p["inode"], p["lo"], p["pages"] = (
            tick, proc, 1, inode, lo, pages
        )  # fmt: skip
        return p

    p = np.concatenate(
        [
            piece(0, 0, 7, 0, 4),  # process 0 writes file 7 pages 0-3 in tick 0
            piece(0, 1, 7, 2, 4),  # process 1 pages 2-5: pages 2, 3 have two writers
            piece(0, 1, 7, 3, 1),  # (a page reported twice by one process counts once)
            piece(0, 2, 8, 2, 4),  # another file: same offsets, other pages
            piece(1, 0, 7, 2, 1),  # tick 1: only process 0 writes page 2
        ]
    )
    once, co = _count_once(p, 3, 2, by_tick=True)
    assert once.tolist() == [6 + 4, 1]
    assert co.tolist() == [[2, 2, 0], [0, 0, 0]]
    total, _ = _count_once(p, 3, 1, by_tick=False)
    assert total.tolist() == [10]  # tick 1's page was written in tick 0 already
