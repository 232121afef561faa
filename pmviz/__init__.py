"""pmviz: see how a Linux process uses its address space, exactly, with PAGEMAP_SCAN.

The public API is this module's ``__all__``. Importing pmviz pulls in numpy only: plotting
(``pmviz.plotting``) and widgets (``pmviz.widgets``) import matplotlib / ipywidgets themselves.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .categories import ALL_CATEGORIES, Category
from .errors import (
    AccessDenied,
    CaptureError,
    Error,
    NoSuchProcess,
    PmvizWarning,
    UnsupportedKernel,
)
from .features import Features, features
from .maps import VmaKind, Vmas, read_maps
from .mask import Mask
from .regions import Region, Regions
from .scanning import Pagemap, scan

__version__ = "0.1.0"

# Heavier parts load on first use so that `import pmviz` stays cheap.
_LAZY = {
    "WriteTracker": "pmviz.tracking",
    "harvest_written": "pmviz.tracking",
    "track": "pmviz.injection",
    "record": "pmviz.recorder",
    "Recorder": "pmviz.recorder",
    "SessionRecorder": "pmviz.recorder",
    "Capture": "pmviz.capture",
    "Session": "pmviz.storage",
    "open": "pmviz.storage:open_path",  # a capture or a session, whichever the path holds
    "mark": "pmviz.marks",
    "summarize": "pmviz.summary",
}

__all__ = [
    "ALL_CATEGORIES",
    "AccessDenied",
    "Capture",
    "CaptureError",
    "Category",
    "Error",
    "Features",
    "Mask",
    "NoSuchProcess",
    "Pagemap",
    "PmvizWarning",
    "Recorder",
    "Region",
    "Regions",
    "Session",
    "SessionRecorder",
    "UnsupportedKernel",
    "VmaKind",
    "Vmas",
    "WriteTracker",
    "features",
    "harvest_written",
    "load_ipython_extension",
    "mark",
    "open",
    "read_maps",
    "record",
    "scan",
    "summarize",
    "track",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext pmviz``: the ``%%pmviz`` cell magic and ``%pmviz`` line magic (``pmviz.magic``)."""
    from .magic import load_ipython_extension as load

    load(ipython)


def __getattr__(name: str) -> Any:
    module, _, attr = _LAZY.get(name, "").partition(":")
    if not module:
        raise AttributeError(f"module 'pmviz' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), attr or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .capture import Capture
    from .injection import track
    from .marks import mark
    from .recorder import Recorder, SessionRecorder, record
    from .storage import Session
    from .storage import open_path as open
    from .summary import summarize
    from .tracking import WriteTracker, harvest_written
