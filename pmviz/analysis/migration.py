"""Checkpoint and live-migration estimates: what CRIU would dump, and pre-copy convergence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..capture import Capture
from ..categories import Category as C
from ..mask import Mask
from ._html import Summary, human_bytes
from ._select import Between, phase
from ._stream import changes
from .working_set import wss_curve

__all__ = ["CRIU_DUMP_MASK", "dump_size", "dirty_bytes", "PrecopyEstimate", "precopy_estimate"]

CRIU_DUMP_MASK = Mask(anyof=C.PRESENT | C.SWAPPED, exclude=C.FILE | C.PFNZERO)
"""The pages CRIU dumps (criu/pagemap-cache.c ``pmc_fill``, spec §6): present or swapped, not
file-backed, not the zero page. Guard markers are SWAPPED but CRIU skips them (``GUARD``)."""
_DUMP = Mask(anyof=C.PRESENT | C.SWAPPED, exclude=C.FILE | C.PFNZERO | C.GUARD)


def dump_size(capture: Capture, *, between: Between = None) -> np.ndarray:
    """Bytes CRIU would dump at each snapshot (``int64``).

    Replays the capture's changes: a region that stays costs nothing. ``between=("fill",
    "sort")`` counts only that phase (``Capture.between``).
    """
    capture = phase(capture, between)
    n = capture.n_snapshots
    delta = np.zeros(n)
    for ch in changes(capture):
        keep = _DUMP.matches(ch.rows["categories"])
        r = ch.rows[keep]
        size = (r["end"] - r["start"]).astype(np.float64) * ch.sign[keep]
        delta += np.bincount(ch.snapshot[keep], size, minlength=n)[:n]  # exact below 2**53
    return np.rint(np.cumsum(delta)).astype(np.int64)


@dataclass(frozen=True, repr=False)
class PrecopyEstimate(Summary):
    """The pre-copy rounds of a live migration and the resulting downtime.

    ``round_bytes[0]`` is the full dump; round ``n`` resends the pages dirtied while round
    ``n - 1`` was being sent; the last round is the stop-and-copy, whose duration is the
    downtime. ``converged`` says whether it fitted the downtime budget.
    """

    bandwidth: float
    budget_s: float
    round_bytes: np.ndarray
    round_s: np.ndarray
    converged: bool
    reason: str

    @property
    def downtime_s(self) -> float:
        return float(self.round_s[-1])

    @property
    def total_s(self) -> float:
        return float(self.round_s.sum())

    @property
    def total_bytes(self) -> int:
        return int(self.round_bytes.sum())

    def _title(self) -> str:
        return "Pre-copy estimate"

    def _rows(self) -> dict[str, str]:
        rounds = " → ".join(human_bytes(float(b)) for b in self.round_bytes[:12])
        return dict(
            {
                "link": f"{human_bytes(self.bandwidth)}/s",
                "rounds (last = stop and copy)": rounds
                + (" …" if self.round_bytes.size > 12 else ""),
                "downtime": f"{self.downtime_s * 1e3:,.1f} ms (budget {self.budget_s * 1e3:g} ms)",
                "total": f"{self.total_s:,.2f} s, {human_bytes(self.total_bytes)} sent",
                "converged": "yes" if self.converged else f"no: {self.reason}",
            },
        )


def dirty_bytes(
    capture: Capture,
    statistic: str = "max",
    *,
    exact_upto: int = 256,
    between: Between = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct bytes dirtied within windows of ``k`` intervals: ``(seconds, bytes)``.

    Windows of every length up to ``exact_upto`` intervals, then 32 geometrically spaced
    lengths up to the whole capture (each window length costs one pass over the write events).
    ``statistic`` reduces over the positions where the window fits in the capture (``"max"``:
    the worst burst, ``"mean"``). The first point is ``(0, 0)``. ``between=("fill", "sort")``
    measures only that phase (``Capture.between``).
    """
    capture = phase(capture, between)
    if statistic not in ("max", "mean"):
        raise ValueError(f"statistic must be 'max' or 'mean', got {statistic!r}")
    n = capture.n_snapshots
    ks = np.arange(1, min(n, exact_upto) + 1)
    if n > exact_upto:
        ks = np.unique(np.concatenate([ks, np.geomspace(exact_upto, n, 32).round()]))
    ks = ks.astype(np.int64)
    curve = wss_curve(capture, windows=ks)
    fits = np.arange(n)[None, :] >= ks[:, None] - 1  # window k ending at i starts at i-k+1
    if statistic == "max":
        red = np.where(fits, curve.bytes, -1).max(axis=1).astype(np.float64)
    else:
        red = (np.where(fits, curve.bytes, 0).sum(axis=1) / fits.sum(axis=1)).astype(np.float64)
    secs = np.concatenate([[0.0], ks * curve.interval_s])
    return secs, np.concatenate([[0.0], red])


def precopy_estimate(
    capture: Capture,
    *,
    bandwidth: float,
    downtime: float = 0.3,
    at: int = -1,
    max_rounds: int = 30,
    statistic: str = "max",
    dirty: tuple[np.ndarray, np.ndarray] | None = None,
    dump: np.ndarray | None = None,
    between: Between = None,
) -> PrecopyEstimate:
    """Model iterative pre-copy migration from the capture's dump size and dirty rate.

    The dirty set of a round lasting ``T`` seconds is the distinct bytes written in a window of
    ``T`` (interpolated between whole intervals, held at the longest window the capture has).

    Parameters
    ----------
    capture : Capture
        With write tracking.
    bandwidth : float
        Bytes per second of the migration link.
    downtime : float
        Stop-and-copy budget in seconds: iterate until a round fits it.
    at : int
        Snapshot whose dump set is the first round.
    max_rounds : int
        Give up (and stop and copy) after this many rounds.
    statistic : {"max", "mean"}
        Worst or average window of the capture for the dirty rate.
    dirty : (numpy.ndarray, numpy.ndarray), optional
        ``dirty_bytes(capture, statistic)`` when already computed (estimates for several
        links share it).
    dump : numpy.ndarray, optional
        ``dump_size(capture)`` when already computed.
    between : (str, str), optional
        Only the phase from one mark to another (``Capture.between``), e.g.
        ``("fill", "sort")``.

    Returns
    -------
    PrecopyEstimate
    """
    capture = phase(capture, between)
    if not (np.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"bandwidth must be a finite number of bytes/s > 0, got {bandwidth}")
    if not (np.isfinite(downtime) and downtime >= 0) or max_rounds < 1:
        raise ValueError(
            f"downtime must be finite seconds >= 0 and max_rounds >= 1, got {downtime}, "
            f"{max_rounds}"
        )
    secs, dirty_b = dirty_bytes(capture, statistic) if dirty is None else dirty
    d0 = float((dump_size(capture) if dump is None else dump)[capture._index(at)])
    sizes, times = [d0], [d0 / bandwidth]
    reason = "max_rounds"
    converged = False
    while len(sizes) <= max_rounds:
        if times[-1] <= downtime:
            converged, reason = True, "fits the downtime budget"
            break
        nxt = min(float(np.interp(times[-1], secs, dirty_b)), d0)
        if nxt >= sizes[-1]:
            reason = "dirty set no longer shrinks"
            sizes.append(nxt)
            times.append(nxt / bandwidth)
            break
        sizes.append(nxt)
        times.append(nxt / bandwidth)
    return PrecopyEstimate(bandwidth, downtime, np.array(sizes), np.array(times), converged, reason)
