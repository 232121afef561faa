"""``CaptureViewer``: browse a capture — time, address zoom, category, and what is under the cursor."""

from __future__ import annotations

import html
import importlib.util
import time
from typing import Any

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure

from .._units import human_bytes
from ..analysis.axis import AddressAxis
from ..analysis.heatmap import HeatmapGrid, heatmap_grid
from ..capture import Capture
from ..maps import Vmas
from ..names import from_records, name_at
from ..plotting._style import fraction_cmap, hex_address
from . import _render
from ._controls import Blitter, figure_png, lookup, parse_hex_range, readout_html

__all__ = ["CaptureViewer"]

_ALL = "(whole address space)"
_HEX = "(hex range below)"
# Not None: ipywidgets takes a None value for "nothing selected" and blanks the dropdown.
_NO_ZOOM: tuple[()] = ()
_HEX_ZOOM = (-1, -1)
"""The zoom dropdown's value while the hex range box sets the zoom."""

_ZoomValue = tuple[int, int] | tuple[()]


def _vma_options(vmas: Vmas) -> list[tuple[str, _ZoomValue]]:
    opts: list[tuple[str, _ZoomValue]] = [(_ALL, _NO_ZOOM), (_HEX, _HEX_ZOOM)]
    for i in range(len(vmas)):
        a = vmas.array[i]
        s, e = int(a["start"]), int(a["end"])
        perms = a["perms"].decode()
        opts.append((f"{vmas.label(i)}  {s:#x}  {perms}  {human_bytes(e - s)}", (s, e)))
    return opts


class CaptureViewer(widgets.VBox):
    """An interactive heatmap of a capture.

    A snapshot window and a cursor snapshot (time sliders), an address zoom by VMA or hex
    range, the category and colour scale, and a read-out of the region under the cursor:
    address, size, categories and VMA. With ipympl installed (and ``interactive`` not False)
    the figure is ipympl's canvas and hovering or clicking fills the read-out; with plain
    matplotlib the figure is a PNG and the read-out follows the ``address`` box.

    The whole recording is binned once per address range and category (one column per
    snapshot) and kept: the snapshot window only zooms the time axis, and a category or colour
    scale change puts another cached grid, colormap or norm into the drawn mesh. Only an
    address zoom (new ticks and VMA bands) or the composite view rebuilds the figure.

    Parameters
    ----------
    capture : Capture
        The recording to show.
    category : str
        Initial category: one of ``CaptureViewer.CATEGORIES``.
    interactive : bool, optional
        Force (True) or avoid (False) the ipympl canvas; default: use it when installed.

    Attributes
    ----------
    drawn : object
        What the last draw produced (the artist and the axis mappings).
    readout_info : dict
        The last read-out (address, region, size, categories, vma, and the named Python
        object holding the address when the capture has names, see ``pmviz.names``).
    view_info : dict
        What is on screen: time limits, snapshot window, address range (also shown as text).
    last_update_s : float
        Seconds the last control change took, PNG included.
    """

    CATEGORIES = _render.CATEGORY_CHOICES

    def __init__(
        self,
        capture: Capture,
        *,
        category: str | None = None,
        interactive: bool | None = None,
        figsize: tuple[float, float] = (10.0, 4.5),
    ) -> None:
        if not len(capture):
            raise ValueError("the capture has no snapshots")
        self.capture = _render.loaded(capture)
        self._names = from_records(self.capture.meta.extra.get("names"))  # %%pmviz's
        n = len(capture)
        if category is None:
            category = "written" if capture.has_written else "present"
        choices = [c for c in self.CATEGORIES if c != "written" or capture.has_written]
        if category not in choices:
            raise ValueError(f"category must be one of {choices}, got {category!r}")
        if interactive is None:
            interactive = importlib.util.find_spec("ipympl") is not None
        self.interactive = bool(interactive)

        def fixed(width: str) -> widgets.Layout:
            return widgets.Layout(width=width, min_width=width, flex="0 0 auto")

        self.window = widgets.IntRangeSlider(
            value=(0, n - 1),
            min=0,
            max=n - 1,
            description="snapshots",
            continuous_update=False,
            layout=fixed("420px"),
        )
        self.snapshot = widgets.IntSlider(
            value=n - 1,
            min=0,
            max=n - 1,
            description="cursor",
            continuous_update=False,
            layout=fixed("420px"),
        )
        self.vma = widgets.Dropdown(
            options=_vma_options(capture.vmas_at(-1)),
            value=_NO_ZOOM,
            description="zoom VMA",
            layout=fixed("420px"),
        )
        self.hex_range = widgets.Text(
            placeholder="0x7f0000000000-0x7f0000200000",
            description="hex range",
            continuous_update=False,
            layout=fixed("420px"),
        )
        self.category = widgets.Dropdown(
            options=choices, value=category, description="category", layout=fixed("260px")
        )
        self.scale = widgets.Dropdown(
            options=list(_render.SCALES),
            value="linear",
            description="colour scale",
            layout=fixed("260px"),
        )
        self.hide_shadow = widgets.Checkbox(
            value=_render.shadow_dominates(capture),
            description="hide sanitizer shadow",
            indent=False,
            layout=fixed("200px"),
        )
        self.address = widgets.Text(
            placeholder="hex address",
            description="address",
            continuous_update=False,
            layout=fixed("420px"),
        )
        self.readout = widgets.HTML()
        self.message = widgets.HTML()
        self.view = widgets.HTML()
        self.view.add_class("pmviz-view")
        self.readout_info: dict[str, str] = {}
        self.view_info: dict[str, Any] = {}
        self.last_update_s = 0.0
        self._blitter: Blitter | None = None
        self._cursor: Any = None
        self._syncing = False
        self.addr_range: tuple[int, int] | None = None
        self._axes: dict[tuple[Any, bool], AddressAxis] = {}
        self._grids: dict[tuple[Any, bool, str], HeatmapGrid] = {}
        self._drawn_key: tuple[Any, bool, bool] | None = None

        self.figure = Figure(figsize=figsize)
        if self.interactive:
            Canvas, FigureManager = _ipympl_classes()
            self._canvas = Canvas(self.figure)
            self._manager = FigureManager(self._canvas, 0)
            self._canvas.header_visible = False
            # Above the figure, not floating over its left edge where the address ticks are.
            self._canvas.toolbar_position = "top"
            self._canvas.toolbar_visible = "visible"
            self._canvas.mpl_connect("motion_notify_event", self._on_mouse)
            self._canvas.mpl_connect("button_press_event", self._on_mouse)
            view: widgets.Widget = self._canvas
        else:
            self.image = widgets.Image(format="png", layout=widgets.Layout(width="100%"))
            view = self.image

        wrap = widgets.Layout(flex_flow="row wrap")
        controls = widgets.VBox(
            [
                widgets.HBox([self.category, self.scale, self.hide_shadow], layout=wrap),
                widgets.HBox([self.window, self.snapshot], layout=wrap),
                widgets.HBox([self.vma, self.hex_range], layout=wrap),
                self.message,
                self.view,
            ]
        )
        super().__init__([controls, view, widgets.HBox([self.address]), self.readout])
        self.add_class("pmviz-capture-viewer")
        self.window.observe(self._on_window, names="value")
        self.category.observe(self._on_category, names="value")
        self.scale.observe(self._on_scale, names="value")
        self.hide_shadow.observe(self._redraw, names="value")
        self.snapshot.observe(self._on_snapshot, names="value")
        self.vma.observe(self._on_vma, names="value")
        self.hex_range.observe(self._on_hex, names="value")
        self.address.observe(self._on_address, names="value")
        self.redraw()

    # -- events ---------------------------------------------------------------------------
    def _redraw(self, _change=None) -> None:  # noqa: ANN001
        self.redraw()

    def _on_category(self, _change=None) -> None:  # noqa: ANN001
        self._timed(self._show_category)

    def _on_scale(self, _change=None) -> None:  # noqa: ANN001
        self._timed(self._show_scale)

    def _on_window(self, _change=None) -> None:  # noqa: ANN001
        self._timed(self._show_window)

    def _on_vma(self, change) -> None:  # noqa: ANN001
        if self._syncing or change["new"] == _HEX_ZOOM:
            return
        self.addr_range = change["new"] or None
        # The hex box shows the zoom the dropdown chose, not a range typed before.
        self._set_quietly(
            self.hex_range,
            "" if self.addr_range is None else _hex_range_text(*self.addr_range),
        )
        self.redraw()

    def _on_hex(self, change) -> None:  # noqa: ANN001
        if self._syncing:
            return
        text = change["new"].strip()
        if not text:
            self.addr_range = None
            self._set_quietly(self.vma, _NO_ZOOM)
        else:
            try:
                self.addr_range = parse_hex_range(text)
            except ValueError as err:
                self.message.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"
                return
            match = [v for _, v in self.vma.options if v == self.addr_range]
            self._set_quietly(self.vma, match[0] if match else _HEX_ZOOM)
        self.redraw()

    def _set_quietly(self, w: widgets.ValueWidget, value: Any) -> None:
        self._syncing = True
        try:
            w.value = value
        finally:
            self._syncing = False

    def _on_snapshot(self, _change=None) -> None:  # noqa: ANN001
        if self._syncing:
            return
        self._place_cursor()
        if self.readout_info.get("address"):
            self.show_address(int(self.readout_info["address"], 16))
        self._show_view()
        self._publish()

    def _on_address(self, change) -> None:  # noqa: ANN001
        text = change["new"].strip()
        if text:
            try:
                self.show_address(int(text, 16))
            except ValueError:
                self.message.value = (
                    f"<span style='color:#b00'>not a hex address: {html.escape(text)}</span>"
                )

    def _on_mouse(self, event) -> None:  # noqa: ANN001 - a matplotlib MouseEvent
        if event.inaxes is not self.drawn.ax or event.xdata is None:
            return
        # Only a drawn snapshot: one inside the window (the time axis shows just that).
        i = self.drawn.snapshot_at(event.xdata, self.window.value)
        addr = self.drawn.address_at(event.ydata)
        if addr is None:
            return
        if event.name == "button_press_event":
            self.snapshot.value = i
        self.show_address(addr, snapshot=i)

    # -- read-out -------------------------------------------------------------------------
    def show_address(self, address: int, *, snapshot: int | None = None) -> dict[str, str]:
        """Fill the read-out for ``address`` in ``snapshot`` (default: the cursor snapshot)."""
        i = self.snapshot.value if snapshot is None else snapshot
        info = {"snapshot": f"{i} (t = {self.capture.times[i]:.2f} s)"}
        info.update(lookup(self.capture.regions_at(i), self.capture.vmas_at(i), address))
        name = name_at(self._names, address)
        if name is not None:
            info["object"] = name
        written = self.capture.written_at(i)
        if written is not None:
            w = lookup(written, None, address)
            info["written"] = (
                f"yes, in the interval ending here (run {w['region']}, {w['size']})"
                if "size" in w
                else "not in the interval ending here"
            )
        self.readout_info = info
        self.readout.value = readout_html(info)
        return info

    # -- data -----------------------------------------------------------------------------
    def _axis(self) -> AddressAxis:
        key = (self.addr_range, bool(self.hide_shadow.value))
        if key not in self._axes:
            self._axes[key] = _render.view_axis(self.capture, self.addr_range, hide_shadow=key[1])
        return self._axes[key]

    def grid(self, category: str | None = None) -> HeatmapGrid:
        """The whole recording binned for ``category`` on the current address axis (cached)."""
        category = category or self.category.value
        key = (self.addr_range, bool(self.hide_shadow.value), category)
        if key not in self._grids:
            self._grids[key] = heatmap_grid(
                self.capture, category, addr_bins=_render.ADDR_BINS, axis=self._axis()
            )
        return self._grids[key]

    # -- drawing --------------------------------------------------------------------------
    def _timed(self, step) -> None:  # noqa: ANN001
        t0 = time.perf_counter()
        step()
        self.last_update_s = time.perf_counter() - t0

    def redraw(self) -> None:
        """Draw the heatmap for the current controls (rebuilds the figure when it must)."""
        self._timed(self._redraw_now)

    def _redraw_now(self) -> None:
        composite = self.category.value == "composite"
        key = (self.addr_range, bool(self.hide_shadow.value), composite)
        if key == self._drawn_key:
            self._show_category()
            return
        try:
            axis = self._axis()
            grid = None if composite else self.grid()
        except ValueError as err:  # e.g. a hex range with nothing mapped in it
            self.message.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"
            return
        self.message.value = ""
        fig = self.figure
        fig.clear()
        ax = fig.add_subplot()
        fig.subplots_adjust(**_render.margins(fig, legend=composite))
        self.drawn = _render.draw_capture(
            ax,
            self.capture,
            category=self.category.value,
            scale=self.scale.value,
            hide_shadow=bool(self.hide_shadow.value),
            axis=axis,
            grid=grid,
        )
        self._drawn_key = key
        self._cursor = None
        self._place_cursor()
        self._show_window(publish=False)
        self._publish(full=True)

    def _make_blitter(self) -> Blitter:
        """A cached background without what a cursor, category or scale change redraws.

        Those changes then render the mesh, the cursor line, the title and the colour bar
        over it; ticks, VMA bands and labels are rendered again only when the time window
        or the address range changes. Made on the first such change after a full render
        (a zoom or window change publishes one full render and no more).
        """
        mesh = self.drawn.artist
        dynamic = [mesh, self._cursor, self.drawn.ax.title]
        if getattr(mesh, "colorbar", None) is not None:
            dynamic.append(mesh.colorbar.ax)
        return Blitter(self.figure, *dynamic)

    def _show_category(self) -> None:
        """Another category on the same axes: its cached grid and colormap into the mesh."""
        composite = self.category.value == "composite"
        if self._drawn_key is None or self._drawn_key[2] != composite or composite:
            self._redraw_now()
            return
        g = self.grid()
        mesh = self.drawn.artist
        mesh.set_array(np.ma.masked_invalid(g.grid.T))
        mesh.set_cmap(fraction_cmap(category=g.category))
        if mesh.colorbar is not None:
            mesh.colorbar.set_label(f"fraction of pages {g.category}")
        self.drawn.ax.set_title(f"{g.category} pages")
        self._publish()

    def _show_scale(self) -> None:
        if self.category.value == "composite":  # no colour scale: fractions are opacities
            return
        mesh = self.drawn.artist
        mesh.set_norm(_render._norm(self.scale.value))
        if mesh.colorbar is not None:
            mesh.colorbar.update_normal(mesh)
        self._publish()

    def _show_window(self, *, publish: bool = True) -> None:
        """Zoom the time axis to the window and keep the cursor inside it."""
        i0, i1 = self.window.value
        cells = self.drawn.cells
        self.drawn.ax.set_xlim(float(cells[i0]), float(cells[i1 + 1]))
        self._syncing = True
        try:  # min/max in an order that never puts value outside [min, max] on the way
            self.snapshot.max = max(i1, self.snapshot.min)
            self.snapshot.min = i0
            self.snapshot.max = i1
        finally:
            self._syncing = False
        self._place_cursor()
        self._show_view()
        if publish:
            self._publish(full=True)

    def _place_cursor(self) -> None:
        t = float(self.capture.times[self.snapshot.value])
        if self._cursor is None:
            self._cursor = self.drawn.ax.axvline(t, color="#39f", lw=1.2, alpha=0.9)
        else:
            self._cursor.set_xdata([t, t])

    def _show_view(self) -> None:
        """The read-out of what is on screen (also what tests and users can rely on)."""
        ax = self.drawn.ax
        t0, t1 = ax.get_xlim()
        i0, i1 = self.window.value
        self.view_info = {
            "xlim": (float(t0), float(t1)),
            "window": (int(i0), int(i1)),
            "cursor": int(self.snapshot.value),
            "addr": (self.drawn.addr_lo, self.drawn.addr_hi),
        }
        self.view.value = (
            "<span class='pmviz-view-text' style='font-size:12px'>"
            f"time axis <b class='pmviz-xlim'>{t0:.2f}–{t1:.2f} s</b> "
            f"(snapshots {i0}–{i1}, cursor {self.snapshot.value}) · addresses "
            f"<code>{hex_address(self.drawn.addr_lo)}</code>–"
            f"<code>{hex_address(self.drawn.addr_hi)}</code></span>"
        )

    def _publish(self, *, full: bool = False) -> None:
        """Show the figure: ipympl draws it itself; else a full PNG or a blitted frame."""
        if self.interactive:
            self._canvas.draw_idle()
            return
        if full:  # ticks or bands changed: the cached background is stale
            self._blitter = None
            self.image.value = figure_png(self.figure, dpi=self.figure.dpi)
            return
        if self._blitter is None:
            self._blitter = self._make_blitter()
        self.image.value = self._blitter.frame(dpi=self.figure.dpi)

    @property
    def png(self) -> bytes:
        """The current figure as PNG bytes."""
        return figure_png(self.figure)


def _ipympl_classes():  # noqa: ANN202 - ipympl's Canvas and FigureManager classes
    """The canvas classes of ipympl, without the side effect of importing ipympl.

    ``import ipympl`` calls ``matplotlib.use("module://ipympl.backend_nbagg")`` when matplotlib
    is loaded: every later ``plt.subplots`` of the notebook would turn into an ipympl widget
    (shown twice without ``plt.ioff()``). The viewer only needs the classes for its own figure,
    so pyplot's backend is put back as it was.
    """
    import matplotlib

    get = getattr(matplotlib.rcParams, "_get_backend_or_none", None)
    before = get() if get is not None else None  # None: not resolved yet ("auto")
    fallback = matplotlib.rcParams["backend_fallback"]
    from ipympl.backend_nbagg import Canvas, FigureManager

    if before is not None and matplotlib.rcParams._get_backend_or_none() != before:
        matplotlib.use(before)
    matplotlib.rcParams["backend_fallback"] = fallback
    return Canvas, FigureManager


def _hex_range_text(start: int, end: int) -> str:
    return f"{start:#x}-{end:#x}"
