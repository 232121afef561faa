"""Coverage kernels over a capture's sorted ``[start, end)`` region lists (the core of this layer).

The plain interval algebra (union, covered, set operations) lives in ``pmviz._intervals``;
this module holds what only analysis needs. Everything here works on whole arrays: a
capture's concatenated regions plus offsets, or plain start/end arrays. The one loop per
snapshot in ``prefix_coverage`` runs a single ``searchsorted`` of a few hundred query points
into that snapshot's regions; the per-region work (matching, lengths, prefix sums) is done
per chunk of snapshots on whole arrays.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._intervals import concat_aranges
from ..mask import Mask

_CHUNK_REGIONS = 1 << 15  # 768 KiB of regions per chunk: the temporaries stay in cache
_local = threading.local()


class _Buf:
    def __init__(self, n: int) -> None:
        self.size = n
        self.u64a = np.empty(n + 1, np.uint64)
        self.u64b = np.empty(n, np.uint64)
        self.mask = np.empty(n, bool)


def _buffers(n: int) -> _Buf:
    """Per-thread scratch arrays, reused across chunks (no allocation, no page faults)."""
    buf = getattr(_local, "buf", None)
    if buf is None or buf.size < n:
        buf = _local.buf = _Buf(max(n, _CHUNK_REGIONS))
    return buf


def _segment_prefix(ln: np.ndarray, starts: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``ln[starts[j]:k[j, p]].sum()`` for every row ``j`` and point ``p``.

    One ``add.reduceat`` over the row starts and points (nondecreasing across the chunk), then
    a small cumulative sum per row: reading ``ln`` once, where a full prefix sum would also
    write one value per region.
    """
    rows, n_pts = k.shape
    b = np.empty((rows, n_pts + 1), dtype=np.int64)
    b[:, 0] = starts
    b[:, 1:] = k
    flat = b.ravel()
    seg = np.add.reduceat(ln, flat)
    # reduceat gives ln[i] (not 0) for an empty segment [i, i): zero those.
    seg[:-1][flat[1:] == flat[:-1]] = 0
    return np.cumsum(seg.reshape(rows, n_pts + 1)[:, :n_pts], axis=1).astype(np.int64)


def _matches(select, categories: np.ndarray, buf: _Buf, n: int) -> np.ndarray:
    """``select.matches(categories)``; a plain ``require`` mask takes a two-pass fast path."""
    if isinstance(select, Mask) and not select.category_inverted and not select.category_anyof_mask:
        req = np.uint64(select.category_mask)
        tmp = np.bitwise_and(categories, req, out=buf.u64b[:n])
        return np.equal(tmp, req, out=buf.mask[:n])
    return select.matches(categories)


def prefix_coverage(
    regions: np.ndarray,
    offsets: np.ndarray,
    points: np.ndarray,
    *,
    select: Mask | BitMatch | None = None,
    rows: np.ndarray | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Bytes of each snapshot's (selected) regions below each point.

    Parameters
    ----------
    regions : numpy.ndarray
        ``REGION_DTYPE``, snapshots concatenated; each snapshot sorted and non-overlapping.
    offsets : numpy.ndarray
        ``n + 1`` offsets: snapshot ``i`` is ``regions[offsets[i]:offsets[i + 1]]``.
    points : numpy.ndarray
        Sorted ``uint64`` addresses, shared by every row (1-D) or one row each (2-D).
    select : Mask or BitMatch, optional
        Count only regions whose categories match (``.matches``); default every region.
    rows : numpy.ndarray, optional
        Snapshot indices to evaluate (default all).
    threads : int, optional
        Worker threads over chunks of snapshots (default: the CPU count, at most 4).

    Returns
    -------
    numpy.ndarray
        ``int64`` of shape ``(len(rows), n_points)``: ``C_i(p) = |selected ∩ [0, p)|`` in bytes.
        Differences of neighbouring columns are exact per-bin byte counts.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    rows = np.arange(offsets.size - 1) if rows is None else np.asarray(rows, dtype=np.int64)
    pts = np.asarray(points, dtype=np.uint64)
    shared = pts.ndim == 1
    n_pts = pts.shape[-1]
    out = np.zeros((rows.size, n_pts), dtype=np.int64)
    if not rows.size or not n_pts:
        return out
    lens = offsets[rows + 1] - offsets[rows]
    if not shared and pts.shape[0] != rows.size:
        raise ValueError(f"2-D points need one row per evaluated snapshot ({rows.size})")
    # Chunks of consecutive rows holding about _CHUNK_REGIONS regions each.
    before = np.cumsum(lens) - lens
    chunk_id = before // _CHUNK_REGIONS
    cuts = np.flatnonzero(np.diff(chunk_id, prepend=-1, append=chunk_id[-1] + 1))

    def work(c0: int, c1: int) -> None:
        rr = rows[c0:c1]
        contiguous = rr.size == 1 or bool(np.all(np.diff(rr) == 1))
        if contiguous:
            o0, o1 = int(offsets[rr[0]]), int(offsets[rr[-1] + 1])
            chunk = regions[o0:o1]
            starts = offsets[rr] - o0
        else:  # gather the rows' regions into one array
            take_lens = offsets[rr + 1] - offsets[rr]
            starts = np.zeros(rr.size, dtype=np.int64)
            np.cumsum(take_lens[:-1], out=starts[1:])
            chunk = regions[concat_aranges(offsets[rr], take_lens)]
        st = chunk["start"]
        en = chunk["end"]
        n = chunk.size
        buf = _buffers(n)
        ln = buf.u64a[: n + 1]  # one extra zero: reduceat may start a segment at n
        np.subtract(en, st, out=ln[:n])
        ln[n] = 0
        if select is not None:
            m = _matches(select, chunk["categories"], buf, n)
            np.multiply(ln[:n], m, out=ln[:n])
        ends = np.append(starts[1:], chunk.size)
        k = np.empty((rr.size, n_pts), dtype=np.int64)
        for j in range(rr.size):  # one searchsorted per snapshot (a few hundred points)
            p = pts if shared else pts[c0 + j]
            k[j] = np.searchsorted(st[starts[j] : ends[j]], p, side="left")
        k += starts[:, None]
        prev = np.maximum(k - 1, 0)
        # The region just below a point may extend past it: take off its overhang.
        p2 = pts[None, :] if shared else pts[c0:c1]
        has_prev = k > starts[:, None]
        if chunk.size:
            e_prev = en[prev]
            if select is not None:
                has_prev &= m[prev]
            has_prev &= e_prev > p2
            over = np.where(has_prev, e_prev - np.minimum(p2, e_prev), 0).astype(np.int64)
            out[c0:c1] = _segment_prefix(ln, starts, k) - over

    n_threads = threads or min(os.cpu_count() or 1, 4)
    pairs = list(zip(cuts[:-1].tolist(), cuts[1:].tolist()))
    if n_threads > 1 and len(pairs) > 1:
        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(lambda c: work(*c), pairs))
    else:
        for c in pairs:
            work(*c)
    return out


class BitMatch:
    """Duck-typed ``Mask.matches`` for values that are not kernel categories (class codes)."""

    def __init__(self, bits: int) -> None:
        self.bits = np.uint64(bits)

    def matches(self, categories: np.ndarray) -> np.ndarray:
        return (np.asarray(categories, dtype=np.uint64) & self.bits) == self.bits
