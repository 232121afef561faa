"""A self-contained HTML report of a capture: every plot as an embedded PNG, tables inline.

Plotting-layer code: figures are drawn on ``matplotlib.figure.Figure`` objects (no pyplot, so
no global state and no display needed) and embedded as base64 data URIs.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from . import analysis as pa
from . import plotting as pp
from ._units import human_bytes
from .capture import Capture
from .maps import VmaKind
from .plotting import human_rate
from .plotting._marks import draw_marks

__all__ = ["build_report", "write_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1200px;margin:2em auto;
color:#222;padding:0 1em}
h1{font-weight:600}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
img{max-width:100%;height:auto}table{border-collapse:collapse;margin:.5em 0}
td,th{padding:.2em .8em;border-bottom:1px solid #eee;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#666;font-size:.9em}code{font-size:.9em}
"""


_DPI = 110
_HEATMAP_SIZE = (11.0, 5.0)
_PX_W = int(_HEATMAP_SIZE[0] * _DPI)
_PX_H = int(_HEATMAP_SIZE[1] * _DPI)
_INTERPRETERS = {
    "python",
    "python3",
    "python2",
    "sh",
    "bash",
    "dash",
    "node",
    "perl",
    "ruby",
    "env",
}


def _title(command: list[str] | None, pid: int | None) -> str:
    """``pmviz report: redis-server (pid 1234)``: the program, not its whole command line.

    For an interpreter (``python3 workload.py``) the script's name goes with it.
    """
    who = f"pid {pid}" if pid is not None else "pid hidden"
    if not command:
        return f"pmviz report: {who}"
    words = [os.path.basename(w) or w for w in command[:2]]
    prog = words[0]
    if (
        prog.rstrip("0123456789.") in _INTERPRETERS
        and len(words) > 1
        and not command[1].startswith("-")
    ):
        prog = f"{prog} {words[1]}"
    if len(prog) > 60:
        prog = prog[:59] + "…"
    return f"pmviz report: {prog} ({who})"


def _png(draw: Callable[[Figure], Any], size: tuple[float, float]) -> str:
    fig = Figure(figsize=size, layout="constrained")
    draw(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td class='num'>{c}</td>" if i else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _largest_vma(capture: Capture, prefer: str = "[heap]") -> int | str | None:
    vmas = capture.vmas_at(-1)
    if not len(vmas):
        return None
    labels = [vmas.label(i) for i in range(len(vmas))]
    if prefer in labels:
        return prefer
    sizes = (vmas.end - vmas.start).astype(np.int64)
    ok = np.isin(vmas.kind, [int(VmaKind.ANON), int(VmaKind.HEAP)])
    if not ok.any():
        return None
    return int(np.flatnonzero(ok)[np.argmax(sizes[ok])])


_SHARE_ROWS = 1 << 23
"""Stored rows (region keyframes + changes, written sets) up to which a report reads the
capture once into memory (at most 192 MiB) for all its analyses."""


def _shared(capture: Capture) -> Capture:
    """``capture`` read once into memory in its stored form (keyframes + changes, written
    sets) when that is small, so the report's dozen analyses do not each read it from disk;
    as it is otherwise (each analysis then streams it in bounded memory).
    """
    if type(capture) is Capture:
        return capture
    woff = capture.written_offsets
    rows = capture.stored_rows + (int(woff[-1]) if woff is not None and len(woff) else 0)
    if rows > _SHARE_ROWS:
        return capture
    return capture.select(slice(None))


def build_report(
    capture: Capture,
    *,
    title: str | None = None,
    addr_bins: int = 512,
    time_bins: int | None = None,
    bandwidth: float = 1.25e9,
    downtime: float = 0.3,
    axis: str = "auto",
    progress: bool = False,
    level: int = 1,
) -> str:
    """Render a capture's heatmaps, working sets, sparsity and migration estimate as HTML.

    Parameters
    ----------
    capture : Capture
    title : str, optional
    addr_bins, time_bins : int
        Heatmap resolution (``time_bins=None``: one column per snapshot); at most one bin per
        pixel of the images (``_PX_W`` x ``_PX_H``).
    bandwidth : float
        Link bytes per second for the pre-copy estimate (default 1.2 GiB/s, a 10 Gbit/s
        link).
    downtime : float
        Stop-and-copy budget in seconds.
    axis : str
        Heatmap address axis (see ``pmviz.analysis.address_axis``); ``"auto"`` collapses
        never-touched stretches when they are over 99% of the mapped space (sanitizers).
    progress : bool
        Show a progress bar over the sections.
    level : int
        1: a whole document (title ``<h1>``, sections ``<h2>``); 2 or more: only the body,
        sections one heading level below ``level`` (a process's part of a session report).

    Returns
    -------
    str
        A complete HTML document with no external references (``level=1``), or its body.
    """
    if not capture.n_snapshots:
        raise ValueError("the capture has no snapshots; nothing to report")
    shown, capture = capture, _shared(capture)
    m = capture.meta
    title = title or _title(m.command, m.pid)
    # One address axis for the four heatmaps (with "auto" it costs two axis builds).
    address_axis = pa.address_axis(capture, kind=axis)
    # At most one bin per pixel of the heatmap images: more cannot be seen (10,000 snapshots
    # would otherwise be 10,000 columns of quads for matplotlib to draw).
    n_cols = time_bins if time_bins is not None else capture.n_snapshots
    hm: dict[str, Any] = dict(
        addr_bins=min(addr_bins, _PX_H),
        time_bins=min(n_cols, _PX_W) if n_cols > _PX_W or time_bins is not None else None,
        axis=address_axis,
    )
    W = capture.has_written
    ws = pa.working_set_size(capture)

    def heatmaps() -> str:
        # Every category's grid from one read of the capture, shared by the composite.
        cats = (["written"] if W else []) + ["present", "swapped"]
        grids = dict(zip(cats, pa.heatmap_grids(capture, cats, **hm)))

        def composite(f: Figure) -> None:
            ax = f.add_subplot()
            pp.composite_heatmap(list(grids.values()), ax=ax)
            draw_marks(ax, capture)

        parts = [_png(composite, (11, 6))]
        for c, g in grids.items():
            if c == "swapped" and not ws.swapped.any():
                parts.append("<p>Nothing was swapped out during the capture.</p>")
                continue

            def one(f: Figure, g: pa.HeatmapGrid = g) -> None:
                ax = f.add_subplot()
                pp.heatmap(g, ax=ax)
                draw_marks(ax, capture)

            parts.append(_png(one, _HEATMAP_SIZE))
        return (
            "<p class='note'>Time runs left to right, addresses bottom to top; unmapped gaps "
            "are collapsed (dashed lines) and VMAs labelled on the right. Colour is the exact "
            "fraction of each bin's pages in the category; grey cells were not mapped at that "
            "time.</p>" + "".join(parts)
        )

    def working_sets() -> str:
        def area(f: Figure, metric: str = "resident") -> None:
            ax = f.add_subplot()
            pp.working_set(ws, ax=ax, metric=metric)
            draw_marks(ax, capture)

        parts = [_png(area, (11, 4))]
        if W:
            parts.append(_png(lambda f: area(f, "written"), (11, 4)))
            n = capture.n_snapshots
            wins = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= n]

            def curve(f: Figure) -> None:
                ax = f.add_subplot()
                pp.wss(pa.wss_curve(capture, windows=wins), ax=ax)
                draw_marks(ax, capture)

            parts.append(_png(curve, (11, 4)))

            def idle_and_heat(f: Figure) -> None:
                a, b = f.subplots(1, 2)
                pp.idle_histogram(pa.idle_time(capture), ax=a)
                window = min(10, capture.n_snapshots)
                pp.temperature_bars(pa.temperature(capture, window=window), ax=b)

            parts.append(_png(idle_and_heat, (12, 4.5)))
            cum = pa.cumulative_written(capture)
            parts.append(
                f"<p>Distinct memory written over the capture: "
                f"<b>{human_bytes(int(cum[-1]))}</b>.</p>"
            )
        rows = [
            [
                f"{ws.time[i]:.3f}",
                human_bytes(int(ws.resident[i])),
                human_bytes(int(ws.swapped[i])),
                human_bytes(int(ws.written[i])) if ws.written is not None else "—",
            ]
            for i in (0, capture.n_snapshots - 1)
        ]
        parts.append(_table(["time (s)", "resident", "swapped", "written since previous"], rows))
        return "".join(parts)

    def accessed() -> str:
        return _accessed_section(capture, hm)

    def sparsity() -> str:
        vmas = capture.vmas_at(-1)
        rows = []
        if len(vmas):
            sizes = (vmas.end - vmas.start).astype(np.int64)
            for i in np.argsort(sizes)[::-1][:12].tolist():  # the 12 largest VMAs
                sp = pa.sparsity(capture, vma=int(i))
                rows.append(
                    [
                        html.escape(vmas.label(i)),
                        human_bytes(sp.reserved_bytes),
                        human_bytes(sp.matched_bytes),
                        f"{sp.n_regions:,}",
                        f"{sp.pages_per_region:,.1f}",
                        f"{sp.compression:,.0f}x",
                    ]
                )
        whole = pa.sparsity(capture) if len(vmas) else None
        parts = (
            [
                _table(
                    ["VMA", "reserved", "present", "runs", "pages / page_region", "vs pagemap"],
                    rows,
                )
            ]
            if rows
            else []
        )
        if whole is not None and whole.n_regions:
            parts.append(_png(lambda f: pp.size_histogram(whole, ax=f.add_subplot()), (11, 4)))
        target = _largest_vma(capture)
        if target is not None:
            try:
                parts.append(
                    _png(lambda f: pp.hilbert(capture, ax=f.add_subplot(), vma=target), (6, 6.5))
                )
            except ValueError:  # a VMA too small for even a 2x2 curve
                pass
        return "".join(parts) or "<p>No VMA table in this capture.</p>"

    def shadow() -> str:
        san = pa.detect_sanitizer(capture.vmas_at(-1))
        if san is None:
            return "<p>No sanitizer shadow in this layout.</p>"
        if san == "tsan":
            return "<p>TSan shadow detected (not mapped back to application addresses).</p>"
        sm = pa.materialised_shadow(capture, sanitizer=san)
        rows = [
            [html.escape(lbl), human_bytes(int(b))]
            for lbl, b in zip(sm.vma_labels, sm.vma_bytes.tolist())
            if b
        ]
        return (
            f"<p>{san.upper()} shadow: {human_bytes(sm.shadow.size)} resident, describing "
            f"{human_bytes(sm.app.size)} of application memory.</p>"
            + _table(["application VMA", "bytes with materialised shadow"], rows)
        )

    def changes() -> str:
        if capture.n_snapshots < 2:
            return "<p>One snapshot: nothing to compare.</p>"
        d = pa.snapshot_diff(capture, 0, -1)
        rows = [[k.replace("_", " "), human_bytes(v)] for k, v in d.totals().items()]
        return _table(["first → last snapshot", "bytes"], rows) + _png(
            lambda f: pp.diff(d, ax=f.add_subplot()), (9, 6)
        )

    def migration() -> str:
        dump = pa.dump_size(capture)
        text = (
            f"<p>CRIU would dump <b>{human_bytes(int(dump[-1]))}</b> at the last snapshot "
            f"(mask <code>{html.escape(repr(pa.CRIU_DUMP_MASK))}</code>).</p>"
        )
        if not W or capture.n_snapshots < 2:
            return text + "<p class='note'>No write tracking: no pre-copy estimate.</p>"
        dirty = pa.dirty_bytes(capture)  # shared by the estimates for every link
        estimates = {
            bw: pa.precopy_estimate(
                capture, bandwidth=bw, downtime=downtime, dirty=dirty, dump=dump
            )
            for bw in sorted({bandwidth, 1.25e8, 1.25e9, 1.25e10})  # 1, 10, 100 Gbit/s
        }
        rows = []
        for bw, e in estimates.items():
            rows.append(
                [
                    human_rate(bw, nominal_bits=bw * 8),
                    f"{e.round_bytes.size - 1}",
                    f"{e.downtime_s * 1e3:,.1f} ms",
                    f"{e.total_s:,.2f} s",
                    human_bytes(e.total_bytes),
                    "yes" if e.converged else e.reason,
                ]
            )
        return (
            text
            + f"<p class='note'>Pre-copy model: each round resends the pages written while the "
            f"previous one was sent (the capture's worst window of that length); stop and copy "
            f"once a round fits {downtime * 1e3:g} ms.</p>"
            + _table(
                ["link", "pre-copy rounds", "downtime", "total time", "sent", "converged"], rows
            )
            + _png(lambda f: pp.precopy(estimates[bandwidth], ax=f.add_subplot()), (9, 4))
        )

    sections: list[tuple[str, Callable[[], str]]] = [
        ("Address-space heatmaps", heatmaps),
        ("Working set", working_sets),
        *(
            [("Accessed working set (reads too)", accessed)]
            if capture.accessed_mechanism != "none"
            else []
        ),
        ("Sparsity and the cost of scanning", sparsity),
        ("Sanitizer shadow", shadow),
        ("What changed", changes),
        ("Checkpoint and live migration", migration),
    ]
    it: Any = sections
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(sections, desc="report", unit="section")
    body = [] if level > 1 else [f"<h1>{html.escape(title)}</h1>"]
    if m.command:
        cmd = " ".join(m.command)
        cmd = cmd if len(cmd) <= 2000 else cmd[:2000] + " …"
        body.append(f"<p class='note'>command: <code>{html.escape(cmd)}</code></p>")
    body.append(shown._repr_html_())  # the capture as opened (where it is stored, its size)
    h = f"h{min(level + 1, 6)}"
    for name, fn in it:
        body.append(f"<{h}>{html.escape(name)}</{h}>{fn()}")
    if level > 1:
        return "".join(body)
    return html_document(title, "".join(body))


def html_document(title: str, body: str) -> str:
    """A complete, self-contained HTML page with the report style."""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        + body
        + "</body></html>"
    )


def _accessed_section(capture: Capture, hm: dict[str, Any]) -> str:
    """Accessed WSS beside written and resident, idle ages, damo's heatmap, read-mostly VMAs."""
    from .analysis import accessed as aa
    from .plotting import accessed as ap

    series = aa.AccessSeries.from_capture(capture)
    kind = series.kind

    def curve(f: Figure) -> None:
        ax = f.add_subplot()
        ap.accessed_wss_lines(aa.accessed_wss(series, capture), ax=ax)
        draw_marks(ax, capture)

    def idle(f: Figure) -> None:
        ap.access_idle_histogram(aa.access_idle_age(series), ax=f.add_subplot())

    def heat(f: Figure) -> None:
        ax = f.add_subplot()
        grid = aa.access_heatmap_grid(series, capture, addr_bins=hm["addr_bins"], axis=hm["axis"])
        ap.access_heatmap(grid, ax=ax)
        draw_marks(ax, capture)

    how = {
        "vma": "per VMA, exact: <code>clear_refs</code> + <code>smaps</code> "
        "<code>Referenced:</code> each snapshot",
        "probe": "per page, sampled: a random sample of resident pages paged out each interval "
        "(<code>process_madvise(MADV_PAGEOUT)</code>); those present again at the next snapshot "
        "were accessed. The band is the 95 % interval; the target paid a refault per accessed "
        "probe",
    }[kind]
    parts = [
        f"<p class='note'>Pages read <i>or</i> written in each interval ({how}). A read-mostly "
        "program's written set misses what it reads.</p>",
        _png(curve, (11, 4)),
        _png(idle, (11, 4)),
        _png(heat, _HEATMAP_SIZE),
    ]
    tel = capture.accessed_telemetry
    if tel is not None:
        ms = tel["accessed_ns"] / 1e6
        parts.append(
            f"<p>Sampling cost per snapshot: median {np.median(ms):.2f} ms, max "
            f"{ms.max():.2f} ms; refaults caused: {int(tel['refaults'].sum()):,}.</p>"
        )
    if kind == "vma":
        rm = aa.read_mostly(series, capture)
        order = np.argsort(-rm.read_only, kind="stable")[:15]
        rows = [
            [
                f"<code>{int(rm.start[i]):#x}</code>",
                html.escape(rm.labels[i]),
                human_bytes(int(rm.referenced[i])),
                human_bytes(int(rm.written[i])) if np.isfinite(rm.written[i]) else "—",
                human_bytes(int(rm.read_only[i])),
                human_bytes(int(rm.resident[i])),
            ]
            for i in order.tolist()
            if rm.referenced[i] > 0
        ]
        parts.append("<p>Read-mostly VMAs (mean bytes per interval):</p>")
        parts.append(
            _table(["start", "VMA", "referenced", "written", "read only", "resident"], rows)
        )
    return "".join(parts)


def write_report(capture: Capture, path: str | os.PathLike[str], **kwargs: Any) -> str:
    """Write ``build_report(capture, **kwargs)`` to ``path``; returns the path."""
    text = build_report(capture, **kwargs)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return os.fspath(path)
