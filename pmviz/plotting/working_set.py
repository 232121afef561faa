"""Working-set plots: stacked bytes per VMA kind, WSS curves, idle-time histograms."""

from __future__ import annotations

from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes

from ..analysis.working_set import (
    IdleTime,
    Temperature,
    WorkingSet,
    WssCurve,
    idle_time,
    working_set_size,
    wss_curve,
)
from ..capture import Capture
from ._marks import draw_marks
from ._style import KIND_COLORS, get_ax, set_byte_axis

__all__ = ["working_set", "wss", "idle_histogram", "temperature_bars"]


def working_set(
    data: WorkingSet | Capture,
    *,
    ax: Axes | None = None,
    metric: str = "resident",
    legend: bool = True,
    **kwargs: Any,
) -> list:
    """Stacked area of ``metric`` bytes over time, one layer per VMA kind.

    A capture's marks (``pmviz.mark``) are drawn on the time axis.

    Parameters
    ----------
    data : WorkingSet or Capture
    metric : {"resident", "swapped", "written"}
    **kwargs
        Passed to ``Axes.stackplot``.

    Returns
    -------
    list of matplotlib.collections.PolyCollection
        One per VMA kind that has any bytes (its label is the kind).
    """
    ws = working_set_size(data) if isinstance(data, Capture) else data
    if metric not in ("resident", "swapped", "written"):
        raise ValueError(f"metric must be 'resident', 'swapped' or 'written', got {metric!r}")
    by_kind = getattr(ws, f"{metric}_by_kind")
    if by_kind is None:
        raise ValueError("this capture has no written sets; plot 'resident' or 'swapped'")
    ax = get_ax(ax)
    used = np.flatnonzero(by_kind.sum(axis=0) > 0)
    labels = [ws.kinds[i] for i in used]
    kwargs.setdefault("colors", [KIND_COLORS.get(k, "#999999") for k in labels])
    kwargs.setdefault("step", "post")
    polys = ax.stackplot(ws.time, *(by_kind[:, i] for i in used), labels=labels, **kwargs)
    set_byte_axis(ax.yaxis)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"{metric} bytes")
    ax.set_title(f"{metric} memory by VMA kind")
    if isinstance(data, Capture):
        draw_marks(ax, data)
    if legend and labels:
        ax.legend(loc="upper left", fontsize="small", frameon=False)
    return polys


def wss(data: WssCurve | Capture, *, ax: Axes | None = None, **kwargs: Any) -> list:
    """The write working-set curve: one line per window length (and a capture's marks).

    Returns
    -------
    list of matplotlib.lines.Line2D
    """
    curve = wss_curve(data) if isinstance(data, Capture) else data
    ax = get_ax(ax)
    lines = []
    cmap = matplotlib.colormaps["viridis"]
    for j, k in enumerate(curve.windows.tolist()):
        color = cmap(j / max(1, curve.windows.size - 1))
        (line,) = ax.plot(
            curve.time,
            curve.bytes[j],
            drawstyle="steps-post",
            color=color,
            label=f"{k} interval{'s' if k > 1 else ''} ({k * curve.interval_s:g} s)",
            **kwargs,
        )
        lines.append(line)
    set_byte_axis(ax.yaxis)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("distinct bytes written")
    ax.set_title("write working set over sliding windows")
    if isinstance(data, Capture):
        draw_marks(ax, data)
    ax.legend(fontsize="small", frameon=False, title="window")
    return lines


def idle_histogram(
    data: IdleTime | Capture, *, ax: Axes | None = None, max_bars: int = 200, **kwargs: Any
):
    """Bytes by intervals since last write (plus a hatched bar for never written).

    A long capture's intervals are grouped, ``ceil(n / max_bars)`` per bar, so that drawing
    costs what the pixels can show (10,000 single-interval bars took seconds).

    Returns
    -------
    matplotlib.container.BarContainer
        Bars of consecutive intervals since last write (``0 .. at``), then the never-written
        bar.
    """
    it = idle_time(data) if isinstance(data, Capture) else data
    ax = get_ax(ax)
    n = it.intervals.size
    w = max(1, -(-n // max(int(max_bars), 1)))
    starts = np.arange(0, n, w)
    grouped = np.add.reduceat(it.bytes, starts) if n else np.empty(0, it.bytes.dtype)
    x = np.append(starts + (w - 1) / 2, n + (w - 1) / 2)
    h = np.append(grouped, it.never)
    kwargs.setdefault("color", ["#d62728"] * starts.size + ["#bbbbbb"])
    bars = ax.bar(x, h, width=0.9 * w, **kwargs)
    bars[-1].set_hatch("//")
    ticks = np.unique(np.linspace(0, n - 1, min(8, n)).round().astype(int))
    ticks = ticks[(ticks < n - 1 - n // 10) | (ticks == 0)]  # room for the "never" label
    ax.set_xticks(np.append(ticks, x[-1]), [f"{t}" for t in ticks] + ["never"])
    set_byte_axis(ax.yaxis)
    per = f", {w} per bar" if w > 1 else ""
    ax.set_xlabel(f"intervals since last write (interval {it.interval_s:g} s{per})")
    ax.set_ylabel("bytes")
    ax.set_title(f"page idle time at snapshot {it.at}")
    return bars


def temperature_bars(t: Temperature, *, ax: Axes | None = None, top: int = 12, **kwargs: Any):
    """Hot / warm / cold bytes per VMA label, the ``top`` largest (horizontal bars).

    Returns
    -------
    list of matplotlib.container.BarContainer
        cold, warm, hot.
    """
    ax = get_ax(ax)
    # One bar per label: a library's or the heap's several VMAs add up.
    names, inv = np.unique(np.array(t.vma_labels, dtype=object), return_inverse=True)
    per = np.zeros((names.size, 3), dtype=np.int64)
    np.add.at(per, inv, t.vma_bytes)
    total = per.sum(axis=1)
    idx = np.argsort(total, kind="stable")[::-1][:top]
    idx = idx[total[idx] > 0][::-1]
    y = np.arange(idx.size)
    left = np.zeros(idx.size)
    out = []
    for j, (name, color) in enumerate(
        (("cold", "#4c72b0"), ("warm", "#dd8452"), ("hot", "#c44e52"))
    ):
        out.append(ax.barh(y, per[idx, j], left=left, color=color, label=name, **kwargs))
        left += per[idx, j]
    ax.set_yticks(y, [str(names[i]) for i in idx])
    set_byte_axis(ax.xaxis)
    ax.set_title(f"resident pages by write frequency (last {t.window} intervals)")
    # Lower right: the largest bar is on top and the small ones at the bottom are short.
    ax.legend(frameon=False, fontsize="small", loc="lower right")
    return out
