"""Capture files: a documented, versioned directory of Parquet parts (``docs/capture-format.md``).

``open(path)`` returns a lazily loaded capture, ``save(capture, path)`` writes one, and
``CaptureWriter`` appends a growing capture crash-safely while recording.
"""

from __future__ import annotations

from .validate import check_pyarrow

check_pyarrow()  # before anything reads a file: CVE-2023-47248

from .format import FORMAT_VERSION  # noqa: E402
from .reader import StoredCapture, open  # noqa: E402
from .writer import CaptureWriter, save  # noqa: E402

__all__ = ["open", "save", "CaptureWriter", "StoredCapture", "FORMAT_VERSION"]
