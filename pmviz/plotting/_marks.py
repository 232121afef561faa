"""Marks (``pmviz.mark("sort")``) on a plot's time axis: thin lines with their labels."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.transforms import blended_transform_factory

from ..capture import Capture
from ..marks import capture_marks

__all__ = ["draw_marks"]

MARK_COLOR = "#2b2b2b"


def draw_marks(
    ax: Axes,
    capture: Capture,
    *,
    axis: str = "x",
    color: str = MARK_COLOR,
    min_separation: float = 0.04,
    within: tuple[float, float] | None = None,
    **kwargs: Any,
) -> list[Artist]:
    """Draw a capture's marks on the time axis of ``ax``, where they fall inside the view.

    Time is seconds since the capture's first snapshot (as every pmviz plot has it). Each mark
    is a thin dashed line across the plot; its label sits at the top (``axis="x"``) or the
    right (``axis="y"``) edge, along the line, after it (before it near the end of the view). Labels of marks closer than
    ``min_separation`` (a fraction of the visible time span) to the previous labelled mark
    are joined to that label instead of printed over it.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    capture : Capture
        Its marks (``capture.marks``, see ``pmviz.marks.capture_marks``) and first snapshot
        time.
    axis : {"x", "y"}
        Which axis of ``ax`` is time.
    color : str
    min_separation : float
    within : (float, float), optional
        The time span (seconds) whose marks are drawn; default the current view. A plot
        whose view zooms later (a widget) passes the whole capture's span.
    **kwargs
        Passed to ``Axes.axvline`` / ``Axes.axhline``.

    Returns
    -------
    list of matplotlib.artist.Artist
        The lines, then the labels.
    """
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    marks = capture_marks(capture)
    if not marks or not capture.n_snapshots:
        return []
    t0 = int(capture.time_ns[0])
    times = (np.array([m.time_ns for m in marks], dtype=np.int64) - t0) / 1e9
    lo, hi = sorted(within or (ax.get_xlim() if axis == "x" else ax.get_ylim()))
    span = max(hi - lo, 1e-12)
    kwargs.setdefault("lw", 0.8)
    kwargs.setdefault("ls", (0, (4, 2)))
    kwargs.setdefault("alpha", 0.9)
    lines: list[Artist] = []
    groups: list[tuple[float, list[str]]] = []
    for t, m in zip(times.tolist(), marks):
        if not lo <= t <= hi:
            continue
        line = ax.axvline if axis == "x" else ax.axhline
        lines.append(line(t, color=color, **kwargs))
        if groups and t - groups[-1][0] < min_separation * span:
            groups[-1][1].append(m.label)
        else:
            groups.append((t, [m.label]))
    texts: list[Artist] = []
    for t, labels in groups:
        text = ", ".join(labels)
        # beside the line, on the side with room (a mark near the end of the view: before it)
        late = t > lo + 0.85 * span
        if axis == "x":
            trans = blended_transform_factory(ax.transData, ax.transAxes)
            xy, rot, ha, va = (t, 0.99), 90, "right" if late else "left", "top"
        else:
            trans = blended_transform_factory(ax.transAxes, ax.transData)
            xy, rot, ha, va = (0.99, t), 0, "right", "top" if late else "bottom"
        texts.append(
            ax.text(
                *xy,
                text,
                transform=trans,
                rotation=rot,
                ha=ha,
                va=va,
                fontsize="x-small",
                color=color,
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.75),
                clip_on=True,
            )
        )
    return lines + texts
