"""``pmviz scan`` and ``pmviz doctor`` (through ``pmviz.cli.main`` and as a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from layouts import Area

import pmviz
from pmviz import Category
from pmviz.cli import main

pytestmark = pytest.mark.kernel


@pytest.fixture
def child(layout_factory):
    return layout_factory([Area("a", 64, write=[[0, 64, 2]]), Area("z", 16, read=[[0, 16]])])


def test_scan_json_equals_the_library(child, capsys):
    assert main(["scan", str(child.pid), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pid"] == child.pid and out["page_size"] == 4096  # an int, as in capture.json
    regions = pmviz.scan(child.pid)
    assert [(r["start"], r["end"], r["categories"]) for r in out["regions"]] == (
        regions.array.tolist()
    )
    assert out["regions"][0]["names"]


def test_scan_require_and_range(child, capsys):
    lo, hi = child.range("a")
    argv = ["scan", str(child.pid), "--start", hex(lo), "--end", hex(hi), "--require", "present"]
    assert main([*argv, "--report", "present", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["regions"]
    assert len(out) == 32 and all(r["categories"] == int(Category.PRESENT) for r in out)
    assert main(argv) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["start", "end", "pages", "categories"]
    assert table[-1] == "32 regions, 32 pages"
    assert "WRITTEN|PRESENT" in table[1]


def test_scan_exclude_anyof_max_pages_and_backend(child, capsys):
    lo, hi = child.span
    base = ["scan", str(child.pid), "--start", hex(lo), "--end", hex(hi), "--json"]
    assert main([*base, "--anyof", "pfnzero", "--max-pages", "5"]) == 0
    out = json.loads(capsys.readouterr().out)["regions"]
    assert sum((r["end"] - r["start"]) // 4096 for r in out) == 5
    assert main([*base, "--exclude", "present", "--backend", "pagemap"]) == 0
    out = json.loads(capsys.readouterr().out)["regions"]
    assert out and all(not r["categories"] & int(Category.PRESENT) for r in out)


def test_scan_errors_are_one_line_messages(capsys):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert main(["scan", str(proc.pid)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pmviz scan: error:") and "does not exist" in err
    assert "Traceback" not in err


def test_bad_arguments_are_clear_errors(child, capsys):
    assert main(["scan", str(child.pid), "--require", "presnt"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pmviz scan: error:") and "presnt" in err and "PRESENT" in err
    assert main(["scan", str(child.pid), "--start", "0x1001"]) == 2
    assert "page-aligned" in capsys.readouterr().err
    assert main(["scan", "nope"]) == 2
    assert "pid" in capsys.readouterr().err


def test_doctor_table_and_json(capsys):
    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert "PAGEMAP_SCAN" in text and "userfaultfd WP_ASYNC" in text and "THP" in text
    assert "scan backend          PAGEMAP_SCAN ioctl" in text
    assert main(["doctor", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["pagemap_scan"] is True and d["categories"] == 0x1FF
    assert d == json.loads(json.dumps(pmviz.features().as_dict()))


def test_doctor_names_the_fallback_when_the_probe_says_no(monkeypatch, capsys):
    from dataclasses import replace

    import pmviz.cli.doctor as doctor

    fake = replace(pmviz.features(), pagemap_scan=False, categories=Category(0))
    monkeypatch.setattr(doctor, "features", lambda: fake)
    assert main(["doctor"]) == 0
    assert "classic pagemap fallback (HUGE and WPALLOWED unknown" in capsys.readouterr().out


def test_cli_as_a_subprocess(child):
    out = subprocess.run(
        [sys.executable, "-m", "pmviz", "scan", str(child.pid), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["regions"]) == len(pmviz.scan(child.pid))
