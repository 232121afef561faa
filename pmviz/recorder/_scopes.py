"""``record()``: one process (a capture), or a tree / cgroup / every process (a session)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ._recorder import record as _record_one
from ._session import SCOPES, SessionRecorder

__all__ = ["record"]


def record(
    target: str | int | Sequence[str] | None = "self",
    *,
    scope: str = "process",
    cgroup: str | os.PathLike[str] | None = None,
    interval: float = 0.1,
    duration: float | None = None,
    count: int | None = None,
    out: str | os.PathLike[str] | None = None,
    writes: Any = "auto",
    progress: bool = True,
    overwrite: bool = False,
    accounting: bool = False,
    **options: Any,
) -> Any:
    """Record a process (or a tree, a cgroup, every process) until it ends; return the result.

    Parameters
    ----------
    target : "self", int or list of str
        This process, a running pid, or a command to launch; with ``scope="tree"`` the root
        of the tree. Not used with ``scope="cgroup"`` / ``"all"``.
    scope : {"process", "tree", "cgroup", "all"}
        ``"process"`` (default): one capture, as :func:`pmviz.recorder.record`. Any other
        scope records a session (see :class:`SessionRecorder`): ``"tree"`` the target and
        every descendant (also those that appear later), ``"cgroup"`` every process of the
        cgroup v2 directory ``cgroup``, ``"all"`` every process this user may read.
    cgroup : str, optional
        The cgroup v2 directory of ``scope="cgroup"``.
    out : str, optional
        The capture / session directory; required for a session.
    accounting : bool
        Sessions: account shared memory once per tick (``Session.accounting``).
    interval, duration, count, writes, progress, overwrite, **options
        As for :class:`~pmviz.Recorder` (``options``: its other keywords; single process only).

    Returns
    -------
    Capture or Session
        A :class:`~pmviz.capture.Capture` for ``scope="process"``, else a
        :class:`~pmviz.storage.session.Session` (read back from ``out``).

    Examples
    --------
    >>> import pmviz
    >>> s = pmviz.record(["make", "-j2"], scope="tree", out="build.pmviz")  # doctest: +SKIP
    >>> s.processes.to_pandas()  # doctest: +SKIP
    """
    if scope == "process":
        if cgroup is not None or accounting:
            raise ValueError("cgroup= and accounting= go with a session scope ('tree', ...)")
        if target is None:
            raise ValueError("scope='process' needs a target: 'self', a pid or a command")
        return _record_one(
            target,
            interval=interval,
            duration=duration,
            count=count,
            out=out,
            writes=writes,
            progress=progress,
            overwrite=overwrite,
            **options,
        )
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if options:
        raise TypeError(f"{sorted(options)} are not options of a session (scope={scope!r})")
    if scope != "tree":
        target = None if target == "self" else target
    launched = isinstance(target, (list, tuple))
    if duration is None and count is None and not launched:
        raise ValueError(
            "give duration= or count= (only a launched command's tree ends by itself); "
            "use pmviz.SessionRecorder for open-ended recording"
        )
    if out is None:
        raise ValueError(f"scope={scope!r} records a session directory: give out=")
    rec = SessionRecorder(
        target,
        scope=scope,
        cgroup=cgroup,
        out=out,
        interval=interval,
        duration=duration,
        count=count,
        writes=writes,
        overwrite=overwrite,
        accounting=accounting,
        progress=progress,
    )
    rec.start()
    try:
        session = rec.wait()
    except KeyboardInterrupt:
        session = rec.stop("interrupted")
    finally:
        if rec.running:
            rec.stop("interrupted")
    from ..summary import summarize_session_recording  # (analysis sits above the recorder)

    summarize_session_recording(out)  # summary.parquet per capture, for fleet queries
    return session
