"""HTML report and the ``pmviz heatmap`` / ``pmviz report`` commands on stored captures."""

import base64
import re
import sys

import numpy as np
import pytest
from synthetic import two_vma_capture

import pmviz
from pmviz.cli import main
from pmviz.regions import Regions
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
    assert "CRIU would dump <b>24 KiB</b>" in text  # 6 pages at the last snapshot


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


@pytest.fixture
def saved(tmp_path):
    return save(two_vma_capture(), str(tmp_path / "syn.pmviz"))


@pytest.mark.parametrize(
    "cmd, message",
    [
        (["heatmap", "{cap}", "-o", "/nonexistent/h.png"], "does not exist"),
        (["heatmap", "{cap}", "-o", "{tmp}"], "is a directory"),
        (["report", "{cap}", "-o", "{tmp}"], "is a directory"),
        (["report", "{cap}", "-o", "/nonexistent/r.html"], "does not exist"),
        (["heatmap", "{cap}", "-o", "{tmp}/h.png", "--size", "1000x1000"], "between 1 and 200"),
        (["heatmap", "{cap}", "-o", "{tmp}/h.png", "--size", "nanx3"], "between 1 and 200"),
        (["heatmap", "{cap}", "-o", "{tmp}/h.png", "--dpi", "100000"], "dpi must be"),
        (["heatmap", "{cap}", "-o", "{tmp}/h.png", "--size", "190x10"], "at most 20,000"),
        (["heatmap", "{cap}", "-o", "{tmp}/h.png", "--addr-range", "0x9000:0x1000"], "START < END"),
        (["heatmap", "{cap}", "-o", "{tmp}/h.png", "--time-range", "3:1"], "T0 < T1"),
        (["heatmap", "{cap}", "-o", "{tmp}/h.png", "--time-range", "nan:1"], "finite"),
        (["heatmap", "{cap}", "-o", "{tmp}/h.png", "--time-bins", "0"], "positive integer"),
        (["report", "{cap}", "-o", "{tmp}/r.html", "--downtime", "nan"], "--downtime"),
        (["report", "{cap}", "-o", "{tmp}/r.html", "--downtime", "-1"], "--downtime"),
        (["report", "{cap}", "-o", "{tmp}/r.html", "--bandwidth", "nan"], "bad bandwidth"),
        (["report", "{cap}", "-o", "{tmp}/r.html", "--bandwidth", "0Gbit"], "bad bandwidth"),
    ],
)
def test_cli_refuses_bad_input_in_one_line(saved, tmp_path, capsys, cmd, message):
    argv = [a.format(cap=saved, tmp=tmp_path) for a in cmd]
    with pytest.raises(SystemExit) if _is_parse_error(message) else _nothing() as exc:
        code = main(argv + ["--no-progress"] if argv[0] == "report" else argv)
    code = exc.value.code if exc is not None and hasattr(exc, "value") else code
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines()[-1].startswith(f"pmviz {argv[0]}: error:")
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "h.png").exists() and not (tmp_path / "r.html").exists()


def _is_parse_error(message):
    return message not in ("does not exist", "is a directory", "at most 20,000")


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_cli_clamps_bin_counts_to_the_pixels(saved, tmp_path, capsys, monkeypatch):
    import pmviz.plotting as pp

    seen = {}
    real = pp.composite_heatmap

    def spy(cap, **kw):
        seen.update(kw)
        return real(cap, **kw)

    monkeypatch.setattr(pp, "composite_heatmap", spy)
    png = tmp_path / "h.png"
    args = ["heatmap", saved, "-o", str(png), "--size", "4x3", "--dpi", "50"]
    assert main(args + ["--time-bins", "1000000000", "--addr-bins", "100000"]) == 0
    assert seen["time_bins"] == 200 and seen["addr_bins"] == 150
    assert "reduced to 200" in capsys.readouterr().err
    assert png.read_bytes().startswith(PNG)


def test_report_title_details_units_and_no_empty_swap_heatmap():
    from pmviz.capture import Capture

    cap = two_vma_capture()
    no_swap = Capture.from_snapshots(
        cap.meta.replace(pid=42, command=["/usr/bin/python3", "/srv/app/work.py", "--n", "7"]),
        [
            (int(cap.time_ns[i]), _drop_swap(cap.regions_at(i)), cap.written_at(i), cap.vmas_at(i))
            for i in range(cap.n_snapshots)
        ],
    )
    text = build_report(no_swap, bandwidth=1.25e8)
    assert "<title>pmviz report: python3 work.py (pid 42)</title>" in text
    assert "<code>/usr/bin/python3 /srv/app/work.py --n 7</code>" in text
    assert "Nothing was swapped out during the capture." in text
    assert "swapped pages" not in text
    assert "119 MiB/s (1 Gbit/s)" in text and "Gbit/s</td>" not in text
    assert len(_images(text)) == 11  # the swapped heatmap is a line now


def _drop_swap(r):
    a = r.array.copy()
    a["categories"] &= ~np.uint64(int(pmviz.Category.SWAPPED))
    return Regions(a, page_size=r.page_size)
