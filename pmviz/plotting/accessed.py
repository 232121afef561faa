"""Plots of accessed working sets: WSS beside written and resident, idle ages, damo's heatmap."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes

from ..analysis.accessed import (
    AccessedWss,
    AccessIdleAge,
    AccessSeries,
    access_heatmap_grid,
    access_idle_age,
    accessed_wss,
)
from ..analysis.heatmap import HeatmapGrid
from ..capture import Capture
from ._style import CATEGORY_COLORS, get_ax, set_byte_axis
from .heatmap import heatmap

__all__ = ["accessed_wss_lines", "access_idle_histogram", "access_heatmap"]

ACCESSED_COLOR = "#2ca02c"


def accessed_wss_lines(
    data: AccessedWss | AccessSeries | Capture, *, ax: Axes | None = None, **kwargs: Any
) -> list:
    """Accessed bytes per interval (with its 95 % band for probes), written and resident.

    Parameters
    ----------
    data : AccessedWss, AccessSeries or Capture
        A capture recorded with ``accessed=`` draws its written and resident lines too.
    **kwargs
        Passed to the ``Axes.plot`` of the accessed line.

    Returns
    -------
    list
        The accessed ``Line2D``, then its band (``PolyCollection``) when it has one, then the
        written and resident lines that have data.
    """
    w = data if isinstance(data, AccessedWss) else accessed_wss(data)
    ax = get_ax(ax)
    kwargs.setdefault("color", ACCESSED_COLOR)
    (line,) = ax.plot(
        w.time, w.accessed, drawstyle="steps-post", label=f"accessed ({w.kind})", **kwargs
    )
    out: list = [line]
    if w.kind == "probe":
        out.append(
            ax.fill_between(
                w.time,
                w.accessed_lo,
                w.accessed_hi,
                step="post",
                color=line.get_color(),
                alpha=0.2,
                lw=0,
                label="95 % interval",
            )
        )
    for name, values, style in (("written", w.written, "-"), ("resident", w.resident, "--")):
        if np.isfinite(values).any():
            (other,) = ax.plot(
                w.time,
                values,
                drawstyle="steps-post",
                ls=style,
                color=CATEGORY_COLORS["written" if name == "written" else "present"],
                label=name,
            )
            out.append(other)
    set_byte_axis(ax.yaxis)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("bytes per interval")
    ax.set_title("accessed vs written working set")
    ax.legend(fontsize="small", frameon=False)
    return out


def access_idle_histogram(
    data: AccessIdleAge | AccessSeries | Capture, *, ax: Axes | None = None, **kwargs: Any
):
    """Resident bytes by samples since last access, plus a hatched never-accessed bar.

    Returns
    -------
    matplotlib.container.BarContainer
    """
    it = data if isinstance(data, AccessIdleAge) else access_idle_age(data)
    ax = get_ax(ax)
    x = np.append(it.ages, it.ages.size)
    h = np.append(it.bytes, it.never)
    kwargs.setdefault("color", [ACCESSED_COLOR] * it.ages.size + ["#bbbbbb"])
    bars = ax.bar(x, h, width=0.9, **kwargs)
    bars[-1].set_hatch("//")
    n = it.ages.size
    ticks = np.unique(np.linspace(0, n - 1, min(8, n)).round().astype(int))
    ticks = ticks[(ticks == 0) | (ticks < n - max(1, n // 12))]  # room for the "never" label
    ax.set_xticks(np.append(ticks, x[-1]), [f"{t}" for t in ticks] + ["never"])
    set_byte_axis(ax.yaxis)
    ax.set_xlabel(f"intervals since last access (interval {it.interval_s:g} s)")
    ax.set_ylabel("resident bytes")
    ax.set_title(f"idle age at sample {it.at}")
    return bars


def access_heatmap(
    data: HeatmapGrid | AccessSeries | Capture, *, ax: Axes | None = None, **kwargs: Any
):
    """Damo's access-frequency heatmap, on the address axis of every other heatmap.

    ``data`` is a grid from ``access_heatmap_grid``, or a series or a capture recorded with
    ``accessed=`` to bin (default arguments).
    ``**kwargs`` go to :func:`pmviz.plotting.heatmap`.

    Returns
    -------
    matplotlib.collections.QuadMesh
    """
    g = data if isinstance(data, HeatmapGrid) else access_heatmap_grid(data)
    kwargs.setdefault("title", "accessed pages (fraction per interval)")
    kwargs.setdefault("cmap", "magma")
    return heatmap(g, ax=ax, **kwargs)
