"""Playwright helpers for JupyterLab 4 in Debian's chromium (never ``playwright install``)."""

from __future__ import annotations

from contextlib import contextmanager

CHROMIUM = "/usr/bin/chromium"
# Quiet, offline-friendly flags (browser_testing.md, "What works").
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

# Trap 5: with several notebooks open only the visible panel counts.
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"


@contextmanager
def chromium_page(*, width: int = 1400, height: int = 2000):
    """A fresh page in headless chromium; a tall viewport because of trap 4."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            yield page
        finally:
            browser.close()


def wait_kernel_idle(page, timeout_ms: int = 60_000) -> None:
    """Trap 1: the toolbar says idle before a kernel exists; the status bar does not.

    The status bar reads ``<kernel display name> | Idle`` (any kernelspec the notebook names).
    """
    page.wait_for_selector(".jp-StatusBar-TextItem:has-text('| Idle')", timeout=timeout_ms)


def run_all_cells(page) -> None:
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")


def wait_all_executed(page, timeout_ms: int = 120_000) -> None:
    """Wait until every code cell has an execution count (no ``[ ]:`` or ``[*]:`` left)."""
    page.wait_for_function(
        """(panel) => {
            const prompts = [...document.querySelectorAll(panel + ' .jp-CodeCell .jp-InputArea-prompt')];
            return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""",
        arg=PANEL,
        timeout=timeout_ms,
    )


# Error outputs and stderr streams both render with this MIME type in JupyterLab 4.
STDERR = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"


def wait_run_finished(page, timeout_ms: int = 180_000) -> None:
    """Wait until every code cell ran, or a cell failed (Run All stops at the first error)."""
    page.wait_for_function(
        """([panel, stderr]) => {
            const prompts = [...document.querySelectorAll(panel + ' .jp-CodeCell .jp-InputArea-prompt')];
            const done = prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
            const failed = [...document.querySelectorAll(panel + ' ' + stderr)]
                .some(e => /Traceback|Error:/.test(e.innerText))
                && !prompts.some(p => /\\[\\*\\]/.test(p.textContent));
            return done || failed;
        }""",
        arg=[PANEL, STDERR],
        timeout=timeout_ms,
    )


def error_outputs(page) -> list[str]:
    """Texts of the visible notebook's outputs that are errors (tracebacks, ``...Error:``)."""
    texts = page.locator(f"{PANEL} {STDERR}").all_inner_texts()
    return [t for t in texts if "Traceback" in t or "Error:" in t]


def unexecuted_cells(page) -> int:
    """Code cells of the visible notebook without an execution count."""
    return page.evaluate(
        """(panel) => [...document.querySelectorAll(panel + ' .jp-CodeCell .jp-InputArea-prompt')]
            .filter(p => !/\\[\\d+\\]/.test(p.textContent)).length""",
        PANEL,
    )
