"""Every notebook runs top to bottom on the bundled data; key outputs are checked.

Executed with nbclient in a kernel whose environment has no ``MPLBACKEND`` (an inherited
``Agg`` silently removes inline figures: browser_testing.md, trap 2), with the notebooks'
own directory as the working directory, as JupyterLab runs them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(p.name for p in NB_DIR.glob("*.ipynb"))

pytestmark = pytest.mark.notebook

_executed: dict[str, object] = {}


def execute(name: str):
    """Run a notebook once per session (several tests look at the same run)."""
    if name not in _executed:
        nb = nbformat.read(NB_DIR / name, as_version=4)
        saved = os.environ.pop("MPLBACKEND", None)
        try:
            client = nbclient.NotebookClient(
                nb,
                timeout=90,
                kernel_name="python3",
                resources={"metadata": {"path": str(NB_DIR)}},
            )
            client.execute()
        finally:
            if saved is not None:
                os.environ["MPLBACKEND"] = saved
        _executed[name] = nb
    return _executed[name]


def outputs(nb, kind: str | None = None):
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            if kind is None or kind in out.get("data", {}):
                yield out


def stdout(nb) -> str:
    return "".join(
        o.text for c in nb.cells if c.cell_type == "code" for o in c.outputs
        if o.output_type == "stream" and o.name == "stdout"
    )  # fmt: skip


def number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not found in:\n{text}"
    return float(m.group(1).replace(",", ""))


# -- every notebook --------------------------------------------------------------------------
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stripped_in_git(name):
    raw = json.loads((NB_DIR / name).read_text())
    for cell in raw["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{name}: a cell has outputs"
            assert cell["execution_count"] is None, f"{name}: a cell has an execution count"


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_and_draws(name):
    nb = execute(name)
    errors = [o for o in outputs(nb) if o.output_type == "error"]
    assert not errors, errors
    stderr = [
        o.text for c in nb.cells if c.cell_type == "code" for o in c.outputs
        if o.output_type == "stream" and o.name == "stderr" and "Traceback" in o.text
    ]  # fmt: skip
    assert not stderr
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code_cells)
    assert len(list(outputs(nb, "image/png"))) >= 1, f"{name} drew no inline figure"


# -- key outputs, per notebook ---------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.kernel
def test_quickstart_numbers():
    nb = execute("01-quickstart.ipynb")
    out = stdout(nb)
    # 96 MiB written front to back: resident grows by that much (plus interpreter noise).
    assert 90 <= number(r"resident grew by (\d+) MiB", out) <= 140
    assert "write tracking: uffd-wp" in out
    assert number(r"([\d,]+) regions;", out) > 10
    assert len(list(outputs(nb, "image/png"))) == 2
    assert len(list(outputs(nb, "application/vnd.jupyter.widget-view+json"))) == 1


@pytest.mark.slow
@pytest.mark.kernel
def test_mask_explorer_notebook_numbers():
    nb = execute("04-mask-explorer.ipynb")
    out = stdout(nb)
    assert "offline Mask.apply == live PAGEMAP_SCAN for all masks tried" in out
    assert "category_inverted=0x004, category_mask=0x004" in out  # exclude FILE
    assert ".category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED" in out
    share = number(r"resident \((\d+)%\)", out)
    assert 30 <= share <= 100  # redis: most resident memory is anonymous heap
    assert number(r"max_pages=  100:\s+1 regions,\s+(\d+) pages", out) == 100
    widgets = list(outputs(nb, "application/vnd.jupyter.widget-view+json"))
    assert len(widgets) == 1
