"""Row tables of access samples: what one collect() of an access mechanism returns.

Both kinds are per-snapshot row tables in the manner of a capture's ``written`` table: rows
``[start, end)`` plus value columns, one table per snapshot, so that a recorder stores them as
one more partitioned column set of the capture.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..maps import Vmas

# The row types are the capture's side tables (the data model owns them; a recorder stores
# these rows as they are).
from ..sidetables import PROBED_DTYPE, REFERENCED_DTYPE, align_to_vmas

__all__ = ["REFERENCED_DTYPE", "PROBED_DTYPE", "AccessSample", "ProbeSample"]


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
        a = align_to_vmas(self.rows, vmas.start, vmas.end)
        return np.stack([a["referenced_bytes"], a["resident_bytes"]], axis=1)


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
