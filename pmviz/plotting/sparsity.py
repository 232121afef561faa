"""Sparsity plots: run-size and hole-size distributions, on power-of-two page bins."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes

from ..analysis.sparsity import Sparsity
from ._style import get_ax, human_bytes

__all__ = ["size_histogram"]


def size_histogram(
    sp: Sparsity, *, ax: Axes | None = None, which: str = "both", **kwargs: Any
) -> list:
    """Counts of run sizes (and hole sizes), in power-of-two bins labelled in bytes.

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
    if which not in ("both", "regions", "holes"):
        raise ValueError(f"which must be 'both', 'regions' or 'holes', got {which!r}")
    hists = [sp.size_histogram(kind) for kind in kinds]
    # One set of bins for both: holes (between runs) are often far larger than the runs, and
    # every bin drawn gets its label.
    edges = max((e for _, e in hists), key=len)
    out = []
    for j, (kind, (counts, _)) in enumerate(zip(kinds, hists)):
        x = np.arange(counts.size) + (0.2 * (j - (len(kinds) - 1) / 2))
        out.append(
            ax.bar(
                x,
                counts,
                width=0.8 / len(kinds),
                color="#1f77b4" if kind == "regions" else "#bbbbbb",
                label=f"{sp.category} runs" if kind == "regions" else "holes between runs",
                **kwargs,
            )
        )
    n = edges.size - 1
    labels = [human_bytes(float(a) * sp.page_size) for a in edges[:-1].tolist()]
    step = max(1, -(-n // 24))  # at most ~24 labels; every bin keeps its tick
    ax.set_xticks(np.arange(n), [t if k % step == 0 else "" for k, t in enumerate(labels)])
    ax.tick_params(axis="x", labelrotation=45, labelsize="small")
    for t in ax.get_xticklabels():
        t.set_horizontalalignment("right")
        t.set_rotation_mode("anchor")
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xlabel("size (bins double: a bin labelled x holds sizes from x up to 2x)")
    ax.set_ylabel("count")
    ax.set_title(
        f"{sp.n_regions:,} runs, {sp.pages_per_region:,.1f} pages per page_region "
        f"({sp.compression:,.0f}x smaller than pagemap)",
        fontsize="medium",
    )
    ax.legend(frameon=False)
    return out
