"""``MaskExplorer``: tune a PAGEMAP_SCAN mask and see at once what it selects."""

from __future__ import annotations

import html
import os
import time
from typing import Any

import ipywidgets as widgets
from matplotlib.figure import Figure

from .. import scanning
from .._kernel import procfs
from ..capture import Capture, CaptureMeta
from ..categories import Category
from ..errors import Error
from ..features import features
from ..maps import Vmas, read_maps
from ..mask import Mask
from ..regions import Regions
from . import _render
from ._controls import (
    CONTROLS_PX,
    PRESETS,
    Blitter,
    MaskControls,
    kernel_fields_html,
    python_snippet,
    region_table_html,
)

__all__ = ["MaskExplorer"]

# JupyterLab styles output <pre> with ``word-break: break-all``, which cuts a line that is
# wider than the column mid-word ("retu / rned"); wrap on words (spaces, "|") instead.
_PRE = "<pre style='font-size:12px;white-space:pre-wrap;word-break:normal;overflow-wrap:anywhere'>"


class MaskExplorer(widgets.VBox):
    """Choose, per page category, require / any of / exclude / ignore, and see the result.

    Every change shows the four kernel fields of ``struct pm_scan_arg``, a Python call and a C
    initialiser selecting the same pages, the heatmap of the selected pages and a table of the
    returned regions. On a :class:`~pmviz.Capture` the mask is applied offline with
    :meth:`Mask.apply` — bit for bit what the kernel would have returned, no rescan. On a pid
    the process is scanned again with the mask.

    When sanitizer shadow is most of the mapped memory (an ASan build reserves ~20 TiB), the
    heatmap's address axis leaves the shadow VMAs out — they would squeeze everything else into
    a few pixels; the region table and counts still include them.

    Parameters
    ----------
    source : Capture or int or "self"
        A recorded capture, or a live process.
    mask : Mask, optional
        Initial mask (default: everything, every category reported).
    max_pages : int
        Initial ``max_pages`` (0 = unlimited).
    snapshot : int
        For a capture: the snapshot whose regions the table lists (default the last).

    Layout: the controls keep fixed widths (they never shrink when a snippet opens); the
    Python and C snippets are two accordions whose open state survives every update (only
    their text changes); the snapshot slider moves a marker on the heatmap and the status line.

    Attributes
    ----------
    mask : Mask
        The mask the controls describe.
    result : Regions
        What the mask returns for the selected snapshot (or the live scan).
    selected : Capture
        The masked capture that is drawn (one snapshot for a live process).
    last_update_s : float
        Seconds the last control change took to recompute and redraw.

    Examples
    --------
    >>> from pmviz.widgets import MaskExplorer
    >>> explorer = MaskExplorer(capture)  # doctest: +SKIP
    >>> explorer.controls.choices[pmviz.Category.PRESENT].value = "require"  # doctest: +SKIP
    """

    def __init__(
        self,
        source: Capture | int | str,
        *,
        mask: Mask | None = None,
        max_pages: int = 0,
        snapshot: int = -1,
        figsize: tuple[float, float] = (10.0, 4.0),
    ) -> None:
        if isinstance(source, Capture):
            if not len(source):
                raise ValueError("the capture has no snapshots")
            self.capture: Capture | None = _render.loaded(source)
            self.pid: int | str | None = None
        else:
            self.capture = None
            self.pid = procfs.normalize_pid(source)
        self.controls = MaskControls(
            features().categories if self.pid else Category(Mask().return_mask)
        )
        self.preset = widgets.Dropdown(
            options=["(custom)", *PRESETS],
            value="(custom)",
            description="preset",
            layout=widgets.Layout(width="330px", min_width="330px", flex="0 0 auto"),
        )
        self.preset_note = widgets.HTML(layout=widgets.Layout(flex="1 1 0", min_width="0"))
        self.max_pages_box = widgets.BoundedIntText(
            value=max_pages,
            min=0,
            max=1 << 52,
            description="max_pages",
            step=64,
            layout=widgets.Layout(width="210px", min_width="210px", flex="0 0 auto"),
        )
        n = len(self.capture) if self.capture is not None else 1
        self.snapshot = widgets.IntSlider(
            value=snapshot % n,
            min=0,
            max=n - 1,
            description="snapshot",
            disabled=self.capture is None,
            continuous_update=False,
            layout=widgets.Layout(width="330px", min_width="330px", flex="0 0 auto"),
        )
        self.fields = widgets.HTML()
        # Two accordions, not <details> in one HTML: an update only sets the text of the
        # HTML inside, so a snippet the user opened stays open (selected_index is theirs).
        self.python_code = widgets.HTML()
        self.c_code = widgets.HTML()
        self.python_box = widgets.Accordion([self.python_code], titles=("Python",))
        self.python_box.selected_index = 0
        self.c_box = widgets.Accordion([self.c_code], titles=("C",))
        self.c_box.selected_index = None
        for box in (self.python_box, self.c_box):
            box.add_class("pmviz-snippet")
        self.image = widgets.Image(format="png", layout=widgets.Layout(width="100%"))
        self.table = widgets.HTML()
        self.status = widgets.HTML()
        # A fixed layout: constrained layout would double the redraw time (measured).
        self.figure = Figure(figsize=figsize)
        self.artist: Any = None
        self.drawn: _render.Drawn
        self._marker: Any = None
        self._blitter: Blitter | None = None
        self._vmas: Vmas | None = None
        self._gone = False
        self._hide_shadow = self.capture is not None and _render.shadow_dominates(self.capture)
        self.last_update_s = 0.0
        self._updating = False
        if mask is not None:
            self.controls.set_mask(mask)

        left = widgets.VBox(
            [
                widgets.HBox([self.preset, self.preset_note]),
                self.controls.box,
                widgets.HBox([self.max_pages_box, self.snapshot]),
            ],
            layout=widgets.Layout(
                width=f"{CONTROLS_PX + 16}px", min_width=f"{CONTROLS_PX + 16}px", flex="0 0 auto"
            ),
        )
        # The read-out takes what is left and wraps its text; below ~400 px it moves under
        # the controls (row wrap) instead of squeezing them.
        right = widgets.VBox(
            [widgets.HTML("<b>struct pm_scan_arg</b>"), self.fields, self.python_box, self.c_box],
            layout=widgets.Layout(
                margin="0 0 0 16px", flex="1 1 400px", min_width="400px", overflow="hidden"
            ),
        )
        right.add_class("pmviz-readout-column")
        super().__init__(
            [
                widgets.HTML(f"<h4 style='margin:4px 0'>{html.escape(self._title())}</h4>"),
                widgets.HBox([left, right], layout=widgets.Layout(flex_flow="row wrap")),
                self.status,
                self.image,
                self.table,
            ]
        )
        self.add_class("pmviz-mask-explorer")
        self.controls.observe(self._on_change)
        self.max_pages_box.observe(self._on_change, names="value")
        self.snapshot.observe(self._on_snapshot, names="value")
        self.preset.observe(self._on_preset, names="value")
        self.update()

    # -- state ----------------------------------------------------------------------------
    def _title(self) -> str:
        if self.capture is not None:
            m = self.capture.meta
            who = f"pid {m.pid}" if m.pid is not None else "an anonymized process"
            return f"Mask explorer — capture of {who}, {len(self.capture)} snapshots (offline)"
        return f"Mask explorer — live process {self.pid} (rescanned on every change)"

    @property
    def mask(self) -> Mask:
        return self.controls.mask

    @mask.setter
    def mask(self, mask: Mask) -> None:
        self._batch(lambda: self.controls.set_mask(mask))

    @property
    def max_pages(self) -> int:
        return int(self.max_pages_box.value)

    def _batch(self, change) -> None:  # noqa: ANN001
        """Apply several control changes, then redraw once."""
        self._updating = True
        try:
            change()
        finally:
            self._updating = False
        self.update()

    # -- events ---------------------------------------------------------------------------
    def _on_change(self, _change=None) -> None:  # noqa: ANN001
        if self._updating:
            return
        if self.preset.value != "(custom)":
            self._updating = True
            self.preset.value = "(custom)"
            self.preset_note.value = ""
            self._updating = False
        self.update()

    def _on_preset(self, change) -> None:  # noqa: ANN001
        if self._updating or change["new"] == "(custom)":
            return
        mask, note = PRESETS[change["new"]]
        self.preset_note.value = f"<i>{html.escape(note)}</i>"
        self._batch(lambda: self.controls.set_mask(mask))

    def _on_snapshot(self, _change=None) -> None:  # noqa: ANN001
        if self.capture is None:
            return
        t0 = time.perf_counter()
        self.result = self.selected.regions_at(self.snapshot.value)
        self._place_marker()
        if self._blitter is not None:
            self.image.value = self._blitter.frame()
        self._draw_table()
        self._show_status(time.perf_counter() - t0)

    # -- compute + draw -------------------------------------------------------------------
    def update(self) -> None:
        """Recompute the selection for the current controls and redraw everything."""
        t0 = time.perf_counter()
        mask, max_pages = self.mask, self.max_pages
        if self.capture is not None:
            self.selected = _render.masked_capture(self.capture, mask, max_pages)
            self.result = self.selected.regions_at(self.snapshot.value)
        elif self._gone:
            return
        else:
            try:
                self.result = self._rescan(mask, max_pages)
            except Error as err:  # the process exited or became unreadable: say so, keep the view
                if not hasattr(self, "selected"):
                    raise
                self._gone = True
                self.status.value = (
                    f"<span class='pmviz-status' style='color:#b00'>{html.escape(str(err))}</span>"
                )
                return
        self.fields.value = kernel_fields_html(mask, max_pages)
        self.python_code.value = (
            f"{_PRE}{html.escape(python_snippet(mask, max_pages, pid=self.pid))}</pre>"
        )
        self.c_code.value = f"{_PRE}{html.escape(mask.c_initializer())}</pre>"
        self._draw_heatmap()
        self._draw_table()
        self.last_update_s = time.perf_counter() - t0
        self._show_status(self.last_update_s)

    def _show_status(self, seconds: float) -> None:
        if self.capture is not None:
            i = self.snapshot.value
            where = f"snapshot {i} (t = {float(self.capture.times[i]):.2f} s)"
        else:
            where = "the live scan"
        self.status.value = (
            f"<span class='pmviz-status'>{len(self.result):,} regions, "
            f"{self.result.n_pages:,} pages selected in {where} · "
            f"redrawn in {seconds * 1e3:.0f} ms</span>"
        )

    def _rescan(self, mask: Mask, max_pages: int) -> Regions:
        assert self.pid is not None
        regions = scanning.scan(self.pid, mask=mask, max_pages=max_pages)
        self._vmas = vmas = read_maps(self.pid)
        self.selected = Capture.from_snapshots(
            CaptureMeta(pid=os.getpid() if self.pid == "self" else int(self.pid)),
            [(time.monotonic_ns(), regions, None, vmas)],
        )
        self._hide_shadow = _render.shadow_dominates(self.selected)
        return regions

    def _draw_heatmap(self) -> None:
        same_layout = self.capture is not None or (
            self.artist is not None
            and _render.axis_covers(self.drawn.axis, self._vmas, hide_shadow=self._hide_shadow)
        )
        if self._blitter is not None and same_layout:
            # Same address layout, same axes: only the mesh colours change.
            _render.redraw_grid(self.drawn, self.selected, Mask())
            self.image.value = self._blitter.frame()
            return
        fig = self.figure
        fig.clear()
        ax = fig.add_subplot()
        fig.subplots_adjust(**_render.margins(fig))  # room for 16-character hex ticks
        self.drawn = _render.draw_capture(
            ax,
            self.selected,
            category=Mask(),  # every page the mask returned
            hide_shadow=self._hide_shadow,
            title="pages the mask selects, offline"
            if self.capture is not None
            else "pages the mask selects, live scan",
        )
        ax.title.set_fontsize(10)
        self.artist = self.drawn.artist
        if self.capture is None:  # one live scan: a single column, no time axis
            ax.set_xticks([])
            ax.set_xlabel(f"pid {self.pid}, rescanned on every change")
            self._blitter = Blitter(fig, self.artist)
        else:
            # The table's snapshot, outlined on the heatmap (moved by the slider, blitted).
            self._marker = _render.snapshot_marker(ax)
            self._place_marker()
            self._blitter = Blitter(fig, self.artist, self._marker)
        self.image.value = self._blitter.frame()

    def _place_marker(self) -> None:
        """Outline the selected snapshot's column: ``[cells[i], cells[i + 1])`` seconds."""
        if self._marker is None:
            return
        _render.place_marker(self._marker, self.drawn.cells, self.snapshot.value)

    def _draw_table(self) -> None:
        vmas = self.capture.vmas_at(self.snapshot.value) if self.capture is not None else self._vmas
        self.table.value = region_table_html(self.result, vmas)
