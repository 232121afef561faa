"""Per-process bytes on a session's tick schedule: every process's series on one grid.

Every recorder of a session ticks on the same deadlines ``t0 + k * interval`` (``session.json``
``schedule_start_ns``, ``interval_ns``), so snapshot ``i`` of any process belongs to tick
``(time_ns[i] - t0) // interval``. A ticks x processes matrix then needs no resampling: each
snapshot lands in its own tick's row (0 where the process was not recorded at that tick).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._html import Summary, human_bytes
from .working_set import working_set_size

__all__ = ["ProcessSeries", "tick_series", "WHATS"]

WHATS = ("resident", "swapped", "written")


@dataclass(frozen=True, repr=False)
class ProcessSeries(Summary):
    """Bytes per process over time: ``values[row, j]`` of process ``pids[j]``.

    ``time_ns`` is each row's time (``CLOCK_MONOTONIC``), ``time`` seconds from the first
    row. From a session (:func:`tick_series`) a row is a tick of its common schedule and
    ``ticks`` numbers them: resident and swapped bytes are those of the process's snapshot
    of that tick, written bytes those written since its previous snapshot, 0 where the
    process has no snapshot at the tick (not yet, no longer, or a skipped tick).
    """

    time: np.ndarray
    time_ns: np.ndarray
    pids: np.ndarray
    values: np.ndarray
    what: str
    ticks: np.ndarray | None = None

    def _title(self) -> str:
        return f"ProcessSeries ({self.what})"

    def _rows(self) -> dict[str, str]:
        total = self.total()
        return {
            "ticks" if self.ticks is not None else "times": f"{self.time.size:,}",
            "processes": f"{self.pids.size:,}",
            "sum over processes (max / last)": f"{human_bytes(int(total.max(initial=0)))} / "
            f"{human_bytes(int(total[-1])) if total.size else '—'}",
        }

    def total(self) -> np.ndarray:
        """Sum over processes, per row (a naive sum: shared pages count once per mapper)."""
        return self.values.sum(axis=1)

    def to_pandas(self):  # noqa: ANN201 - pandas is optional
        """A DataFrame: one row per time (index: seconds), one column per pid."""
        import pandas as pd

        return pd.DataFrame(
            self.values, index=pd.Index(self.time, name="time"), columns=self.pids.tolist()
        )


def tick_series(session: Any, what: str = "resident") -> ProcessSeries:
    """Resident, swapped or written bytes of every recorded process of a session, per tick.

    Parameters
    ----------
    session : Session
        A session (``pmviz.open(path)``, or a recorder's live ``.session``).
    what : {"resident", "swapped", "written"}
        Written needs write tracking; a process recorded without it contributes 0 (its
        ``writes_reason`` in ``session.processes`` says why).

    Returns
    -------
    ProcessSeries
        With ``ticks``: one row per tick of the session's schedule.
    """
    if what not in WHATS:
        raise ValueError(f"what must be one of {WHATS}, got {what!r}")
    t0 = int(session.meta["schedule_start_ns"])
    step = int(session.meta["interval_ns"])
    if step <= 0:
        raise ValueError("the session has no tick schedule (interval 0)")
    pids, per = [], []
    for pid, cap in session.captures():  # one capture at a time; the work inside is numpy
        v = getattr(working_set_size(cap), what)
        k = (np.asarray(cap.time_ns, np.int64) - t0) // step
        pids.append(pid)
        per.append((k, np.zeros(k.size, np.int64) if v is None else np.asarray(v, np.int64)))
    n = max((int(k.max()) + 1 for k, _ in per if k.size), default=0)
    values = np.zeros((n, len(pids)), np.int64)
    for j, (k, v) in enumerate(per):
        values[k, j] = v  # (one snapshot per tick at most: the recorders skip, never double)
    ticks = np.arange(n, dtype=np.int64)
    time_ns = t0 + ticks * step
    return ProcessSeries(
        (time_ns - t0) / 1e9, time_ns, np.array(pids, np.int64), values, what, ticks=ticks
    )
