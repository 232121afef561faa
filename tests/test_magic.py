"""``%%pmviz``: recording the kernel from a helper process, in a real IPython kernel and here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pmviz
from pmviz.magic import (
    CaptureReport,
    _cell_parser,
    _line_parser,
    _overlap,
    _written_union,
    annotate_names,
    record_cell,
    totals,
    vma_table,
)
from pmviz.maps import VmaKind
from pmviz.names import NamedRange

sys.path.insert(0, os.path.dirname(__file__))
from jupyter_kernel import pmviz_kernel  # noqa: E402
from synthetic import BASE, HEAP, PAGE, two_vma_capture  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "numpy-workload.pmviz"


def _needs_tracking():
    f = pmviz.features()
    if not (f.pagemap_scan and f.uffd_wp_async):
        pytest.skip("needs PAGEMAP_SCAN and userfaultfd async write-protect (Linux >= 6.7)")


def _children() -> set[int]:
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children") as f:
            return {int(p) for p in f.read().split()}
    except OSError:
        return set()


# -- in this process ---------------------------------------------------------------------------
@pytest.mark.kernel
def test_record_cell_names_marks_and_writes():
    _needs_tracking()
    before = _children()
    ns: dict = {"old": np.ones(300_000)}  # freed by the "cell"

    def run():
        ns["a"] = np.zeros(16 * 2**20 // 8)
        pmviz.mark("fill")
        ns["a"][:] = 1.0
        ns["v"] = ns["a"][::4]
        del ns["old"]

    cap = record_cell(run, interval=0.02, namespace=ns)
    assert _children() == before  # the helper is gone
    cell = cap.meta.extra["cell"]
    assert cell["writes"] == "uffd-wp", cell
    assert cap.time_ns[0] < cell["start_ns"] < cell["end_ns"] <= cap.time_ns[-1]
    assert cap.written_at(0).n_pages == 0  # writes before the cell are left out
    labels = {d["label"]: d for d in cap.meta.extra["names"]}
    a = ns["a"]
    lo = a.__array_interface__["data"][0]
    assert labels["a: float64[2_097_152]"]["start"] == lo
    assert "v: view of float64[2_097_152]" not in labels  # the view resolves to its owner
    assert any(k.startswith("old: float64[300_000] (freed)") for k in labels)
    (mark,) = [m for m in cap.marks if m.label == "fill"]
    assert cell["start_ns"] < mark.time_ns < cell["end_ns"]
    ws, we = _written_union(cap)
    got = _overlap(ws, we, np.array([lo], np.uint64), np.array([lo + a.nbytes], np.uint64))
    assert got[0] >= 0.99 * a.nbytes


@pytest.mark.kernel
def test_record_cell_reraises_with_the_capture_and_saves(tmp_path):
    _needs_tracking()
    before = _children()

    def boom():
        raise ZeroDivisionError("in the cell")

    out = tmp_path / "cell.pmviz"
    with pytest.raises(ZeroDivisionError) as info:
        record_cell(boom, interval=0.02, writes="none", out=out)
    cap = info.value.pmviz_capture  # type: ignore[attr-defined]
    assert cap.n_snapshots >= 2 and not cap.has_written
    assert "writes='none'" in cap.meta.extra["cell"]["writes_reason"]
    assert pmviz.open(out).n_snapshots == cap.n_snapshots
    assert _children() == before


@pytest.mark.kernel
def test_record_cell_with_reads_sees_a_read_only_pass():
    """``accessed="vma"``: a cell that only reads a 32 MiB array shows it accessed, not
    written; the side tables survive the cell's trimming and the report names them."""
    _needs_tracking()
    ns: dict = {"a": np.ones(32 * 2**20 // 8)}  # written before the cell

    def run():
        ns["total"] = float(ns["a"].sum())  # reads every page, writes none of them

    cap = record_cell(run, interval=0.05, accessed="vma", namespace=ns)
    assert cap.accessed_mechanism == "vma"
    assert cap.meta.extra["cell"]["accessed"] == "vma"
    from pmviz.analysis.accessed import AccessSeries

    # the pass may straddle snapshots: each interval holds the pages read in it. This
    # machine's own kdamond clears accessed bits of pages it samples (a few in a thousand)
    read = AccessSeries.from_capture(cap).accessed_bytes()[1:]
    assert read.sum() >= 0.98 * 32 * 2**20
    assert totals(cap)["accessed_peak"] == int(read.max())
    lo = ns["a"].__array_interface__["data"][0]
    ws, we = _written_union(cap)
    hit = _overlap(ws, we, np.array([lo], np.uint64), np.array([lo + ns["a"].nbytes], np.uint64))
    assert hit[0] <= 0.01 * ns["a"].nbytes  # reading is not writing
    html = CaptureReport(cap)._totals_html()
    assert "accessed" in html and "exact per VMA" in html


# -- pure parts ----------------------------------------------------------------------------------
def test_totals_and_vma_table_on_a_known_capture():
    cap = two_vma_capture()
    cap.meta.extra["names"] = [{"start": BASE, "end": BASE + 4 * PAGE, "label": "x: u8[16_384]"}]
    t = totals(cap)
    # written (each page once): heap 0-8, anon 0-4
    assert t["written"] == 12 * PAGE
    assert (t["resident_start"], t["resident_peak"]) == (4 * PAGE, 10 * PAGE)
    assert t["resident_end"] == 6 * PAGE
    rows = vma_table(cap)
    assert [(r["label"], r["written"], r["resident"]) for r in rows] == [
        ("[heap]", 8 * PAGE, 2 * PAGE),
        ("anon", 4 * PAGE, 4 * PAGE),
    ]
    assert rows[1]["objects"] == ["x: u8[16_384]"] and rows[0]["objects"] == []
    assert _overlap(np.array([10, 30], np.uint64), np.array([20, 40], np.uint64),
                    np.array([0, 15, 25, 35]), np.array([50, 35, 26, 36])).tolist() == [20, 10, 0, 1]  # fmt: skip


def test_vma_table_lists_a_grown_heap_once_and_keeps_freed_vmas():
    from synthetic import regions, vmas

    from pmviz.capture import Capture, CaptureMeta
    from pmviz.categories import Category as C

    old = vmas(
        (HEAP, HEAP + 4 * PAGE, "rw-p", VmaKind.HEAP, "[heap]"),
        (BASE, BASE + 4 * PAGE, "rw-p", VmaKind.ANON, ""),
    )
    new = vmas((HEAP, HEAP + 8 * PAGE, "rw-p", VmaKind.HEAP, "[heap]"))
    heap = regions((0, 8, C.PRESENT), base=HEAP)
    snaps = [
        (0, heap, regions(), old),
        (10**8, heap, regions((0, 3, C.WRITTEN)), old),  # the anon VMA, later unmapped
        (2 * 10**8, heap, regions((2, 7, C.WRITTEN), base=HEAP), new),
    ]
    cap = Capture.from_snapshots(CaptureMeta(interval_ns=10**8), snaps)
    rows = vma_table(cap)
    assert [(r["label"], r["size"], r["written"], r["resident"]) for r in rows] == [
        ("[heap]", 8 * PAGE, 5 * PAGE, 8 * PAGE),
        ("anon", 4 * PAGE, 3 * PAGE, 0),
    ]


def test_annotate_names_replaces_the_vma_label():
    from matplotlib.figure import Figure

    from pmviz.analysis.axis import address_axis
    from pmviz.plotting import heatmap

    cap = two_vma_capture()
    axis = address_axis(cap)
    ax = Figure().subplots()
    heatmap(cap, "present", ax=ax, axis=axis)
    before = [t.get_text() for t in ax.texts]
    assert "anon" in before and "[heap]" in before
    artists = annotate_names(ax, axis, [NamedRange(BASE, BASE + 6 * PAGE, "a: float64[3_072]")])
    after = [t.get_text() for t in ax.texts]
    assert "a: float64[3_072]" in after and "anon" not in after and "[heap]" in after
    assert len(artists) == 2  # the strip and the label
    # too small to label: a strip only
    assert len(annotate_names(ax, axis, [NamedRange(HEAP, HEAP + 16, "tiny")])) == 1


def test_report_of_a_saved_capture():
    cap = pmviz.open(SAMPLE)
    rep = CaptureReport(cap, ["written", "present"], title="sample")
    png = rep.png()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    page = rep._repr_html_()
    assert "data:image/png;base64," in page and "top 10 VMAs by written bytes" in page
    rows = vma_table(cap)
    assert [r["written"] for r in rows] == sorted((r["written"] for r in rows), reverse=True)
    assert rows[0]["written"] >= 60 * 2**20  # the 64 MiB array of the workload


def test_options():
    o = _cell_parser().parse_args(
        ["--interval", "20ms", "--category", "written,present,swapped", "--out", "x.pmviz",
         "--writes", "none"]
    )  # fmt: skip
    assert (o.interval, o.category, o.out, o.writes) == (
        0.02, ["written", "present", "swapped"], "x.pmviz", "none"
    )  # fmt: skip
    r = _line_parser().parse_args(["record", "123", "--duration", "2s"])
    assert (r.command, r.pid, r.duration, r.interval) == ("record", 123, 2.0, 0.1)
    assert r.accessed == "none"
    assert _cell_parser().parse_args(["--accessed", "vma"]).accessed == "vma"
    from pmviz.magic import _ArgumentError

    with pytest.raises(_ArgumentError, match="not a duration"):
        _cell_parser().parse_args(["--interval", "soon"])


def test_helper_refuses_to_record_a_missing_process():
    out = subprocess.run(
        [sys.executable, "-m", "pmviz.magic", "--pid", "999999999", "--interval", "0.05",
         "--out", "/nonexistent/x.pmviz"],
        input="start\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    msg = json.loads(out.stdout.splitlines()[0])
    assert out.returncode == 1 and "error" in msg, out


# -- in a real IPython kernel ------------------------------------------------------------------
CELL_STATS = """
import json, numpy as np
from pmviz.magic import _written_union, _overlap, totals
from pmviz.maps import VmaKind
cap = _
names = cap.meta.extra["names"]
(arr,) = [d for d in names if d["label"].startswith("a: ")]
ws, we = _written_union(cap)
written = int((we - ws).astype(np.int64).sum())
def covered(s, e):
    return int(_overlap(ws, we, np.array(s, np.uint64), np.array(e, np.uint64)).sum())
in_array = covered([arr["start"]], [arr["end"]])
# the interpreter's heap: [heap], the interpreter's own data (libpython/python3 rw-p), and the
# anonymous memory of malloc / pymalloc arenas (every anonymous VMA but the array's)
v = cap.vmas_at(-1)
a = v.array
labels = np.array([v.label(i) for i in range(len(v))], dtype=object)
interp = (a["kind"] == int(VmaKind.HEAP)) | (a["kind"] == int(VmaKind.ANON))
interp |= np.array([l.startswith(("libpython", "python3")) for l in labels]) & (a["perms"] == b"rw-p")
s, e = a["start"][interp], a["end"][interp]
heap_written = covered(s, e) - in_array
print(json.dumps({
    "label": arr["label"], "array_bytes": arr["end"] - arr["start"], "in_array": in_array,
    "written": written, "interpreter": heap_written,
    "writes": cap.meta.write_mechanism, "marks": [m.label for m in cap.marks],
    "cell": cap.meta.extra["cell"], "t": [int(cap.time_ns[0]), int(cap.time_ns[-1])],
    "mark_t": [m.time_ns for m in cap.marks],
}))
"""


@pytest.fixture(scope="module")
def kernel():
    pytest.importorskip("jupyter_client")
    from jupyter_client.manager import start_new_kernel

    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "PMVIZ_MARKS")}
    km, kc = start_new_kernel(kernel_name=pmviz_kernel(), env=env, cwd=str(ROOT / "notebooks"))
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc, code: str) -> list[dict]:
    outs: list[dict] = []

    def hook(msg):
        if msg["msg_type"] in ("stream", "error", "execute_result", "display_data"):
            outs.append({"type": msg["msg_type"], **msg["content"]})

    kc.execute_interactive(code, output_hook=hook, timeout=120)
    return outs


def _stdout(outs) -> str:
    return "".join(o["text"] for o in outs if o["type"] == "stream" and o["name"] == "stdout")


@pytest.mark.kernel
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_cell_magic_in_a_real_kernel_names_the_array(kernel):
    _needs_tracking()
    assert not [
        o for o in run(kernel, "%load_ext pmviz\nimport numpy as np, pmviz") if o["type"] == "error"
    ]
    outs = run(
        kernel,
        "%%pmviz --interval 50ms\na = np.zeros(64 * 2**20 // 8)\npmviz.mark('fill')\na[:] = 1.0\n",
    )
    assert not [o for o in outs if o["type"] == "error"], outs
    (shown,) = [o for o in outs if o["type"] == "display_data"]
    page = shown["data"]["text/html"]
    assert "data:image/png;base64," in page  # the heatmaps
    assert "a: float64[8_388_608]" in page  # the VMA table's objects
    (result,) = [o for o in outs if o["type"] == "execute_result"]
    assert "pmviz capture" in result["data"]["text/html"]  # the value is the Capture
    stats = json.loads(_stdout(run(kernel, CELL_STATS)))
    assert stats["writes"] == "uffd-wp", stats
    assert stats["label"] == "a: float64[8_388_608]"
    assert stats["in_array"] >= 0.99 * stats["array_bytes"]
    outside = stats["written"] - stats["in_array"] - stats["interpreter"]
    assert outside < 0.01 * stats["written"], stats
    assert stats["marks"] == ["fill"]
    assert stats["cell"]["start_ns"] < stats["mark_t"][0] < stats["cell"]["end_ns"]


@pytest.mark.kernel
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_line_magics_and_usage_errors(kernel):
    run(kernel, "%load_ext pmviz")
    outs = run(
        kernel, "cap = %pmviz open ../sample_data/numpy-workload.pmviz\nprint(cap.n_snapshots)"
    )
    assert not [o for o in outs if o["type"] == "error"], outs
    assert int(_stdout(outs)) > 10
    assert any("data:image/png" in o.get("data", {}).get("text/html", "") for o in outs)
    bad = run(kernel, "%%pmviz --interval soon\nx = 1")
    # IPython shows a UsageError as one line on stderr, without a traceback
    err = "".join(o["text"] for o in bad if o["type"] == "stream" and o["name"] == "stderr")
    assert "UsageError: %%pmviz:" in err and "not a duration" in err, bad
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        outs = run(
            kernel,
            f"c = %pmviz record {sleeper.pid} --duration 0.3s --interval 50ms --writes none\nprint(c.meta.pid, c.n_snapshots)",
        )
        assert not [o for o in outs if o["type"] == "error"], outs
        pid, n = _stdout(outs).split()[-2:]
        assert int(pid) == sleeper.pid and int(n) >= 3
    finally:
        sleeper.kill()
        sleeper.wait()


# -- make lab: the pmviz kernel, no news prompt (a real JupyterLab in headless chromium) ---------
@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_fresh_lab_runs_the_pmviz_kernel_without_news_prompt(tmp_path):
    import secrets
    import socket
    import time
    import urllib.request

    playwright = pytest.importorskip("playwright.sync_api")
    if not os.path.exists("/usr/bin/chromium"):
        pytest.skip("needs Debian's chromium (make system-deps)")
    pmviz_kernel()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(8)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env.update(
        # a new user: empty config, settings and workspaces ...
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        # ... and what `make lab` adds (LAB_ENV in the Makefile)
        JUPYTER_PREFER_ENV_PATH="1",
        JUPYTER_CONFIG_PATH=str(ROOT / "notebooks" / ".jupyter"),
    )
    log = open(tmp_path / "lab.log", "w")
    lab = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
         "--ip=127.0.0.1", f"--port={port}", f"--ServerApp.token={token}",
         f"--ServerApp.root_dir={ROOT / 'notebooks'}",
         f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
         f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"],
        env=env, stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1)
                break
            except OSError:
                time.sleep(0.25)
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                      "--no-first-run", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync"],
            )  # fmt: skip
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.goto(f"{url}/lab/tree/01-quickstart.ipynb?token={token}")
                page.locator(
                    ".jp-StatusBar-Widget:has-text('Python (pmviz) | Idle')"
                ).first.wait_for(timeout=90_000)
                time.sleep(3)  # JupyterLab asks about news a moment after start
                kernel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-KernelName")
                assert kernel.first.inner_text() == "Python (pmviz)"
                toasts = page.locator(".Toastify__toast").all_inner_texts()
                page.screenshot(path=str(tmp_path / "fresh-lab.png"))  # kept as an artifact
                assert not [t for t in toasts if "news" in t.lower()], toasts
            finally:
                browser.close()
    finally:
        lab.terminate()
        try:
            lab.wait(15)
        except subprocess.TimeoutExpired:
            lab.kill()
            lab.wait()
        log.close()
