"""Widget latency: how long a control change takes to recompute and redraw.

    python3 benchmarks/bench_widgets.py

For every bundled capture: the median time of a MaskExplorer control change (offline
``Mask.apply`` on every snapshot + ``heatmap_grid`` + PNG), against the target of 150 ms and
against a reference measured in the same run: redrawing the same picture from scratch
(a new ``pmviz.plotting.heatmap`` figure and PNG, what a naive widget does on every change).
Also the CaptureViewer redraw on a category change, and a live-pid MaskExplorer rescan
against a bare ``pmviz.scan`` of the same process.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

from matplotlib.figure import Figure

import pmviz
from pmviz import Category as C
from pmviz.widgets import CaptureViewer, MaskExplorer
from pmviz.widgets._controls import figure_png
from pmviz.widgets._render import draw_capture, masked_capture

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "sample_data").glob("*.pmviz"))
REPEAT = 9
TOGGLES = [(C.PRESENT, "require"), (C.PRESENT, "ignore"), (C.FILE, "exclude"), (C.FILE, "ignore")]


def median_ms(fn, repeat: int = REPEAT) -> float:
    times = []
    for k in range(repeat):
        t0 = time.perf_counter()
        fn(k)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def explorer_change_ms(capture) -> tuple[float, int]:
    ex = MaskExplorer(capture)
    seen = []

    def change(k: int) -> None:
        cat, value = TOGGLES[k % len(TOGGLES)]
        ex.controls.choices[cat].value = value
        seen.append(ex.last_update_s)

    wall = median_ms(change)
    return wall, len(ex.image.value)


def reference_full_redraw_ms(capture) -> float:
    capture.regions  # noqa: B018 - load once, as the widget does

    def redraw(k: int) -> None:
        cat, value = TOGGLES[k % len(TOGGLES)]
        mask = pmviz.Mask(require=C.PRESENT) if value == "require" else pmviz.Mask()
        fig = Figure(figsize=(10, 4), layout="constrained")
        ax = fig.add_subplot()
        draw_capture(ax, masked_capture(capture, mask), category=pmviz.Mask())
        figure_png(fig)

    return median_ms(redraw)


def viewer_change_ms(capture) -> float:
    v = CaptureViewer(capture, interactive=False, category="present")
    cats = ["file", "present"]

    def change(k: int) -> None:
        v.category.value = cats[k % 2]

    return median_ms(change)


def live_ms() -> tuple[float, float]:
    pid = os.getpid()
    ex = MaskExplorer(pid)

    def change(k: int) -> None:
        cat, value = TOGGLES[k % len(TOGGLES)]
        ex.controls.choices[cat].value = value

    widget = median_ms(change)
    bare = median_ms(lambda k: pmviz.scan(pid, mask=pmviz.Mask(require=C.PRESENT)))
    return widget, bare


def main() -> int:
    print(f"# bench_widgets  (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)\n")
    print("| capture | snapshots | regions | MaskExplorer change (ms) | target | "
          "full redraw reference (ms) | ratio | CaptureViewer change (ms) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    worst = 0.0
    for path in SAMPLES:
        cap = pmviz.open(path)
        ex_ms, _ = explorer_change_ms(cap)
        ref_ms = reference_full_redraw_ms(cap)
        cv_ms = viewer_change_ms(cap)
        worst = max(worst, ex_ms)
        print(f"| {path.stem} | {len(cap)} | {cap.n_regions:,} | {ex_ms:.0f} | ≤ 150 | "
              f"{ref_ms:.0f} | {ex_ms / ref_ms:.2f} | {cv_ms:.0f} |")  # fmt: skip
    w, b = live_ms()
    print(
        f"\nLive pid (this process): MaskExplorer change {w:.0f} ms, of which a bare "
        f"pmviz.scan with the mask takes {b:.1f} ms ({b / w:.0%})."
    )
    print(
        f"\nWorst MaskExplorer change: {worst:.0f} ms "
        f"({'meets' if worst <= 150 else 'MISSES'} the 150 ms target)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
