"""The one place widgets turn data into pictures (swap point for ``pmviz.plotting``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib import colors

from ..capture import Capture
from ..categories import Category
from ..mask import Mask

CATEGORY_CHOICES = {
    "written": Category.WRITTEN,
    "present": Category.PRESENT,
    "swapped": Category.SWAPPED,
    "file": Category.FILE,
    "huge": Category.HUGE,
    "zero page": Category.PFNZERO,
    "guard": Category.GUARD,
}
SCALES = ("linear", "sqrt", "log")


def masked_capture(capture: Capture, mask: Mask, max_pages: int = 0) -> Capture:
    """Every snapshot re-masked offline: what a scan with ``mask`` would have returned.

    One ``Mask.apply`` per snapshot (vectorised inside); VMA tables and times are kept.
    """
    parts = [mask.apply(capture.regions_at(i), max_pages).array for i in range(len(capture))]
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    regions = np.concatenate(parts) if parts else capture.regions[:0]
    return Capture(
        capture.meta,
        capture.time_ns,
        regions,
        offsets,
        vma_tables=capture.vma_tables,
        vma_index=capture.vma_index,
    )


@dataclass
class Drawn:
    """A drawn heatmap and how to turn axis coordinates back into snapshots and addresses."""

    ax: object
    artist: object
    times: np.ndarray
    row_lo: np.ndarray
    row_hi: np.ndarray

    def snapshot_at(self, x: float) -> int:
        return int(
            np.clip(np.searchsorted(self.times, x, side="right") - 1, 0, len(self.times) - 1)
        )

    def address_at(self, y: float) -> int | None:
        row = int(np.floor(y))
        if not 0 <= row < len(self.row_lo):
            return None
        frac = y - row
        return int(self.row_lo[row] + frac * (self.row_hi[row] - self.row_lo[row])) & ~0xFFF


def _segments(capture: Capture) -> tuple[np.ndarray, np.ndarray]:
    starts = np.concatenate([v.start for v in capture.vma_tables] + [capture.regions["start"]])
    ends = np.concatenate([v.end for v in capture.vma_tables] + [capture.regions["end"]])
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    run_end = np.maximum.accumulate(e)
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] > run_end[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, len(s) - 1)
    return s[first], run_end[last]


def _grid(capture: Capture, category: int, addr_range, addr_bins: int = 400):  # noqa: ANN001
    seg_s, seg_e = _segments(capture)
    if addr_range is not None:
        lo, hi = addr_range
        seg_s, seg_e = np.maximum(seg_s, np.uint64(lo)), np.minimum(seg_e, np.uint64(hi))
        keep = seg_s < seg_e
        seg_s, seg_e = seg_s[keep], seg_e[keep]
        if not len(seg_s):
            raise ValueError(f"nothing is mapped in {lo:#x}-{hi:#x}")
    size = (seg_e - seg_s).astype(np.float64)
    weight = np.log2(np.maximum(size, 4096)) - 11
    rows = np.maximum(1, np.round(weight / weight.sum() * addr_bins)).astype(np.int64)
    edges = [np.linspace(float(a), float(b), int(n) + 1) for a, b, n in zip(seg_s, seg_e, rows)]
    lo = np.concatenate([x[:-1] for x in edges])
    hi = np.concatenate([x[1:] for x in edges])
    grid = np.zeros((len(lo), len(capture)))
    for i in range(len(capture)):
        r = capture.regions_at(i)
        if category:
            r = r.select(category)
        s = r.start.astype(np.float64)
        e = r.end.astype(np.float64)
        if not len(s):
            continue
        cs = np.concatenate([[0.0], np.cumsum(e - s)])

        def covered(x, s=s, e=e, cs=cs):  # noqa: ANN001, ANN202
            k = np.searchsorted(e, x, side="right")
            kk = np.minimum(k, len(s) - 1)
            part = np.where(k < len(s), np.clip(x - s[kk], 0, (e - s)[kk]), 0)
            return cs[k] + part

        grid[:, i] = (covered(hi) - covered(lo)) / (hi - lo)
    return grid, lo, hi


def draw_capture(
    ax,  # noqa: ANN001
    capture: Capture,
    *,
    category: str | int = 0,
    snapshots: slice = slice(None),
    addr_range: tuple[int, int] | None = None,
    scale: str = "linear",
    cmap: str = "magma",
) -> Drawn:
    """Interim renderer: replaced by ``pmviz.plotting.heatmap`` once it lands."""
    cap = capture.select(snapshots) if snapshots != slice(None) else capture
    if isinstance(category, str):
        if category == "written" and cap.has_written:
            cap = Capture(
                cap.meta,
                cap.time_ns,
                cap.written,
                cap.written_offsets,
                vma_tables=cap.vma_tables,
                vma_index=cap.vma_index,
            )
            bits = 0
        else:
            bits = int(CATEGORY_CHOICES[category])
    else:
        bits = int(category)
    grid, lo, hi = _grid(cap, bits, addr_range)
    t = capture.times[snapshots]
    t1 = float(t[-1]) + 0.1 if len(t) else 1.0
    norm = {
        "linear": colors.Normalize(0, 1),
        "sqrt": colors.PowerNorm(0.5, 0, 1),
        "log": colors.LogNorm(1e-4, 1),
    }[scale]
    im = ax.imshow(
        grid,
        aspect="auto",
        origin="lower",
        extent=(float(t[0]), t1, 0, len(lo)),
        cmap=cmap,
        norm=norm,
        interpolation="nearest",
    )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("address (gaps collapsed)")
    return Drawn(ax, im, np.asarray(t, dtype=float), lo, hi)


def draw_working_set(ax, capture: Capture):  # noqa: ANN001, ANN201
    """Interim: resident and written bytes per snapshot (replaced by pmviz.plotting)."""
    n = len(capture)
    t = capture.times
    resident = [
        capture.regions_at(i).pages_with(Category.PRESENT) * capture.page_size for i in range(n)
    ]
    lines = ax.plot(t, np.array(resident) / 2**20, label="resident")
    if capture.has_written:
        written = [capture.written_at(i).size for i in range(n)]
        lines += ax.plot(t, np.array(written) / 2**20, label="written since previous")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MiB")
    ax.legend(loc="upper left", fontsize=8)
    return lines
