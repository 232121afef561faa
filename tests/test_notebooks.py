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
from jupyter_kernel import pmviz_kernel

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
                kernel_name=pmviz_kernel(),
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


@pytest.mark.slow
def test_working_set_notebook_numbers():
    nb = execute("02-working-set-analysis.ipynb")
    out = stdout(nb)
    # numpy workload: a 64 MiB array plus a 16 MiB sorted copy, interpreter and libraries.
    assert 80 <= number(r"peak resident\s+([\d.]+) MiB", out) <= 200
    assert 64 <= number(r"distinct bytes written in the whole run: ([\d.]+) MiB", out) <= 160
    # the hot loop rewrites a 4 MiB window (plus a few cold pages) every interval
    assert 3.5 <= number(r"late in the run: ([\d.]+) MiB", out) <= 6
    assert number(r"hot ([\d.]+) MiB", out) >= 3.5
    assert number(r"under load, ([\d.]+) MiB when idle", out) < 2
    # redis GET (accessed="vma"): a large accessed set, a small written one
    accessed = number(r"redis GET: ([\d.]+) MiB accessed per interval", out)
    written = number(r"MiB accessed per interval, ([\d.]+) MiB written", out)
    assert accessed >= 20 and written < 4 and accessed > 8 * written
    assert number(r"read but not written: ([\d.]+) MiB", out) >= 10
    assert len(list(outputs(nb, "image/png"))) == 7


@pytest.mark.slow
def test_sanitizer_notebook_numbers():
    nb = execute("03-sanitizer-shadow-sparsity.ipynb")
    out = stdout(nb)
    assert "sanitizer detected from the layout: asan" in out
    assert 19.9 <= number(r"reserving ([\d.]+) TiB", out) <= 20.1
    shadow_mib = number(r"of which ([\d.]+) MiB shadow", out)
    assert 1 <= shadow_mib <= 64  # a few MiB of 16 TiB
    assert number(r"=> ([\d,]+)x less data", out) > 1e6
    assert number(r"page_region entries\s+(\d+)", out) < 1000
    assert len(list(outputs(nb, "image/png"))) == 4


@pytest.mark.slow
@pytest.mark.kernel
def test_live_migration_notebook_numbers():
    nb = execute("05-live-migration.ipynb")
    out = stdout(nb)
    # Units: byte rates with the link's nominal speed once (e.g. "119 MiB/s (1 Gbit/s)").
    assert "1.16 GiB/s (10 Gbit/s)" in out and "converged" in out
    assert "11.9 MiB/s (100 Mbit/s)" in out and "at 119 MiB/s (1 Gbit/s):" in out
    # The live recording: the workload sleeps 3.3 s in all, so its schedule has >= 33 ticks
    # at 100 ms. On a loaded machine (a LiveView redraw, other test suites) a snapshot can
    # overrun its tick and the recorder skips ticks instead of drifting: how many snapshots
    # there are depends on the machine, snapshots + skipped ticks does not.
    line = re.search(r"recorded .*", out)
    assert line, f"no 'recorded ...' line in:\n{out}"
    n = number(r"recorded (\d+) snapshots \(uffd-wp\)", out)
    skipped = number(r"(\d+) ticks skipped", out)
    span = number(r"over ([\d.]+) s", out)
    assert "end: target exited with status 0" in out, (
        f"the recording did not end with the workload's exit: {line.group(0)}"
    )
    assert n + skipped >= 30 and span >= 3.0, (
        f"the recording does not cover the workload's ~3.3 s of sleeps: {line.group(0)}"
    )
    assert n >= 3, f"too few snapshots to draw ({line.group(0)})"
    assert len(list(outputs(nb, "image/png"))) == 4
    assert len(list(outputs(nb, "application/vnd.jupyter.widget-view+json"))) == 1


@pytest.mark.slow
def test_fleet_notebook_numbers():
    nb = execute("07-fleet.ipynb")
    out = stdout(nb)
    assert number(r"(\d+) captures", out) == 16
    assert "failed: 0" in out
    assert "SQL peaks equal the summaries: True" in out
    # numpy sorting 128 MiB of float64 (plus its sorted copy) is the largest working set
    assert re.search(r"numpy\s+4\s+\d+", out)
    assert len(list(outputs(nb, "image/png"))) == 2
    assert any("pmviz-fleet-top" in o["data"]["text/html"] for o in outputs(nb, "text/html"))


@pytest.mark.slow
def test_process_trees_notebook_numbers():
    nb = execute("06-process-trees.ipynb")
    out = stdout(nb)
    # A pool of three workers over a 16 MiB shared block: the naive sum of RSS counts the
    # shared block, the inherited interpreter and the parent's array once per process.
    assert number(r"at t = [\d.]+ s, (\d+) processes", out) == 5
    counted = number(r"counted once\s+([\d.]+) MiB", out)
    rss = number(r"sum of RSS\s+([\d.]+) MiB", out)
    pss = number(r"sum of PSS\s+([\d.]+) MiB", out)
    assert 40 <= counted <= 200 and pss < counted < rss
    assert number(r"the naive sum counts ([\d.]+)x", out) >= 1.5
    # every worker wrote its private 4 MiB array (the shared block is not write-tracked)
    for pid in (1002, 1003, 1004):
        assert 4 <= number(rf"process {pid}:\s+([\d.]+) MiB written", out) <= 40
    html = "".join(o["data"]["text/html"] for o in outputs(nb, "text/html"))
    assert "ProcessTree" in html and "padding-left:1.2em" in html and "TreeTotals" in html
    assert len(list(outputs(nb, "image/png"))) == 6
