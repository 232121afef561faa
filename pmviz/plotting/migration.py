"""Pre-copy migration rounds: bytes per round, the last one being the downtime."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes

from ..analysis.migration import PrecopyEstimate
from ._style import get_ax, human_bytes, set_byte_axis

__all__ = ["precopy"]


def precopy(est: PrecopyEstimate, *, ax: Axes | None = None, **kwargs: Any):
    """Bar per pre-copy round (the stop-and-copy round highlighted).

    Returns
    -------
    matplotlib.container.BarContainer
    """
    ax = get_ax(ax)
    n = est.round_bytes.size
    colors = ["#4c72b0"] * (n - 1) + ["#c44e52" if not est.converged else "#55a868"]
    kwargs.setdefault("color", colors)
    bars = ax.bar(np.arange(n), est.round_bytes, **kwargs)
    for i, (b, s) in enumerate(zip(est.round_bytes.tolist(), est.round_s.tolist())):
        ax.annotate(f"{s * 1e3:,.1f} ms", (i, b), ha="center", va="bottom", fontsize="x-small")
    ax.set_xticks(np.arange(n), [str(i) for i in range(n - 1)] + ["stop&copy"])
    set_byte_axis(ax.yaxis)
    ax.set_xlabel("round")
    ax.set_ylabel("bytes sent")
    state = "converged" if est.converged else f"did not converge ({est.reason})"
    ax.set_title(
        f"pre-copy at {human_bytes(est.bandwidth)}/s: downtime "
        f"{est.downtime_s * 1e3:,.1f} ms, {state}",
        fontsize="medium",
    )
    return bars
