"""``CaptureViewer``: browse a capture — time, address zoom, category, and what is under the cursor."""

from __future__ import annotations

import html
import importlib.util

import ipywidgets as widgets
from matplotlib.figure import Figure

from ..capture import Capture
from ..maps import Vmas
from ..regions import _human_bytes
from . import _render
from ._controls import Blitter, figure_png, lookup, parse_hex_range, readout_html

__all__ = ["CaptureViewer"]

_ALL = "(whole address space)"
# Not None: ipywidgets takes a None value for "nothing selected" and blanks the dropdown.
_NO_ZOOM: tuple[()] = ()


def _vma_options(vmas: Vmas) -> list[tuple[str, tuple[int, int] | tuple[()]]]:
    opts: list[tuple[str, tuple[int, int] | tuple[()]]] = [(_ALL, _NO_ZOOM)]
    for i in range(len(vmas)):
        a = vmas.array[i]
        s, e = int(a["start"]), int(a["end"])
        perms = a["perms"].decode()
        opts.append((f"{vmas.label(i)}  {s:#x}  {perms}  {_human_bytes(e - s)}", (s, e)))
    return opts


class CaptureViewer(widgets.VBox):
    """An interactive heatmap of a capture.

    A snapshot window and a cursor snapshot (time sliders), an address zoom by VMA or hex
    range, the category and colour scale, and a read-out of the region under the cursor:
    address, size, categories and VMA. With ipympl installed (and ``interactive`` not False)
    the figure is ipympl's canvas and hovering or clicking fills the read-out; with plain
    matplotlib the figure is a PNG and the read-out follows the ``address`` box.

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
        The last read-out (address, region, size, categories, vma).
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
        n = len(capture)
        if category is None:
            category = "written" if capture.has_written else "present"
        choices = [c for c in self.CATEGORIES if c != "written" or capture.has_written]
        if category not in choices:
            raise ValueError(f"category must be one of {choices}, got {category!r}")
        if interactive is None:
            interactive = importlib.util.find_spec("ipympl") is not None
        self.interactive = bool(interactive)

        self.window = widgets.IntRangeSlider(
            value=(0, n - 1), min=0, max=n - 1, description="snapshots", continuous_update=False
        )
        self.snapshot = widgets.IntSlider(
            value=n - 1, min=0, max=n - 1, description="cursor", continuous_update=False
        )
        self.vma = widgets.Dropdown(
            options=_vma_options(capture.vmas_at(-1)), value=_NO_ZOOM, description="zoom VMA"
        )
        self.hex_range = widgets.Text(
            placeholder="0x7f0000000000-0x7f0000200000",
            description="hex range",
            continuous_update=False,
        )
        self.category = widgets.Dropdown(options=choices, value=category, description="category")
        self.scale = widgets.Dropdown(
            options=list(_render.SCALES), value="linear", description="colour scale"
        )
        self.hide_shadow = widgets.Checkbox(
            value=_render.shadow_dominates(capture),
            description="hide sanitizer shadow",
            indent=False,
        )
        self.address = widgets.Text(
            placeholder="hex address", description="address", continuous_update=False
        )
        self.readout = widgets.HTML()
        self.message = widgets.HTML()
        self.readout_info: dict[str, str] = {}
        self._blitter: Blitter | None = None
        self.addr_range: tuple[int, int] | None = None

        self.figure = Figure(figsize=figsize)
        if self.interactive:
            from ipympl.backend_nbagg import Canvas, FigureManager

            self._canvas = Canvas(self.figure)
            self._manager = FigureManager(self._canvas, 0)
            self._canvas.header_visible = False
            self._canvas.mpl_connect("motion_notify_event", self._on_mouse)
            self._canvas.mpl_connect("button_press_event", self._on_mouse)
            view: widgets.Widget = self._canvas
        else:
            self.image = widgets.Image(format="png", layout=widgets.Layout(width="100%"))
            view = self.image

        controls = widgets.VBox(
            [
                widgets.HBox([self.category, self.scale, self.hide_shadow]),
                widgets.HBox([self.window, self.snapshot]),
                widgets.HBox([self.vma, self.hex_range]),
                self.message,
            ]
        )
        super().__init__([controls, view, widgets.HBox([self.address]), self.readout])
        self.add_class("pmviz-capture-viewer")
        for w in (self.window, self.category, self.scale, self.hide_shadow):
            w.observe(self._redraw, names="value")
        self.snapshot.observe(self._on_snapshot, names="value")
        self.vma.observe(self._on_vma, names="value")
        self.hex_range.observe(self._on_hex, names="value")
        self.address.observe(self._on_address, names="value")
        self.redraw()

    # -- events ---------------------------------------------------------------------------
    def _redraw(self, _change=None) -> None:  # noqa: ANN001
        self.redraw()

    def _on_vma(self, change) -> None:  # noqa: ANN001
        self.addr_range = change["new"] or None
        self.redraw()

    def _on_hex(self, change) -> None:  # noqa: ANN001
        text = change["new"].strip()
        if not text:
            self.addr_range = self.vma.value or None
        else:
            try:
                self.addr_range = parse_hex_range(text)
            except ValueError as err:
                self.message.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"
                return
        self.redraw()

    def _on_snapshot(self, _change=None) -> None:  # noqa: ANN001
        self._place_cursor()
        if self.readout_info.get("address"):
            self.show_address(int(self.readout_info["address"], 16))
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
        i = self.drawn.snapshot_at(event.xdata)
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

    # -- drawing --------------------------------------------------------------------------
    def redraw(self) -> None:
        """Draw the heatmap for the current controls."""
        i0, i1 = self.window.value
        fig = self.figure
        fig.clear()
        ax = fig.add_subplot()
        bottom = 0.2 if self.category.value == "composite" else 0.12  # room for the legend
        fig.subplots_adjust(left=0.12, right=0.9, bottom=bottom, top=0.92)
        try:
            self.drawn = _render.draw_capture(
                ax,
                self.capture,
                category=self.category.value,
                snapshots=slice(i0, i1 + 1),
                addr_range=self.addr_range,
                scale=self.scale.value,
                hide_shadow=self.hide_shadow.value,
            )
        except ValueError as err:  # e.g. a hex range with nothing mapped in it
            self.message.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"
            return
        self.message.value = ""
        self._cursor = None
        self._place_cursor()
        # Cursor moves then only redraw the cursor line over a cached background.
        self._blitter = None if self.interactive else Blitter(fig, self._cursor)
        self._publish()

    def _place_cursor(self) -> None:
        t = float(self.capture.times[self.snapshot.value])
        if self._cursor is None:
            self._cursor = self.drawn.ax.axvline(t, color="#39f", lw=1.2, alpha=0.9)
        else:
            self._cursor.set_xdata([t, t])

    def _publish(self) -> None:
        if self.interactive:
            self._canvas.draw_idle()
        elif self._blitter is not None:
            self.image.value = self._blitter.frame()
        else:
            self.image.value = figure_png(self.figure)

    @property
    def png(self) -> bytes:
        """The current figure as PNG bytes."""
        return figure_png(self.figure)
