"""``pmviz heatmap NAME.pmviz -o out.png``: render a capture's address-space heatmap."""

from __future__ import annotations

import argparse
import math
import os
import sys

from . import add_pid_argument, check_parent, open_capture_arg

MAX_INCHES = 200.0
MAX_PIXELS = 20_000
"""Per side of the output image: beyond that the picture takes gigabytes (and matplotlib's
Agg renderer refuses 2**16)."""
DPI_RANGE = (10, 2400)


def _range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected START:END, got {text!r}")
    try:
        start, end = int(lo, 0), int(hi, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START:END addresses, got {text!r}") from None
    if not 0 <= start < end:
        raise argparse.ArgumentTypeError(
            f"the address range must have 0 <= START < END, got {start:#x}:{end:#x}"
        )
    return start, end


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds, got {text!r}")
    return v


def _time_range(text: str) -> tuple[float | None, float | None]:
    lo, sep, hi = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected T0:T1 in seconds, got {text!r}")
    t0 = _seconds(lo) if lo else None
    t1 = _seconds(hi) if hi else None
    if t0 is not None and t1 is not None and not t0 < t1:
        raise argparse.ArgumentTypeError(f"the time range must have T0 < T1, got {text!r}")
    return t0, t1


def _size(text: str) -> tuple[float, float]:
    w, sep, h = text.lower().partition("x")
    try:
        size = (float(w), float(h)) if sep else None
    except ValueError:
        size = None
    if size is None:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in inches, got {text!r}")
    if not all(math.isfinite(v) and 1.0 <= v <= MAX_INCHES for v in size):
        raise argparse.ArgumentTypeError(
            f"each side must be between 1 and {MAX_INCHES:g} inches, got {text!r}"
        )
    return size


def _dpi(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer dpi, got {text!r}") from None
    if not DPI_RANGE[0] <= v <= DPI_RANGE[1]:
        raise argparse.ArgumentTypeError(
            f"dpi must be between {DPI_RANGE[0]} and {DPI_RANGE[1]}, got {v}"
        )
    return v


def positive_int(text: str) -> int:
    """An ``int >= 1`` (bin counts)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def check_file_output(path: str) -> None:
    """Refuse, before any work, an output file that cannot be written.

    Raises
    ------
    ValueError
        ``path`` is a directory, its directory does not exist or is not writable.
    """
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory; give a file name (e.g. {path}/out.png)")
    parent = check_parent(path)
    if not os.access(parent, os.W_OK):
        raise ValueError(f"{path}: the directory {os.path.abspath(parent)} is not writable")


def clamp_bins(requested: int | None, pixels: int, name: str, default: int | None) -> int | None:
    """At most one bin per output pixel: more cannot be seen and only cost memory."""
    value = default if requested is None else requested
    if value is None or value <= pixels:
        return value
    if requested is not None:
        print(
            f"pmviz: note: {name} {requested:,} reduced to {pixels:,} (one per pixel of the "
            "output)",
            file=sys.stderr,
        )
    return pixels


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("capture", help="a NAME.pmviz capture directory (or a session)")
    add_pid_argument(parser)
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
    parser.add_argument(
        "--addr-bins",
        type=positive_int,
        default=None,
        help="default 512; at most one per output pixel",
    )
    parser.add_argument(
        "--time-bins",
        type=positive_int,
        default=None,
        help="default: one per snapshot; at most one per output pixel",
    )
    parser.add_argument(
        "--axis",
        choices=("auto", "compact", "occupied", "linear"),
        default="auto",
        help="compact: unmapped gaps collapsed; occupied: never-touched stretches too; "
        "auto: occupied when compact would be over 99%% empty (sanitizer shadow)",
    )
    parser.add_argument("--addr-range", type=_range, help="START:END address zoom (hex ok)")
    parser.add_argument("--time-range", type=_time_range, help="T0:T1 seconds zoom")
    parser.add_argument(
        "--size",
        type=_size,
        default=(12.0, 7.0),
        help=f"inches, e.g. 12x7 (1 to {MAX_INCHES:g} each)",
    )
    parser.add_argument("--dpi", type=_dpi, default=120, help=f"{DPI_RANGE[0]} to {DPI_RANGE[1]}")


def run(args: argparse.Namespace) -> int:
    w_in, h_in = args.size
    if max(w_in, h_in) * args.dpi > MAX_PIXELS:
        raise ValueError(
            f"--size {w_in:g}x{h_in:g} at --dpi {args.dpi} is "
            f"{w_in * args.dpi:,.0f}x{h_in * args.dpi:,.0f} pixels; at most {MAX_PIXELS:,} "
            "per side"
        )
    check_file_output(args.output)

    from matplotlib.figure import Figure

    from .. import plotting as pp
    from ..mask import Mask

    cap = open_capture_arg(args.capture, args.pid)
    # The plot area is at most the image: more bins than pixels cannot be seen.
    time_bins = clamp_bins(args.time_bins, int(w_in * args.dpi), "--time-bins", None)
    if time_bins is None and cap.n_snapshots > int(w_in * args.dpi):
        time_bins = int(w_in * args.dpi)
    grid_kw = dict(
        addr_bins=clamp_bins(args.addr_bins, int(h_in * args.dpi), "--addr-bins", 512),
        time_bins=time_bins,
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
    try:
        fig.savefig(args.output, dpi=args.dpi)
    except OSError as err:
        raise ValueError(f"cannot write {args.output}: {err.strerror or err}") from None
    print(f"wrote {args.output} ({cap.n_snapshots} snapshots)")
    return 0
