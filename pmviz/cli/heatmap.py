"""``pmviz heatmap NAME.pmviz -o out.png``: render a capture's address-space heatmap."""

from __future__ import annotations

import argparse


def _range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected START:END, got {text!r}")
    return int(lo, 0), int(hi, 0)


def _time_range(text: str) -> tuple[float | None, float | None]:
    lo, sep, hi = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected T0:T1 in seconds, got {text!r}")
    return (float(lo) if lo else None, float(hi) if hi else None)


def _size(text: str) -> tuple[float, float]:
    w, sep, h = text.lower().partition("x")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in inches, got {text!r}")
    return float(w), float(h)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("capture", help="a NAME.pmviz capture directory")
    parser.add_argument("-o", "--output", required=True, help="image file (.png, .svg, .pdf)")
    parser.add_argument(
        "--category",
        default="composite",
        help="composite (written/present/swapped in colours), written, present, swapped, file, "
        "huge, pfnzero, or names joined with | (pages having all of them)",
    )
    parser.add_argument("--require", help="mask: categories that must be set")
    parser.add_argument("--anyof", help="mask: at least one of these must be set")
    parser.add_argument("--exclude", help="mask: categories that must be clear")
    parser.add_argument("--addr-bins", type=int, default=512)
    parser.add_argument("--time-bins", type=int, default=None, help="default: one per snapshot")
    parser.add_argument(
        "--axis",
        choices=("auto", "compact", "occupied", "linear"),
        default="auto",
        help="compact: unmapped gaps collapsed; occupied: never-touched stretches too; "
        "auto: occupied when compact would be over 99%% empty (sanitizer shadow)",
    )
    parser.add_argument("--addr-range", type=_range, help="START:END address zoom (hex ok)")
    parser.add_argument("--time-range", type=_time_range, help="T0:T1 seconds zoom")
    parser.add_argument("--size", type=_size, default=(12.0, 7.0), help="inches, e.g. 12x7")
    parser.add_argument("--dpi", type=int, default=120)


def run(args: argparse.Namespace) -> int:
    from matplotlib.figure import Figure

    from .. import plotting as pp
    from ..mask import Mask
    from ..storage import open as open_capture

    cap = open_capture(args.capture)
    grid_kw = dict(
        addr_bins=args.addr_bins,
        time_bins=args.time_bins,
        axis=args.axis,
        addr_range=args.addr_range,
        time_range=args.time_range,
    )
    fig = Figure(figsize=args.size, layout="constrained")
    ax = fig.add_subplot()
    if any(x is not None for x in (args.require, args.anyof, args.exclude)):
        mask = Mask(require=args.require, anyof=args.anyof, exclude=args.exclude)
        pp.heatmap(cap, mask, ax=ax, **grid_kw)
    elif args.category == "composite":
        pp.composite_heatmap(cap, ax=ax, **grid_kw)
    else:
        pp.heatmap(cap, args.category, ax=ax, **grid_kw)
    fig.savefig(args.output, dpi=args.dpi)
    print(f"wrote {args.output} ({cap.n_snapshots} snapshots)")
    return 0
