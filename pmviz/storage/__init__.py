"""Capture files: a documented, versioned directory of Parquet parts (``docs/capture-format.md``).

``open(path)`` returns a lazily loaded capture, ``save(capture, path)`` writes one, and
``CaptureWriter`` appends a growing capture crash-safely while recording.
"""

from __future__ import annotations

from .format import FORMAT_VERSION
from .reader import StoredCapture, open
from .writer import CaptureWriter, save

__all__ = ["open", "save", "CaptureWriter", "StoredCapture", "FORMAT_VERSION"]
