"""Reading a capture chunk by chunk: the rows of each chunk with their snapshot numbers.

Every analysis that walks a whole capture goes through here, so its memory is one chunk of
rows (``MAX_ROWS``) plus its own result, however many snapshots the capture has. Nothing here
touches the capture's all-snapshot arrays (``Capture.regions`` / ``region_offsets``): only
``Capture.chunks`` and ``Capture.changes``, which a capture that stores changes serves from
what it stores.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from .._intervals import concat_aranges
from ..capture import Capture, Changes

MAX_ROWS = 1 << 21
"""Rows per chunk: 48 MiB of ``page_region`` rows; the temporaries of one chunk stay below
a few hundred MiB."""


def chunks(capture: Capture, snapshots: slice | None = None) -> Iterator[tuple[int, Capture]]:
    """``capture.chunks`` with this module's chunk size."""
    return capture.chunks(snapshots, max_rows=MAX_ROWS)


def changes(
    capture: Capture, snapshots: slice | None = None, *, whole_keyframes: bool = False
) -> Iterator[Changes]:
    """``capture.changes`` with this module's chunk size."""
    if whole_keyframes:
        return capture.changes(snapshots, max_rows=MAX_ROWS, whole_keyframes=True)
    return capture.changes(snapshots, max_rows=MAX_ROWS)


class Rows(NamedTuple):
    """Rows of consecutive snapshots: ``rows[i]`` belongs to snapshot ``snapshot[i]``."""

    rows: np.ndarray
    snapshot: np.ndarray


def snapshot_rows(
    capture: Capture, what: str = "regions", snapshots: slice | None = None
) -> Iterator[Rows]:
    """The full scans (``"regions"``) or written sets (``"written"``) of ``snapshots``, by chunk."""
    for first, arr, off in row_chunks(capture, what, snapshots):
        snap = np.repeat(np.arange(first, first + off.size - 1, dtype=np.int64), np.diff(off))
        yield Rows(arr, snap)


def row_chunks(
    capture: Capture, what: str = "regions", snapshots: slice | None = None
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(first snapshot, rows, offsets)`` of the full scans or written sets, by chunk.

    Written sets are read alone (``Capture.written_chunks``): the region rows are not decoded.
    """
    if what == "written":
        if not capture.has_written:
            raise ValueError("this capture has no written sets")
        yield from capture.written_chunks(snapshots, max_rows=MAX_ROWS)
        return
    for first, chunk in chunks(capture, snapshots):
        yield first, chunk.regions, chunk.region_offsets


def no_written(capture: Capture) -> ValueError:
    """The error for an analysis that needs written sets on a capture without them."""
    return ValueError(
        "this capture has no written sets (recorded without write tracking: "
        f"write_mechanism={capture.meta.write_mechanism!r}); choose a category such as "
        "'present' or 'swapped', or record with write tracking"
    )


def to_compact(
    start: np.ndarray,
    end: np.ndarray,
    seg_start: np.ndarray,
    seg_end: np.ndarray,
    seg_pos: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut ``[start, end)`` rows to the axis segments and map the pieces to compact positions.

    Returns ``(pos_start, pos_end, row)`` (``int64``): a row over a collapsed gap becomes one
    piece per segment it touches; rows wholly inside gaps disappear.
    """
    start = np.asarray(start, np.uint64)
    end = np.asarray(end, np.uint64)
    k0 = np.searchsorted(seg_end, start, side="right")  # first segment ending after start
    k1 = np.searchsorted(seg_start, end, side="left")  # segments starting before end
    n = np.maximum(k1 - k0, 0)
    if n.size and n.min() == 1 and n.max() == 1:  # the usual case: one segment per row
        row, seg = np.arange(start.size, dtype=np.int64), k0
    else:
        row = np.repeat(np.arange(start.size, dtype=np.int64), n)
        seg = concat_aranges(k0, n)
    ss = seg_start[seg]
    a = np.maximum(start[row], ss)
    b = np.minimum(end[row], seg_end[seg])
    ok = b > a
    ps = seg_pos[seg][ok] + (a[ok] - ss[ok]).astype(np.int64)
    return ps, ps + (b[ok] - a[ok]).astype(np.int64), row[ok]


def split_bins(
    pos_start: np.ndarray, pos_end: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut compact pieces at bin ``edges``: ``(bin, bytes, piece)`` per part inside a bin."""
    nb = edges.size - 1
    j0 = np.maximum(np.searchsorted(edges, pos_start, side="right") - 1, 0)
    # Most pieces end inside the bin they start in: test that, search only for the others.
    j1 = j0 + 1
    far = (j0 >= nb) | (pos_end > edges[np.minimum(j1, nb)]) | (pos_end <= edges[j0])
    if far.any():
        j1[far] = np.searchsorted(edges, pos_end[far], side="left")
    np.minimum(j1, nb, out=j1)
    n = np.maximum(j1 - j0, 0)
    if n.size and n.min() == 1 and n.max() == 1:  # every piece inside one bin
        piece, j = np.arange(pos_start.size, dtype=np.int64), j0
    else:
        piece = np.repeat(np.arange(pos_start.size, dtype=np.int64), n)
        j = concat_aranges(j0, n)
    lo = np.maximum(pos_start[piece], edges[j])
    hi = np.minimum(pos_end[piece], edges[j + 1])
    return j, hi - lo, piece
