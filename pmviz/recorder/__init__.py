"""Recording: periodic full-category scans of a process into a :class:`~pmviz.capture.Capture`.

One ``/proc/PID/pagemap`` stays open for the whole recording. Every tick takes, in order: the
scan (every VMA, no filter, every category the kernel knows: spec §9, so that any mask can be
applied later offline), the pages written since the previous tick (when a write source is on),
and ``/proc/PID/maps`` (stored only when its text changed). Ticks follow absolute deadlines
``t0 + k * interval``, so there is no drift; a tick that starts after its successor's deadline
skips the ticks it missed and records how many. A second thread writes the growing capture to
disk at least every ``flush_interval`` seconds (see ``pmviz.storage``).

Modules: ``_recorder`` (the loop and its threads), ``_target`` (self / pid / launched command),
``_writes`` (which write source), ``_builder`` (the growing in-memory columns), ``_session``
(several processes at once: one Recorder each and a discovery loop), ``_proctable`` (a
session's process table and events on their way to disk), ``_scopes`` (``record(scope=)``).
"""

from __future__ import annotations

from ._builder import CaptureBuilder
from ._recorder import Recorder
from ._scopes import record
from ._session import SCOPES, SessionRecorder
from ._writes import WRITES_CHOICES, WriteSource

__all__ = [
    "record",
    "Recorder",
    "SessionRecorder",
    "SCOPES",
    "WriteSource",
    "WRITES_CHOICES",
    "CaptureBuilder",
]
