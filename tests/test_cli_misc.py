"""CLI on bad input: one-line errors and exit 2, never a traceback; closed pipes; slice and
downsample of the bundled captures."""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from privileges import as_nobody

import pmviz
from pmviz.cli import main

ROOT = os.path.join(os.path.dirname(__file__), "..")
SAMPLES = os.path.join(ROOT, "sample_data")
NUMPY = os.path.join(SAMPLES, "numpy-workload.pmviz")
ENV = {**os.environ, "PYTHONPATH": os.path.abspath(ROOT)}


def pmviz_cli(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "pmviz", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
        **kw,
    )


# -- closed pipes -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["scan", "self"],
        ["scan", "self", "--json"],
        ["doctor"],
        ["info", NUMPY],
        ["info", NUMPY, "--json"],
    ],
)
def test_a_closed_stdout_is_not_a_traceback(args):
    """``pmviz scan self | head -3``: the reader is gone before we write."""
    r, w = os.pipe()
    os.close(r)  # every write to w now fails with EPIPE: no race with a real `head`
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pmviz", *args],
            stdout=w,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            env=ENV,
        )
    finally:
        os.close(w)
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr, out.stderr
    assert out.returncode == 141


def test_head_of_a_real_pipeline():
    out = subprocess.run(
        f"{sys.executable} -m pmviz scan self | head -3",
        shell=True,
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
    )
    assert len(out.stdout.splitlines()) == 3 and out.stderr == "", out.stderr


# -- bad input --------------------------------------------------------------------------------
def _in_process(args):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(args)
    return f"{rc}\t{err.getvalue()}"


@pytest.fixture
def shared(tmp_path, monkeypatch):
    """A world-writable sticky directory (like /tmp) as the working directory: a child that
    drops to nobody keeps it as its cwd even though pytest's tmp root is private to root."""
    d = tmp_path / "shared"
    d.mkdir()
    os.chmod(d, 0o1777)
    shutil.copytree(NUMPY, d / "in.pmviz")
    monkeypatch.chdir(d)
    # nobody cannot read root's site-packages: load every module the commands need now
    for cmd in (["info", "in.pmviz"], ["anonymize", "in.pmviz", "-o", str(tmp_path / "w.pmviz")]):
        assert _in_process(cmd).startswith("0\t")
    return d


@pytest.mark.root
def test_overwrite_of_another_users_capture_is_refused(shared):
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user (nobody)")
    shutil.copytree(NUMPY, shared / "theirs.pmviz")  # root's capture, seen from nobody
    before = sorted(p.name for p in (shared / "theirs.pmviz").rglob("*"))
    for cmd in (
        ["anonymize", "in.pmviz", "-o", "theirs.pmviz", "--overwrite"],
        ["slice", "in.pmviz", "--from", "1", "-o", "theirs.pmviz", "--overwrite"],
        ["downsample", "in.pmviz", "--every", "2", "-o", "theirs.pmviz", "--overwrite"],
    ):
        kind, text = as_nobody(lambda cmd=cmd: _in_process(cmd))
        rc, _, err = text.partition("\t")
        assert kind == "ok" and rc == "2", text
        assert err.count("\n") == 1 and "belongs to another user (uid 0)" in err, err
    assert sorted(p.name for p in (shared / "theirs.pmviz").rglob("*")) == before


@pytest.mark.root
def test_unreadable_capture_parts_are_one_line_errors(shared):
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user (nobody)")
    os.chmod(shared / "in.pmviz" / "regions", 0o700)  # root's, not listable by nobody
    kind, text = as_nobody(lambda: _in_process(["info", "in.pmviz"]))
    rc, _, err = text.partition("\t")
    assert kind == "ok" and rc == "2" and err.count("\n") == 1, text
    assert err.startswith("pmviz info: error:") and "Permission denied" in err and "regions" in err


def test_output_directory_must_exist(tmp_path):
    target = tmp_path / "nope" / "deeper" / "x.pmviz"
    out = pmviz_cli("anonymize", NUMPY, "-o", str(target))
    assert out.returncode == 2 and "does not exist" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "nope").exists()
    out = pmviz_cli("anonymize", NUMPY, "-o", NUMPY)
    assert out.returncode == 2 and "already exists (add --overwrite" in out.stderr


def test_info_of_damaged_and_missing_captures(tmp_path):
    for path in (str(tmp_path / "missing.pmviz"), "/etc/passwd", str(tmp_path)):
        out = pmviz_cli("info", path)
        assert out.returncode in (1, 2) and out.stderr.count("\n") == 1, out.stderr
        assert out.stderr.startswith("pmviz info: error:") and path in out.stderr


def test_scan_json_pid_is_an_int():
    out = pmviz_cli("scan", "self", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert isinstance(doc["pid"], int) and doc["pid"] > 1


# -- slice and downsample ---------------------------------------------------------------------
def _pages(regions):
    """Page numbers covered, as a sorted array (the bundled captures are small)."""
    ps = regions.page_size
    starts, ends = regions.start // ps, regions.end // ps
    if not len(starts):
        return np.empty(0, np.uint64)
    return np.unique(
        np.concatenate([np.arange(a, b, dtype=np.uint64) for a, b in zip(starts, ends)])
    )


@pytest.mark.parametrize("name", ["numpy-workload", "redis-benchmark", "asan-phases"])
def test_slice_keeps_snapshots_exactly(tmp_path, name, capsys):
    src = os.path.join(SAMPLES, f"{name}.pmviz")
    cap = pmviz.open(src)
    out = str(tmp_path / "s.pmviz")
    assert main(["slice", src, "--from", "1.5", "--to", "3500ms", "-o", out]) == 0
    s = pmviz.open(out)
    kept = np.flatnonzero((cap.times >= 1.5) & (cap.times < 3.5))
    assert s.n_snapshots == len(kept) > 0
    assert np.array_equal(s.time_ns, cap.time_ns[kept])
    for k, i in enumerate(kept):
        assert s.regions_at(k) == cap.regions_at(i)
        assert s.written_at(k) == cap.written_at(i)
        assert s.vmas_at(k) == cap.vmas_at(i)
    assert s.meta.extra["slice"] == {"from_s": 1.5, "to_s": 3.5}
    # an address range: every kept snapshot clipped exactly
    last = cap.regions_at(-1)
    lo, hi = int(last.start[len(last) // 3]), int(last.end[2 * len(last) // 3])
    assert (
        main(
            [
                "slice",
                src,
                "--from",
                "1.5s",
                "--addr-range",
                f"{lo:#x}-{hi:#x}",
                "-o",
                out,
                "--overwrite",
            ]
        )
        == 0
    )
    s = pmviz.open(out)
    kept = np.flatnonzero(cap.times >= 1.5)
    assert s.n_snapshots == len(kept)
    for k, i in enumerate(kept):
        assert s.regions_at(k) == cap.regions_at(i).clip(lo, hi)
        if cap.has_written:
            assert s.written_at(k) == cap.written_at(i).clip(lo, hi)
    assert "wrote" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["numpy-workload", "redis-benchmark"])
@pytest.mark.parametrize("how", [["--every", "3"], ["--interval", "0.5s"]])
def test_downsample_unions_written_sets(tmp_path, name, how):
    src = os.path.join(SAMPLES, f"{name}.pmviz")
    cap = pmviz.open(src)
    out = str(tmp_path / "d.pmviz")
    assert main(["downsample", src, *how, "-o", out]) == 0
    d = pmviz.open(out)
    if how[0] == "--every":
        kept = np.arange(0, cap.n_snapshots, 3)
    else:  # the first snapshot at or after 0, 0.5, 1.0 ... s
        kept = np.unique(
            [np.searchsorted(cap.times, k * 0.5) for k in range(int(cap.times[-1] / 0.5) + 1)]
        )
    assert d.n_snapshots == len(kept) > 1
    assert np.array_equal(d.time_ns, cap.time_ns[kept])
    prev = -1
    for k, i in enumerate(kept):
        assert d.regions_at(k) == cap.regions_at(i)
        union = np.unique(
            np.concatenate([_pages(cap.written_at(j)) for j in range(prev + 1, i + 1)])
        )
        assert np.array_equal(_pages(d.written_at(k)), union)
        prev = i
    assert any(
        len(_pages(d.written_at(k))) > len(_pages(cap.written_at(i))) for k, i in enumerate(kept)
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["slice", NUMPY, "--from", "3", "--to", "1", "-o", "x.pmviz"], "must be after"),
        (["slice", NUMPY, "--from", "1000", "-o", "x.pmviz"], "no snapshot"),
        (["slice", NUMPY, "--from", "soon", "-o", "x.pmviz"], "not a duration"),
        (["slice", NUMPY, "--addr-range", "0x2000-0x1000", "-o", "x.pmviz"], "START < END"),
        (["slice", NUMPY, "--addr-range", "zz", "-o", "x.pmviz"], "expected START-END"),
        (["downsample", NUMPY, "--every", "0", "-o", "x.pmviz"], "whole number >= 1"),
        (["downsample", NUMPY, "--interval", "0s", "-o", "x.pmviz"], "must be > 0"),
        (["downsample", NUMPY, "-o", "x.pmviz"], "one of the arguments --every --interval"),
        (["downsample", NUMPY, "--every", "2", "--interval", "1", "-o", "x.pmviz"], "not allowed"),
    ],
)
def test_slice_and_downsample_bad_input(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    out = pmviz_cli(*args)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, (
        out.stderr
    )
    assert not (tmp_path / "x.pmviz").exists()
