"""Sessions: a process tree, a cgroup, every process; recorded with real processes.

The tree test runs ``tests/programs/tree_writers.py`` (root, two children, a grandchild, an
exec, a shared memfd), each process writing known pages once the test has seen it recorded:
every process's written set must be exactly its pages, execs followed, exit statuses known.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import pmviz
from pmviz.storage.session import Session

pytestmark = pytest.mark.kernel

HERE = os.path.dirname(__file__)
TREE = os.path.join(HERE, "programs", "tree_writers.py")
sys.path.insert(0, os.path.join(HERE, "programs"))
import tree_writers as tw  # noqa: E402

INTERVAL = 0.05


def _wait(cond, what, timeout=20.0):
    t = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > t:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _touch(d, name):
    open(os.path.join(d, name), "w").close()


def _ready(d, role):
    path = os.path.join(d, f"ready-{role}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _recorded(rec, pid):
    p = rec.session.processes.to_pylist()
    return any(r["pid"] == pid and r["recorded"] for r in p)


def _written_pages(cap, lo, n_pages):
    """Pages of [lo, lo + n_pages) in any written set of the capture."""
    pages = set()
    w = cap.written
    assert w is not None, "recorded without written sets"
    hi = lo + n_pages * tw.PAGE
    for s, e in zip(w["start"].tolist(), w["end"].tolist()):
        s, e = max(s, lo), min(e, hi)
        if s < e:
            pages.update(range((s - lo) // tw.PAGE, (e - lo) // tw.PAGE))
    return pages


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """One recording of the tree; yields (session, ready info per role, out path)."""
    base = tmp_path_factory.mktemp("tree")
    d = str(base / "work")
    os.mkdir(d)
    out = str(base / "tree.pmviz")
    rec = pmviz.SessionRecorder(
        [sys.executable, TREE, d], scope="tree", out=out, interval=INTERVAL, progress=False
    )
    rec.start()
    try:
        # root, A, G and B (before its exec) mapped their memory: wait until each is recorded
        _wait(lambda: all(_ready(d, r) for r in ("root", "A", "G", "Bpre")), "the tree")
        info = {r: _ready(d, r) for r in ("root", "A", "G", "Bpre")}
        for r, i in info.items():
            _wait(lambda i=i: _recorded(rec, i["pid"]), f"{r} recorded")
        _touch(d, "exec")
        _wait(lambda: _ready(d, "B"), "B after its exec")
        info["B"] = _ready(d, "B")
        assert info["B"]["pid"] == info["Bpre"]["pid"]
        # B's recorder follows the exec and re-injects at its next collect: two snapshots
        b_pid = info["B"]["pid"]

        def b_followed():
            cap = rec.session.capture(b_pid)
            ev = [e for e in cap.meta.extra.get("events", []) if e["kind"] == "exec"]
            return bool(ev) and (cap.time_ns > ev[0]["time_ns"]).sum() >= 2

        _wait(b_followed, "B's recorder to follow its exec")
        # the live view has the exec as an event while B is still running
        _wait(
            lambda: (
                ("exec", b_pid) in {(e["kind"], e["pid"]) for e in rec.session.events.to_pylist()}
            ),
            "the exec event in the live view",
        )
        _touch(d, "go")
        _wait(
            lambda: all(os.path.exists(os.path.join(d, f"done-{r}")) for r in tw.WRITES), "writes"
        )
        time.sleep(4 * INTERVAL)  # a collect after every write
        _touch(d, "end")
        session = rec.wait(timeout=30)
    finally:
        if rec.running:
            rec.stop()
    yield session, info, out


def test_tree_every_process_recorded(tree):
    s, info, _ = tree
    assert isinstance(s, Session) and s.meta["complete"]
    assert s.meta["end_reason"] == "every process of the tree has exited"
    pids = {r: info[r]["pid"] for r in ("root", "A", "G", "B")}
    assert set(s.pids) == set(pids.values())
    rows = {r["pid"]: r for r in s.processes.to_pylist()}
    assert rows[pids["A"]]["ppid"] == pids["root"] and rows[pids["B"]]["ppid"] == pids["root"]
    assert rows[pids["G"]]["ppid"] == pids["A"]
    assert s.tree()[pids["root"]] == sorted([pids["A"], pids["B"]]) or set(
        s.tree()[pids["root"]]
    ) == {pids["A"], pids["B"]}
    assert s.tree()[pids["A"]] == [pids["G"]] and s.tree()[0] == [pids["root"]]
    for role, pid in pids.items():
        r = rows[pid]
        assert r["exit_status"] == tw.EXIT[role], (role, r)
        assert r["write_mechanism"] == "uffd-wp", r["writes_reason"]
        assert r["end_time_ns"] >= r["start_time_ns"] > 0
        assert r["capture"] == f"pid={pid}" and r["n_snapshots"] >= 3
    assert "cgroup" in s.processes.column_names and rows[pids["A"]]["cgroup"]


def test_tree_written_sets_exact(tree):
    s, info, _ = tree
    for role in ("root", "A", "G", "B"):
        cap = s.capture(info[role]["pid"])
        got = _written_pages(cap, info[role]["buf"], tw.BUF_PAGES)
        assert got == set(tw.WRITES[role]), (role, sorted(got))


def test_tree_shared_memfd_writes(tree):
    """Writes through a MAP_SHARED memfd: each writer's set is exactly its own pages (a page
    two processes wrote is in both), and the session counts each written page once."""
    s, info, _ = tree
    for role in ("root", "A", "G"):
        cap = s.capture(info[role]["pid"])
        got = _written_pages(cap, info[role]["shm"], tw.SHM_PAGES)
        assert got == set(tw.SHM_WRITES[role]), (role, "memfd", sorted(got))
    from pmviz.analysis import shared_writes

    sw = shared_writes(s)
    mine = {r: sw.pids.tolist().index(info[r]["pid"]) for r in ("root", "A", "G")}
    for role, j in mine.items():
        assert sw.shared[:, j].sum() == len(tw.SHM_WRITES[role]) * tw.PAGE, role
    distinct = set().union(*(tw.SHM_WRITES[r] for r in mine))
    assert sw.shared_once == len(distinct) * tw.PAGE
    assert sw.shared_sum == sum(len(tw.SHM_WRITES[r]) for r in mine) * tw.PAGE
    # the tree's written bytes count every shared page once per tick: a page with two
    # writers in one tick is in both co_written columns and once in tree_written
    assert sw.written.sum() - sw.tree_written.sum() == sw.co_written.sum() // 2
    assert "distinct shared bytes written" in repr(sw)


def test_tree_events(tree):
    s, info, _ = tree
    ev = s.events.to_pylist()
    kinds = {(e["kind"], e["pid"]) for e in ev}
    for role in ("A", "G", "B"):
        assert ("fork", info[role]["pid"]) in kinds
    assert ("appear", info["root"]["pid"]) in kinds
    for role in ("root", "A", "G", "B"):
        assert ("exit", info[role]["pid"]) in kinds
    execs = [e for e in ev if e["kind"] == "exec"]
    assert [e["pid"] for e in execs] == [info["B"]["pid"]] and "--exec-child" in execs[0]["detail"]
    times = [e["time_ns"] for e in ev]
    assert times == sorted(times)
    exits = {e["pid"]: e["detail"] for e in ev if e["kind"] == "exit"}
    assert exits[info["G"]["pid"]] == "exited with status 13"


def test_tree_common_schedule(tree):
    s, info, _ = tree
    t0, step = s.meta["schedule_start_ns"], s.meta["interval_ns"]
    for pid in s.pids:
        cap = s.capture(pid)
        assert cap.meta.extra["schedule_start_ns"] == t0
        k = (cap.time_ns - t0) // step
        assert np.all(np.diff(k) >= 1)  # one snapshot per tick at most, on the shared grid


def test_open_dispatch_and_duckdb(tree):
    s, info, out = tree
    assert isinstance(pmviz.open(out), Session)
    cap = pmviz.open(os.path.join(out, f"pid={info['A']['pid']}"))
    assert isinstance(cap, pmviz.Capture) and cap.meta.pid == info["A"]["pid"]
    with pytest.raises(pmviz.CaptureError, match="session"):
        pmviz.storage.open(out)
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    rows = con.execute(
        "select pid, count(*) from read_parquet(?, hive_partitioning=true) group by pid",
        [os.path.join(out, "*", "regions", "*.parquet")],
    ).fetchall()
    assert {int(p) for p, _ in rows} == set(s.pids)
    n = con.execute(
        "select count(*) from read_parquet(?)", [os.path.join(out, "processes", "*.parquet")]
    ).fetchone()[0]
    assert n == len(s.processes)
    html = s._repr_html_()
    assert "pmviz session" in html and str(info["G"]["pid"]) in html


def test_record_scope_validation(tmp_path):
    with pytest.raises(ValueError, match="out="):
        pmviz.record(["true"], scope="tree")
    with pytest.raises(ValueError, match="cgroup"):
        pmviz.record(scope="cgroup", out=str(tmp_path / "x.pmviz"), count=1)
    with pytest.raises(ValueError, match="scope"):
        pmviz.record(["true"], scope="forest", out=str(tmp_path / "y.pmviz"))
    s = pmviz.record(["true"], scope="tree", out=str(tmp_path / "t.pmviz"), progress=False)
    rows = s.processes.to_pylist()
    assert len(rows) == 1 and rows[0]["exit_status"] == 0 and rows[0]["recorded"]


def _fds():
    out = {}
    for f in os.listdir("/proc/self/fd"):
        try:
            out[f] = os.readlink(f"/proc/self/fd/{f}")
        except OSError:
            pass  # (the directory's own fd)
    return out


CHURN = r"""
import os, sys, time
# 200 short-lived children per second for DURATION s; each lives ~LIFE s, then exits 7
rate, duration, life = 200, float(sys.argv[1]), float(sys.argv[2])
end = time.monotonic() + duration
n = 0
while time.monotonic() < end:
    pid = os.fork()
    if pid == 0:
        time.sleep(life)
        os._exit(7)
    n += 1
    while True:  # reap what has exited
        try:
            p, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if p == 0:
            break
    time.sleep(1 / rate)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
print(n)
"""


def test_churn_200_per_second_no_leak(tmp_path):
    """200 children/s for 10 s: the tree is kept, every process seen has a row, and the
    recorder's threads and fds go back to what they were."""
    import threading

    fds, threads = _fds(), threading.active_count()
    out = str(tmp_path / "churn.pmviz")
    rec = pmviz.SessionRecorder(
        [sys.executable, "-c", CHURN, "10", "0.15"],
        scope="tree",
        out=out,
        interval=0.1,
        writes="none",
        progress=False,
    )
    rec.start()
    peak_threads = 0
    while rec.running:
        peak_threads = max(peak_threads, threading.active_count())
        time.sleep(0.2)
    s = rec.wait()
    assert s.meta["end_reason"] == "every process of the tree has exited"
    p = s.processes.to_pylist()
    root = p[0]
    assert root["exit_status"] == 0 and root["recorded"]
    kids = p[1:]
    # How many of ~2000 are seen and recorded depends on the machine's load
    # (benchmarks/bench_session.py measures it); what must hold: the tree is followed to the
    # end, every process seen is in the table once, and nothing is left behind.
    assert len(kids) > 100, len(kids)
    assert all(r["ppid"] == root["pid"] for r in kids)
    seen = sorted(r["first_seen_ns"] for r in kids)
    assert seen[-1] - seen[0] > 7e9  # children found from start to end of the 10 s
    recorded = [r for r in kids if r["recorded"]]
    assert len(recorded) > 20
    known = [r["exit_status"] for r in recorded if r["exit_status"] is not None]
    assert set(known) == {7} and len(known) >= 0.9 * len(recorded), (len(known), len(recorded))
    assert not [r for r in kids if not r["recorded"] and not r["reason"]]
    keys = [(r["pid"], r["start_time_ns"]) for r in p]
    assert len(keys) == len(set(keys))  # each process once (zombies are not seen again)
    after = _fds()
    assert after == fds, {k: v for k, v in after.items() if fds.get(k) != v}
    assert threading.active_count() == threads
    # live processes, not all that lived: far fewer threads than recorded processes
    assert peak_threads < threads + 3 * 60


@pytest.mark.root
def test_cgroup_scope(tmp_path):
    base = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
    if not os.path.isfile(os.path.join(base, "cgroup.procs")):
        pytest.skip(f"no cgroup v2 hierarchy at {base}")
    cg = os.path.join(base, f"pmviz-test-{os.getpid()}")
    try:
        os.mkdir(cg)
    except OSError as err:
        pytest.skip(f"cannot create a cgroup v2 directory under {base}: {err}")
    procs = []
    try:

        def spawn():
            p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
            procs.append(p)
            return p

        a = spawn()
        with open(os.path.join(cg, "cgroup.procs"), "w") as f:
            f.write(str(a.pid))
        out = str(tmp_path / "cg.pmviz")
        rec = pmviz.SessionRecorder(
            scope="cgroup", cgroup=cg, out=out, interval=0.05, writes="none", progress=False
        ).start()
        _wait(lambda: a.pid in rec.pids, "the first member")
        b = spawn()
        with open(os.path.join(cg, "cgroup.procs"), "w") as f:
            f.write(str(b.pid))  # joins later
        _wait(lambda: b.pid in rec.pids, "the member that joined")
        with open(os.path.join(base, "cgroup.procs"), "w") as f:
            f.write(str(a.pid))  # leaves
        _wait(lambda: a.pid not in rec.pids, "the member that left")
        b.kill()
        b.wait()
        _wait(lambda: b.pid not in rec.pids, "the member that exited")
        s = rec.stop()
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for _ in range(50):
            try:
                os.rmdir(cg)
                break
            except OSError:
                time.sleep(0.05)
    rows = {r["pid"]: r for r in s.processes.to_pylist()}
    assert set(rows) == {a.pid, b.pid}
    assert rows[a.pid]["end_reason"] == "left the cgroup" and rows[a.pid]["end_time_ns"] is None
    assert rows[b.pid]["exit_status"] == -9
    assert rows[a.pid]["cgroup"].endswith(os.path.basename(cg))
    kinds = [(e["kind"], e["pid"]) for e in s.events.to_pylist()]
    assert ("appear", a.pid) in kinds and ("appear", b.pid) in kinds
    assert ("leave", a.pid) in kinds and ("exit", b.pid) in kinds
    assert s.meta["scope"] == "cgroup" and s.meta["cgroup"] == cg
    assert not os.path.exists(cg)


def _starttimes():
    from pmviz._kernel.process import read_stat

    out = {}
    for n in os.listdir("/proc"):
        if n.isdigit():
            try:
                out[int(n)] = read_stat(int(n)).starttime
            except pmviz.Error:
                pass
    return out


@pytest.mark.root
def test_all_scope_lists_unreadable(tmp_path):
    before = _starttimes()
    # writes="none": injecting into every process of a shared test machine is the user's
    # call on the command line, not a test's
    s = pmviz.record(
        scope="all",
        out=str(tmp_path / "all.pmviz"),
        count=2,
        interval=0.2,
        writes="none",
        progress=False,
    )
    rows = s.processes.to_pylist()
    by_pid = {r["pid"]: r for r in rows}
    # init is listed: recorded, or with why not (here: a non-dumpable init refuses even root)
    assert 1 in by_pid and (by_pid[1]["recorded"] or by_pid[1]["reason"])
    kthreads = [r for r in rows if r["reason"] == "kernel thread (no user address space)"]
    assert kthreads and 2 in {r["pid"] for r in kthreads}  # kthreadd
    assert by_pid[os.getpid()]["reason"] == "the recording process itself"
    assert all(r["recorded"] or r["reason"] for r in rows)
    # every process alive during the whole session is in the table
    steady = _starttimes().items() & before.items()
    assert steady and not {p for p, _ in steady} - set(by_pid)
    recorded = [r for r in rows if r["recorded"]]
    assert recorded and all(r["n_snapshots"] >= 1 for r in recorded if r["end_time_ns"] is None)
    assert s.meta["end_reason"] == "count reached"


FORKER = (
    "import os, time\n"
    "buf = bytearray(1 << 20)\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    time.sleep(0.4)\n"
    "    os._exit(3)\n"
    "time.sleep(0.1)\n"
    "os.waitpid(pid, 0)\n"
)


def test_cli_follow_children_info_heatmap(tmp_path, capsys):
    from pmviz.cli import main

    out = str(tmp_path / "s.pmviz")
    rc = main(
        [
            "record",
            "--follow-children",
            "-i",
            "50ms",
            "--no-progress",
            "--writes",
            "none",
            "-o",
            out,
            "--",
            sys.executable,
            "-c",
            FORKER,
        ]
    )
    assert rc == 0
    err = capsys.readouterr().err
    assert "2 seen, 2 recorded" in err and "every process of the tree has exited" in err
    s = pmviz.open(out)
    root, child = s.pids
    assert s.processes.to_pylist()[1]["exit_status"] == 3
    # every process's capture is summarized for fleet queries, as a single recording is
    import pyarrow.parquet as pq

    for pid in (root, child):
        summary = pq.read_table(os.path.join(out, f"pid={pid}", "summary.parquet"))
        assert summary.column("n_snapshots")[0].as_py() == len(s.capture(pid))
    assert main(["info", out]) == 0
    text = capsys.readouterr().out
    assert f"{child:>8} {root:>8}" in text and "tree" in text and "--pid N" in text
    assert main(["info", "--json", out]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["meta"]["scope"] == "tree" and len(doc["processes"]) == 2
    assert main(["info", out, "--pid", str(child)]) == 0
    assert "snapshots" in capsys.readouterr().out
    png = str(tmp_path / "h.png")
    assert main(["heatmap", out, "-o", png]) == 2
    assert "--pid N" in capsys.readouterr().err and not os.path.exists(png)
    assert main(["heatmap", out, "--pid", str(child), "-o", png]) == 0 and os.path.getsize(png)
    assert main(["heatmap", out, "--pid", "1", "-o", png]) == 2
    assert "no process 1" in capsys.readouterr().err
    # a command that reads one capture says what to do with a session
    assert main(["slice", out, "-o", str(tmp_path / "x.pmviz"), "--from", "0"]) != 0
    assert "--pid N" in capsys.readouterr().err


def test_cli_pid_follow_children_and_usage(tmp_path, capsys):
    from pmviz.cli import main

    p = subprocess.Popen([sys.executable, "-c", FORKER.replace("0.4", "30").replace("0.1", "0")])
    try:
        _wait(lambda: len(pmviz._kernel.proctree.children(p.pid) or []) == 1, "the child")
        out = str(tmp_path / "p.pmviz")
        rc = main(
            [
                "record",
                "--pid",
                str(p.pid),
                "--follow-children",
                "-n",
                "3",
                "-i",
                "50ms",
                "--no-progress",
                "--writes",
                "none",
                "-o",
                out,
            ]
        )
        assert rc == 0
        s = pmviz.open(out)
        assert s.pids[0] == p.pid and len(s.pids) == 2 and s.meta["end_reason"] == "count reached"
        assert p.poll() is None  # an attached tree is left running
    finally:
        p.kill()
        p.wait()
    bad = [
        ["record", "--cgroup", "/nonexistent", "-n", "1", "-o", str(tmp_path / "c.pmviz")],
        ["record", "--all", "--pid", "1", "-n", "1", "-o", str(tmp_path / "d.pmviz")],
        ["record", "--all", "--follow-children", "-n", "1", "-o", str(tmp_path / "e.pmviz")],
        ["record", "--accounting", "--pid", "1", "-n", "1", "-o", str(tmp_path / "f.pmviz")],
    ]
    for argv in bad:
        assert main(argv) == 2, argv
    assert "not a cgroup v2 directory" in capsys.readouterr().err


def test_tick_series(tree):
    s, info, _ = tree
    res, wr = s.resident_series(), s.written_series()
    assert list(res.pids) == s.pids and res.values.shape == (res.ticks.size, len(s.pids))
    step = s.meta["interval_ns"]
    assert np.all(np.diff(res.time_ns) == step) and res.time_ns[0] == s.meta["schedule_start_ns"]
    from pmviz.analysis import working_set_size

    for j, pid in enumerate(s.pids):
        cap = s.capture(pid)
        ws = working_set_size(cap)
        k = (cap.time_ns - s.meta["schedule_start_ns"]) // step
        assert np.array_equal(res.values[k, j], ws.resident)
        assert np.array_equal(wr.values[k, j], ws.written)
        others = np.setdiff1d(np.arange(res.ticks.size), k)
        assert not res.values[others, j].any()  # no snapshot at that tick: 0
    # the grandchild wrote 2 pages of its buffer (and the interpreter's own pages)
    g = s.pids.index(info["G"]["pid"])
    assert wr.values[:, g].sum() >= 2 * tw.PAGE
    df = res.to_pandas()
    assert list(df.columns) == s.pids and len(df) == res.ticks.size
    assert "ProcessSeries (resident)" in repr(res) and "ticks" in repr(res)


def test_accounting_per_tick(tmp_path):
    """accounting=True: one row per live process and tick, on the schedule (the figures
    themselves are tested with pmviz.accounting)."""
    pytest.importorskip("pmviz.accounting", reason="pmviz.accounting is not in this tree")
    out = str(tmp_path / "acc.pmviz")
    s = pmviz.record(
        [sys.executable, "-c", FORKER.replace("0.4", "1.5")],  # account() takes 0.1-0.5 s here
        scope="tree",
        out=out,
        interval=0.05,
        writes="none",
        accounting=True,
        progress=False,
    )
    acc = s.accounting
    assert acc is not None and len(acc) >= 2 and s.meta["accounting"]
    t0, step = s.meta["schedule_start_ns"], s.meta["interval_ns"]
    t = np.asarray(acc.column("time_ns").to_pylist())
    assert np.all((t - t0) % step == 0)
    assert set(acc.column("pid").to_pylist()) <= set(s.pids)
    assert min(acc.column("rss_bytes").to_pylist()) > 0
    # ticks where both lived have two rows: the tree's processes are accounted together
    ticks, n = np.unique(t, return_counts=True)
    assert n.max() == 2


def test_tree_of_self(tmp_path):
    """A tree rooted at this process: the children it starts are found; they are not
    injected (this process's own waitpid would take the ptrace stops), and say so."""
    rec = pmviz.SessionRecorder(
        "self", scope="tree", out=str(tmp_path / "self.pmviz"), interval=0.05, progress=False
    ).start()
    try:
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.4)"])
        _wait(lambda: p.pid in rec.pids, "the child")
        assert p.wait(timeout=10) == 0
        _wait(lambda: p.pid not in rec.pids, "the child's end")
    finally:
        s = rec.stop()
    rows = {r["pid"]: r for r in s.processes.to_pylist()}
    assert rows[os.getpid()]["recorded"] and rows[os.getpid()]["end_reason"] == "stopped"
    child = rows[p.pid]
    assert child["recorded"] and child["exit_status"] == 0 and child["ppid"] == os.getpid()
    assert child["write_mechanism"] == "none" and "waitpid" in child["writes_reason"]
    assert s.meta["root_pid"] == os.getpid()


@pytest.mark.root
def test_all_scope_as_nobody_lists_unreadable(tmp_path):
    """--all as an ordinary user: other users' processes are listed with the reason."""
    import shutil
    import tempfile

    from privileges import as_nobody

    d = tempfile.mkdtemp(prefix="pmviz-nobody-")  # (pytest's tmp dirs are root's alone)
    os.chmod(d, 0o777)
    out = os.path.join(d, "all.pmviz")

    def run():
        s = pmviz.record(scope="all", out=out, count=1, writes="none", progress=False)
        rows = s.processes.to_pylist()
        denied = [r for r in rows if (r["reason"] or "").startswith("access denied")]
        unlisted = [r for r in rows if not r["recorded"] and not r["reason"]]
        return json.dumps(
            {
                "n": len(rows),
                "denied": len(denied),
                "unlisted": len(unlisted),
                "pid1": next((r["reason"] for r in rows if r["pid"] == 1), None),
                "kthreads": sum(
                    r["reason"] == "kernel thread (no user address space)" for r in rows
                ),
            }
        )

    # (what the session imports lazily, imported while the interpreter's files are readable)
    import pandas  # noqa: F401  (pyarrow's first table imports it)

    import pmviz.analysis.ticks  # noqa: F401
    import pmviz.recorder  # noqa: F401

    warm = pmviz.record(
        scope="all", out=str(tmp_path / "warm.pmviz"), count=1, writes="none", progress=False
    )
    assert len(warm.processes)
    try:
        kind, text = as_nobody(run)
    finally:
        shutil.rmtree(d)
    assert kind == "ok", text
    got = json.loads(text)
    assert got["denied"] > 0 and got["unlisted"] == 0 and got["kthreads"] > 0
    assert "another user" in got["pid1"] or "CAP_SYS_PTRACE" in got["pid1"]


def test_root_that_cannot_start_leaves_nothing(tmp_path):
    out = tmp_path / "none.pmviz"
    with pytest.raises(pmviz.Error, match="no such program"):
        pmviz.record(["pmviz-no-such-program"], scope="tree", out=str(out), progress=False)
    assert not out.exists()
    with pytest.raises(pmviz.NoSuchProcess):
        pmviz.record(1 << 22, scope="tree", out=str(out), count=1, progress=False)
    assert not out.exists()
