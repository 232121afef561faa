"""``pmviz fleet``: summaries, SQL and an HTML report over many captures (``pmviz.fleet``).

``pmviz fleet summarize GLOB -o summaries.parquet [--workers N | --scheduler ADDR]``
``pmviz fleet query GLOB "SQL"``
``pmviz fleet report GLOB -o fleet.html``
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import sys
from html import escape
from typing import Any

from .heatmap import check_file_output, positive_int


def _engine(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="Dask LocalCluster of N worker processes (default: the CPU count)",
    )
    g.add_argument(
        "--scheduler", metavar="ADDR", help="a running Dask scheduler, e.g. tcp://host:8786"
    )
    g.add_argument("--serial", action="store_true", help="no Dask: one capture after another")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = sub.add_parser("summarize", help="one row per capture -> a Parquet file")
    s.add_argument("captures", nargs="+", metavar="GLOB", help="captures, globs or fsspec URLs")
    s.add_argument("-o", "--out", required=True, help="Parquet file to write")
    _engine(s)
    q = sub.add_parser("query", help="run DuckDB SQL over the fleet's views and print the result")
    q.add_argument("captures", metavar="GLOB", help="captures (a glob or fsspec URL)")
    q.add_argument(
        "query",
        metavar="SQL",
        help='e.g. "SELECT * FROM summaries"; views: '
        "captures, summaries, snapshots, regions, snapshot_bytes, written, vmas, marks",
    )
    q.add_argument("--csv", action="store_true", help="CSV instead of a table")
    q.add_argument("--memory-limit", default="1GB", help="DuckDB memory limit (spills beyond)")
    r = sub.add_parser("report", help="an HTML page of distributions and top captures")
    r.add_argument("captures", nargs="+", metavar="GLOB")
    r.add_argument("-o", "--out", required=True, help="HTML file to write")
    r.add_argument("--top", type=positive_int, default=10, help="rows of the top tables")
    r.add_argument(
        "--capture-reports",
        type=int,
        default=10,
        metavar="N",
        help="write pmviz reports of the N largest captures beside the page, linked "
        "from the table (default 10; 0: none)",
    )
    _engine(r)  # fmt: skip


def _client(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "client": "serial" if args.serial else None,
        "workers": args.workers,
        "scheduler": args.scheduler,
        "progress": not args.no_progress,
    }


def _failed(df: Any) -> int:
    bad = df[df["error"].notna()]
    for url, err in zip(bad["url"], bad["error"]):
        print(f"pmviz fleet: {url}: {err}", file=sys.stderr)
    return len(bad)


def run(args: argparse.Namespace) -> int:
    from .. import fleet

    if args.action == "query":
        with fleet.open(args.captures, memory_limit=args.memory_limit) as f:
            df = f.sql(args.query)
        if args.csv:
            df.to_csv(sys.stdout, index=False)
        else:
            import pandas as pd

            with pd.option_context("display.max_rows", 200, "display.width", 200):
                print(df.to_string(index=False))
        return 0
    check_file_output(args.out)
    f = fleet.open(args.captures)
    df = f.summaries(**_client(args))
    bad = _failed(df)
    if args.action == "summarize":
        df.to_parquet(args.out, index=False)
        print(f"pmviz fleet: {len(df) - bad} summaries ({bad} failed) written to {args.out}",
              file=sys.stderr)  # fmt: skip
        return 0
    page = _report(df, args.out, top_n=args.top, capture_reports=args.capture_reports)
    with open(args.out, "w", encoding="utf-8") as out:
        out.write(page)
    print(f"pmviz fleet: report of {len(df)} captures ({bad} failed) written to {args.out}",
          file=sys.stderr)  # fmt: skip
    return 0


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return "<img src='data:image/png;base64," + base64.b64encode(buf.getvalue()).decode() + "'>"


def _report(df: Any, out: str, *, top_n: int, capture_reports: int) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import open as open_capture
    from ..plotting import fleet as views
    from ..report import write_report

    links: dict[str, str] = {}
    ok = df[df["error"].isna()].sort_values("resident_peak", ascending=False)
    if capture_reports > 0:
        d = os.path.splitext(out)[0] + "-captures"
        os.makedirs(d, exist_ok=True)
        for url, cid in zip(ok["url"].head(capture_reports), ok["capture_id"]):
            path = os.path.join(d, f"{cid}.html")
            try:
                write_report(open_capture(url), path)
            except Exception as err:  # noqa: BLE001 - one report must not lose the page
                print(f"pmviz fleet: {url}: no report: {err}", file=sys.stderr)
                continue
            links[url] = os.path.relpath(path, os.path.dirname(os.path.abspath(out)))
    figs = []
    panels = [
        ("Working sets across captures (peak resident)", lambda ax: views.cdf(df, "resident_peak", by="command_name", ax=ax)),
        ("Peak resident per program", lambda ax: views.box(df, "resident_peak", ax=ax)),
        ("Idle memory share per program", lambda ax: views.idle_share(df, ax=ax)),
        ("CRIU dump size (peak) per program", lambda ax: views.box(df, "dump_peak", ax=ax)),
        ("Dump size across captures", lambda ax: views.cdf(df, "dump_peak", ax=ax)),
        ("Dirty rate across captures", lambda ax: views.cdf(df, "dirty_rate_peak", ax=ax)),
    ]  # fmt: skip
    for title, draw in panels:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        try:
            draw(ax)
        except (ValueError, KeyError) as err:
            ax.text(0.5, 0.5, f"nothing to show: {err}", ha="center", transform=ax.transAxes)
        ax.set_title(title)
        figs.append(_png(fig))
        plt.close(fig)
    tables = [
        views.top(df, c, top_n, reports=links or None)._repr_html_()
        for c in ("resident_peak", "dump_peak", "written_peak")
        if df[c].notna().any()
    ]
    failed = df[df["error"].notna()]
    fail_html = ""
    if len(failed):
        items = "".join(
            f"<li><code>{escape(u)}</code>: {escape(e)}</li>"
            for u, e in zip(failed["url"], failed["error"])
        )
        fail_html = f"<h2>Failed captures ({len(failed)})</h2><ul>{items}</ul>"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>pmviz fleet</title>"
        "<style>body{font-family:sans-serif;margin:2em}img{max-width:48%;margin:0.5%}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:2px 8px}caption{font-weight:bold;text-align:left}</style></head><body>"
        f"<h1>pmviz fleet: {len(df)} captures</h1>"
        f"<div>{''.join(figs)}</div>{''.join(tables)}{fail_html}</body></html>"
    )
