"""Python objects' names (``meta.extra["names"]``, see ``pmviz.names``) on an address axis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..capture import Capture
from ..names import NamedRange, capture_names

__all__ = ["NAME_COLOR", "NamesArg", "annotate_names", "draw_names"]

NamesArg = str | Sequence[NamedRange] | None
"""A plot's ``names=``: ``"auto"`` (a capture's own, ``meta.extra["names"]``), a list of
:class:`~pmviz.names.NamedRange`, or None (no names)."""

NAME_COLOR = "#111111"


def annotate_names(
    ax: Any, axis: Any, names: Sequence[NamedRange], *, min_fraction: float = 0.01
) -> list[Any]:
    """Name the address ranges of Python objects on a heatmap's address (y) axis.

    Each object gets a dark strip over the VMA band strip at the right edge of ``ax``; an
    object taking at least ``min_fraction`` of the visible axis also gets its label there,
    replacing the VMA label (``anon``) its range covers, unless an earlier name in ``names``
    took that spot (order them by interest). ``axis`` is the plot's
    :class:`~pmviz.analysis.axis.AddressAxis` (``HeatmapGrid.axis``), which places real
    addresses on the collapsed axis.

    Returns
    -------
    list of matplotlib.artist.Artist
    """
    from matplotlib.patches import Rectangle
    from matplotlib.transforms import blended_transform_factory

    if not names:
        return []
    lo, hi = sorted(ax.get_ylim())
    span = max(hi - lo, 1.0)
    s = axis.to_compact(np.array([n.start for n in names], np.uint64)).astype(float)
    e = axis.to_compact(np.array([n.end for n in names], np.uint64)).astype(float)
    trans = blended_transform_factory(ax.transAxes, ax.transData)
    artists: list[Any] = []
    placed: list[float] = []
    for i in range(len(names)):  # in the given order: earlier names get the label space
        a, b = max(s[i], lo), min(e[i], hi)
        if b <= a:
            continue
        artists.append(
            ax.add_patch(
                Rectangle(
                    (1.0, a),
                    0.015,
                    b - a,
                    transform=trans,
                    clip_on=False,
                    color=NAME_COLOR,
                    lw=0,
                    zorder=5,
                )
            )
        )
        if (b - a) / span < min_fraction:
            continue
        mid = (a + b) / 2
        if any(abs(mid - p) < 0.035 * span for p in placed):
            continue
        for t in list(ax.texts):  # the VMA label ("anon") this object stands in for
            x, y = t.get_position()
            if t.get_transform() == trans and x == 1.02 and a <= y <= b:
                t.remove()
        placed.append(mid)
        artists.append(
            ax.text(
                1.02,
                mid,
                names[i].label,
                transform=trans,
                va="center",
                ha="left",
                fontsize="x-small",
                fontweight="bold",
                clip_on=False,
            )
        )
    return artists


def draw_names(ax: Any, data: Any, axis: Any, names: NamesArg) -> list[Any]:
    """Resolve a plot's ``names=`` argument for ``data`` and :func:`annotate_names` them.

    ``"auto"`` names what a capture holds (nothing for a grid, which has no names).
    """
    if names is None:
        return []
    if isinstance(names, str):
        if names != "auto":
            raise ValueError(f"names must be 'auto', a list of NamedRange or None, got {names!r}")
        if not isinstance(data, Capture):
            return []
        names = capture_names(data)
    return annotate_names(ax, axis, list(names))
