"""``LiveView``: record a process in the background and watch its heatmap and working set grow."""

from __future__ import annotations

import html
import threading
import time
from typing import Any

import ipywidgets as widgets
from matplotlib.figure import Figure

from ..capture import Capture
from ..plotting import working_set
from . import _render
from ._controls import figure_png

__all__ = ["LiveView"]


class LiveView(widgets.VBox):
    """Record ``target`` with :class:`pmviz.Recorder` and redraw while it runs.

    The cell returns at once; a background thread redraws the heatmap and the working-set
    plot every ``refresh`` seconds from the recorder's growing capture. **Stop** (or
    :meth:`stop`) ends the recording and finalises the capture, available as ``.capture``.
    Recording also ends by itself when the target exits or ``duration`` / ``count`` is reached.

    Parameters
    ----------
    target : "self", int or list of str
        What to record, as for :func:`pmviz.record`: this process, a pid, or a command to launch.
    interval : float
        Seconds between snapshots.
    refresh : float
        Seconds between redraws (drawing costs the kernel's time too: keep it ≥ 0.5 s).
    **record_options
        Passed to :class:`pmviz.Recorder` (``duration``, ``count``, ``out``, ``writes`` ...).

    Attributes
    ----------
    recorder : pmviz.Recorder
    capture : Capture or None
        The growing capture while recording; the final one after :meth:`stop`.
    n_redraws : int
        How many times the figure was redrawn.
    """

    def __init__(
        self,
        target: Any = "self",
        *,
        interval: float = 0.1,
        refresh: float = 0.5,
        figsize: tuple[float, float] = (10.0, 5.5),
        **record_options: Any,
    ) -> None:
        from ..recorder import Recorder

        if refresh <= 0:
            raise ValueError(f"refresh must be > 0 seconds, got {refresh}")
        record_options.setdefault("progress", False)
        self.recorder = Recorder(target, interval=interval, **record_options)
        self.refresh = float(refresh)
        self.figure = Figure(figsize=figsize, layout="constrained")
        self.image = widgets.Image(format="png", layout=widgets.Layout(width="100%"))
        self.status = widgets.HTML()
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger")
        self.stop_button.on_click(lambda _b: self.stop())
        self.n_redraws = 0
        self.error: BaseException | None = None
        self._stopping = threading.Event()
        super().__init__([widgets.HBox([self.stop_button, self.status]), self.image])
        self.add_class("pmviz-live-view")
        self.recorder.start()
        self._thread = threading.Thread(target=self._loop, name="pmviz-live-view", daemon=True)
        self._thread.start()

    @property
    def capture(self) -> Capture | None:
        return self.recorder.capture

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _recording(self) -> bool:
        return self.recorder.running

    def _loop(self) -> None:
        try:
            while not self._stopping.wait(self.refresh):
                self.redraw()
                if not self._recording():
                    break
        except BaseException as err:  # shown in the widget: a thread has nowhere else to report
            self.error = err
            self.status.value = f"<span style='color:#b00'>{html.escape(repr(err))}</span>"
        finally:
            self._finish()

    def _finish(self) -> None:
        if self._recording():
            self.recorder.stop()
        self.redraw()
        self.stop_button.disabled = True
        self.stop_button.description = "Stopped"

    def wait(self, timeout: float | None = None) -> Capture | None:
        """Wait until the recording ends by itself (target exit, ``duration``, ``count``)."""
        self._thread.join(timeout)
        return self.capture

    def stop(self, timeout: float = 30.0) -> Capture | None:
        """Stop recording, wait for the last redraw, and return the final capture."""
        self._stopping.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return self.capture

    def redraw(self) -> None:
        """Draw the heatmap and the working-set plot of what has been recorded so far."""
        cap = self.capture
        if cap is None or len(cap) < 1:
            self.status.value = "waiting for the first snapshot…"
            return
        fig = self.figure
        fig.clear()
        top, bottom = fig.subplots(2, 1, height_ratios=[3, 1.3], sharex=True)
        category = "written" if cap.has_written else "present"
        _render.draw_capture(top, cap, category=category)
        top.set_xlabel("")
        top.set_title(f"{category} pages, {len(cap)} snapshots", fontsize=10)
        working_set(cap, ax=bottom, legend=False)
        # Beside the plot, not over the stack it labels.
        bottom.legend(
            loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small", frameon=False
        )
        self.image.value = figure_png(fig)
        self.n_redraws += 1
        state = "recording" if self._recording() else f"stopped ({cap.meta.end_reason or 'done'})"
        self.status.value = (
            f"<span class='pmviz-live-status'>{state} · {len(cap)} snapshots over "
            f"{float(cap.times[-1]):.1f} s · updated {time.strftime('%H:%M:%S')}</span>"
        )
