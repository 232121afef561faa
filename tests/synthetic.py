"""Synthetic captures with answers you can compute by hand (shared by the analysis tests).

Addresses are written as page numbers ``P`` (``P * 4096``); categories use the kernel bits.
"""

from __future__ import annotations

import numpy as np

from pmviz.capture import Capture, CaptureMeta
from pmviz.categories import Category as C
from pmviz.maps import VMA_DTYPE, VmaKind, Vmas
from pmviz.regions import Regions

PAGE = 4096
BASE = 0x7F00_0000_0000  # page 0 of the synthetic layouts
HEAP = 0x5555_0000_0000


def regions(*runs: tuple[int, int, int], base: int = BASE) -> Regions:
    """``regions((0, 4, PRESENT), (4, 6, 0))``: runs in pages relative to ``base``."""
    if not runs:
        return Regions()
    s, e, c = zip(*runs)
    return Regions.from_arrays(
        [base + x * PAGE for x in s], [base + x * PAGE for x in e], [int(x) for x in c]
    )


def vmas(*rows: tuple[int, int, str, VmaKind, str]) -> Vmas:
    """``vmas((start_addr, end_addr, "rw-p", VmaKind.ANON, ""), ...)`` in real addresses."""
    a = np.zeros(len(rows), VMA_DTYPE)
    for i, (s, e, perms, kind, _) in enumerate(rows):
        a[i]["start"], a[i]["end"], a[i]["perms"], a[i]["kind"] = s, e, perms.encode(), int(kind)
    return Vmas(a, [r[4] for r in rows])


P, S, W, F, Z = C.PRESENT, C.SWAPPED, C.WRITTEN, C.FILE, C.PFNZERO


def two_vma_capture() -> Capture:
    """Two VMAs with a big gap, four snapshots one second apart, write tracking.

    Layout (pages): heap ``[HEAP, HEAP+8)`` and anon ``[BASE, BASE+8)``.

    ========  =======================  ======================  ===============
    snapshot  heap                     anon                    written
    ========  =======================  ======================  ===============
    0         0-4 present, 4-8 none    0-8 none                heap 0-4
    1         0-8 present              0-2 present, 2-8 none   heap 4-8, anon 0-2
    2         0-8 present              0-2 swapped, 2-4 pres   heap 0-1, anon 2-4
    3         0-2 present, 2-8 none    0-4 present, 4-8 none   heap 0-1
    ========  =======================  ======================  ===============
    """
    table = vmas(
        (HEAP, HEAP + 8 * PAGE, "rw-p", VmaKind.HEAP, "[heap]"),
        (BASE, BASE + 8 * PAGE, "rw-p", VmaKind.ANON, ""),
    )

    def h(*runs):
        return regions(*runs, base=HEAP)

    snaps = [
        (h((0, 4, P | W), (4, 8, W)), regions((0, 8, W)), h((0, 4, W))),
        (
            h((0, 8, P | W)),
            regions((0, 2, P | W), (2, 8, W)),
            Regions.concat([h((4, 8, W)), regions((0, 2, W))]),
        ),
        (
            h((0, 8, P | W)),
            regions((0, 2, S | W), (2, 4, P | W), (4, 8, W)),
            Regions.concat([h((0, 1, W)), regions((2, 4, W))]),
        ),
        (h((0, 2, P | W), (2, 8, W)), regions((0, 4, P | W), (4, 8, W)), h((0, 1, W))),
    ]
    out = []
    for i, (hr, ar, wr) in enumerate(snaps):
        out.append((i * 1_000_000_000, Regions.concat([hr, ar]), wr, table))
    return Capture.from_snapshots(
        CaptureMeta(interval_ns=1_000_000_000, write_mechanism="uffd-wp"), out
    )
