"""Address-space heatmaps: time on x, address on y (unmapped gaps collapsed), colour = fraction."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import matplotlib
import matplotlib.colors as mcolors
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection, QuadMesh
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from .._intervals import concat_aranges
from ..analysis.axis import AddressAxis
from ..analysis.heatmap import HeatmapGrid, heatmap_grid, heatmap_grids
from ..capture import Capture
from ..maps import VmaKind
from ._marks import draw_marks
from ._names import NamesArg, draw_names
from ._style import (
    KIND_COLORS,
    UNMAPPED_COLOR,
    category_cmap,
    category_color,
    get_ax,
    hex_formatter,
    unmapped_patch,
)

__all__ = ["heatmap", "composite_heatmap", "decorate_address_axis", "address_ticks", "short_label"]

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
    names: NamesArg = "auto",
    marks: bool = True,
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
    names : "auto", list of NamedRange or None
        Name Python objects' ranges on the address axis (see ``pmviz.names``); ``"auto"``
        names those a capture holds in ``meta.extra["names"]`` (``%%pmviz`` stores them).
    marks : bool
        Draw a capture's marks (``pmviz.mark``) on the time axis.
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
    ).with_extremes(bad=UNMAPPED_COLOR)
    kwargs.setdefault("vmin", 0.0)
    kwargs.setdefault("vmax", 1.0)
    kwargs.setdefault("shading", "flat")
    kwargs.setdefault("rasterized", True)
    mesh = ax.pcolormesh(
        g.time_edges, g.addr_pos, np.ma.masked_invalid(g.grid.T), cmap=cm, **kwargs
    )
    if colorbar:
        # Below the plot, so that the full width goes to the heatmap and the VMA labels.
        cb = ax.figure.colorbar(
            mesh, ax=ax, location="bottom", shrink=0.45, aspect=40, pad=0.02, anchor=(0.0, 1.0)
        )
        cb.set_label(f"fraction of pages {g.category}", fontsize="small")
        cb.ax.tick_params(labelsize="x-small")
        if not np.isfinite(g.grid).all():
            cb.ax.legend(
                handles=[unmapped_patch()],
                loc="center left",
                bbox_to_anchor=(1.05, 0.5),
                frameon=False,
                fontsize="small",
            )
    decorate_address_axis(ax, g, bands=bands)
    draw_names(ax, data, g.axis, names)
    if marks and isinstance(data, Capture):
        draw_marks(ax, data)
    ax.set_xlabel("time (s)")
    ax.set_title(title if title is not None else f"{g.category} pages")
    return mesh


def composite_heatmap(
    data: Capture | Sequence[HeatmapGrid],
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
    names: NamesArg = "auto",
    marks: bool = True,
    title: str | None = None,
    **kwargs: Any,
) -> QuadMesh:
    """Several categories at once, each in its colour with opacity = its fraction.

    Layers are composited with the first category on top (written over present over
    swapped by default: written pages are nearly always present too). Categories the capture
    lacks (``"written"`` without write tracking) are skipped. ``data`` is a capture (binned
    with the grid arguments, reading it once for every category) or grids already made on one
    axis (``pmviz.analysis.heatmap_grids``; ``categories`` and the grid arguments are then
    ignored). ``names`` and ``marks`` name Python objects' ranges on the address axis and draw
    a capture's marks on the time axis as in :func:`heatmap`.

    Returns
    -------
    matplotlib.collections.QuadMesh
        An RGBA mesh; ``pmviz_fractions`` holds the per-category grids it was made from.
    """
    ax = get_ax(ax)
    capture = data if isinstance(data, Capture) else None
    grids: list[HeatmapGrid]
    if isinstance(data, Capture):
        capture = data
        cats = [
            c
            for c in categories
            if not (isinstance(c, str) and c == "written" and not capture.has_written)
        ]
        grids = heatmap_grids(
            capture,
            cats,
            time_bins=time_bins,
            addr_bins=addr_bins,
            addr_range=addr_range,
            time_range=time_range,
            axis=axis,
        ) if cats else []  # fmt: skip
    else:
        grids = list(data)
        if not all(isinstance(g, HeatmapGrid) for g in grids):
            raise TypeError("expected a Capture or a sequence of HeatmapGrid")
    if not grids:
        raise ValueError("none of the categories can be drawn from this capture")
    cols = list(colors) if colors is not None else [category_color(g.category) for g in grids]
    g0 = grids[0]
    rgb = np.ones(g0.grid.T.shape + (3,))
    for g, col in zip(grids[::-1], cols[::-1]):  # bottom layer first, "over" operator
        alpha = np.clip(np.nan_to_num(g.grid.T), 0.0, 1.0)[..., None]
        rgb = alpha * np.asarray(mcolors.to_rgb(col)) + (1.0 - alpha) * rgb
    # Not mapped at that time (NaN in every layer's grid): the unmapped colour, not white (0 %).
    unmapped = np.isnan(g0.grid.T)
    rgb[unmapped] = mcolors.to_rgb(UNMAPPED_COLOR)
    rgba = np.concatenate([rgb, np.ones(unmapped.shape + (1,))], axis=2)
    kwargs.setdefault("shading", "flat")
    kwargs.setdefault("rasterized", True)
    mesh = ax.pcolormesh(g0.time_edges, g0.addr_pos, rgba, **kwargs)
    mesh.pmviz_fractions = {g.category: g.grid for g in grids}  # type: ignore[attr-defined]
    decorate_address_axis(ax, g0, bands=bands)
    draw_names(ax, data, g0.axis, names)
    if marks and capture is not None:
        draw_marks(ax, capture)
    if legend:
        handles = [Patch(color=c, label=g.category) for g, c in zip(grids, cols)]
        if unmapped.any():
            handles.append(unmapped_patch())
        ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.1),
            ncol=len(handles),
            frameon=False,
            fontsize="small",
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
    ax: Axes, g: HeatmapGrid, *, bands: bool = True, min_label_fraction: float = 0.02
) -> None:
    """Hex address ticks, gap markers and VMA band labels on the y axis of ``ax``.

    Bounded by what the pixels can show, whatever the number of VMAs: the band strip is one
    ``PolyCollection`` (bands thinner than a pixel row are merged, the row taking the kind
    that covers most of it), at most ``_label_budget(ax)`` labels are drawn (the largest bands
    first, none overlapping another), each shortened to ``_LABEL_CHARS`` characters.
    """
    axis = g.axis
    lo, hi = float(g.addr_pos[0]), float(g.addr_pos[-1])
    ax.set_ylim(lo, hi)
    ax.set_yticks(address_ticks(axis, lo, hi))
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
    span = max(hi - lo, 1.0)
    # Collapsed gaps: a dashed line where one mapped segment ends and the next begins.
    inside = axis.seg_pos[1:][(axis.seg_pos[1:] > lo) & (axis.seg_pos[1:] < hi)]
    if 0 < inside.size <= 40:  # beyond that, lines would be clutter
        ax.hlines(
            inside, 0, 1, transform=ax.get_yaxis_transform(), colors="#9a9a9a", lw=0.7,
            linestyles=(0, (3, 2)), alpha=0.8,
        )  # fmt: skip
    bs, be = axis.band_positions()
    bs, be = np.maximum(bs.astype(np.float64), lo), np.minimum(be.astype(np.float64), hi)
    keep = be > bs
    bs, be = bs[keep], be[keep]
    kinds = axis.bands["kind"][keep].astype(np.int64)
    labels = axis.labels[keep]
    if not bs.size:
        return
    trans = blended_transform_factory(ax.transAxes, ax.transData)
    rows = _strip_rows(ax)
    ys, ye, kk = _pixel_bands(bs, be, kinds, lo, hi, rows)
    palette = [KIND_COLORS.get(k, "#999999") for k in _KIND_NAMES] + [KIND_COLORS["other"]]
    x0, x1 = 1.0, 1.015
    verts = np.stack(
        [np.stack([np.full(ys.size, x0), ys], 1), np.stack([np.full(ys.size, x1), ys], 1),
         np.stack([np.full(ys.size, x1), ye], 1), np.stack([np.full(ys.size, x0), ye], 1)], 1,
    )  # fmt: skip
    strip = PolyCollection(
        list(verts), facecolors=[palette[k] for k in kk.tolist()], linewidths=0, transform=trans
    )
    strip.set_clip_on(False)
    strip.pmviz_kinds = kk  # type: ignore[attr-defined]
    ax.add_collection(strip, autolim=False)
    gs, ge, glabels = _label_runs(bs, be, labels, span / rows)
    for y, text in _pick_labels(gs, ge, glabels, span, _label_budget(ax), min_label_fraction):
        ax.text(
            1.02, y, text, transform=trans, va="center", ha="left", fontsize=_LABEL_SIZE,
            clip_on=False,
        )  # fmt: skip


_LABEL_CHARS = 20
_LABEL_SIZE = 7.0  # points


def short_label(text: str, limit: int = _LABEL_CHARS) -> str:
    """A VMA label of at most ``limit`` characters, keeping its start and its extension.

    ``_multiarray_umath.cpython-311-x86_64-linux-gnu.so`` -> ``_multiarray_umath….so``: the
    CPython ABI tag goes first, then the middle is ellipsized.
    """
    t = re.sub(r"\.cpython-[0-9a-z_]+(-[0-9a-z_]+)*(?=\.so)", "", text)
    t = re.sub(r"-x86_64-linux-gnu|-aarch64-linux-gnu", "", t)
    if len(t) <= limit:
        return t
    stem, dot, ext = t.rpartition(".")
    tail = f".{ext}" if dot and 0 < len(ext) <= 6 else t[-4:]
    return t[: limit - len(tail) - 1] + "…" + tail


def _axes_inches(ax: Axes) -> tuple[float, float]:
    fig = ax.get_figure(root=True)
    w, h = fig.get_size_inches() if fig is not None else (6.4, 4.8)
    pos = ax.get_position()
    return max(w * pos.width, 0.5), max(h * pos.height, 0.5)


def _strip_rows(ax: Axes) -> int:
    """Pixel rows of the band strip: the axes height at 200 dpi (enough for any output)."""
    return int(np.clip(_axes_inches(ax)[1] * 200, 64, 8192))


def _label_budget(ax: Axes) -> int:
    """How many labels fit one above the other along the axes' height."""
    return max(1, int(_axes_inches(ax)[1] * 72 / (_LABEL_SIZE * 1.4)))


def _pixel_bands(
    bs: np.ndarray, be: np.ndarray, kinds: np.ndarray, lo: float, hi: float, rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bands as at most ``rows`` runs: ``(start, end, kind index)`` in axis positions.

    With fewer bands than rows they are drawn as they are; otherwise every pixel row takes
    the kind covering most of it and equal neighbours merge.
    """
    k = np.where((kinds >= 0) & (kinds < len(_KIND_NAMES)), kinds, len(_KIND_NAMES))
    if bs.size <= rows:
        return bs, be, k
    edges = np.linspace(lo, hi, rows + 1)
    j0 = np.clip(np.searchsorted(edges, bs, side="right") - 1, 0, rows - 1)
    j1 = np.clip(np.searchsorted(edges, be, side="left"), 1, rows)
    n = np.maximum(j1 - j0, 1)
    band = np.repeat(np.arange(bs.size), n)
    j = concat_aranges(j0, n)
    cover = np.minimum(be[band], edges[j + 1]) - np.maximum(bs[band], edges[j])
    n_kinds = len(_KIND_NAMES) + 1
    per = np.bincount(j * n_kinds + k[band], np.maximum(cover, 0), minlength=rows * n_kinds)
    per = per.reshape(rows, n_kinds)
    has = per.max(axis=1) > 0
    best = per.argmax(axis=1)
    # Runs of equal kind over consecutive covered rows.
    r = np.flatnonzero(has)
    new = np.ones(r.size, bool)
    new[1:] = (np.diff(r) > 1) | (best[r][1:] != best[r][:-1])
    first = np.flatnonzero(new)
    last = np.append(first[1:], r.size) - 1
    return edges[r[first]], edges[r[last] + 1], best[r[first]]


def _label_runs(
    bs: np.ndarray, be: np.ndarray, labels: np.ndarray, pixel: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bands of one label less than a pixel apart become one run to label.

    So ``anon`` labels thousands of small anonymous VMAs interleaved with guards or files.
    """
    names, inv = np.unique(labels.astype(str), return_inverse=True)
    o = np.lexsort((bs, inv))
    s, e, lab = bs[o], be[o], inv[o]
    new = np.ones(s.size, bool)
    # Within one label (bands are disjoint), a run continues while the next band starts
    # within a pixel of the previous one's end.
    new[1:] = (lab[1:] != lab[:-1]) | (s[1:] > e[:-1] + pixel)
    first = np.flatnonzero(new)
    reach = np.maximum.reduceat(e, first)
    return s[first], reach, names[lab[first]]


def _pick_labels(
    bs: np.ndarray,
    be: np.ndarray,
    labels: np.ndarray,
    span: float,
    budget: int,
    min_fraction: float,
) -> list[tuple[float, str]]:
    """At most ``budget`` labels, the largest bands first, none closer than a text line."""
    size = be - bs
    cand = np.flatnonzero(size >= min_fraction * span)
    cand = cand[np.argsort(-size[cand], kind="stable")][: 4 * budget]
    line = span / budget  # the height of one label in axis positions
    taken: list[float] = []
    out: list[tuple[float, str]] = []
    for i in cand.tolist():  # at most 4 x budget candidates
        y = (bs[i] + be[i]) / 2
        if len(out) < budget and all(abs(y - t) >= line for t in taken):
            taken.append(y)
            out.append((y, short_label(str(labels[i]))))
    return out
