"""How the widgets draw: thin adapters over ``pmviz.analysis`` and ``pmviz.plotting``.

The widgets own no binning or plotting code of their own; this module turns widget state
(category choice, snapshot window, zoom, colour scale) into calls of the project's functions
and keeps what is needed to map a mouse position back to a snapshot and an address.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib import colors

from ..analysis.axis import AddressAxis, address_axis
from ..analysis.heatmap import HeatmapGrid, heatmap_grid, snapshot_cells
from ..capture import Capture
from ..maps import VmaKind
from ..mask import Mask
from ..plotting import composite_heatmap, heatmap
from ..plotting._marks import draw_marks
from ..plotting._style import UNMAPPED_COLOR, UNMAPPED_LABEL, fraction_cmap, unmapped_patch

CATEGORY_CHOICES = (
    "written",
    "present",
    "swapped",
    "file",
    "huge",
    "pfnzero",
    "guard",
    "composite",
)
SCALES = ("linear", "sqrt", "log")
ADDR_BINS = 384


def masked_capture(capture: Capture, mask: Mask, max_pages: int = 0) -> Capture:
    """Every snapshot re-masked offline: what a scan with ``mask`` would have returned.

    One ``Mask.apply`` per snapshot (vectorised inside); VMA tables and times are kept, so
    the address axis is the capture's own.
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


def loaded(capture: Capture) -> Capture:
    """Make a lazily opened capture load its columns once (``regions_at`` is then a view)."""
    capture.regions  # noqa: B018 - the property loads on first access
    capture.written  # noqa: B018
    capture.vma_tables  # noqa: B018
    return capture


@dataclass
class Drawn:
    """A drawn heatmap and how to turn data coordinates back into snapshots and addresses."""

    ax: Any
    artist: Any
    cells: np.ndarray
    """Snapshot ``i`` is drawn over ``[cells[i], cells[i + 1])`` seconds."""
    axis: AddressAxis
    addr_lo: int
    addr_hi: int
    """Real addresses at the bottom and top of the drawn range."""
    time_range: tuple[float, float]
    addr_bins: int

    def snapshot_at(self, x: float, window: tuple[int, int] | None = None) -> int:
        """The snapshot drawn at time ``x``, clamped into ``window`` (first, last) if given."""
        i = np.searchsorted(self.cells, x, side="right") - 1
        lo, hi = window if window is not None else (0, len(self.cells) - 2)
        return int(np.clip(i, lo, hi))

    def address_at(self, y: float) -> int | None:
        if not 0 <= y < self.axis.length:
            return None
        return int(self.axis.to_real(int(y))) & ~0xFFF


def _norm(scale: str) -> colors.Normalize:
    if scale == "linear":
        return colors.Normalize(0.0, 1.0)
    if scale == "sqrt":
        return colors.PowerNorm(0.5, 0.0, 1.0)
    if scale == "log":
        return colors.LogNorm(1e-4, 1.0, clip=True)
    raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")


def view_axis(
    capture: Capture, addr_range: tuple[int, int] | None = None, *, hide_shadow: bool = False
) -> AddressAxis:
    """The compact address axis the widgets draw (guard reservations, maybe shadow, skipped)."""
    skip = (VmaKind.GUARD, VmaKind.SHADOW) if hide_shadow else (VmaKind.GUARD,)
    axis = address_axis(capture, addr_range=addr_range, skip_kinds=skip)
    if not axis.length:
        lo, hi = addr_range or (0, 0)
        raise ValueError(f"nothing is mapped in {lo:#x}-{hi:#x}")
    return axis


def margins(fig, *, legend: bool = False) -> dict[str, float]:  # noqa: ANN001 - a Figure
    """``subplots_adjust`` fractions with room, in inches, for what sits around the heatmap.

    Left: 16-character monospace hex tick labels (``0x7fff_f000_0000``) and the axis title
    (~1.6 in whatever the figure width); right: the colour bar's ticks and title (the bar
    itself and the VMA labels are carved out of the Axes by ``draw_capture``); bottom: the
    time axis, plus the composite legend.
    """
    w, h = fig.get_size_inches()
    return dict(
        left=min(0.4, 1.6 / w),
        right=1.0 - min(0.3, 0.75 / w),
        bottom=min(0.4, (1.05 if legend else 0.55) / h),
        top=1.0 - min(0.2, 0.35 / h),
    )


def draw_capture(
    ax,  # noqa: ANN001 - a matplotlib Axes
    capture: Capture,
    *,
    category: str | Mask = "present",
    snapshots: slice = slice(None),
    addr_range: tuple[int, int] | None = None,
    scale: str = "linear",
    title: str | None = None,
    addr_bins: int = ADDR_BINS,
    hide_shadow: bool = False,
    axis: AddressAxis | None = None,
    grid: HeatmapGrid | None = None,
) -> Drawn:
    """Draw ``capture`` with ``pmviz.plotting.heatmap`` (or ``composite_heatmap``).

    ``axis`` and ``grid`` (for the same category, snapshots and axis) skip recomputing them.
    """
    cells = snapshot_cells(capture)
    i0, i1, _ = snapshots.indices(len(capture))
    time_range = (float(cells[i0]), float(cells[i1]))
    if axis is None:
        axis = view_axis(capture, addr_range, hide_shadow=hide_shadow)
    if isinstance(category, str) and category == "composite":
        artist = composite_heatmap(
            capture,
            ax=ax,
            addr_bins=addr_bins,
            time_range=time_range,
            axis=axis,
            title=title,
            marks=False,  # drawn below, over the whole recording
        )
        # Its unmapped cells are transparent: show the unmapped colour through them (a 0
        # fraction is white there, so white cannot also mean "not mapped").
        ax.set_facecolor(UNMAPPED_COLOR)
        legend = ax.get_legend()
        if legend is not None:  # below the time axis title, in inches (fixed layout)
            axes_h = ax.get_position().height * ax.figure.get_size_inches()[1]
            legend.set_bbox_to_anchor((0.5, -0.5 / max(axes_h, 0.5)), transform=ax.transAxes)
    else:
        if grid is None:
            grid = heatmap_grid(
                capture, category, addr_bins=addr_bins, time_range=time_range, axis=axis
            )
        if isinstance(category, Mask):
            grid = grid._replace(category="selected")
        # The widgets place their own colour bar: at the right, sized in inches, beside the
        # VMA labels (they use a fixed layout; see ``margins``).
        artist = heatmap(
            grid, ax=ax, norm=_norm(scale), vmin=None, vmax=None, title=title, colorbar=False
        )
        artist.set_cmap(fraction_cmap(artist.get_cmap()))
        axes_w = ax.get_position().width * ax.figure.get_size_inches()[0]
        cb = ax.figure.colorbar(artist, ax=ax, pad=1.25 / max(axes_w, 1.0), fraction=0.035)
        cb.set_label(f"fraction of pages {grid.category}")
    # A fixed title position: matplotlib moves an auto-placed title above whatever sits over
    # the Axes, differently when the blitters hide it for their background.
    ax.set_title(ax.get_title(), y=1.0)
    add_unmapped_legend(ax)
    # every mark of the recording, not only those in the first view: the window zooms later
    draw_marks(ax, capture, within=(float(cells[0]), float(cells[-1])))
    lo, hi = (int(x) for x in axis.to_real(np.array([0, axis.length])))
    return Drawn(ax, artist, cells, axis, lo, hi, time_range, addr_bins)


def add_unmapped_legend(ax) -> None:  # noqa: ANN001 - an Axes
    """Say what the grey cells are, unless a legend of the figure already does.

    Above the plot's right end: clear of a centred title.
    """
    from matplotlib.legend import Legend

    legends = [*ax.figure.legends]
    for a in ax.figure.axes:
        legends += [a.get_legend(), *(x for x in a.artists if isinstance(x, Legend))]
    for leg in legends:
        if leg is not None and any(t.get_text() == UNMAPPED_LABEL for t in leg.get_texts()):
            return
    patch = unmapped_patch()
    leg = Legend(
        ax,
        [patch],
        [UNMAPPED_LABEL],
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        frameon=False,
        fontsize="x-small",
        borderaxespad=0.1,
        handlelength=1.2,
    )
    ax.add_artist(leg)


def axis_covers(axis: AddressAxis, vmas, *, hide_shadow: bool = False) -> bool:  # noqa: ANN001
    """Whether every accessible VMA lies inside the axis segments (then the axis still fits).

    A live process changes its VMA table all the time (heap growth, a new arena, an mmap
    that merges with its neighbour); as long as nothing new falls outside the drawn axis, the
    picture can be recoloured in place instead of rebuilt.
    """
    keep = vmas.kind != VmaKind.GUARD
    if hide_shadow:
        keep &= vmas.kind != VmaKind.SHADOW
    s, e = vmas.start[keep], vmas.end[keep]
    i = np.searchsorted(axis.seg_end, s, side="right")
    inside = i < axis.seg_start.size
    j = np.minimum(i, axis.seg_start.size - 1)
    return bool(np.all(inside & (axis.seg_start[j] <= s) & (e <= axis.seg_end[j])))


def redraw_grid(drawn: Drawn, capture: Capture, category: str | Mask) -> None:
    """Recompute the grid on the drawn axis and put it into the existing mesh.

    For a change that keeps the axes (same capture layout, another mask): no new artists, no
    layout, just ``heatmap_grid`` and ``QuadMesh.set_array`` — about half the redraw cost.
    """
    grid = heatmap_grid(
        capture, category, addr_bins=drawn.addr_bins, time_range=drawn.time_range, axis=drawn.axis
    )
    drawn.artist.set_array(np.ma.masked_invalid(grid.grid.T))  # type: ignore[attr-defined]


def snapshot_marker(ax, color: str = "#00b4ff"):  # noqa: ANN001, ANN201 - Axes, Rectangle
    """An outline around one snapshot's column (x in data, y over the whole Axes height)."""
    from matplotlib.patches import Rectangle
    from matplotlib.transforms import blended_transform_factory

    rect = Rectangle(
        (0.0, 0.0),
        0.0,
        1.0,
        transform=blended_transform_factory(ax.transData, ax.transAxes),
        facecolor="none",
        edgecolor=color,
        lw=1.6,
        zorder=5,
        clip_on=True,
    )
    ax.add_patch(rect)
    return rect


def place_marker(rect, cells: np.ndarray, i: int) -> None:  # noqa: ANN001 - a Rectangle
    """Move ``snapshot_marker`` to snapshot ``i``: ``[cells[i], cells[i + 1])`` seconds."""
    x0, x1 = float(cells[i]), float(cells[i + 1])
    rect.set_x(x0)
    rect.set_width(x1 - x0)


def shadow_dominates(capture: Capture, share: float = 0.5) -> bool:
    """Whether sanitizer shadow VMAs are more than ``share`` of the mapped bytes.

    ASan's ~16 TiB of shadow would squeeze everything else into a few pixels of a compact
    axis, so the widgets hide it by default then (notebook 03 shows it on purpose).
    """
    vmas = capture.vmas_at(-1)
    if not len(vmas):
        return False
    sizes = (vmas.end - vmas.start).astype(np.float64)
    usable = vmas.kind != VmaKind.GUARD
    shadow = (vmas.kind == VmaKind.SHADOW) & usable
    return bool(sizes[shadow].sum() > share * sizes[usable].sum())
