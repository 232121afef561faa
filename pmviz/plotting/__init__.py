"""Matplotlib plots of captures: ``ax=`` in, artists out, no ``plt.show()``.

Every function takes its data positionally (an analysis result, or a capture to analyse),
everything else by keyword, draws on ``ax`` (default the current Axes), forwards ``**kwargs``
to one matplotlib call and returns the artist(s).
"""

from __future__ import annotations

from ._style import UNMAPPED_COLOR, human_bytes, human_rate
from .diff import diff
from .heatmap import address_ticks, composite_heatmap, heatmap
from .hilbert import hilbert
from .migration import precopy
from .session import process_heatmaps, process_icicle, stacked_processes, tree_totals_lines
from .sparsity import size_histogram
from .working_set import idle_histogram, temperature_bars, working_set, wss

__all__ = [
    "heatmap",
    "composite_heatmap",
    "address_ticks",
    "working_set",
    "wss",
    "idle_histogram",
    "temperature_bars",
    "size_histogram",
    "hilbert",
    "diff",
    "precopy",
    "stacked_processes",
    "tree_totals_lines",
    "process_heatmaps",
    "process_icicle",
    "human_bytes",
    "human_rate",
    "UNMAPPED_COLOR",
]
