"""HTML report and the ``pmviz heatmap`` / ``pmviz report`` commands on stored captures."""

import base64
import re
import sys

import pytest
from synthetic import two_vma_capture

import pmviz
from pmviz.cli import main
from pmviz.report import build_report
from pmviz.storage import save

PNG = b"\x89PNG\r\n\x1a\n"


def _images(text):
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', text)]


def test_report_is_self_contained():
    text = build_report(two_vma_capture(), title="synthetic <test>")
    assert text.startswith("<!DOCTYPE html>") and "synthetic &lt;test&gt;" in text
    imgs = _images(text)
    # composite + 3 heatmaps, 2 stacked areas, WSS, idle/heat, size histogram, Hilbert, diff,
    # pre-copy
    assert len(imgs) == 12 and all(i.startswith(PNG) for i in imgs)
    assert not re.search(r'(src|href)="(?!data:)', text)  # nothing external
    for section in (
        "Address-space heatmaps",
        "Working set",
        "Sparsity",
        "Sanitizer shadow",
        "What changed",
        "Checkpoint and live migration",
    ):
        assert f"<h2>{section}" in text
    assert "CRIU would dump <b>24.0 KiB</b>" in text  # 6 pages at the last snapshot


def test_cli_heatmap_and_report_on_a_saved_capture(tmp_path, capsys):
    path = save(two_vma_capture(), str(tmp_path / "syn.pmviz"))
    png = tmp_path / "h.png"
    assert main(["heatmap", path, "-o", str(png), "--addr-bins", "16"]) == 0
    assert png.read_bytes().startswith(PNG)
    assert (
        main(
            [
                "heatmap",
                path,
                "-o",
                str(png),
                "--category",
                "swapped",
                "--axis",
                "linear",
                "--addr-range",
                "0x7f0000000000:0x7f0000008000",
                "--time-range",
                "1:3",
            ]
        )
        == 0
    )
    assert (
        main(["heatmap", path, "-o", str(png), "--anyof", "present|swapped", "--exclude", "file"])
        == 0
    )
    html = tmp_path / "r.html"
    assert main(["report", path, "-o", str(html), "--bandwidth", "10Gbit", "--no-progress"]) == 0
    assert len(_images(html.read_text())) == 12
    assert "wrote" in capsys.readouterr().out


def test_cli_reports_a_missing_capture_cleanly(tmp_path, capsys):
    assert main(["heatmap", str(tmp_path / "nope.pmviz"), "-o", str(tmp_path / "x.png")]) == 1
    assert "pmviz heatmap: error:" in capsys.readouterr().err


@pytest.mark.kernel
def test_report_of_a_recorded_child(tmp_path):
    out = tmp_path / "grow.pmviz"
    code = "import time\nb=[]\nfor i in range(50):\n    b.append(bytearray(1<<18)); time.sleep(0.01)\ntime.sleep(30)\n"
    pmviz.record([sys.executable, "-c", code], interval=0.1, count=6, out=str(out), progress=False)
    html = tmp_path / "grow.html"
    assert main(["report", str(out), "-o", str(html), "--no-progress"]) == 0
    text = html.read_text()
    assert len(_images(text)) >= 8
    assert "[heap]" in text or "anon" in text
    png = tmp_path / "grow.png"
    assert main(["heatmap", str(out), "-o", str(png)]) == 0
    assert png.read_bytes().startswith(PNG)


def test_cli_heatmap_auto_axis_collapses_asan_shadow(tmp_path):
    import pathlib

    import pmviz.analysis as pa

    path = pathlib.Path(__file__).parent.parent / "sample_data" / "asan-phases.pmviz"
    if not path.exists():
        pytest.skip("sample capture not built")
    cap = pmviz.open(str(path))
    compact = pa.address_axis(cap, kind="compact")
    auto = pa.address_axis(cap, kind="auto")
    assert auto.kind == "occupied" and auto.length < 0.01 * compact.length
    assert "shadow" in auto.labels.tolist()
    png = tmp_path / "asan.png"
    assert main(["heatmap", str(path), "-o", str(png), "--category", "present"]) == 0
    assert png.read_bytes().startswith(PNG)


def test_report_and_widgets_do_not_need_pyplot():
    # They draw on their own Figures; pyplot (and its backend choice) is only for ax=None.
    import subprocess

    code = "import sys, pmviz.report, pmviz.widgets; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
