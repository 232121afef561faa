"""Capture files: a documented, versioned directory of Parquet parts (``docs/capture-format.md``).

``open(path)`` returns a lazily loaded capture, ``save(capture, path)`` writes one, and
``CaptureWriter`` appends a growing capture crash-safely while recording. A session (several
processes recorded together, one capture each: ``docs/sessions.md``) opens with
``open_session(path)``; ``open_path(path)`` (``pmviz.open``) opens whichever the directory is.
"""

from __future__ import annotations

from .validate import check_pyarrow

check_pyarrow()  # before anything reads a file: CVE-2023-47248

from .format import FORMAT_VERSION  # noqa: E402
from .reader import StoredCapture, open  # noqa: E402
from .session import Session, SessionWriter, is_session, open_path, open_session  # noqa: E402
from .writer import CaptureWriter, save  # noqa: E402

__all__ = [
    "open",
    "open_path",
    "open_session",
    "is_session",
    "save",
    "CaptureWriter",
    "StoredCapture",
    "Session",
    "SessionWriter",
    "FORMAT_VERSION",
]
