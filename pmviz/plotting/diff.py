"""Snapshot diff as a heatmap: one column per kind of change, address on y."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import QuadMesh

from ..analysis.diff import DiffGrid, SnapshotDiff, diff_grid
from ._style import fraction_cmap, get_ax
from .heatmap import decorate_address_axis

__all__ = ["diff"]


def diff(
    data: SnapshotDiff | DiffGrid,
    *,
    ax: Axes | None = None,
    addr_bins: int = 256,
    addr_range: tuple[int, int] | None = None,
    cmap: str = "magma",
    colorbar: bool = True,
    **kwargs: Any,
) -> QuadMesh:
    """Draw which address ranges became resident, left, got swapped or were written.

    Returns
    -------
    matplotlib.collections.QuadMesh
        ``get_array()`` is ``grid.T`` (address bins x changes).
    """
    g = (
        data
        if isinstance(data, DiffGrid)
        else diff_grid(data, addr_bins=addr_bins, addr_range=addr_range)
    )
    ax = get_ax(ax)
    kwargs.setdefault("vmin", 0.0)
    kwargs.setdefault("vmax", 1.0)
    # 0 dark, 1 bright, NaN in the unmapped colour: read like every other heatmap.
    cm = fraction_cmap(cmap)
    mesh = ax.pcolormesh(np.arange(len(g.changes) + 1), g.addr_pos, g.grid.T, cmap=cm, **kwargs)
    ax.set_xticks(
        np.arange(len(g.changes)) + 0.5, [c.replace("_", "\n") for c in g.changes], fontsize="small"
    )
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, pad=0.15).set_label("fraction of the bin's pages")
    decorate_address_axis(ax, g)  # type: ignore[arg-type]
    ax.set_title("what changed between the snapshots")
    return mesh
