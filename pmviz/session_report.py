"""A self-contained HTML report of a session: the tree-wide view, then one section per process.

The tree-wide section shows the process tree with sizes, the tree's resident memory counted
once against the per-process sums, stacked resident and written bytes per process, writes
to shared memory (each writer's, and counted once) and small multiples of the per-process
heatmaps; each process then gets the sections of a capture
report (``pmviz.report``), one heading level down.
"""

from __future__ import annotations

import html
import os
from typing import Any

from matplotlib.figure import Figure

from .analysis import session as sa
from .plotting import session as sp
from .report import _png, build_report, html_document

__all__ = ["build_session_report", "write_session_report"]

_MAX_PANELS = 12  # heatmap small multiples: the largest processes only beyond this


def build_session_report(
    session: Any,
    *,
    title: str | None = None,
    progress: bool = False,
    max_processes: int | None = None,
    **capture_kwargs: Any,
) -> str:
    """Render a session as one HTML page: the whole tree, then every process.

    Parameters
    ----------
    session : Session
        From ``pmviz.open(SESSION.pmviz)``.
    title : str, optional
    progress : bool
        A progress bar over the processes.
    max_processes : int, optional
        Only the first this many processes (pid order) get their own section; the tree-wide
        section always covers all.
    **capture_kwargs
        Passed to ``pmviz.report.build_report`` for each process (``addr_bins``, ...).

    Returns
    -------
    str
        A complete HTML document with no external references.
    """
    pids = sorted(int(p) for p in session.pids)
    if not pids:
        raise ValueError("the session has no processes; nothing to report")
    title = title or f"pmviz session report: {len(pids)} processes"
    labels = sp._session_labels(session) or {}
    body = [f"<h1>{html.escape(title)}</h1>", "<h2>The whole tree</h2>"]
    body.append(_tree_section(session, pids))
    chosen = pids if max_processes is None else pids[:max_processes]
    it: Any = chosen
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(chosen, desc="session report", unit="process")
    for pid in it:
        cap = session.capture(pid)
        name = f"{pid} {labels.get(pid, '')}".strip()
        body.append(f"<h2 id='pid-{pid}'>Process {html.escape(name)}</h2>")
        if not cap.n_snapshots:
            body.append("<p class='note'>no snapshots recorded (it exited at once)</p>")
            continue
        body.append(build_report(cap, level=2, **capture_kwargs))
    if len(chosen) < len(pids):
        body.append(
            f"<p class='note'>{len(pids) - len(chosen)} more processes not shown "
            "(max_processes)</p>"
        )
    return html_document(title, "".join(body))


def _tree_section(session: Any, pids: list[int]) -> str:
    parts = []
    accounting = getattr(session, "accounting", None)
    processes = getattr(session, "processes", None)
    if processes is not None:
        tree = sa.process_tree(processes, accounting)
        parts.append(tree._repr_html_())
        if accounting is not None and len(tree):
            parts.append(_png(lambda f: sp.process_icicle(tree, ax=f.add_subplot()), (11, 3.5)))
    if accounting is not None and len(accounting):
        totals = sa.tree_totals(accounting)
        parts.append(totals._repr_html_())
        parts.append(_png(lambda f: sp.tree_totals_lines(totals, ax=f.add_subplot()), (11, 4)))
    else:
        parts.append(
            "<p class='note'>no accounting table (record with accounting on): shared pages "
            "are not identified, so no total counted once</p>"
        )
    labels = sp._session_labels(session)
    for what in ("resident", "written"):
        series = sa.process_series(session, what)
        if series.values.any():
            parts.append(_png(_stacked(series, labels), (11, 4)))
    if hasattr(session, "captures") and "interval_ns" in getattr(session, "meta", {}):
        # (a recorded session: its processes share ticks) writes through shared memory,
        # each writer's and counted once
        shared = sa.shared_writes(session)
        if shared.shared.any():
            parts.append(shared._repr_html_())
    shown = pids
    if len(pids) > _MAX_PANELS:  # the largest processes by peak resident bytes
        series = sa.process_series(session, "resident")
        top = series.pids[series.values.max(axis=0).argsort()[::-1][:_MAX_PANELS]]
        shown = sorted(int(p) for p in top)
        parts.append(f"<p class='note'>heatmaps of the {_MAX_PANELS} largest processes</p>")
    rows = -(-len(shown) // 2)

    def panels(f: Figure) -> None:
        sp.process_heatmaps(session, "present", pids=shown, fig=f, ncols=2)

    parts.append(_png(panels, (11, 2.6 * rows)))
    return "".join(parts)


def _stacked(series: sa.ProcessSeries, labels: dict[int, str] | None) -> Any:
    def draw(f: Figure) -> None:
        sp.stacked_processes(series, ax=f.add_subplot(), labels=labels)

    return draw


def write_session_report(session: Any, path: str | os.PathLike[str], **kwargs: Any) -> str:
    """Write ``build_session_report(session, **kwargs)`` to ``path``; returns the path."""
    text = build_session_report(session, **kwargs)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return os.fspath(path)
