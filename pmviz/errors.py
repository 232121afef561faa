"""The pmviz exception hierarchy.

Every failure that comes from the kernel or from a capture file is turned into one of these in
exactly one place (psutil style: ``raise ... from err``), so callers never see a raw ``OSError``
or a ctypes traceback. Bad arguments raise the builtin ``ValueError`` / ``TypeError``.
"""

from __future__ import annotations

__all__ = [
    "Error",
    "NoSuchProcess",
    "AccessDenied",
    "UnsupportedKernel",
    "CaptureError",
    "PmvizWarning",
]


class Error(Exception):
    """Base class of every pmviz exception."""


class NoSuchProcess(Error):
    """The target process does not exist (or exited while it was being scanned)."""

    def __init__(self, pid: int | str, msg: str | None = None) -> None:
        self.pid = pid
        super().__init__(msg or f"process {pid} does not exist (or has exited)")

    def __reduce__(self):  # keep pickling working with the custom __init__
        return (type(self), (self.pid, str(self)))


class AccessDenied(Error):
    """The caller may not read (or write) what it asked for; the message names the capability."""

    def __init__(self, pid: int | str | None, msg: str) -> None:
        self.pid = pid
        super().__init__(msg)

    def __reduce__(self):
        return (type(self), (self.pid, str(self)))


class UnsupportedKernel(Error):
    """The running kernel lacks a feature; the message names the feature and the fallback."""

    def __init__(self, feature: str, msg: str) -> None:
        self.feature = feature
        super().__init__(msg)

    def __reduce__(self):
        return (type(self), (self.feature, str(self)))


class CaptureError(Error):
    """A capture file or directory is missing, damaged, or of an unknown format version."""

    def __init__(self, path: str, msg: str) -> None:
        self.path = path
        super().__init__(f"{path}: {msg}")

    def __reduce__(self):
        return (_rebuild_capture_error, (self.path, str(self)))


def _rebuild_capture_error(path: str, text: str) -> CaptureError:
    err = CaptureError.__new__(CaptureError)
    err.path = path
    Exception.__init__(err, text)
    return err


class PmvizWarning(UserWarning):
    """A degraded result: fallback backend, missing write tracking, skipped snapshots."""
