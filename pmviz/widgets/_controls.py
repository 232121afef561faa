"""Pieces the widgets share: category mask controls, read-outs, code snippets, PNG output."""

from __future__ import annotations

import html
import io
from collections.abc import Mapping

import ipywidgets as widgets
import numpy as np

from .._units import human_bytes
from ..categories import ALL_CATEGORIES, Category
from ..categories import category_names as _category_names
from ..maps import Vmas
from ..mask import Mask
from ..regions import Regions

__all__ = [
    "CHOICES",
    "PRESETS",
    "MaskControls",
    "figure_png",
    "kernel_fields_html",
    "python_snippet",
    "region_table_html",
    "category_names",
]

CHOICES = ("require", "any of", "exclude", "ignore")
"""The four ways a category can take part in a mask (spec §3.3)."""

_FIELDS = ("category_mask", "category_inverted", "category_anyof_mask", "return_mask")

PRESETS: dict[str, tuple[Mask, str]] = {
    "everything (recording mask)": (Mask(), "No filter, every category reported."),
    "resident": (
        Mask(require=Category.PRESENT, report=Category.PRESENT | Category.FILE | Category.HUGE),
        "Pages in RAM: what RSS counts.",
    ),
    "CRIU dump (pmc_fill)": (
        Mask(
            anyof=Category.PRESENT | Category.SWAPPED,
            exclude=Category.FILE | Category.PFNZERO,
            report=Category.PRESENT | Category.SWAPPED | Category.SOFT_DIRTY | Category.GUARD,
        ),
        "criu/pagemap-cache.c: present or swapped, not file-backed, not the zero page.",
    ),
    "CRIU guard pages": (
        Mask(require=Category.GUARD, report=Category.GUARD),
        "criu/mem.c collect_madv_guards(): MADV_GUARD_INSTALL pages to re-create on restore.",
    ),
    "write-tracking harvest": (
        Mask(require=Category.WRITTEN, report=Category.WRITTEN),
        "The get-and-clear mask with PM_SCAN_WP_MATCHING (spec §4, step 5).",
    ),
    "swapped out": (
        Mask(require=Category.SWAPPED, report=Category.SWAPPED | Category.GUARD),
        "Non-present entries (also uffd-wp and guard markers, spec gotcha 9).",
    ),
}


def category_names(bits: int) -> str:
    """``"PRESENT|FILE"`` for a bit set, ``"ALL"`` for every category, ``"0"`` for none."""
    bits = int(bits)
    return "ALL" if bits == int(ALL_CATEGORIES) else _category_names(bits)


LABEL_PX = 110
CHOICE_BUTTON_PX = 74
CHOICES_PX = 4 * (CHOICE_BUTTON_PX + 6)  # four buttons and their margins
REPORT_PX = 80
CONTROLS_PX = LABEL_PX + CHOICES_PX + REPORT_PX + 8 + 2 * 4
"""Pixel widths of the mask controls' grid: label, the four choices, the report box."""


def _fixed(width: str, **kwargs: str) -> widgets.Layout:
    """A layout of exactly ``width`` that flex containers neither shrink nor grow."""
    return widgets.Layout(width=width, min_width=width, flex="0 0 auto", **kwargs)


class MaskControls:
    """Per category a require / any of / exclude / ignore choice and a report checkbox.

    ``choices[c].value`` and ``report[c].value`` are the widget states; ``mask`` reads them.
    """

    def __init__(self, categories: Category = ALL_CATEGORIES) -> None:
        self.categories = [c for c in Category if c & categories]
        # Fixed widths that never shrink (flex: 0 0 auto): in an HBox next to a wide read-out
        # the browser would otherwise squeeze this column until names read "ED" and the
        # report boxes vanish.
        self.choices = {
            c: widgets.ToggleButtons(
                options=list(CHOICES),
                value="ignore",
                style={"button_width": f"{CHOICE_BUTTON_PX}px"},
                layout=_fixed(f"{CHOICES_PX}px", margin="0"),
                tooltips=[
                    f"every matched page must be {c.name}",
                    f"at least one 'any of' category must be set, e.g. {c.name}",
                    f"no matched page may be {c.name}",
                    f"{c.name} takes no part in matching",
                ],
            )
            for c in self.categories
        }
        self.report = {
            c: widgets.Checkbox(
                value=True,
                description="report",
                indent=False,
                layout=_fixed(f"{REPORT_PX}px", margin="0 0 0 8px"),
            )
            for c in self.categories
        }
        cells: list[widgets.Widget] = []
        for c in self.categories:
            label = widgets.HTML(
                f"<code title='PAGE_IS_{c.name}, bit {int(c).bit_length() - 1}'>{c.name}</code>",
                layout=_fixed(f"{LABEL_PX}px", margin="0"),
            )
            label.add_class(f"pmviz-label-{c.name}")
            self.choices[c].add_class(f"pmviz-choice-{c.name}")
            self.report[c].add_class(f"pmviz-report-{c.name}")
            cells += [label, self.choices[c], self.report[c]]
        self.box = widgets.GridBox(
            cells,
            layout=_fixed(
                f"{CONTROLS_PX}px",
                grid_template_columns=f"{LABEL_PX}px {CHOICES_PX}px {REPORT_PX + 8}px",
                grid_gap="2px 4px",
                align_items="center",
            ),
        )

    @property
    def mask(self) -> Mask:
        """The mask the controls describe."""
        sets: dict[str, int] = {"require": 0, "any of": 0, "exclude": 0}
        report = 0
        for c in self.categories:
            if self.choices[c].value in sets:
                sets[self.choices[c].value] |= int(c)
            if self.report[c].value:
                report |= int(c)
        return Mask(
            require=sets["require"], anyof=sets["any of"], exclude=sets["exclude"], report=report
        )

    def set_mask(self, mask: Mask) -> None:
        """Show ``mask`` in the controls (it must be expressible with the four choices)."""
        f = mask.kernel_fields()
        inv, req, anyof = f["category_inverted"], f["category_mask"], f["category_anyof_mask"]
        if inv & ~req or anyof & inv:
            raise ValueError(
                f"{mask!r} inverts bits it does not require; the require / any of / exclude / "
                "ignore choices cannot show it"
            )
        for c in self.categories:
            b = int(c)
            if inv & b:
                value = "exclude"
            elif req & b:
                value = "require"
            elif anyof & b:
                value = "any of"
            else:
                value = "ignore"
            self.choices[c].value = value
            self.report[c].value = bool(f["return_mask"] & b)

    def observe(self, handler) -> None:  # noqa: ANN001 - an ipywidgets observer
        for w in (*self.choices.values(), *self.report.values()):
            w.observe(handler, names="value")

    def unobserve(self, handler) -> None:  # noqa: ANN001
        for w in (*self.choices.values(), *self.report.values()):
            w.unobserve(handler, names="value")


def kernel_fields_html(mask: Mask, max_pages: int = 0) -> str:
    """The ``struct pm_scan_arg`` fields the mask sets, in hex and by name."""
    f = mask.kernel_fields()
    rows = "".join(
        f"<tr><td><code>{name}</code></td><td class='pmviz-hex'><code>{f[name]:#06x}</code></td>"
        f"<td><code>{html.escape(category_names(f[name]))}</code></td></tr>"
        for name in _FIELDS
    )
    rows += (
        f"<tr><td><code>max_pages</code></td><td><code>{max_pages}</code></td>"
        f"<td>{'unlimited' if max_pages == 0 else 'stop after this many pages'}</td></tr>"
    )
    return (
        "<table class='pmviz-kernel-fields' style='font-size:13px'>"
        "<tr><th style='text-align:left'>field</th><th style='text-align:left'>value</th>"
        f"<th style='text-align:left'>bits</th></tr>{rows}</table>"
    )


def _spec(bits: int) -> str:
    return repr(category_names(bits))


SNIPPET_WIDTH = 44
"""Longest snippet line kept on one line: the read-out column is ~50 monospace characters wide."""


def _call(head: str, args: list[str]) -> str:
    """``head(a, b)``, or one argument per line when that is wider than ``SNIPPET_WIDTH``."""
    one_line = f"{head}({', '.join(args)})"
    if len(one_line) <= SNIPPET_WIDTH:
        return one_line
    return f"{head}(\n" + "".join(f"    {a},\n" for a in args) + ")"


def python_snippet(mask: Mask, max_pages: int = 0, *, pid: int | str | None = None) -> str:
    """A copy-pasteable Python call that selects what ``mask`` selects.

    Lines are kept short (see ``SNIPPET_WIDTH``) so the narrow read-out column does not
    have to wrap them.
    """
    f = mask.kernel_fields()
    inv, req, anyof, ret = (
        f["category_inverted"],
        f["category_mask"],
        f["category_anyof_mask"],
        f["return_mask"],
    )
    args = []
    if req & ~inv:
        args.append(f"require={_spec(req & ~inv)}")
    if anyof:
        args.append(f"anyof={_spec(anyof)}")
    if inv:
        args.append(f"exclude={_spec(inv)}")
    args.append(f"report={_spec(ret)}")
    mask_src = _call("mask = pmviz.Mask", args)
    extra = [f"max_pages={max_pages}"] if max_pages else []
    if pid is None:
        return (
            f"{mask_src}\n"
            "# offline: bit for bit what the kernel\n"
            "# would have returned\n"
            + _call("regions = mask.apply", ["capture.regions_at(i)", *extra])
        )
    return f"{mask_src}\n" + _call("regions = pmviz.scan", [repr(pid), "mask=mask", *extra])


def region_table_html(regions: Regions, vmas: Vmas | None, *, max_rows: int = 12) -> str:
    """The first regions with size, categories and the VMA they start in."""
    n = len(regions)
    head = regions[:max_rows]
    if vmas is not None and len(vmas):
        idx = vmas.find(head.start)
        labels = [vmas.label(int(i)) if i >= 0 else "—" for i in idx]
    else:
        labels = ["—"] * len(head)
    rows = "".join(
        f"<tr><td><code>{r.start:#014x}</code></td><td><code>{r.end:#014x}</code></td>"
        f"<td style='text-align:right'>{human_bytes(r.size)}</td>"
        f"<td><code>{html.escape(category_names(int(r.categories)))}</code></td>"
        f"<td>{html.escape(label)}</td></tr>"
        for r, label in zip(head, labels)
    )
    if n > max_rows:
        rows += f"<tr><td colspan=5><i>… {n - max_rows:,} more regions</i></td></tr>"
    return (
        f"<div class='pmviz-region-table'><b>{n:,} regions</b>, {regions.n_pages:,} pages "
        f"({human_bytes(regions.size)})"
        "<table style='font-size:12px'><tr><th>start</th><th>end</th><th>size</th>"
        f"<th>categories</th><th>VMA</th></tr>{rows}</table></div>"
    )


def figure_png(fig, *, dpi: float = 90) -> bytes:  # noqa: ANN001 - a matplotlib Figure
    """Render a figure to PNG bytes with the Agg canvas (no pyplot state involved)."""
    buf = io.BytesIO()
    # Fast zlib level: a widget redraw is latency-bound, and the PNG stays small anyway.
    fig.savefig(buf, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    return buf.getvalue()


class Blitter:
    """PNG frames of a figure where only a few artists of one Axes change between frames.

    The first frame draws everything and keeps the figure without ``artists`` as a
    background; later frames restore it and draw just ``artists`` and what lies on top of the
    first one in its Axes (gap lines), so ticks, labels and colour bar are not re-rendered.
    """

    def __init__(self, fig, *artists) -> None:  # noqa: ANN001 - Figure, Artists
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        if not artists:
            raise ValueError("Blitter needs at least one artist")
        self.fig = fig
        self.artists = artists
        self.canvas = FigureCanvasAgg(fig)
        for a in artists:
            a.set_visible(False)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(fig.bbox)
        for a in artists:
            a.set_visible(True)
        ax = artists[0].axes
        z = artists[0].get_zorder()
        dynamic = {id(a) for a in artists}
        # Only what the mesh can cover: clipped to the Axes (gap lines). VMA band strips and
        # labels sit outside it (clip_on=False) and stay in the background.
        self.above = [
            a
            for a in (*ax.collections, *ax.lines, *ax.patches, *ax.texts)
            if a.get_zorder() >= z and id(a) not in dynamic and a.get_clip_on()
        ]
        # Back to front: the mesh first, gap lines, then the moving markers on top.
        self.order = sorted([artists[0], *self.above], key=lambda a: a.get_zorder())
        self.order += [a for a in artists[1:] if a not in self.order]

    def frame(self, *, dpi: float = 90) -> bytes:
        from PIL import Image

        self.canvas.restore_region(self.background)
        ax = self.artists[0].axes
        for a in self.order:
            if a.get_visible():
                ax.draw_artist(a)
        w, h = self.canvas.get_width_height()
        img = Image.frombuffer("RGBA", (w, h), self.canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        buf = io.BytesIO()
        img.save(buf, format="png", compress_level=1, dpi=(dpi, dpi))
        return buf.getvalue()


def parse_hex_range(text: str) -> tuple[int, int]:
    """``"0x7f00-0x7f80"`` or ``"7f00 7f80"`` → ``(start, end)``; ValueError when unreadable."""
    t = text.strip().replace(",", " ").replace("-", " ").split()
    if len(t) != 2:
        raise ValueError(
            f"expected 'START-END' in hex, e.g. 0x7f0000000000-0x7f0000100000: {text!r}"
        )
    start, end = (int(x, 16) for x in t)
    if end <= start:
        raise ValueError(f"range end {end:#x} is not above start {start:#x}")
    return start, end


def lookup(regions: Regions, vmas: Vmas | None, address: int) -> Mapping[str, str]:
    """The region and VMA holding ``address`` (for hover / click read-outs)."""
    i = int(np.searchsorted(regions.end, np.uint64(address), side="right"))
    out = {"address": f"{address:#014x}"}
    if i < len(regions) and int(regions.start[i]) <= address:
        r = regions[i]
        out.update(
            region=f"{r.start:#x}–{r.end:#x}",
            size=human_bytes(r.size),
            categories=category_names(int(r.categories)),
        )
    else:
        out.update(region="not reported (no page matched, or unmapped)")
    if vmas is not None and len(vmas):
        j = int(vmas.find(address))
        if j >= 0:
            a = vmas.array[j]
            out["vma"] = (
                f"{vmas.label(j)} {int(a['start']):#x}–{int(a['end']):#x} "
                f"{a['perms'].decode()} ({human_bytes(int(a['end'] - a['start']))})"
            )
        else:
            out["vma"] = "unmapped"
    return out


def readout_html(info: Mapping[str, str]) -> str:
    rows = "".join(
        f"<tr><th style='text-align:left;padding-right:8px'>{html.escape(k)}</th>"
        f"<td><code>{html.escape(v)}</code></td></tr>"
        for k, v in info.items()
    )
    return f"<table class='pmviz-readout' style='font-size:12px'>{rows}</table>"
