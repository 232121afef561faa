"""``pmviz record`` / ``info`` / ``anonymize`` end to end (real processes, real files)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from pmviz.cli import main
from pmviz.cli.record import parse_seconds
from pmviz.storage import open as open_capture

pytestmark = pytest.mark.kernel

SLEEPER = "import time\nbufs = [bytearray(1 << 20) for _ in range(8)]\ntime.sleep(60)\n"


def test_parse_seconds():
    assert parse_seconds("100ms") == pytest.approx(0.1)
    assert parse_seconds("2s") == 2.0 and parse_seconds("1.5m") == 90.0
    assert parse_seconds("0.25") == 0.25 and parse_seconds("500us") == pytest.approx(5e-4)
    with pytest.raises(Exception, match="not a duration"):
        parse_seconds("fast")


def test_record_info_anonymize(tmp_path, capsys):
    out = tmp_path / "c.pmviz"
    rc = main(
        [
            "record",
            "-i",
            "20ms",
            "-n",
            "5",
            "--no-progress",
            "--writes",
            "none",
            "-o",
            str(out),
            "--",
            sys.executable,
            "-c",
            SLEEPER,
        ]
    )
    assert rc == 0
    err = capsys.readouterr().err
    assert "5 snapshots" in err and "count reached" in err
    cap = open_capture(out)
    assert cap.n_snapshots == 5 and cap.complete and cap.meta.exit_status == -signal.SIGTERM
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "count reached" in text and "bytes per region" in text and sys.executable in text
    assert main(["info", "--json", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["complete"] == "yes" and doc["meta"]["command"][0] == sys.executable
    anon = tmp_path / "a.pmviz"
    assert main(["anonymize", str(out), "-o", str(anon)]) == 0
    a = open_capture(anon)
    assert a.meta.anonymized and a.meta.command is None and a.meta.pid is None
    assert np.array_equal(np.diff(a.region_offsets), np.diff(cap.region_offsets))
    paths = {str(p) for v in a.vma_tables for p in v.paths}
    assert not any("/" in p for p in paths)
    raw = b"".join(open(os.path.join(d, f), "rb").read() for d, _, fs in os.walk(anon) for f in fs)
    assert sys.executable.encode() not in raw and b"python" not in raw


def test_usage_errors(tmp_path, capsys):
    assert main(["record", "-o", str(tmp_path / "x.pmviz")]) == 2
    assert "either --pid" in capsys.readouterr().err
    assert main(["info", str(tmp_path)]) == 1
    assert "not a pmviz capture" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["record", "-i", "soon", "-o", "x", "--pid", "1"])
    # a bad argument the library rejects is a one-line error, not a traceback
    assert main(["record", "-n", "0", "-o", str(tmp_path / "y.pmviz"), "--pid", "1"]) == 2
    assert "pmviz record: error: count must be a positive int" in capsys.readouterr().err
    assert not (tmp_path / "y.pmviz").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_finalises_the_file(tmp_path, sig):
    out = tmp_path / "s.pmviz"
    child = subprocess.Popen([sys.executable, "-c", SLEEPER])
    try:
        rec = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pmviz",
                "record",
                "--pid",
                str(child.pid),
                "-i",
                "20ms",
                "--writes",
                "none",
                "-o",
                str(out),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 20
        while not (out / "snapshots").is_dir() or not os.listdir(out / "snapshots"):
            assert time.monotonic() < deadline and rec.poll() is None
            time.sleep(0.05)
        rec.send_signal(sig)
        _, err = rec.communicate(timeout=20)
        assert rec.returncode == 0, err
        assert child.poll() is None  # an attached process is left running
    finally:
        child.kill()
        child.wait()
    cap = open_capture(out)
    assert cap.complete and cap.n_snapshots >= 1
    assert cap.meta.end_reason == (
        "interrupted (SIGINT)" if sig == signal.SIGINT else "terminated (SIGTERM)"
    )


def test_signal_finalises_a_session(tmp_path):
    """``--follow-children``: SIGTERM ends the session; every capture and the process table
    are finished, the attached tree is left running."""
    out = tmp_path / "t.pmviz"
    child = subprocess.Popen([sys.executable, "-c", SLEEPER])
    try:
        rec = subprocess.Popen(
            [sys.executable, "-m", "pmviz", "record", "--pid", str(child.pid),
             "--follow-children", "-i", "20ms", "--writes", "none", "-o", str(out)],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        part = out / f"pid={child.pid}" / "snapshots"
        while not part.is_dir() or not os.listdir(part):
            assert time.monotonic() < deadline and rec.poll() is None
            time.sleep(0.05)
        rec.send_signal(signal.SIGTERM)
        _, err = rec.communicate(timeout=30)
        assert rec.returncode == 0, err
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()
    import pmviz

    s = pmviz.open(out)
    assert s.meta["end_reason"] == "terminated (SIGTERM)"
    cap = s.capture(child.pid)
    assert cap.complete and cap.n_snapshots >= 1


def test_info_names_a_damaged_part_and_lenient_skips_it(tmp_path, capsys):
    from pmviz.capture import Capture, CaptureMeta
    from pmviz.regions import Regions
    from pmviz.storage import CaptureWriter
    from pmviz.storage import format as fmt

    r = Regions.from_arrays([0x1000], [0x3000], [8])
    cap = Capture.from_snapshots(CaptureMeta(), [(i, r, None, None) for i in range(4)])
    path = str(tmp_path / "d.pmviz")
    w = CaptureWriter(path, cap.meta, has_written=False, merge_every=100)
    w.flush(cap.select(slice(0, 2)))
    w.flush(cap)
    w.finish(cap.meta)
    victim = os.path.join(path, "regions", fmt.part_name(2, 4))
    with open(victim, "r+b") as f:
        f.truncate(100)
    assert main(["info", path]) == 1
    assert victim in capsys.readouterr().err
    with pytest.warns(Warning, match="skipped damaged parts"):
        assert main(["info", "--lenient", path]) == 0
    out = capsys.readouterr().out
    assert "damaged parts skipped" in out and "2 over" in out


@pytest.mark.parametrize(
    "args",
    [["-d", "1e999"], ["-i", "1e300"], ["-d", "nan"], ["-i", "1e400ms"], ["--max-size", "lots"]],
)
def test_absurd_durations_and_sizes_are_one_line_errors(tmp_path, capsys, args):
    """Regression: ``-d 1e999`` and ``-i 1e300`` ended in an OverflowError traceback."""
    out = tmp_path / "x.pmviz"
    with pytest.raises(SystemExit) as info:
        main(["record", *args, "--no-progress", "-o", str(out), "--", "true"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("pmviz record: error:") and "Traceback" not in "".join(err)
    assert not out.exists()


def test_the_library_refuses_overflowing_times_too():
    from pmviz.recorder import Recorder

    for kwargs in ({"interval": 1e300}, {"duration": float("inf")}, {"duration": 1e300}):
        with pytest.raises(ValueError, match="seconds"):
            Recorder(["true"], **kwargs)


def test_parse_size():
    from pmviz.cli.record import parse_size

    assert parse_size("512M") == 512 << 20 and parse_size("2G") == 2 << 30
    assert parse_size("1.5g") == 3 << 29 and parse_size("4096") == 4096
    assert parse_size("64KiB") == 64 << 10 and parse_size("1T") == 1 << 40
    for bad in ("", "0", "-1G", "2X", "G"):
        with pytest.raises(Exception, match="size"):
            parse_size(bad)


def test_follow_exec_flag_follows_a_pid_through_exec(tmp_path, capsys):
    script = "import os, time; time.sleep(0.3); os.execv('/bin/sleep', ['sleep', '0.5'])"
    child = subprocess.Popen([sys.executable, "-c", script])
    out = tmp_path / "f.pmviz"
    try:
        rc = main(
            ["record", "--pid", str(child.pid), "-i", "20ms", "-d", "20", "--follow-exec"]
            + ["--writes", "none", "--no-progress", "-o", str(out)]
        )
    finally:
        child.wait()
    assert rc == 0
    cap = open_capture(out)
    assert cap.meta.end_reason == "target exited"
    assert [e["kind"] for e in cap.meta.extra["events"]] == ["exec"]


def test_progress_bar_shows_why_it_ended_early(tmp_path, capsys):
    out = tmp_path / "p.pmviz"
    script = "import time; time.sleep(0.3)"
    rc = main(
        ["record", "-i", "20ms", "-n", "500", "--writes", "none", "-o", str(out)]
        + ["--", sys.executable, "-c", script]
    )
    assert rc == 0
    err = capsys.readouterr().err
    bar = [line for line in err.replace("\r", "\n").splitlines() if "/500" in line]
    assert bar and "target exited with status 0" in bar[-1], err


def test_record_true_twenty_times(tmp_path, capsys):
    """Regression: ``pmviz record -- true`` failed 7 runs in 10 (no capture at all)."""
    for i in range(20):
        out = tmp_path / f"t{i}.pmviz"
        assert main(["record", "-i", "10ms", "--no-progress", "-o", str(out), "--", "true"]) == 0
        cap = open_capture(out)
        assert cap.complete and cap.meta.exit_status == 0
        assert cap.meta.end_reason == "target exited with status 0"
