"""Widget logic without a browser: set a control, assert on the figure data and read-outs."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

import pmviz  # noqa: E402
from pmviz import Category as C  # noqa: E402
from pmviz.capture import Capture, CaptureMeta  # noqa: E402
from pmviz.maps import Vmas  # noqa: E402
from pmviz.widgets import CaptureViewer, MaskExplorer  # noqa: E402
from pmviz.widgets._controls import (  # noqa: E402
    PRESETS,
    SNIPPET_WIDTH,
    parse_hex_range,
    python_snippet,
)

P = 4096
HEAP = 0x5555_0000_0000
ANON = 0x7F00_0000_0000
STACK = 0x7FFF_F000_0000

MAPS = (
    f"{HEAP:x}-{HEAP + 256 * P:x} rw-p 00000000 00:00 0 [heap]\n"
    f"{ANON:x}-{ANON + 1024 * P:x} rw-p 00000000 00:00 0 \n"
    f"{ANON + 1024 * P:x}-{ANON + 1040 * P:x} r--p 00000000 08:01 42 /usr/lib/libfoo.so\n"
    f"{STACK:x}-{STACK + 32 * P:x} rw-p 00000000 00:00 0 [stack]\n"
)


def _regions(rows):
    return pmviz.Regions.from_arrays(
        [s for s, _, _ in rows], [e for _, e, _ in rows], [c for _, _, c in rows]
    )


def synthetic_capture(n: int = 6) -> Capture:
    """A heap that fills up, an anon area written in a moving window, a file, a stack."""
    vmas = Vmas.parse(MAPS)
    snaps = []
    W, PR, F = int(C.WRITTEN), int(C.PRESENT), int(C.FILE)
    for i in range(n):
        heap_pages = 32 * (i + 1)
        lo = ANON + 128 * i * P
        rows = [
            (HEAP, HEAP + heap_pages * P, W | PR),
            (HEAP + heap_pages * P, HEAP + 256 * P, W),
            (ANON, lo, W),
            (lo, lo + 128 * P, W | PR),
            (lo + 128 * P, ANON + 1024 * P, W),
            (ANON + 1024 * P, ANON + 1040 * P, PR | F),
            (STACK, STACK + 24 * P, W),
            (STACK + 24 * P, STACK + 32 * P, W | PR),
        ]
        rows = [r for r in rows if r[0] < r[1]]
        written = _regions([(lo, lo + 128 * P, W)])
        snaps.append((i * 100_000_000, _regions(rows), written, vmas))
    meta = CaptureMeta(pid=1234, interval_ns=100_000_000, write_mechanism="uffd-wp")
    return Capture.from_snapshots(meta, snaps)


@pytest.fixture
def capture():
    return synthetic_capture()


# -- MaskExplorer on a capture ---------------------------------------------------------------
def test_mask_explorer_default_selects_everything(capture):
    ex = MaskExplorer(capture)
    assert ex.mask == pmviz.Mask()
    assert ex.result == pmviz.Mask().apply(capture.regions_at(-1))
    assert "0x01ff" in ex.fields.value  # return_mask = every category
    assert ex.image.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_require_present_updates_fields_result_and_figure(capture):
    ex = MaskExplorer(capture)
    before_png, before_grid = ex.image.value, np.array(ex.artist.get_array())
    ex.controls.choices[C.PRESENT].value = "require"
    assert ex.mask.kernel_fields()["category_mask"] == int(C.PRESENT)
    assert "<code>0x0008</code>" in ex.fields.value
    expected = pmviz.Mask(require=C.PRESENT).apply(capture.regions_at(-1))
    assert ex.result == expected
    assert ex.result.n_pages == 32 * 6 + 128 + 16 + 8
    assert ex.image.value != before_png
    after_grid = np.array(ex.artist.get_array())
    assert not np.array_equal(after_grid, before_grid)
    # the selection only shrank: no bin got more coverage
    assert (np.nan_to_num(after_grid) <= np.nan_to_num(before_grid) + 1e-9).all()


def test_exclude_and_anyof_map_to_kernel_fields(capture):
    ex = MaskExplorer(capture)
    ex.controls.choices[C.FILE].value = "exclude"
    ex.controls.choices[C.PRESENT].value = "any of"
    ex.controls.choices[C.SWAPPED].value = "any of"
    f = ex.mask.kernel_fields()
    assert f["category_inverted"] == int(C.FILE)
    assert f["category_mask"] == int(C.FILE)
    assert f["category_anyof_mask"] == int(C.PRESENT | C.SWAPPED)
    assert all(not (int(r.categories) & C.FILE) for r in ex.result)
    assert ex.result.n_pages == 32 * 6 + 128 + 8


def test_report_checkbox_and_max_pages(capture):
    ex = MaskExplorer(capture)
    ex.controls.choices[C.PRESENT].value = "require"
    ex.controls.report[C.WRITTEN].value = False
    assert ex.mask.return_mask == int(pmviz.ALL_CATEGORIES) & ~int(C.WRITTEN)
    assert not any(int(r.categories) & C.WRITTEN for r in ex.result)
    ex.max_pages_box.value = 100
    assert ex.result.n_pages == 100
    assert "max_pages=100" in ex.code.value
    assert ex.result == ex.mask.apply(capture.regions_at(-1), max_pages=100)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_presets_set_controls_and_snippet_round_trips(capture, preset):
    ex = MaskExplorer(capture)
    ex.preset.value = preset
    mask = PRESETS[preset][0]
    assert ex.mask == mask
    # The Python snippet is copy-pasteable: running it builds the very same mask.
    import html as _html

    python = ex.code.value.split("<summary>Python</summary>")[1]
    code = _html.unescape(python.split(">", 1)[1].split("</pre>")[0])
    ns = {"pmviz": pmviz, "capture": capture, "i": -1}
    exec(code, ns)
    assert ns["mask"] == mask
    assert ns["regions"] == ex.result
    assert "struct pm_scan_arg arg" in ex.code.value
    # touching a control afterwards switches back to a custom mask
    ex.controls.report[C.GUARD].value = not ex.controls.report[C.GUARD].value
    assert ex.preset.value == "(custom)"


@pytest.mark.parametrize("pid", [None, 4194304])
def test_python_snippet_lines_fit_the_readout_column(pid):
    # The read-out column is ~50 characters wide; JupyterLab would cut longer lines mid-word.
    for mask, _ in PRESETS.values():
        for max_pages in (0, 100000):
            code = python_snippet(mask, max_pages, pid=pid)
            # Only a single argument that cannot be split further may be wider.
            wide = [ln for ln in code.splitlines() if len(ln) > SNIPPET_WIDTH]
            assert all(ln.startswith("    ") and ln.count("=") == 1 for ln in wide), code
            ns = {"pmviz": pmviz}
            exec(code.split("\n#")[0].split("\nregions")[0], ns)
            assert ns["mask"] == mask


def test_snippet_wraps_on_words_in_the_readout(capture):
    ex = MaskExplorer(capture)
    assert ex.code.value.count("word-break:normal") == 2  # the Python and the C <pre>


def test_snapshot_slider_changes_table_only(capture):
    ex = MaskExplorer(capture, mask=pmviz.Mask(require=C.PRESENT))
    png = ex.image.value
    ex.snapshot.value = 0
    assert ex.result == pmviz.Mask(require=C.PRESENT).apply(capture.regions_at(0))
    assert f"{ex.result.n_pages:,} pages" in ex.table.value
    assert ex.image.value == png
    assert "[heap]" in ex.table.value


def test_inexpressible_mask_is_rejected(capture):
    odd = pmviz.Mask.from_kernel(category_inverted=int(C.FILE), return_mask=0x1FF)
    with pytest.raises(ValueError, match="cannot show"):
        MaskExplorer(capture, mask=odd)


@pytest.mark.kernel
def test_mask_explorer_on_a_live_pid_rescans():
    ex = MaskExplorer(os.getpid())
    ex.controls.choices[C.PRESENT].value = "require"
    ex.controls.report[C.PRESENT].value = False
    assert len(ex.result) > 0
    assert all(not (int(r.categories) & C.PRESENT) for r in ex.result)
    assert f"pmviz.scan({os.getpid()}, mask=mask)" in ex.code.value
    ex.max_pages_box.value = 10
    assert ex.result.n_pages == 10


# -- CaptureViewer ---------------------------------------------------------------------------
def test_capture_viewer_readout_names_region_and_vma(capture):
    v = CaptureViewer(capture, interactive=False, category="present")
    info = v.show_address(HEAP + 5 * P + 12)
    assert info["categories"] == "WRITTEN|PRESENT"
    assert info["vma"].startswith("[heap]")
    info = v.show_address(ANON + 1030 * P)
    assert info["categories"] == "FILE|PRESENT"
    assert info["vma"].startswith("libfoo.so")
    assert "0x7f0000406000" in v.readout.value


def test_capture_viewer_written_category_reads_written_sets(capture):
    v = CaptureViewer(capture, interactive=False)
    assert v.category.value == "written"
    v.snapshot.value = 2
    lo = ANON + 256 * P
    info = v.show_address(lo + P)
    assert info["written"].startswith(f"yes, in the interval ending here (run {lo:#x}–")
    assert info["categories"] == "WRITTEN|PRESENT"  # the full scan's categories
    info = v.show_address(ANON)
    assert info["written"] == "not in the interval ending here"
    assert info["categories"] == "WRITTEN"


def test_capture_viewer_zoom_category_and_scale_redraw(capture):
    v = CaptureViewer(capture, interactive=False, category="present")
    full = np.array(v.drawn.artist.get_array())
    png = v.png
    v.vma.value = (HEAP, HEAP + 256 * P)
    assert (v.drawn.addr_lo, v.drawn.addr_hi) == (HEAP, HEAP + 256 * P)
    assert v.png != png
    v.hex_range.value = f"{ANON:#x}-{ANON + 512 * P:#x}"
    assert v.addr_range == (ANON, ANON + 512 * P)
    assert (v.drawn.addr_lo, v.drawn.addr_hi) == (ANON, ANON + 512 * P)
    v.hex_range.value = "nonsense"
    assert "expected" in v.message.value
    v.hex_range.value = ""
    v.vma.value = None
    v.category.value = "file"
    assert not np.array_equal(np.array(v.drawn.artist.get_array()), full)
    v.scale.value = "log"
    assert type(v.drawn.artist.norm).__name__ == "LogNorm"
    v.window.value = (2, 4)
    xlo, xhi = v.drawn.ax.get_xlim()
    assert (xlo, xhi) == pytest.approx((0.2, 0.5))


def test_capture_viewer_zoom_dropdown_shows_the_whole_space_choice(capture):
    v = CaptureViewer(capture, interactive=False, category="present")
    assert v.vma.label == "(whole address space)" and v.addr_range is None
    v.vma.value = (HEAP, HEAP + 256 * P)
    assert v.addr_range == (HEAP, HEAP + 256 * P)
    v.vma.index = 0  # what choosing it in the browser does
    assert v.vma.label == "(whole address space)" and v.addr_range is None


def test_capture_viewer_ipympl_hover_and_click(capture):
    pytest.importorskip("ipympl")
    from matplotlib.backend_bases import MouseEvent

    v = CaptureViewer(capture, interactive=True, category="present")
    ax = v.drawn.ax
    v.figure.canvas.draw()
    # aim at the middle of the row holding the heap's first page, at snapshot 3
    y = float(v.drawn.axis.to_compact(HEAP)) + 2.5 * P
    x, y = ax.transData.transform((float(capture.times[3]) + 0.05, y))
    v.figure.canvas.callbacks.process(
        "button_press_event", MouseEvent("button_press_event", v.figure.canvas, x, y, button=1)
    )
    assert v.snapshot.value == 3
    assert v.readout_info["vma"].startswith("[heap]")
    assert "PRESENT" in v.readout_info["categories"]


def test_parse_hex_range():
    assert parse_hex_range("0x1000-0x3000") == (0x1000, 0x3000)
    assert parse_hex_range(" 1000 3000 ") == (0x1000, 0x3000)
    with pytest.raises(ValueError, match="not above"):
        parse_hex_range("0x3000-0x1000")


# -- LiveView --------------------------------------------------------------------------------
@pytest.mark.kernel
def test_live_view_records_redraws_and_stops():
    import sys

    from pmviz.widgets import LiveView

    code = (
        "import time, numpy as np\n"
        "a = np.zeros(8 << 17)\n"
        "for i in range(40):\n"
        "    a[i * 8192:(i + 1) * 8192] = 1; time.sleep(0.05)\n"
        "time.sleep(30)\n"
    )
    live = LiveView([sys.executable, "-c", code], interval=0.05, refresh=0.3)
    try:
        deadline = time.monotonic() + 20
        while live.n_redraws < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert live.n_redraws >= 2 and live.running
        assert "recording" in live.status.value
        live.stop_button.click()  # the Stop button finalises the capture
        live._thread.join(20)
    finally:
        live.stop()
    cap = live.capture
    assert not live.running and live.stop_button.disabled
    assert len(cap) >= 3
    assert live.image.value[:4] == b"\x89PNG"
    assert "stopped" in live.status.value
    assert live.recorder.process is None or live.recorder.process.poll() is not None


@pytest.mark.kernel
def test_mask_explorer_live_pid_that_exits_says_so():
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.3)
        ex = MaskExplorer(child.pid)
        before = ex.image.value
    finally:
        child.kill()
        child.wait()
    ex.controls.choices[C.PRESENT].value = "require"
    assert "has exited" in ex.status.value
    assert ex.image.value == before  # the last picture stays
