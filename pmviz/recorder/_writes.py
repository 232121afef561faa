"""Choosing the write source of a recording (``writes=``): the tracking modules, lazily."""

from __future__ import annotations

from typing import Any, Protocol

from ..errors import Error
from ..regions import Regions
from ._target import _Target

WRITES_CHOICES = ("auto", "none", "uffd-wp", "soft-dirty")


class WriteSource(Protocol):
    """Where written sets come from (``pmviz.tracking`` / ``pmviz.softdirty`` / injection)."""

    mechanism: str
    pid: int | str

    def collect(self) -> Regions:
        """Pages written since the previous call.

        A source whose ``takes_maps`` is true is called as ``collect(maps=raw,
        scan_repeats=same)`` with the target's ``/proc/PID/maps`` that the recorder read for
        this snapshot, and whether its full scan repeated the previous snapshot's raw scan.
        """
        ...

    def close(self) -> None: ...


def _open_writes(
    target: _Target, writes: Any, refused: list[dict[str, Any]] | None = None
) -> tuple[Any, str]:
    """A write source for ``target`` (or None) and the reason/mechanism, per ``writes``.

    A source that could arm nothing is refused; ``refused`` then receives its unarmed VMAs.

    The mechanisms live in ``pmviz.tracking`` (in-process uffd-wp), ``pmviz.injection``
    (uffd-wp inside another process) and ``pmviz.softdirty``; they are imported lazily so a
    recording without write tracking needs none of them.
    """
    if writes is None or writes == "none":
        return None, "write tracking off (writes='none')"
    if not isinstance(writes, str):
        if not hasattr(writes, "collect"):
            raise TypeError(
                "writes must be a WriteSource (with collect()) or one of "
                f"{WRITES_CHOICES}, got {writes!r}"
            )
        return writes, getattr(writes, "mechanism", "custom")
    if writes not in WRITES_CHOICES:
        raise ValueError(f"writes must be one of {WRITES_CHOICES}, got {writes!r}")
    try:
        source, reason = _make_source(target, writes)
    except ModuleNotFoundError as err:
        # only a missing tracking module degrades; a bug inside one must surface
        if err.name not in ("pmviz.tracking", "pmviz.injection", "pmviz.softdirty"):
            raise
        source, reason = None, f"write tracking is not available in this pmviz ({err})"
    except Error as err:
        if writes != "auto":
            raise
        source, reason = None, f"no write tracking: {err}"
    if source is None and writes != "auto":
        raise Error(f"writes={writes!r} is not available for this target: {reason}")
    if source is not None and not _armed_anything(source):
        # Every VMA is registered by another userfaultfd (a second recorder or tracker of
        # the same process): this source would report empty written sets, not "no writes".
        reason = (
            "write tracking refused: no memory of the target could be armed for uffd-wp ("
            f"{_first_reason(source)}; is another recorder or tracker already tracking this "
            "process?); recording present/swapped only"
        )
        if refused is not None:
            refused += unarmed(source)
        source.close()
        if writes != "auto":
            raise Error(reason)
        return None, reason
    return source, reason


def unarmed(source: Any) -> list[dict[str, Any]]:
    """The VMAs the write source could not arm, as ``{"start", "end", "reason"}`` dicts."""
    skipped = getattr(source, "skipped", None) or []
    return [{"start": int(s.start), "end": int(s.end), "reason": str(s.reason)} for s in skipped]


def _armed_anything(source: Any) -> bool:
    registered = getattr(source, "registered", None)
    if registered is None or not hasattr(source, "skipped"):
        return True  # a source that does not register memory (soft-dirty, a custom one)
    return registered.n_pages > 0 or not source.skipped


def _first_reason(source: Any) -> str:
    reasons = sorted({str(s.reason) for s in source.skipped})
    return "; ".join(reasons) if reasons else "nothing registered"


def _make_source(target: _Target, writes: str) -> tuple[Any, str]:
    if writes == "soft-dirty":
        from ..softdirty import SoftDirtyTracker

        return SoftDirtyTracker(target.real_pid), "soft-dirty"
    if target.pid == "self":
        from ..tracking import WriteTracker

        tracker = WriteTracker()
        return tracker, f"{tracker.mechanism}: in-process WriteTracker"
    if target.launch_command is not None and target.process is None:
        from ..injection import track

        tracked = track(target.launch_command)
        target.launch(tracked.process)
        return tracked, f"{tracked.mechanism}: injected into the launched program"
    from ..injection import open_write_source

    source, reason = open_write_source(target.real_pid)
    if source is not None and writes == "uffd-wp" and source.mechanism != "uffd-wp":
        source.close()
        return None, f"uffd-wp could not be set up ({reason})"
    return source, reason
