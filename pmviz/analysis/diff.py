"""What changed between two snapshots (of one capture or of two): as regions and binned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .._intervals import set_op, union_columns
from ..capture import Capture, CaptureMeta
from ..regions import REGION_DTYPE, Regions
from ._html import Summary, human_bytes, table, text
from ._select import Between, phase
from ._stream import snapshot_rows
from .axis import AddressAxis, address_axis
from .heatmap import bin_address
from .working_set import RESIDENT, SWAPPED

__all__ = ["SnapshotDiff", "snapshot_diff", "DiffGrid", "diff_grid", "CHANGES"]

CHANGES = ("became_resident", "left_resident", "became_swapped", "left_swapped", "written")


@dataclass(frozen=True, repr=False)
class SnapshotDiff(Summary):
    """Pages whose state changed from snapshot ``a`` to ``b``.

    Resident means ``PRESENT``; swapped excludes guard and uffd-wp markers
    (``pmviz.analysis.working_set.SWAPPED``). ``written`` is the union of the written sets
    after ``a`` up to and including ``b`` (``None`` across two captures or without tracking).
    ``pair`` is a two-snapshot capture of ``a`` and ``b`` (their VMAs label the address axis).
    """

    became_resident: Regions
    left_resident: Regions
    became_swapped: Regions
    left_swapped: Regions
    written: Regions | None
    pair: Capture

    def totals(self) -> dict[str, int]:
        """Bytes per change."""
        return {k: getattr(self, k).size for k in CHANGES if getattr(self, k) is not None}

    def _rows(self) -> dict[str, str]:
        return {
            k.replace("_", " "): f"{human_bytes(v)} in {len(getattr(self, k)):,} regions"
            for k, v in self.totals().items()
        }

    def changes(self) -> list[str]:
        """The change kinds present in this diff, in ``CHANGES`` order."""
        return [k for k in CHANGES if getattr(self, k) is not None]


def _sel(regions: Regions, mask) -> tuple[np.ndarray, np.ndarray]:
    a = regions.array
    a = a[mask.matches(a["categories"])]
    return union_columns(a["start"], a["end"])


def _as_regions(iv: tuple[np.ndarray, np.ndarray], page_size: int) -> Regions:
    out = np.zeros(iv[0].size, REGION_DTYPE)
    out["start"], out["end"] = iv
    return Regions(out, page_size=page_size)


def snapshot_diff(
    capture: Capture,
    a: int = 0,
    b: int = -1,
    *,
    other: Capture | None = None,
    between: Between = None,
) -> SnapshotDiff:
    """Compare snapshot ``a`` of ``capture`` with snapshot ``b`` (of ``other`` if given).

    Parameters
    ----------
    capture : Capture
    a, b : int
        Snapshot indices (negative counts from the end).
    other : Capture, optional
        Compare across captures (e.g. two runs of one program); ``written`` is then None.
    between : (str, str), optional
        Only the phase from one mark to another (``Capture.between``), e.g.
        ``("fill", "sort")``.

    Returns
    -------
    SnapshotDiff
    """
    capture = phase(capture, between)
    second = capture if other is None else other
    ra, rb = capture.regions_at(a), second.regions_at(b)
    ps = capture.page_size
    gained = lambda x, y: y & ~x  # noqa: E731 - in b, not in a
    lost = lambda x, y: x & ~y  # noqa: E731
    res_a, res_b = _sel(ra, RESIDENT), _sel(rb, RESIDENT)
    swp_a, swp_b = _sel(ra, SWAPPED), _sel(rb, SWAPPED)
    written = None
    if other is None and capture.has_written:
        ia, ib = capture._index(a), capture._index(b)
        if ib < ia:
            raise ValueError(f"snapshot b ({ib}) comes before a ({ia}); swap them")
        ws = we = np.empty(0, np.uint64)
        for r in snapshot_rows(capture, "written", slice(ia + 1, ib + 1)):  # union by chunk
            ws, we = union_columns(
                np.concatenate([ws, r.rows["start"]]), np.concatenate([we, r.rows["end"]])
            )
        written = _as_regions((ws, we), ps)
    pair = Capture.from_snapshots(
        CaptureMeta(page_size=ps),
        [(0, ra, None, capture.vmas_at(a)), (1, rb, None, second.vmas_at(b))],
    )
    return SnapshotDiff(
        _as_regions(set_op(res_a, res_b, gained), ps),
        _as_regions(set_op(res_a, res_b, lost), ps),
        _as_regions(set_op(swp_a, swp_b, gained), ps),
        _as_regions(set_op(swp_a, swp_b, lost), ps),
        written,
        pair,
    )


class DiffGrid(NamedTuple):
    """``grid[k, j]``: the fraction of address bin ``j`` that underwent change ``changes[k]``."""

    grid: np.ndarray
    changes: list[str]
    addr_edges: np.ndarray
    addr_pos: np.ndarray
    axis: AddressAxis

    def _rows(self) -> dict[str, str]:
        rows = {"address bins": f"{self.grid.shape[1]:,} over {human_bytes(self.axis.length)}"}
        for k, g in zip(self.changes, self.grid):
            rows[k.replace("_", " ")] = (
                f"in {int((g > 0).sum()):,} bins, max {g.max(initial=0):.1%}"
            )
        return rows

    def __repr__(self) -> str:
        return text("DiffGrid", self._rows())

    def _repr_html_(self) -> str:
        return table("DiffGrid", self._rows())


def diff_grid(
    diff: SnapshotDiff,
    *,
    addr_bins: int = 512,
    axis: str = "compact",
    addr_range: tuple[int, int] | None = None,
) -> DiffGrid:
    """Bin a diff along the address axis of its two snapshots (exact coverage per bin)."""
    ax = address_axis(diff.pair, kind=axis, addr_range=addr_range)
    pos, real = ax.edges(addr_bins, diff.pair.page_size)
    kinds = diff.changes()
    parts = [getattr(diff, k).array for k in kinds]
    off = np.concatenate([[0], np.cumsum([p.size for p in parts])])
    counts = bin_address(np.concatenate(parts), off, ax, real)
    with np.errstate(invalid="ignore", divide="ignore"):
        grid = counts / np.diff(pos)[None, :]
    return DiffGrid(grid, kinds, real, pos, ax)
