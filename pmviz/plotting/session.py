"""Plots of a session (several processes): stacked bytes per process, tree-wide totals counted
once against the naive sum, small multiples of per-process heatmaps, an icicle of the tree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..analysis.heatmap import heatmap_grid
from ..analysis.session import (
    ProcessSeries,
    ProcessTree,
    TreeTotals,
    _captures,
    _commands,
    process_series,
    short_command,
    tree_totals,
)
from ..capture import Capture
from ._style import get_ax, human_bytes, set_byte_axis
from .heatmap import heatmap

_TAB10 = [matplotlib.colors.to_hex(c) for c in matplotlib.colormaps["tab10"](np.arange(10))]
_GRID_ARGS = ("time_bins", "addr_bins", "addr_range", "time_range", "axis")

__all__ = ["stacked_processes", "tree_totals_lines", "process_heatmaps", "process_icicle"]


def _labels(pids: np.ndarray, labels: Mapping[int, str] | None) -> list[str]:
    labels = labels or {}
    return [f"{int(p)} {labels.get(int(p), '')}".strip() for p in pids.tolist()]


def _session_labels(data: Any) -> dict[int, str] | None:
    """``pid -> short command`` from a session's process table, if it has one."""
    table = getattr(data, "processes", None)
    if table is None or not hasattr(table, "column_names") or "command" not in table.column_names:
        return None
    pids = table.column("pid").to_pylist()
    return {int(p): short_command(str(c or "")) for p, c in zip(pids, _commands(table))}


def stacked_processes(
    data: ProcessSeries | Any,
    what: str = "resident",
    *,
    ax: Axes | None = None,
    top: int = 8,
    labels: Mapping[int, str] | None = None,
    legend: bool = True,
    **kwargs: Any,
) -> list:
    """Stacked area of bytes per process over time; beyond ``top`` processes, one "others".

    Parameters
    ----------
    data : ProcessSeries, Session or mapping of pid to Capture
        A series (``pmviz.analysis.session.process_series`` / ``accounting_series``), or
        captures to compute ``process_series(data, what)`` from.
    what : {"resident", "written", "swapped"}
        For captures only.
    top : int
        The processes with the largest peaks get their own layer.
    labels : mapping of pid to str, optional
        Default: a session's commands.
    **kwargs
        Passed to ``Axes.stackplot``.

    Returns
    -------
    list of matplotlib.collections.PolyCollection
        One per layer; its label is ``"PID command"`` (or ``"others (N)"``).
    """
    s = data if isinstance(data, ProcessSeries) else process_series(data, what)
    labels = labels if labels is not None else _session_labels(data)
    ax = get_ax(ax)
    peak = s.values.max(axis=0, initial=0)
    order = np.argsort(-peak, kind="stable")
    keep, rest = order[:top], order[top:]
    layers = [s.values[:, j] for j in keep.tolist()]
    names = _labels(s.pids[keep], labels)
    if len(rest):
        layers.append(s.values[:, rest].sum(axis=1))
        names.append(f"others ({len(rest)})")
    kwargs.setdefault("step", "post")
    # A process keeps its colour whatever its rank: by its place among the series' pids, so
    # two panels of one session (resident and written, say) colour it alike.
    rank = np.searchsorted(np.sort(s.pids), s.pids[keep]).tolist()
    colors = [_TAB10[r % len(_TAB10)] for r in rank] + (["#9a9a9a"] if len(rest) else [])
    kwargs.setdefault("colors", colors)
    polys = ax.stackplot(s.time, *layers, labels=names, **kwargs) if layers else []
    set_byte_axis(ax.yaxis)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"{s.what} bytes")
    ax.set_title(f"{s.what} bytes per process")
    if legend and names:
        # top of the legend = top of the stack
        ax.legend(polys[::-1], names[::-1], loc="upper left", fontsize="small", frameon=False)
    return polys


def tree_totals_lines(
    data: TreeTotals | Any, *, ax: Axes | None = None, legend: bool = True, **kwargs: Any
) -> list:
    """Tree-wide resident memory per tick: counted once, against the sums of RSS and PSS.

    The gap between "sum of RSS" and "counted once" is memory shared inside the tree that a
    per-process sum counts several times.

    Parameters
    ----------
    data : TreeTotals, accounting table or Session
    **kwargs
        Passed to every ``Axes.plot`` call.

    Returns
    -------
    list of matplotlib.lines.Line2D
        "counted once", "sum of RSS", "sum of PSS", and "+ unknown sharing" when any.
    """
    t = data if isinstance(data, TreeTotals) else tree_totals(data)
    ax = get_ax(ax)
    kwargs.setdefault("drawstyle", "steps-post")
    lines = [
        ax.plot(t.time, t.counted, label="counted once", lw=2.2, color="#d62728", **kwargs)[0],
        ax.plot(t.time, t.rss_sum, label="sum of RSS", color="#1f77b4", **kwargs)[0],
        ax.plot(t.time, t.pss_sum, label="sum of PSS", color="#2ca02c", ls="--", **kwargs)[0],
    ]
    if t.unknown.any():
        lines.append(
            ax.plot(
                t.time,
                t.counted + t.unknown,
                label="+ unknown sharing",
                color="#d62728",
                ls=":",
                **kwargs,
            )[0]
        )
    set_byte_axis(ax.yaxis)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("resident bytes")
    ax.set_title("the whole tree: shared pages counted once vs summed per process")
    if legend:
        ax.legend(loc="upper left", fontsize="small", frameon=False)
    return lines


def process_heatmaps(
    data: Mapping[int, Capture] | Any,
    category: Any = "written",
    *,
    pids: Sequence[int] | None = None,
    axes: Sequence[Axes] | None = None,
    fig: Figure | None = None,
    ncols: int = 2,
    labels: Mapping[int, str] | None = None,
    addr_ranges: Mapping[int, tuple[int, int]] | None = None,
    **kwargs: Any,
) -> list:
    """Small multiples: one address-space heatmap per process, on a shared time axis.

    Parameters
    ----------
    data : Session or mapping of pid to Capture
    category : str
        As for ``pmviz.plotting.heatmap``; a capture without written sets falls back to
        ``"present"``.
    pids : sequence of int, optional
        Which processes (default: all, in pid order).
    axes : sequence of Axes, optional
        One per process; default: a grid of ``ncols`` columns in ``fig`` (default the
        current figure).
    addr_ranges : mapping of pid to (start, end), optional
        A process's own address range (each process maps a shared block elsewhere);
        ``addr_range=`` in ``kwargs`` applies to every process instead.
    **kwargs
        Passed to ``pmviz.plotting.heatmap`` for every process.

    Returns
    -------
    list of matplotlib.collections.QuadMesh
        One per process, in ``pids`` order.
    """
    caps = _captures(data)
    chosen = sorted(caps) if pids is None else [int(p) for p in pids]
    missing = [p for p in chosen if p not in caps]
    if missing:
        raise ValueError(f"no capture for pid(s) {missing}; the session has {sorted(caps)}")
    labels = labels if labels is not None else _session_labels(data) or {}
    if axes is None:
        if fig is None:
            import matplotlib.pyplot as plt

            fig = plt.gcf()
        nrows = max(1, -(-len(chosen) // ncols))
        grid = fig.subplots(nrows, ncols, squeeze=False, sharex=True)
        flat = list(grid.ravel())
        for extra in flat[len(chosen) :]:
            extra.set_visible(False)
        axes = flat[: len(chosen)]
    if len(axes) < len(chosen):
        raise ValueError(f"{len(chosen)} processes but only {len(axes)} axes")
    t0 = min((int(caps[p].time_ns[0]) for p in chosen if caps[p].n_snapshots), default=0)
    grid_kw = {k: kwargs.pop(k) for k in _GRID_ARGS if k in kwargs}
    grid_kw.setdefault("addr_bins", 128)
    kwargs.setdefault("colorbar", False)
    meshes = []
    for pid, ax in zip(chosen, axes):  # one capture per panel
        cap = caps[pid]
        cat = category if cap.has_written or category != "written" else "present"
        kw = dict(grid_kw)
        if addr_ranges is not None and pid in addr_ranges:
            kw["addr_range"] = addr_ranges[pid]
        g = heatmap_grid(cap, cat, **kw)
        if cap.n_snapshots:  # every panel on the session's clock (s since the first process)
            g = g._replace(time_edges=g.time_edges + (int(cap.time_ns[0]) - t0) / 1e9)
        title = f"{pid} {labels.get(pid, '')}".strip() + f" ({cat})"
        meshes.append(heatmap(g, ax=ax, title=title, **kwargs))
    return meshes


def process_icicle(
    tree: ProcessTree, *, ax: Axes | None = None, min_label: float = 0.06, **kwargs: Any
) -> Any:
    """An icicle chart of the process tree: one bar per process, as wide as its subtree.

    Each row is one depth; a process's bar spans its subtree's distinct resident bytes
    (shared pages counted once, ``ProcessTree.subtree_counted``), its own part first and its
    children's bars under the rest.

    Parameters
    ----------
    tree : ProcessTree
    min_label : float
        Label only bars at least this fraction of the total width.
    **kwargs
        Passed to ``Axes.barh``.

    Returns
    -------
    matplotlib.container.BarContainer
        One bar per process, in the tree's depth-first order.
    """
    ax = get_ax(ax)
    own = np.maximum(tree.counted, 0).astype(np.float64)
    # Depth-first order tiles the bars: a process starts where the previous one's own part
    # ended, so each subtree is one contiguous span under its root.
    left = np.cumsum(own) - own
    width = tree.subtree_counted.astype(np.float64)
    colors = _TAB10
    kwargs.setdefault("color", [colors[int(d) % len(colors)] for d in tree.depth])
    kwargs.setdefault("edgecolor", "white")
    bars = ax.barh(tree.depth, width, left=left, height=0.9, **kwargs)
    total = float(width[tree.depth == 0].sum()) or 1.0
    for i in range(len(tree)):
        if width[i] >= min_label * total:
            ax.text(
                left[i] + width[i] / 2,
                tree.depth[i],
                f"{int(tree.pid[i])} {short_command(tree.command[i])}\n"
                f"{human_bytes(int(width[i]))}",
                ha="center",
                va="center",
                fontsize="x-small",
                clip_on=True,
            )
    ax.set_ylim(float(tree.depth.max(initial=0)) + 0.6, -0.6)
    ax.set_yticks(np.arange(int(tree.depth.max(initial=0)) + 1))
    ax.set_ylabel("depth in the tree")
    set_byte_axis(ax.xaxis)
    ax.set_xlabel("resident bytes, shared pages counted once")
    ax.set_title("process tree (width: subtree's memory)")
    return bars
