"""Sparsity plots: run-size and hole-size distributions, on power-of-two page bins."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes

from ..analysis.sparsity import Sparsity
from ._style import get_ax

__all__ = ["size_histogram"]


def size_histogram(
    sp: Sparsity, *, ax: Axes | None = None, which: str = "both", **kwargs: Any
) -> list:
    """Counts of run sizes (and hole sizes) in pages, log2 bins.

    Parameters
    ----------
    sp : Sparsity
    which : {"both", "regions", "holes"}
    **kwargs
        Passed to each ``Axes.bar`` call's style (``alpha`` and so on).

    Returns
    -------
    list of matplotlib.container.BarContainer
    """
    ax = get_ax(ax)
    kinds = ["regions", "holes"] if which == "both" else [which]
    out = []
    for j, kind in enumerate(kinds):
        counts, edges = sp.size_histogram(kind)
        x = np.arange(counts.size) + (0.2 * (j - (len(kinds) - 1) / 2))
        out.append(
            ax.bar(
                x,
                counts,
                width=0.8 / len(kinds),
                color="#1f77b4" if kind == "regions" else "#bbbbbb",
                label=f"{sp.category} runs" if kind == "regions" else "holes",
                **kwargs,
            )
        )
    counts, edges = sp.size_histogram(kinds[0])
    ax.set_xticks(
        np.arange(edges.size - 1),
        [f"{a}" if b - a == 1 else f"{a}-{b - 1}" for a, b in zip(edges[:-1], edges[1:])],
        rotation=45,
        fontsize="small",
    )
    ax.set_xlabel("size (pages)")
    ax.set_ylabel("count")
    ax.set_title(
        f"{sp.n_regions:,} runs, {sp.pages_per_region:,.1f} pages per page_region "
        f"({sp.compression:,.0f}x smaller than pagemap)",
        fontsize="medium",
    )
    ax.legend(frameon=False)
    return out
