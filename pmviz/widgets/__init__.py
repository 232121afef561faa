"""Jupyter widgets over captures and live processes (imports ipywidgets and matplotlib).

``MaskExplorer``  tune a PAGEMAP_SCAN mask: kernel fields, Python and C code, selection.
``CaptureViewer`` browse a capture: time, address zoom, category, hover/click read-out.
``LiveView``      record a process in the background and watch the heatmap grow.
"""

from __future__ import annotations

from .capture_viewer import CaptureViewer
from .live_view import LiveView
from .mask_explorer import MaskExplorer

__all__ = ["CaptureViewer", "LiveView", "MaskExplorer"]
