"""Widget latency: how long a control change takes to recompute and redraw.

    python3 benchmarks/bench_widgets.py

For every bundled capture: the median time of a MaskExplorer control change (offline
``Mask.apply`` on every snapshot + ``heatmap_grid`` + PNG), against the target of 150 ms and
against a reference measured in the same run: redrawing the same picture from scratch
(a new ``pmviz.plotting.heatmap`` figure and PNG, what a naive widget does on every change).
Also the CaptureViewer: a category change, a colour-scale change, an address zoom (VMA
dropdown) and a snapshot-window change, each against the same reference (a naive widget
rebuilds the figure on every change); and a live-pid MaskExplorer rescan against a bare
``pmviz.scan`` of the same process.
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
from pmviz.maps import VmaKind
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


def viewer_change_ms(capture) -> dict[str, float]:
    """Median wall time of each kind of CaptureViewer change (PNG included)."""
    v = CaptureViewer(capture, interactive=False, category="present")
    n = len(capture)
    # Zoom targets: the largest VMAs the viewer draws (not guard or hidden shadow), each
    # zoomed into once — a first zoom, nothing cached — then back to the whole space.
    vmas = capture.vmas_at(-1)
    drawn = (vmas.kind != VmaKind.GUARD) & ~(
        (vmas.kind == VmaKind.SHADOW) & bool(v.hide_shadow.value)
    )
    order = [i for i in (vmas.end - vmas.start).argsort()[::-1].tolist() if drawn[i]]
    zooms = [(int(vmas.start[i]), int(vmas.end[i])) for i in order[: (REPEAT + 1) // 2]]

    def zoom(k: int) -> None:
        v.vma.value = zooms[(k // 2) % len(zooms)] if k % 2 == 0 else ()

    steps = {
        "category": lambda k: setattr(v.category, "value", ["file", "present"][k % 2]),
        "scale": lambda k: setattr(v.scale, "value", ["sqrt", "log", "linear"][k % 3]),
        "zoom": zoom,
        "window": lambda k: setattr(
            v.window, "value", (n // 4, n - 1) if k % 2 == 0 else (0, n - 1)
        ),
    }
    return {name: median_ms(step) for name, step in steps.items()}


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
          "full redraw reference (ms) | ratio |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    worst = 0.0
    viewer = {}
    for path in SAMPLES:
        cap = pmviz.open(path)
        ex_ms, _ = explorer_change_ms(cap)
        ref_ms = reference_full_redraw_ms(cap)
        viewer[path.stem] = (viewer_change_ms(cap), ref_ms)
        worst = max(worst, ex_ms)
        print(f"| {path.stem} | {len(cap)} | {cap.n_regions:,} | {ex_ms:.0f} | ≤ 150 | "
              f"{ref_ms:.0f} | {ex_ms / ref_ms:.2f} |")  # fmt: skip
    kinds = ["category", "scale", "zoom", "window"]
    print("\nCaptureViewer change (ms; in parentheses: / the full redraw reference above)\n")
    print("| capture | " + " | ".join(kinds) + " | target |")
    print("|---|" + "---:|" * (len(kinds) + 1))
    worst_cv = 0.0
    for stem, (ms, ref_ms) in viewer.items():
        worst_cv = max(worst_cv, *ms.values())
        cells = " | ".join(f"{ms[k]:.0f} ({ms[k] / ref_ms:.2f})" for k in kinds)
        print(f"| {stem} | {cells} | ≤ 150 |")
    w, b = live_ms()
    print(
        f"\nLive pid (this process): MaskExplorer change {w:.0f} ms, of which a bare "
        f"pmviz.scan with the mask takes {b:.1f} ms ({b / w:.0%})."
    )
    print(
        f"\nWorst MaskExplorer change: {worst:.0f} ms "
        f"({'meets' if worst <= 150 else 'MISSES'} the 150 ms target); worst CaptureViewer "
        f"change: {worst_cv:.0f} ms ({'meets' if worst_cv <= 150 else 'MISSES'} it)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
