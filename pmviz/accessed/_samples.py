"""Row tables of access samples: what one collect() of an access mechanism returns.

Both kinds are per-snapshot row tables in the manner of a capture's ``written`` table: rows
``[start, end)`` plus value columns, one table per snapshot, so that a recorder stores them as
one more partitioned column set of the capture.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..maps import Vmas

__all__ = ["REFERENCED_DTYPE", "PROBED_DTYPE", "AccessSample", "ProbeSample"]

REFERENCED_DTYPE = np.dtype(
    [("start", "<u8"), ("end", "<u8"), ("referenced_bytes", "<i8"), ("resident_bytes", "<i8")]
)
"""``accessed="vma"``: one row per VMA, bytes referenced since the previous sample (from
``/proc/PID/smaps`` ``Referenced:``) and bytes resident now (``Rss:``)."""

PROBED_DTYPE = np.dtype(
    [
        ("start", "<u8"),
        ("end", "<u8"),
        ("resident_pages", "<i8"),
        ("probed_pages", "<i8"),
        ("accessed_pages", "<i8"),
    ]
)
"""``accessed="probe"``: one row per adaptive region, the resident pages it had when the
probes were chosen, the pages paged out as probes, and how many of those were present again
at the sample (accessed in between)."""


class AccessSample(NamedTuple):
    """Per-VMA referenced and resident bytes (``accessed="vma"``), rows sorted by address."""

    time_ns: int
    """``CLOCK_MONOTONIC`` when ``smaps`` was read."""
    rows: np.ndarray
    """``REFERENCED_DTYPE``."""

    @property
    def start(self) -> np.ndarray:
        return self.rows["start"]

    @property
    def end(self) -> np.ndarray:
        return self.rows["end"]

    @property
    def referenced_bytes(self) -> np.ndarray:
        return self.rows["referenced_bytes"]

    @property
    def resident_bytes(self) -> np.ndarray:
        return self.rows["resident_bytes"]

    def aligned_to(self, vmas: Vmas) -> np.ndarray:
        """``(len(vmas), 2)`` referenced / resident bytes per VMA of ``vmas``, -1 where unknown.

        ``vmas`` may have been read at another instant than ``smaps``: a VMA matches a row with
        the same ``[start, end)``; VMAs that changed in between get -1.
        """
        out = np.full((len(vmas), 2), -1, dtype=np.int64)
        if not len(self.rows) or not len(vmas):
            return out
        i = np.searchsorted(self.rows["start"], vmas.start)
        ic = np.minimum(i, len(self.rows) - 1)
        ok = (i < len(self.rows)) & (self.rows["start"][ic] == vmas.start)
        ok &= self.rows["end"][ic] == vmas.end
        out[ok, 0] = self.rows["referenced_bytes"][ic[ok]]
        out[ok, 1] = self.rows["resident_bytes"][ic[ok]]
        return out


class ProbeSample(NamedTuple):
    """Per-region probe counts of one interval (``accessed="probe"``), rows sorted by address."""

    time_ns: int
    """``CLOCK_MONOTONIC`` of the scan that saw which probes came back."""
    rows: np.ndarray
    """``PROBED_DTYPE``."""
    interval_ns: int
    """Time between paging the probes out and this sample."""

    @property
    def start(self) -> np.ndarray:
        return self.rows["start"]

    @property
    def end(self) -> np.ndarray:
        return self.rows["end"]

    @property
    def resident_pages(self) -> np.ndarray:
        return self.rows["resident_pages"]

    @property
    def probed_pages(self) -> np.ndarray:
        return self.rows["probed_pages"]

    @property
    def accessed_pages(self) -> np.ndarray:
        return self.rows["accessed_pages"]
