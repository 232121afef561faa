"""Address-space heatmaps: time on x, address on y (unmapped gaps collapsed), colour = fraction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib
import matplotlib.colors as mcolors
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import QuadMesh
from matplotlib.patches import Patch, Rectangle
from matplotlib.transforms import blended_transform_factory

from .._intervals import concat_aranges
from ..analysis.axis import AddressAxis, address_axis
from ..analysis.heatmap import HeatmapGrid, heatmap_grid
from ..capture import Capture
from ..maps import VmaKind
from ._style import KIND_COLORS, category_cmap, category_color, get_ax, hex_formatter

__all__ = ["heatmap", "composite_heatmap", "decorate_address_axis", "address_ticks"]

_KIND_NAMES = [k.name.lower() for k in VmaKind]


def _grid(data: HeatmapGrid | Capture, category: Any, grid_kw: dict[str, Any]) -> HeatmapGrid:
    if isinstance(data, HeatmapGrid):
        return data
    if isinstance(data, Capture):
        return heatmap_grid(data, category, **grid_kw)
    raise TypeError(f"expected a HeatmapGrid or a Capture, got {type(data).__name__}")


def heatmap(
    data: HeatmapGrid | Capture,
    category: Any = "present",
    *,
    ax: Axes | None = None,
    time_bins: int | None = None,
    addr_bins: int = 512,
    addr_range: tuple[int, int] | None = None,
    time_range: tuple[float | None, float | None] | None = None,
    axis: str | AddressAxis = "compact",
    cmap: str | mcolors.Colormap | None = None,
    colorbar: bool = True,
    bands: bool = True,
    title: str | None = None,
    **kwargs: Any,
) -> QuadMesh:
    """Draw an address-space heatmap.

    Parameters
    ----------
    data : HeatmapGrid or Capture
        A grid from ``pmviz.analysis.heatmap_grid``, or a capture to bin with the grid
        arguments below (``category``, ``time_bins``, ``addr_bins``, ``addr_range``,
        ``time_range``, ``axis``; ignored for a grid).
    ax : matplotlib.axes.Axes, optional
        Where to draw (default the current Axes).
    cmap : str or Colormap, optional
        Default per category (written: inferno, present: viridis, swapped: cividis).
    colorbar : bool
        Add a colour bar for the fraction.
    bands : bool
        Mark segment boundaries (collapsed gaps) and label VMA bands on the right.
    title : str, optional
    **kwargs
        Passed to ``Axes.pcolormesh``.

    Returns
    -------
    matplotlib.collections.QuadMesh
        ``get_array()`` is ``grid.T`` (address bins x time bins), NaN masked.

    Examples
    --------
    >>> import matplotlib.pyplot as plt, pmviz, pmviz.plotting as pp
    >>> cap = pmviz.open("sample_data/numpy-workload.pmviz")  # doctest: +SKIP
    >>> fig, ax = plt.subplots(figsize=(12, 6))  # doctest: +SKIP
    >>> mesh = pp.heatmap(cap, "written", ax=ax, time_range=(1, 3))  # doctest: +SKIP
    """
    g = _grid(
        data,
        category,
        dict(
            time_bins=time_bins,
            addr_bins=addr_bins,
            addr_range=addr_range,
            time_range=time_range,
            axis=axis,
        ),
    )
    ax = get_ax(ax)
    cm = (
        cmap
        if isinstance(cmap, mcolors.Colormap)
        else matplotlib.colormaps[cmap or category_cmap(g.category)]
    ).with_extremes(bad="#eeeeee")
    kwargs.setdefault("vmin", 0.0)
    kwargs.setdefault("vmax", 1.0)
    kwargs.setdefault("shading", "flat")
    kwargs.setdefault("rasterized", True)
    mesh = ax.pcolormesh(
        g.time_edges, g.addr_pos, np.ma.masked_invalid(g.grid.T), cmap=cm, **kwargs
    )
    if colorbar:
        cb = ax.figure.colorbar(mesh, ax=ax, pad=0.09 if bands else 0.02)
        cb.set_label(f"fraction of pages {g.category}")
    decorate_address_axis(ax, g, bands=bands)
    ax.set_xlabel("time (s)")
    ax.set_title(title if title is not None else f"{g.category} pages")
    return mesh


def composite_heatmap(
    capture: Capture,
    categories: Sequence[Any] = ("written", "present", "swapped"),
    *,
    ax: Axes | None = None,
    colors: Sequence[str] | None = None,
    time_bins: int | None = None,
    addr_bins: int = 512,
    addr_range: tuple[int, int] | None = None,
    time_range: tuple[float | None, float | None] | None = None,
    axis: str | AddressAxis = "compact",
    bands: bool = True,
    legend: bool = True,
    title: str | None = None,
    **kwargs: Any,
) -> QuadMesh:
    """Several categories at once, each in its colour with opacity = its fraction.

    Layers are composited with the first category on top (written over present over
    swapped by default: written pages are nearly always present too). Categories the capture
    lacks (``"written"`` without write tracking) are skipped.

    Returns
    -------
    matplotlib.collections.QuadMesh
        An RGBA mesh; ``pmviz_fractions`` holds the per-category grids it was made from.
    """
    ax = get_ax(ax)
    if not isinstance(axis, AddressAxis):  # one axis for every layer, built once
        axis = address_axis(capture, kind=axis, addr_range=addr_range)
    grids: list[HeatmapGrid] = []
    for c in categories:
        if isinstance(c, str) and c == "written" and not capture.has_written:
            continue
        grids.append(
            heatmap_grid(
                capture,
                c,
                time_bins=time_bins,
                addr_bins=addr_bins,
                addr_range=addr_range,
                time_range=time_range,
                axis=axis,
            )
        )
    if not grids:
        raise ValueError("none of the categories can be drawn from this capture")
    cols = list(colors) if colors is not None else [category_color(g.category) for g in grids]
    g0 = grids[0]
    rgb = np.ones(g0.grid.T.shape + (3,))
    for g, col in zip(grids[::-1], cols[::-1]):  # bottom layer first, "over" operator
        alpha = np.clip(np.nan_to_num(g.grid.T), 0.0, 1.0)[..., None]
        rgb = alpha * np.asarray(mcolors.to_rgb(col)) + (1.0 - alpha) * rgb
    rgba = np.concatenate([rgb, np.where(np.isnan(g0.grid.T), 0.0, 1.0)[..., None]], axis=2)
    kwargs.setdefault("shading", "flat")
    kwargs.setdefault("rasterized", True)
    mesh = ax.pcolormesh(g0.time_edges, g0.addr_pos, rgba, **kwargs)
    mesh.pmviz_fractions = {g.category: g.grid for g in grids}  # type: ignore[attr-defined]
    decorate_address_axis(ax, g0, bands=bands)
    if legend:
        ax.legend(
            handles=[Patch(color=c, label=g.category) for g, c in zip(grids, cols)],
            loc="upper center",
            bbox_to_anchor=(0.5, -0.14),
            ncol=len(grids),
            frameon=False,
        )
    ax.set_xlabel("time (s)")
    ax.set_title(title if title is not None else " / ".join(g.category for g in grids))
    return mesh


def address_ticks(axis: AddressAxis, lo: float, hi: float, *, max_ticks: int = 10) -> np.ndarray:
    """Tick positions at segment starts and at aligned addresses inside the segments.

    Within a segment ticks sit on multiples of a power of two, so labels read as round hex.
    Candidates closer than ``(hi - lo) / max_ticks`` to an earlier tick are dropped.
    """
    span = max(hi - lo, 1.0)
    step = 1 << max(12, int(np.ceil(np.log2(span / max_ticks))))
    ss, se, sp = axis.seg_start, axis.seg_end, axis.seg_pos
    # Aligned addresses inside each segment: a handful per segment, vectorised over segments.
    first = ((ss + np.uint64(step - 1)) // np.uint64(step)) * np.uint64(step)
    n = np.minimum(((se - first) // np.uint64(step)).astype(np.int64) + 1, max_ticks)
    n = np.where(first < se, n, 0)
    seg = np.repeat(np.arange(ss.size), n)
    k = concat_aranges(0, n)
    inner = sp[seg] + (first[seg] - ss[seg]).astype(np.int64) + k * step
    cand = np.unique(np.concatenate([sp, inner]).astype(np.float64))
    cand = cand[(cand >= lo) & (cand <= hi)]
    keep: list[float] = []
    for c in cand.tolist():  # a few dozen candidates at most
        if not keep or c - keep[-1] >= span / (max_ticks + 2):
            keep.append(c)
    return np.array(keep)


def decorate_address_axis(
    ax: Axes, g: HeatmapGrid, *, bands: bool = True, min_label_fraction: float = 0.025
) -> None:
    """Hex address ticks, gap markers and VMA band labels on the y axis of ``ax``."""
    axis = g.axis
    ax.set_ylim(float(g.addr_pos[0]), float(g.addr_pos[-1]))
    ax.set_yticks(address_ticks(axis, float(g.addr_pos[0]), float(g.addr_pos[-1])))
    ax.yaxis.set_major_formatter(hex_formatter(axis.to_real))
    collapsed = {
        "compact": " (unmapped gaps collapsed)",
        "occupied": " (empty stretches collapsed)",
    }
    ax.set_ylabel("address" + (collapsed.get(axis.kind, "") if axis.seg_start.size > 1 else ""))
    ax.tick_params(axis="y", labelsize="small")
    for t in ax.get_yticklabels():
        t.set_fontfamily("monospace")
    if not bands:
        return
    lo, hi = float(g.addr_pos[0]), float(g.addr_pos[-1])
    span = max(hi - lo, 1.0)
    # Collapsed gaps: a dashed line where one mapped segment ends and the next begins.
    inside = axis.seg_pos[1:][(axis.seg_pos[1:] > lo) & (axis.seg_pos[1:] < hi)]
    if inside.size <= 40:  # beyond that, lines would be clutter
        for p in inside.tolist():
            ax.axhline(p, color="#9a9a9a", lw=0.7, ls=(0, (3, 2)), alpha=0.8)
    bs, be = axis.band_positions()
    trans = blended_transform_factory(ax.transAxes, ax.transData)
    for s, e, k, label in zip(
        bs.tolist(), be.tolist(), axis.bands["kind"].tolist(), axis.labels.tolist()
    ):
        s, e = max(s, lo), min(e, hi)
        if e <= s:
            continue
        kind = _KIND_NAMES[k] if 0 <= k < len(_KIND_NAMES) else "other"
        ax.add_patch(
            Rectangle(
                (1.0, s),
                0.015,
                e - s,
                transform=trans,
                clip_on=False,
                color=KIND_COLORS.get(kind, "#999999"),
                lw=0,
            )
        )
        if (e - s) / span >= min_label_fraction:
            ax.text(
                1.02,
                (s + e) / 2,
                label,
                transform=trans,
                va="center",
                ha="left",
                fontsize="x-small",
                clip_on=False,
            )
