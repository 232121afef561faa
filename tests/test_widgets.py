"""Widget logic without a browser: set a control, assert on the figure data and read-outs."""

from __future__ import annotations

import os
import time

import matplotlib.colors as mcolors
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
    assert "max_pages=100" in ex.python_code.value
    assert ex.result == ex.mask.apply(capture.regions_at(-1), max_pages=100)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_presets_set_controls_and_snippet_round_trips(capture, preset):
    ex = MaskExplorer(capture)
    ex.preset.value = preset
    mask = PRESETS[preset][0]
    assert ex.mask == mask
    # The Python snippet is copy-pasteable: running it builds the very same mask.
    import html as _html

    code = _html.unescape(ex.python_code.value.split(">", 1)[1].split("</pre>")[0])
    ns = {"pmviz": pmviz, "capture": capture, "i": -1}
    exec(code, ns)
    assert ns["mask"] == mask
    assert ns["regions"] == ex.result
    assert "struct pm_scan_arg arg" in ex.c_code.value
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
    for code in (ex.python_code, ex.c_code):
        assert code.value.count("word-break:normal") == 1


def test_snapshot_slider_moves_table_status_and_marker(capture):
    ex = MaskExplorer(capture, mask=pmviz.Mask(require=C.PRESENT))
    png, grid = ex.image.value, np.array(ex.artist.get_array())
    assert "in snapshot 5 (t = 0.50 s)" in ex.status.value
    ex.snapshot.value = 0
    assert ex.result == pmviz.Mask(require=C.PRESENT).apply(capture.regions_at(0))
    assert f"{ex.result.n_pages:,} pages" in ex.table.value
    assert "[heap]" in ex.table.value
    # The status line names the slider's snapshot, not the one of the last mask change.
    assert f"{ex.result.n_pages:,} pages selected in snapshot 0 (t = 0.00 s)" in ex.status.value
    # The heatmap outlines snapshot 0's column; the selection itself is unchanged.
    assert ex._marker.get_x() == pytest.approx(0.0)
    assert ex._marker.get_width() == pytest.approx(0.1)
    np.testing.assert_array_equal(np.array(ex.artist.get_array()), grid)
    assert ex.image.value != png
    ex.snapshot.value = 3
    assert ex._marker.get_x() == pytest.approx(0.3)
    assert "in snapshot 3 (t = 0.30 s)" in ex.status.value


def test_snippets_keep_their_open_state_across_updates(capture):
    ex = MaskExplorer(capture)
    python_box, c_box = ex.python_box, ex.c_box
    assert python_box.selected_index == 0 and c_box.selected_index is None
    c_box.selected_index = 0  # the user opens the C snippet (a frontend state change)
    before = ex.c_code.value
    ex.controls.choices[C.PRESENT].value = "require"
    ex.preset.value = "CRIU dump (pmc_fill)"
    ex.snapshot.value = 1
    # Same accordions, still open; only their text changed.
    assert ex.python_box is python_box and ex.c_box is c_box
    assert python_box.selected_index == 0 and c_box.selected_index == 0
    assert python_box.children == (ex.python_code,) and c_box.children == (ex.c_code,)
    assert ex.c_code.value != before and "PAGE_IS_PFNZERO" in ex.c_code.value


def test_mask_controls_have_fixed_widths_that_never_shrink(capture):
    ex = MaskExplorer(capture)
    fixed = [*ex.controls.box.children, ex.controls.box, ex.snapshot, ex.max_pages_box]
    for w in fixed:
        assert w.layout.flex == "0 0 auto", w
        assert w.layout.width and w.layout.min_width == w.layout.width, w
    # The read-out column is the one that gives way (and wraps below the controls).
    row = ex.children[1]
    assert row.layout.flex_flow == "row wrap"
    assert row.children[1].layout.min_width == "400px"


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
    assert f"pmviz.scan({os.getpid()}, mask=mask)" in ex.python_code.value
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


def test_capture_viewer_readout_names_the_object(capture):
    capture.meta.extra["names"] = [
        {"start": HEAP + 4 * P, "end": HEAP + 8 * P, "label": "a: float64[2_048]"}
    ]
    v = CaptureViewer(capture, interactive=False, category="present")
    assert v.show_address(HEAP + 5 * P + 12)["object"] == "a: float64[2_048]"
    assert "a: float64[2_048]" in v.readout.value
    assert "object" not in v.show_address(HEAP + 9 * P)


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


def test_capture_viewer_window_zooms_the_time_axis_and_keeps_the_cursor_inside(capture):
    v = CaptureViewer(capture, interactive=False, category="present")
    ax, mesh = v.drawn.ax, v.drawn.artist
    grid = np.array(mesh.get_array())
    assert v.snapshot.value == 5
    v.window.value = (1, 3)
    # Zoomed, not blanked: the same axes and mesh, every snapshot still binned, x limited.
    assert v.drawn.ax is ax and v.drawn.artist is mesh
    np.testing.assert_array_equal(np.array(mesh.get_array()), grid)
    assert ax.get_xlim() == pytest.approx((0.1, 0.4))
    assert v.view_info["xlim"] == pytest.approx((0.1, 0.4))
    assert "0.10–0.40 s" in v.view.value
    # The cursor follows into the window and cannot leave it.
    assert (v.snapshot.min, v.snapshot.max) == (1, 3)
    assert v.snapshot.value == 3
    assert v._cursor.get_xdata()[0] == pytest.approx(0.3)
    v.window.value = (0, 5)
    assert v.snapshot.value == 3 and (v.snapshot.min, v.snapshot.max) == (0, 5)
    # A hover outside the window (the axis edge) reports a drawn snapshot only.
    v.window.value = (2, 4)
    assert v.drawn.snapshot_at(0.05, v.window.value) == 2
    assert v.drawn.snapshot_at(0.9, v.window.value) == 4


def test_capture_viewer_category_and_scale_change_the_mesh_in_place(capture):
    v = CaptureViewer(capture, interactive=False, category="present")
    ax, mesh = v.drawn.ax, v.drawn.artist
    v.category.value = "file"
    assert v.drawn.ax is ax and v.drawn.artist is mesh
    np.testing.assert_array_equal(
        np.array(mesh.get_array()), np.ma.masked_invalid(v.grid("file").grid.T).filled(np.nan)
    )
    assert mesh.colorbar.ax.get_ylabel() == "fraction of pages file"
    v.scale.value = "sqrt"
    assert type(mesh.norm).__name__ == "PowerNorm" and v.drawn.artist is mesh
    # Unmapped cells have their own colour, not the colormap's 0.
    from pmviz.plotting._style import UNMAPPED_COLOR

    assert mesh.get_cmap().get_bad() == pytest.approx(mcolors.to_rgba(UNMAPPED_COLOR))
    v.category.value = "composite"
    assert v.drawn.artist is not mesh  # an RGBA picture: rebuilt
    # Its unmapped cells are transparent over the unmapped colour (its 0 is white).
    assert v.drawn.ax.get_facecolor() == pytest.approx(mcolors.to_rgba(UNMAPPED_COLOR))
    v.category.value = "present"
    assert v.drawn.artist.norm.__class__.__name__ == "PowerNorm"


def test_capture_viewer_zoom_boxes_agree(capture):
    v = CaptureViewer(capture, interactive=False, category="present")
    v.hex_range.value = f"{ANON:#x}-{ANON + 512 * P:#x}"
    assert v.vma.label == "(hex range below)"
    v.vma.value = (HEAP, HEAP + 256 * P)
    # The hex box shows the VMA's range, not the range typed before.
    assert v.hex_range.value == f"{HEAP:#x}-{HEAP + 256 * P:#x}"
    assert (v.drawn.addr_lo, v.drawn.addr_hi) == (HEAP, HEAP + 256 * P)
    v.hex_range.value = ""
    assert v.vma.label == "(whole address space)" and v.addr_range is None
    v.hex_range.value = f"{HEAP:#x}-{HEAP + 256 * P:#x}"  # a VMA's exact range: it is named
    assert v.vma.value == (HEAP, HEAP + 256 * P)


def test_capture_viewer_long_addresses_fit_in_the_figure():
    # Addresses near the top of the 47-bit space: the longest hex tick labels.
    vmas = Vmas.parse(
        "7ffff7a00000-7ffff7c00000 rw-p 00000000 00:00 0 \n"
        "7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0 [stack]\n"
    )
    rows = [(0x7FFFF7A00000, 0x7FFFF7C00000, int(C.PRESENT))]
    cap = Capture.from_snapshots(
        CaptureMeta(pid=1, interval_ns=10**8),
        [(i * 10**8, _regions(rows), None, vmas) for i in range(3)],
    )
    v = CaptureViewer(cap, interactive=False, category="present")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = v.figure
    renderer = FigureCanvasAgg(fig).get_renderer()
    ax = v.drawn.ax
    assert ax.get_ylabel().startswith("address")
    fig_box = fig.bbox
    for t in [*ax.get_yticklabels(), ax.yaxis.label]:
        if t.get_text():
            box = t.get_window_extent(renderer)
            assert box.x0 >= fig_box.x0 - 0.5, t.get_text()


def test_capture_viewer_ipympl_toolbar_sits_above_the_figure(capture):
    pytest.importorskip("ipympl")
    v = CaptureViewer(capture, interactive=True, category="present")
    assert v._canvas.toolbar_position == "top"


def test_capture_viewer_draws_marks_and_keeps_its_title_in_place(capture):
    from pmviz.capture import Mark

    t0 = int(capture.time_ns[0])
    marked = Capture(
        capture.meta,
        capture.time_ns,
        capture.regions,
        capture.region_offsets,
        written=capture.written,
        written_offsets=capture.written_offsets,
        vma_tables=capture.vma_tables,
        vma_index=capture.vma_index,
        marks=[Mark(t0 + 150_000_000, "fill"), Mark(t0 + 350_000_000, "sort")],
    )
    v = CaptureViewer(marked, interactive=False, category="present")
    ax = v.drawn.ax
    labels = {t.get_text().strip(): t.get_position()[0] for t in ax.texts if t.get_clip_on()}
    assert labels == {"fill": pytest.approx(0.15), "sort": pytest.approx(0.35)}
    # A blitted category change redraws the title where it was (it once jumped off the figure).
    v.category.value = "file"
    assert ax.title.get_text() == "file pages" and ax.title.get_position()[1] == 1.0
    # The composite view draws each mark once (composite_heatmap once drew them too).
    v.category.value = "composite"
    texts = [t.get_text().strip() for t in v.drawn.ax.texts if t.get_clip_on()]
    assert sorted(texts) == ["fill", "sort"]


def test_capture_viewer_leaves_pyplots_backend_alone():
    # ``import ipympl`` switches pyplot to ipympl: after a CaptureViewer every plt figure of
    # the notebook became a widget. Checked in a fresh interpreter (the import runs once).
    pytest.importorskip("ipympl")
    import subprocess
    import sys

    code = (
        "import matplotlib; matplotlib.use('agg'); import matplotlib.pyplot as plt\n"
        "import sys; sys.path.insert(0, 'tests')\n"
        "from test_widgets import synthetic_capture\n"
        "from pmviz.widgets import CaptureViewer\n"
        "v = CaptureViewer(synthetic_capture(), interactive=True)\n"
        "assert 'ipympl' in type(v._canvas).__module__\n"
        "print(matplotlib.get_backend(), type(plt.figure().canvas).__name__)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["agg", "FigureCanvasAgg"], out.stdout
