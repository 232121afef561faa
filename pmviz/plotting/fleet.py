"""Fleet views: how a metric is distributed over many captures (``pmviz.fleet``).

Every function takes the summaries table (``Fleet.summaries()``, one row per capture) first,
draws on ``ax`` and returns the artists. Failed captures (``error`` set) are left out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter

from ..analysis._html import human_bytes
from ._style import get_ax, human_rate, set_byte_axis

__all__ = ["cdf", "box", "idle_share", "top", "TopTable", "BYTE_COLUMNS"]

BYTE_COLUMNS = (
    "resident_peak", "resident_p50", "resident_p99", "resident_last", "written_peak",
    "written_total", "dump_peak", "dump_last", "swapped_peak", "precopy_total_bytes",
)  # fmt: skip
_LABELS = {
    "resident_peak": "peak resident",
    "resident_p50": "median resident",
    "written_peak": "peak written per interval",
    "dump_peak": "peak CRIU dump size",
    "dirty_rate_peak": "peak dirty rate",
    "idle_share": "idle share of resident",
}


def _ok(summaries: Any, column: str) -> Any:
    if column not in summaries.columns:
        raise ValueError(
            f"no column {column!r} in the summaries; choose from {list(summaries.columns)}"
        )
    df = summaries
    if "error" in df.columns:
        df = df[df["error"].isna()]
    return df[df[column].notna()]


def _program(df: Any, by: str) -> Any:
    return df[by].fillna("(unknown)") if by in df.columns else np.full(len(df), "(all)")


def _value_axis(axis: Any, column: str) -> None:
    if column in BYTE_COLUMNS:
        set_byte_axis(axis)
    elif column == "dirty_rate_peak":
        axis.set_major_formatter(FuncFormatter(lambda v, _: human_rate(v)))
    axis.set_label_text(_LABELS.get(column, column))


def cdf(summaries: Any, column: str = "resident_peak", *, by: str | None = None,
        ax: Axes | None = None, **kwargs: Any) -> list:  # fmt: skip
    """Empirical CDF of ``column`` across captures (one step line per program with ``by``).

    Parameters
    ----------
    summaries : pandas.DataFrame
        ``Fleet.summaries()``.
    column : str
        e.g. ``"resident_peak"`` (working sets), ``"dump_peak"``, ``"dirty_rate_peak"``.
    by : str, optional
        Group column, e.g. ``"command_name"``.
    ax : matplotlib.axes.Axes, optional
    **kwargs
        Passed to ``Axes.step``.

    Returns
    -------
    list of matplotlib.lines.Line2D
    """
    ax = get_ax(ax)
    df = _ok(summaries, column)
    groups = [(None, df)] if by is None else list(df.groupby(_program(df, by), sort=True))
    lines = []
    for name, g in groups:
        v = np.sort(g[column].to_numpy(np.float64))
        # start each curve at 0 (left of its smallest value), then one step per capture
        v = np.concatenate([v[:1], v])
        y = np.arange(v.size) / max(v.size - 1, 1)
        (line,) = ax.step(v, y, where="post", label=name, **kwargs)
        lines.append(line)
    _value_axis(ax.xaxis, column)
    ax.set_ylabel("fraction of captures")
    ax.set_ylim(0, 1.02)
    if by is not None:
        ax.legend(fontsize="small")
    return lines


def box(summaries: Any, column: str = "resident_peak", *, by: str = "command_name",
        ax: Axes | None = None, **kwargs: Any) -> dict:  # fmt: skip
    """Box plot of ``column`` per program (``by``), programs sorted by median.

    Returns
    -------
    dict
        What ``Axes.boxplot`` returns (``**kwargs`` go there).
    """
    ax = get_ax(ax)
    df = _ok(summaries, column)
    groups = {k: g[column].to_numpy(np.float64) for k, g in df.groupby(_program(df, by))}
    names = sorted(groups, key=lambda k: np.median(groups[k]))
    import matplotlib

    # horizontal: program names read as tick labels (``orientation`` since matplotlib 3.10)
    if tuple(int(x) for x in matplotlib.__version__.split(".")[:2]) >= (3, 10):
        kwargs.setdefault("orientation", "horizontal")
    else:
        kwargs.setdefault("vert", False)
    out = ax.boxplot([groups[k] for k in names], **kwargs)
    ax.set_yticks(np.arange(1, len(names) + 1), names)
    _value_axis(ax.xaxis, column)
    return out


def idle_share(summaries: Any, *, by: str = "command_name", ax: Axes | None = None,
               **kwargs: Any) -> Any:  # fmt: skip
    """Share of resident memory idle (not written for ``pmviz.summary.IDLE_SHARE_S``) per
    program: the mean over its captures, with the range as error bars.

    Returns
    -------
    matplotlib.container.BarContainer
    """
    ax = get_ax(ax)
    df = _ok(summaries, "idle_share")
    g = df.groupby(_program(df, by))["idle_share"]
    stats = g.agg(["mean", "min", "max"]).sort_values("mean")
    y = np.arange(len(stats))
    err = np.vstack([stats["mean"] - stats["min"], stats["max"] - stats["mean"]])
    bars = ax.barh(y, stats["mean"], xerr=err, **kwargs)
    ax.set_yticks(y, list(stats.index))
    ax.set_xlim(0, 1)
    ax.set_xlabel("idle share of resident memory (mean, range)")
    return bars


@dataclass(frozen=True)
class TopTable:
    """The top captures by one column, as an HTML table linking to each capture's report."""

    column: str
    rows: list[dict[str, Any]]

    def _repr_html_(self) -> str:
        head = "".join(
            f"<th>{escape(h)}</th>"
            for h in ("#", "program", _LABELS.get(self.column, self.column), "snapshots",
                      "duration", "host", "capture")
        )  # fmt: skip
        body = []
        for i, r in enumerate(self.rows, 1):
            v = r[self.column]
            shown = human_bytes(v) if self.column in BYTE_COLUMNS else f"{v:.3g}"
            cid = escape(str(r["capture_id"]))
            link = f'<a href="{escape(r["report"], quote=True)}">{cid}</a>' if r["report"] else cid
            body.append(
                f"<tr><td>{i}</td><td>{escape(str(r['command_name'] or '?'))}</td>"
                f"<td style='text-align:right'>{shown}</td><td>{r['n_snapshots']:,}</td>"
                f"<td>{r['duration_s']:.2f} s</td><td>{escape(str(r['host'] or '—'))}</td>"
                f"<td>{link}</td></tr>"
            )
        return (
            f"<table class='pmviz-fleet-top'><caption>Top {len(self.rows)} by "
            f"{escape(_LABELS.get(self.column, self.column))}</caption><thead><tr>{head}</tr>"
            f"</thead><tbody>{''.join(body)}</tbody></table>"
        )

    def __repr__(self) -> str:
        lines = [f"Top {len(self.rows)} by {self.column}"]
        for i, r in enumerate(self.rows, 1):
            lines.append(f"{i:3} {r['capture_id']} {r['command_name'] or '?':<24} {r[self.column]}")
        return "\n".join(lines)


def top(summaries: Any, column: str = "resident_peak", n: int = 10, *,
        reports: dict[str, str] | str | None = "report.html") -> TopTable:  # fmt: skip
    """The ``n`` captures with the largest ``column``.

    Parameters
    ----------
    reports : dict or str or None
        Link of each capture: a mapping ``url -> report URL``, or a file name inside each
        capture directory (default ``report.html``, linked where the file exists: ``pmviz
        report CAPTURE -o CAPTURE/report.html``), or None for no links. ``pmviz fleet report``
        writes the reports of the largest captures and links them.

    Returns
    -------
    TopTable
    """
    df = _ok(summaries, column).sort_values(column, ascending=False).head(n)
    rows = []
    for r in df.to_dict("records"):
        if isinstance(reports, dict):
            link = reports.get(r.get("url", ""))
        elif isinstance(reports, str) and r.get("url"):
            link = os.path.join(str(r["url"]), reports)
            if "://" not in link and not os.path.exists(link):
                link = None  # no report written for this capture: no dead link
        else:
            link = None
        rows.append({**r, "report": link})
    return TopTable(column, rows)
