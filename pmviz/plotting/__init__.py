"""Matplotlib plots of captures: ``ax=`` in, artists out, no ``plt.show()``."""

from __future__ import annotations

from .heatmap import composite_heatmap, heatmap

__all__ = ["heatmap", "composite_heatmap"]
