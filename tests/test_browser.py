"""Real browser: every notebook in JupyterLab, driven by headless Debian chromium.

One throw-away JupyterLab and one browser page serve the module. Each notebook is opened with
a fresh workspace, run with Run All, checked for error outputs and photographed at 1600×1000,
page by page, into ``tests/artifacts/`` (gitignored). Notebook 04's MaskExplorer and notebook
02's CaptureViewer are then used as a person would: open both code snippets, move the
snapshot slider, require a category, narrow the snapshot window, hover the figure; the checks
read the DOM (bounding boxes, read-out texts, image sources).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api")

from browser.lab import JupyterLab  # noqa: E402
from browser.page import (  # noqa: E402
    CHROMIUM,
    PANEL,
    chromium_page,
    error_outputs,
    run_all_cells,
    unexecuted_cells,
    wait_kernel_idle,
    wait_run_finished,
)

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
VIEWPORT = {"width": 1600, "height": 1000}
MAX_SHOTS = 14
"""Screenshots per notebook at most (1000 px each); the longest notebook needs about 10."""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]

EXPLORER = f"{PANEL} .pmviz-mask-explorer"
VIEWER = f"{PANEL} .pmviz-capture-viewer"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Notebooks + sample data in a temp dir (the run leaves the checkout untouched)."""
    tmp = tmp_path_factory.mktemp("browser")
    work = tmp / "work"
    shutil.copytree(ROOT / "notebooks", work / "notebooks", ignore=shutil.ignore_patterns(".*"))
    shutil.copytree(ROOT / "sample_data", work / "sample_data")
    with JupyterLab(work / "notebooks", tmp / "lab") as server:
        yield server


@pytest.fixture(scope="module")
def page():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium_page(**VIEWPORT) as p:
        yield p


def _open_and_run(page, lab, notebook: str) -> None:
    lab.shutdown_kernels()  # the previous notebook's kernel
    page.set_viewport_size(VIEWPORT)
    # "reset": a fresh workspace, so only this notebook is open (and runs a kernel).
    page.goto(lab.url(f"lab/tree/{notebook}") + "&reset")
    page.wait_for_selector(f"{PANEL} .jp-Cell", timeout=60_000)
    wait_kernel_idle(page)
    run_all_cells(page)
    wait_run_finished(page)


def _screenshots(page, stem: str) -> list[Path]:
    """The notebook as a user scrolls through it: one 1600×1000 shot per screenful."""
    scroller = page.locator(f"{PANEL} .jp-WindowedPanel-outer").first
    height = scroller.evaluate("e => e.scrollHeight")
    step = scroller.evaluate("e => e.clientHeight") - 80  # some overlap between shots
    for old in ARTIFACTS.glob(f"{stem}-*.png"):
        old.unlink()
    # JupyterLab pads the end of a notebook by most of a screen: stop at the last cell.
    end = scroller.evaluate(
        """e => { const cells = e.querySelectorAll('.jp-Cell');
                  const last = cells[cells.length - 1].getBoundingClientRect();
                  return last.bottom - e.getBoundingClientRect().top + e.scrollTop; }"""
    )
    height = min(height, int(end) + 40)
    shots = []
    for k in range(min(MAX_SHOTS, max(1, -(-(height - 80) // step)))):
        scroller.evaluate("(e, y) => { e.scrollTop = y; }", k * step)
        page.wait_for_timeout(400)  # windowed cells render on scroll
        path = ARTIFACTS / f"{stem}-{k + 1:02d}.png"
        page.screenshot(path=str(path))
        shots.append(path)
    return shots


def _tall(page, element, path: Path) -> None:
    """Screenshot one widget whole: a viewport as tall as the widget, then back."""
    element.scroll_into_view_if_needed()
    h = int(element.evaluate("e => e.getBoundingClientRect().height")) + 200
    page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], h)})
    element.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    element.screenshot(path=str(path))
    page.set_viewport_size(VIEWPORT)


def _wait_text(page, selector: str, pattern: str, timeout_ms: int = 30_000) -> str:
    page.wait_for_function(
        """([sel, pat]) => {
            const t = document.querySelector(sel);
            return t && new RegExp(pat).test(t.innerText);
        }""",
        arg=[selector, pattern],
        timeout=timeout_ms,
    )
    return page.locator(selector).first.inner_text()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_all_in_jupyterlab(lab, page, name):
    _open_and_run(page, lab, name)
    stem = Path(name).stem
    shots = _screenshots(page, stem)
    errors = error_outputs(page)
    assert not errors, f"{name}: error outputs (screenshots {shots[0].name}…):\n" + "\n".join(
        errors
    )
    assert unexecuted_cells(page) == 0, f"{name}: Run All did not reach every cell"
    assert page.locator(f"{PANEL} .jp-RenderedImage img").count() >= 1, f"{name}: no figure"
    check = _WIDGET_CHECKS.get(name)
    if check is not None:
        check(page, stem)


# -- notebook 04: the MaskExplorer -------------------------------------------------------------
_LAYOUT_JS = """(sel) => {
    const ex = document.querySelector(sel);
    const textWidth = (node) => {
        const r = document.createRange();
        r.selectNodeContents(node);
        return r.getBoundingClientRect().width;
    };
    const labels = [...ex.querySelectorAll('[class*=pmviz-label-]')].map(l => ({
        name: l.innerText.trim(),
        box: l.getBoundingClientRect().width,
        text: textWidth(l.querySelector('code')),
    }));
    const reports = [...ex.querySelectorAll('[class*=pmviz-report-]')].map(c => {
        const i = c.querySelector('input').getBoundingClientRect();
        const label = c.querySelector('.widget-label-basic, label');
        return {box: c.getBoundingClientRect().width, input: i.width, inputH: i.height,
                text: label ? textWidth(label) : 0};
    });
    const slider = ex.querySelector('.widget-slider').getBoundingClientRect().width;
    const track = ex.querySelector('.widget-slider .noUi-target, .widget-slider .slider-container');
    return {labels, reports, slider, track: track ? track.getBoundingClientRect().width : 0};
}"""


def _check_mask_explorer(page, stem: str) -> None:
    explorer = page.locator(EXPLORER).first
    explorer.wait_for(timeout=60_000)
    explorer.scroll_into_view_if_needed()
    img = explorer.locator(".widget-image").first
    img.wait_for()

    # Open the C snippet too (the notebook invites copying it): both open at once.
    snippets = explorer.locator(".pmviz-snippet")
    assert snippets.count() == 2
    snippets.nth(1).locator(".jupyter-widget-Collapse-header").click()
    page.wait_for_selector(f"{EXPLORER} .pmviz-snippet >> nth=1 >> .jupyter-widget-Collapse-open")
    assert explorer.locator(".jupyter-widget-Collapse-open").count() == 2
    assert "struct pm_scan_arg arg" in snippets.nth(1).inner_text()

    # Nothing in the left column was squeezed: names, report boxes and the slider keep
    # their size next to two open snippets.
    layout = page.evaluate(_LAYOUT_JS, EXPLORER)
    assert len(layout["labels"]) == 9 and len(layout["reports"]) == 9
    for lab_ in layout["labels"]:
        assert lab_["box"] > lab_["text"] > 20, lab_  # "SOFT_DIRTY" whole, not "TY"
    for rep in layout["reports"]:
        assert rep["input"] >= 10 and rep["inputH"] >= 10, rep  # the checkbox is there
        assert rep["box"] >= rep["input"] + rep["text"], rep  # and so is "report"
    assert layout["slider"] >= 250 and layout["track"] >= 100, layout

    # The snapshot slider: the status line and the heatmap marker follow it.
    status = f"{EXPLORER} .pmviz-status"
    before_src = img.get_attribute("src")
    handle = explorer.locator(".widget-slider .noUi-handle").first
    handle.focus()
    page.keyboard.press("Home")
    text = _wait_text(page, status, r"in snapshot 0 \(t = 0\.00 s\)")
    assert "pages selected in snapshot 0" in text
    page.wait_for_function(
        "([sel, old]) => document.querySelector(sel).getAttribute('src') !== old",
        arg=[f"{EXPLORER} .widget-image", before_src],
        timeout=30_000,
    )
    page.keyboard.press("ArrowRight")
    _wait_text(page, status, r"in snapshot 1 \(t = ")
    # The open snippets stayed open through those updates.
    assert explorer.locator(".jupyter-widget-Collapse-open").count() == 2

    # Require PRESENT: category_mask gains bit 3 and the picture changes.
    fields = explorer.locator(".pmviz-kernel-fields").first
    before_fields, before_src = fields.inner_text(), img.get_attribute("src")
    explorer.locator(".pmviz-choice-PRESENT").first.locator("button:text-is('require')").click()
    page.wait_for_function(
        "([sel, old]) => document.querySelector(sel).innerText !== old",
        arg=[f"{EXPLORER} .pmviz-kernel-fields", before_fields],
        timeout=30_000,
    )
    page.wait_for_function(
        "([sel, old]) => document.querySelector(sel).getAttribute('src') !== old",
        arg=[f"{EXPLORER} .widget-image", before_src],
        timeout=30_000,
    )
    after = fields.inner_text()
    assert "0x0008" in after and "PRESENT" in after.split("category_inverted")[0]
    assert img.get_attribute("src").startswith(("data:image/png", "blob:"))
    assert explorer.locator(".jupyter-widget-Collapse-open").count() == 2
    assert "require='PRESENT'" in snippets.nth(0).inner_text()
    # JupyterLab breaks output <pre> lines anywhere ("retu / rned"); the snippets wrap on words.
    pre = explorer.locator(".pmviz-snippet pre").first
    assert pre.evaluate("e => getComputedStyle(e).wordBreak") == "normal"
    _tall(page, explorer, ARTIFACTS / f"{stem}-mask-explorer.png")


# -- notebook 02: the CaptureViewer on ipympl's canvas -----------------------------------------
def _xlim(text: str) -> tuple[float, float]:
    m = re.search(r"time axis ([\d.]+)–([\d.]+) s \(snapshots (\d+)–(\d+), cursor (\d+)\)", text)
    assert m, text
    return float(m.group(1)), float(m.group(2))


def _check_capture_viewer(page, stem: str) -> None:
    viewer = page.locator(VIEWER).first
    viewer.wait_for(timeout=60_000)
    viewer.scroll_into_view_if_needed()
    canvas_sel = f"{VIEWER} .jupyter-matplotlib-canvas-div canvas"
    # ipympl paints the figure into the canvas: wait until it holds a picture.
    page.wait_for_function(
        """(sel) => {
            const c = document.querySelector(sel);
            if (!c || !c.width) return false;
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let ink = 0;
            for (let i = 0; i < d.length; i += 4 * 61)
                if (d[i + 3] > 0 && (d[i] < 200 || d[i + 1] < 200 || d[i + 2] < 200)) ink++;
            return ink > 500;
        }""",
        arg=canvas_sel,
        timeout=30_000,
    )
    view = f"{VIEWER} .pmviz-view"
    full = _xlim(_wait_text(page, view, r"time axis"))
    assert full[0] == 0.0

    # Narrow the snapshot window from the left: the time axis zooms (its lower limit moves
    # right), and the cursor stays inside the window.
    canvas = page.locator(canvas_sel).first
    before = canvas.evaluate("c => c.toDataURL()")
    viewer.locator(".widget-slider .noUi-handle").first.focus()
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    text = _wait_text(page, view, r"snapshots 10–")
    lo, hi = _xlim(text)
    assert lo > full[0] and hi == pytest.approx(full[1]), text
    first, last, cursor = (int(x) for x in re.findall(r"\d+", text.split("snapshots")[1])[:3])
    assert first <= cursor <= last, text
    page.wait_for_function(
        "([sel, old]) => document.querySelector(sel).toDataURL() !== old",
        arg=[canvas_sel, before],
        timeout=30_000,
    )

    # Hover: the read-out names the address, region, categories and VMA of a drawn snapshot.
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 200
    readout = f"{VIEWER} .pmviz-readout"
    for fy in (0.55, 0.7, 0.4, 0.8, 0.3):  # some rows are collapsed gaps: try a few heights
        page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * fy)
        try:
            _wait_text(page, readout, "vma", timeout_ms=5_000)
            break
        except Exception:  # noqa: BLE001 - try the next height
            continue
    text = page.locator(readout).first.inner_text()
    assert "address" in text and "vma" in text and "snapshot" in text, text
    shown = int(re.search(r"snapshot\s+(\d+)", text).group(1))
    assert first <= shown <= last, f"hover reports snapshot {shown}, outside {first}–{last}"
    page.mouse.move(box["x"] - 40, box["y"] - 40)  # leave the canvas
    page.wait_for_timeout(500)
    _tall(page, viewer, ARTIFACTS / f"{stem}-capture-viewer.png")


_WIDGET_CHECKS = {
    "02-working-set-analysis.ipynb": _check_capture_viewer,
    "04-mask-explorer.ipynb": _check_mask_explorer,
}
