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


@pytest.mark.timeout(240)
def test_mask_explorer_in_jupyterlab(tmp_path):
    nb_dir = _copy_workspace(tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with JupyterLab(nb_dir, tmp_path / "lab") as lab, chromium_page() as page:
        page.goto(lab.url(f"lab/tree/{NOTEBOOK}"))
        page.wait_for_selector(f"{PANEL} .jp-Cell", timeout=60_000)
        wait_kernel_idle(page)
        run_all_cells(page)
        wait_all_executed(page)
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
        explorer.screenshot(path=str(ARTIFACTS / "mask-explorer.png"))
        page.screenshot(path=str(ARTIFACTS / "jupyterlab-04-mask-explorer.png"))
        errors = page.locator(
            f"{PANEL} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
        )
        tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]
        assert not tracebacks, tracebacks
