"""Pre-copy migration rounds: bytes per round, the last one being the downtime."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes

from ..analysis.migration import PrecopyEstimate
from ._style import get_ax, human_rate, set_byte_axis

__all__ = ["precopy"]


def precopy(
    est: PrecopyEstimate,
    *,
    ax: Axes | None = None,
    nominal_bits: float | None = None,
    **kwargs: Any,
):
    """Bar per pre-copy round (the stop-and-copy round highlighted).

    Parameters
    ----------
    est : PrecopyEstimate
    nominal_bits : float, optional
        The link's nominal speed in bits per second (1e9 for 1 Gbit/s): named once in the
        title after the byte rate, ``"119 MiB/s (1 Gbit/s)"``.
    **kwargs
        Passed to ``Axes.bar``.

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
    state = "converged" if est.converged else f"did not converge:\n{est.reason}"
    # Short lines: three of these panels side by side must not run into each other.
    ax.set_title(
        f"pre-copy at {human_rate(est.bandwidth, nominal_bits=nominal_bits)}\n"
        f"downtime {est.downtime_s * 1e3:,.1f} ms, {state}",
        fontsize="medium",
    )
    ax.margins(y=0.12)  # room for the duration labels above the bars
    return bars
