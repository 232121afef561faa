"""Shared look: colours per category and VMA kind, hex address ticks, axes resolution."""

from __future__ import annotations

import matplotlib
import matplotlib.colors as mcolors
import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, Locator, MaxNLocator

from .._units import human_bytes

# One colour per category, used for single-category colormaps and the composite view.
CATEGORY_COLORS = {
    "written": "#d62728",
    "present": "#1f77b4",
    "swapped": "#ff7f0e",
    "file": "#2ca02c",
    "huge": "#9467bd",
    "pfnzero": "#8c564b",
}
CATEGORY_CMAPS = {
    "written": "inferno",
    "present": "viridis",
    "swapped": "cividis",
    "file": "mako" if "mako" in matplotlib.colormaps else "YlGnBu_r",
}
UNMAPPED_COLOR = "#d4d4d4"
"""Cells where nothing was mapped at that time (not "0 % of pages"): one colour in every plot.

A neutral light grey: none of the fraction colormaps (inferno, viridis, cividis, magma) reaches
it at 0, and the composite heatmap's 0 is white.
"""
UNMAPPED_LABEL = "not mapped at that time"

KIND_COLORS = {
    "anon": "#4c72b0",
    "heap": "#dd8452",
    "stack": "#55a868",
    "file": "#8172b3",
    "shm": "#937860",
    "vdso": "#da8bc3",
    "shadow": "#c44e52",
    "guard": "#8c8c8c",
    "other": "#ccb974",
    "unattributed": "#bbbbbb",
}


def get_ax(ax: Axes | None) -> Axes:
    """``ax`` or the current Axes (matplotlib convention)."""
    if ax is not None:
        return ax
    # pyplot only when asked for its current Axes: the report and the widgets draw on their
    # own Figures and never need pyplot's state or backend.
    import matplotlib.pyplot as plt

    return plt.gca()


def hex_address(x: float) -> str:
    """``0x7f12_3456_7000``-style label: underscores every 4 hex digits for readability."""
    v = int(x)
    h = f"{v:x}"
    groups = [h[max(0, i - 4) : i] for i in range(len(h), 0, -4)][::-1]
    return "0x" + "_".join(groups)


def hex_formatter(to_real=None) -> FuncFormatter:
    """A tick formatter printing real addresses in hex (``to_real`` maps axis positions)."""

    def fmt(x: float, _pos: int) -> str:
        if to_real is None:
            return hex_address(x)
        return hex_address(int(to_real(np.array([max(x, 0)], dtype=np.int64))[0]))

    return FuncFormatter(fmt)


class ByteLocator(Locator):
    """Ticks at round numbers of the largest binary unit (KiB, MiB, ...) below the data max."""

    def __call__(self):  # noqa: D102 - matplotlib Locator protocol
        lo, hi = self.axis.get_view_interval()
        return self.tick_values(lo, hi)

    def tick_values(self, vmin: float, vmax: float):  # noqa: D102
        top = max(abs(vmin), abs(vmax), 1.0)
        unit = 1024.0 ** int(np.floor(np.log(top) / np.log(1024)))
        nice = MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10])
        return np.asarray(nice.tick_values(vmin / unit, vmax / unit)) * unit


def fraction_cmap(
    cmap: str | mcolors.Colormap | None = None, *, category: str = ""
) -> mcolors.Colormap:
    """A copy of ``cmap`` (default: the category's) painting NaN ("bad") in ``UNMAPPED_COLOR``.

    Heatmap grids hold NaN where no page was mapped at that time; with this colormap those
    cells read as "unmapped", never as the colormap's 0.
    """
    base = (
        cmap
        if isinstance(cmap, mcolors.Colormap)
        else matplotlib.colormaps[cmap or category_cmap(category)]
    )
    # with_extremes: a copy with set_bad applied (set_bad itself is being deprecated).
    return base.with_extremes(bad=UNMAPPED_COLOR)


def unmapped_patch(**kwargs) -> Patch:  # noqa: ANN003 - Patch keyword arguments
    """A legend handle for the unmapped colour (``ax.legend(handles=[..., unmapped_patch()])``)."""
    kwargs.setdefault("facecolor", UNMAPPED_COLOR)
    kwargs.setdefault("edgecolor", "#999999")
    kwargs.setdefault("linewidth", 0.5)
    kwargs.setdefault("label", UNMAPPED_LABEL)
    return Patch(**kwargs)



def human_rate(bytes_per_s: float, *, nominal_bits: float | None = None) -> str:
    """A byte rate with IEC prefixes, ``"119 MiB/s"``; with the link's nominal bit rate once,
    ``"119 MiB/s (1 Gbit/s)"`` (the project's convention: bytes everywhere, the vendor's
    decimal bit rate only as a name).

    Parameters
    ----------
    bytes_per_s : float
        The rate in bytes per second.
    nominal_bits : float, optional
        The nominal link speed in bits per second (1e9 for "1 Gbit/s"), added in parentheses.
    """
    text = f"{human_bytes(bytes_per_s)}/s"
    if nominal_bits is None:
        return text
    return f"{text} ({nominal_bit_rate(nominal_bits)})"


def nominal_bit_rate(bits_per_s: float) -> str:
    """A link's nominal speed in decimal bits per second: ``"100 Mbit/s"``, ``"10 Gbit/s"``."""
    for unit, scale in (("Tbit/s", 1e12), ("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if abs(bits_per_s) >= scale:
            return f"{bits_per_s / scale:g} {unit}"
    return f"{bits_per_s:g} bit/s"


def set_byte_axis(axis) -> None:  # noqa: ANN001 - a matplotlib Axis
    """Binary-unit ticks and labels on ``ax.xaxis`` or ``ax.yaxis``."""
    axis.set_major_locator(ByteLocator())
    axis.set_major_formatter(byte_formatter())


def byte_formatter() -> FuncFormatter:
    """Ticks in KiB / MiB / GiB (``human_bytes``)."""
    return FuncFormatter(lambda x, _pos: human_bytes(x))


def category_color(label: str) -> str:
    return CATEGORY_COLORS.get(label, "#444444")


def category_cmap(label: str) -> str:
    return CATEGORY_CMAPS.get(label, "viridis")
