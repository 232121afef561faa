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
from ._style import category_color, get_ax, hex_address

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
    kwargs.setdefault("interpolation", "nearest")
    kwargs.setdefault("origin", "lower")
    im = ax.imshow(rgb, **kwargs)
    im.pmviz_maps = maps  # type: ignore[attr-defined]
    m0 = maps[0]
    cell = (m0.end - m0.start) / m0.image.size
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(
        f"{hex_address(m0.start)} – {hex_address(m0.end)}\n"
        f"Hilbert order {m0.order}, {cell / 1024:,.0f} KiB per cell",
        fontsize="medium",
    )
    if legend:
        ax.legend(
            handles=[Patch(color=category_color(m.category), label=m.category) for m in maps],
            loc="upper center",
            bbox_to_anchor=(0.5, -0.02),
            ncol=len(maps),
            frameon=False,
        )
    return im
