"""Real browser: JupyterLab + headless Debian chromium drive notebook 04's MaskExplorer.

Opens ``notebooks/04-mask-explorer.ipynb`` in a throw-away JupyterLab, runs all cells, changes
a mask control and checks that the heatmap image and the kernel-field read-out both change.
A screenshot goes to ``tests/artifacts/`` (gitignored).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api")

from browser.lab import JupyterLab  # noqa: E402
from browser.page import (  # noqa: E402
    CHROMIUM,
    PANEL,
    chromium_page,
    run_all_cells,
    wait_all_executed,
    wait_kernel_idle,
)

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
NOTEBOOK = "04-mask-explorer.ipynb"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]

EXPLORER = f"{PANEL} .pmviz-mask-explorer"


def _copy_workspace(tmp_path: Path) -> Path:
    """Notebooks + sample data in a temp dir, so the run leaves the checkout untouched."""
    work = tmp_path / "work"
    shutil.copytree(ROOT / "notebooks", work / "notebooks", ignore=shutil.ignore_patterns(".*"))
    shutil.copytree(
        ROOT / "sample_data", work / "sample_data", ignore=shutil.ignore_patterns("programs")
    )
    return work / "notebooks"


def _open_and_run(page, lab, notebook: str) -> None:
    page.goto(lab.url(f"lab/tree/{notebook}"))
    page.wait_for_selector(f"{PANEL} .jp-Cell", timeout=60_000)
    wait_kernel_idle(page)
    run_all_cells(page)
    wait_all_executed(page)


@pytest.mark.timeout(240)
def test_mask_explorer_in_jupyterlab(tmp_path):
    nb_dir = _copy_workspace(tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with JupyterLab(nb_dir, tmp_path / "lab") as lab, chromium_page() as page:
        _open_and_run(page, lab, NOTEBOOK)
        explorer = page.locator(EXPLORER).first
        explorer.wait_for(timeout=60_000)
        explorer.scroll_into_view_if_needed()

        img = explorer.locator(".widget-image").first
        fields = explorer.locator(".pmviz-kernel-fields").first
        img.wait_for()
        before_src = img.get_attribute("src")
        before_fields = fields.inner_text()
        assert "category_mask" in before_fields

        # Require PRESENT: category_mask must gain bit 3 and the picture must change.
        row = explorer.locator(".pmviz-choice-PRESENT").first
        row.locator("button:text-is('require')").click()
        page.wait_for_function(
            """([sel, old]) => {
                const t = document.querySelector(sel);
                return t && t.innerText !== old;
            }""",
            arg=[f"{EXPLORER} .pmviz-kernel-fields", before_fields],
            timeout=30_000,
        )
        page.wait_for_function(
            """([sel, old]) => {
                const i = document.querySelector(sel);
                return i && i.getAttribute('src') !== old;
            }""",
            arg=[f"{EXPLORER} .widget-image", before_src],
            timeout=30_000,
        )
        after_fields = fields.inner_text()
        assert "PRESENT" in after_fields.split("category_inverted")[0]
        assert "0x0008" in after_fields  # category_mask = PAGE_IS_PRESENT
        after_src = img.get_attribute("src")
        assert after_src != before_src
        # Both are real PNG images, not placeholders.
        for src in (before_src, after_src):
            assert src.startswith("data:image/png") or src.startswith("blob:")
        # JupyterLab breaks output <pre> lines anywhere ("retu / rned"); the snippets wrap on words.
        snippet = explorer.locator("details pre").first
        assert snippet.evaluate("e => getComputedStyle(e).wordBreak") == "normal"
        assert "mask = pmviz.Mask(" in snippet.inner_text()
        explorer.screenshot(path=str(ARTIFACTS / "mask-explorer.png"))
        page.screenshot(path=str(ARTIFACTS / "jupyterlab-04-mask-explorer.png"))
        errors = page.locator(
            f"{PANEL} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
        )
        tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]
        assert not tracebacks, tracebacks


@pytest.mark.timeout(240)
def test_capture_viewer_hover_readout_with_ipympl(tmp_path):
    """02-working-set-analysis ends with a CaptureViewer on ipympl's canvas: hovering it in
    the browser must fill the read-out (address, region, categories, VMA) from the kernel."""
    nb_dir = _copy_workspace(tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with JupyterLab(nb_dir, tmp_path / "lab") as lab, chromium_page() as page:
        _open_and_run(page, lab, "02-working-set-analysis.ipynb")
        viewer = page.locator(f"{PANEL} .pmviz-capture-viewer").first
        viewer.wait_for(timeout=60_000)
        canvas = viewer.locator(".jupyter-matplotlib-canvas-div canvas").first  # the image
        canvas.wait_for(timeout=30_000)
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
            arg=f"{PANEL} .pmviz-capture-viewer .jupyter-matplotlib-canvas-div canvas",
            timeout=30_000,
        )
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 200
        readout = viewer.locator(".pmviz-readout")
        # Sweep the plot area until the read-out names a VMA (some rows are collapsed gaps).
        for fy in (0.55, 0.7, 0.4, 0.8, 0.3):
            page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * fy)
            try:
                page.wait_for_function(
                    """(sel) => {
                        const t = document.querySelector(sel);
                        return t && /vma/.test(t.innerText);
                    }""",
                    arg=f"{PANEL} .pmviz-capture-viewer .pmviz-readout",
                    timeout=5_000,
                )
                break
            except Exception:  # noqa: BLE001 - try the next height
                continue
        text = readout.first.inner_text()
        assert "address" in text and "vma" in text and "snapshot" in text, text
        page.mouse.move(box["x"] - 40, box["y"] - 40)  # leave the canvas: toolbar fades out
        page.wait_for_timeout(1000)
        viewer.screenshot(path=str(ARTIFACTS / "capture-viewer-ipympl.png"))
