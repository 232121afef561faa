"""Hilbert-curve map of one snapshot: neighbouring addresses stay neighbours in 2-D."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.colors as mcolors
import numpy as np
from matplotlib.axes import Axes
from matplotlib.image import AxesImage
from matplotlib.patches import Patch

from ..analysis.hilbert import HilbertMap, hilbert_map
from ..capture import Capture
from ..regions import Regions
from ._style import (
    UNMAPPED_COLOR,
    category_color,
    get_ax,
    hex_address,
    human_bytes,
    unmapped_patch,
)

__all__ = ["hilbert"]


def hilbert(
    data: HilbertMap | Capture | Regions,
    categories: Sequence[Any] = ("present", "swapped"),
    *,
    ax: Axes | None = None,
    at: int = -1,
    vma: int | str | None = None,
    start: int | None = None,
    end: int | None = None,
    order: int | None = None,
    legend: bool = True,
    **kwargs: Any,
) -> AxesImage:
    """Draw a snapshot of a range along a Hilbert curve, coloured by category.

    Each category is painted in its colour with opacity = the cell's fraction (first on top).

    Parameters
    ----------
    data : HilbertMap, Capture or Regions
        One precomputed map, or data to map with ``categories`` (and ``at``, ``vma``,
        ``start``, ``end``, ``order`` as in ``pmviz.analysis.hilbert_map``).
    **kwargs
        Passed to ``Axes.imshow``.

    Returns
    -------
    matplotlib.image.AxesImage
        RGB image; ``pmviz_maps`` holds the per-category maps.
    """
    if isinstance(data, HilbertMap):
        maps = [data]
    else:
        maps = [
            hilbert_map(data, c, at=at, vma=vma, start=start, end=end, order=order)
            for c in categories
        ]
    ax = get_ax(ax)
    rgb = np.ones(maps[0].image.shape + (3,))
    for m in maps[::-1]:
        a = np.clip(m.image, 0, 1)[..., None]
        rgb = a * np.asarray(mcolors.to_rgb(category_color(m.category))) + (1 - a) * rgb
    unmapped = _unmapped_cells(data, maps[0], at)
    if unmapped is not None:
        rgb[unmapped] = mcolors.to_rgb(UNMAPPED_COLOR)
    kwargs.setdefault("interpolation", "nearest")
    kwargs.setdefault("origin", "lower")
    im = ax.imshow(rgb, **kwargs)
    im.pmviz_maps = maps  # type: ignore[attr-defined]
    m0 = maps[0]
    cell = (m0.end - m0.start) / m0.image.size
    side = 1 << m0.order
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(
        f"{hex_address(m0.start)} – {hex_address(m0.end)}\n"
        f"Hilbert order {m0.order}, {human_bytes(cell)} per cell",
        fontsize="medium",
    )
    # The curve starts in the bottom-left cell and ends in the bottom-right one (origin
    # "lower"): say so, with the addresses, so the square can be read.
    ax.set_xlabel(
        "addresses follow a Hilbert curve from the start (bottom left)\n"
        "to the end (bottom right); neighbours in memory stay neighbours",
        fontsize="x-small",
    )
    ax.plot([0, side - 1], [0, 0], ls="none", marker="o", ms=4, color="#444444", zorder=3)
    ax.annotate("start", (0, 0), xytext=(3, 3), textcoords="offset points", fontsize="x-small")
    ax.annotate(
        "end", (side - 1, 0), xytext=(-3, 3), textcoords="offset points", ha="right",
        fontsize="x-small",
    )  # fmt: skip
    ax.set_xlim(-0.5, side - 0.5)
    ax.set_ylim(-0.5, side - 0.5)
    if legend:
        handles = [Patch(color=category_color(m.category), label=m.category) for m in maps]
        handles.append(
            Patch(facecolor="white", edgecolor="#999999", lw=0.5, label="no page (empty cell)")
        )
        if unmapped is not None and unmapped.any():
            handles.append(unmapped_patch(label="not mapped"))
        ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.08),
            ncol=len(handles),
            frameon=False,
            fontsize="small",
            title="colour = category, opacity = fraction of the cell's pages",
            title_fontsize="x-small",
        )
    return im


def _unmapped_cells(data: HilbertMap | Capture | Regions, m: HilbertMap, at: int):  # noqa: ANN202
    """Cells with no mapped byte at all (boolean image), when the VMA table is known.

    The same Hilbert layout of the snapshot's VMAs: a cell no VMA touches is "not mapped",
    which is not the same as mapped memory without a page.
    """
    if not isinstance(data, Capture):
        return None
    vmas = data.vmas_at(at)
    if not len(vmas):
        return None
    mapped = Regions.from_arrays(vmas.start, vmas.end, 1, page_size=data.page_size)
    cover = hilbert_map(mapped, 1, start=m.start, end=m.end, order=m.order)
    return cover.image <= 0
