"""Sanitizer shadow memory: find it in the layout, and map resident shadow back to the app.

A sanitizer reserves terabytes of shadow but only the pages describing memory the program
touched ever become resident. Mapping resident shadow pages back to the application addresses
they describe shows which parts of the heap have materialised shadow.

Layouts (x86-64, compiler-rt): ASan ``shadow = (addr >> 3) + 0x7fff8000`` (one shadow page
describes 8 application pages); MSan ``shadow = addr ^ 0x500000000000`` and
``origin = shadow + 0x100000000000`` (one to one). TSan's mapping depends on the compiler-rt
version and is not linear, so TSan shadow is detected but not mapped back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._intervals import union_columns
from ..capture import Capture
from ..categories import Category
from ..maps import SHADOW_RANGES, VmaKind, Vmas
from ..mask import Mask
from ..regions import REGION_DTYPE, Regions
from ._html import Summary, human_bytes
from ._intervals import prefix_coverage
from ._select import snapshot

__all__ = [
    "ASAN_SHADOW_OFFSET",
    "detect_sanitizer",
    "shadow_ranges",
    "shadow_to_app",
    "app_to_shadow",
    "ShadowMap",
    "materialised_shadow",
]

ASAN_SHADOW_OFFSET = 0x7FFF8000
ASAN_SCALE = 3
# asan_mapping.h, x86-64: LowShadow and HighShadow describe LowMem and HighMem; the gap between
# them is PROT_NONE and describes nothing.
_ASAN_SHADOW = [(0x00007FFF8000, 0x00008FFF7000), (0x02008FFF7000, 0x10007FFF8000)]
MSAN_XOR = 0x500000000000
MSAN_ORIGIN = 0x100000000000
_MSAN_APP = [
    (0x000000000000, 0x010000000000),
    (0x510000000000, 0x600000000000),
    (0x700000000000, 0x800000000000),
]


def shadow_ranges(vmas: Vmas) -> Vmas:
    """The VMAs classified as sanitizer shadow (``VmaKind.SHADOW``)."""
    return vmas[vmas.kind == int(VmaKind.SHADOW)]


def detect_sanitizer(vmas: Vmas) -> str | None:
    """``"asan"``, ``"msan"``, ``"tsan"`` or None: whose shadow layout holds the most shadow.

    Each sanitizer's fixed ranges (``pmviz.maps.SHADOW_RANGES``) are intersected with the
    shadow VMAs; ties go to ASan, then MSan (their LowShadow / XOR layouts are distinctive).
    """
    sh = shadow_ranges(vmas)
    if not len(sh):
        return None
    best, best_bytes = None, 0
    for name, ranges in SHADOW_RANGES.items():  # three sanitizers, a few ranges each
        r = np.array(ranges, dtype=np.uint64)
        lo = np.maximum(sh.start[:, None], r[None, :, 0])
        hi = np.minimum(sh.end[:, None], r[None, :, 1])
        inside = int(np.where(hi > lo, hi - lo, 0).sum())
        if inside > best_bytes:
            best, best_bytes = name, inside
    return best


def _check(sanitizer: str) -> None:
    if sanitizer == "tsan":
        raise ValueError(
            "TSan shadow is detected but not mapped back: its address mapping depends on the "
            "compiler-rt version and is not a linear function; use 'asan' or 'msan'"
        )
    if sanitizer not in ("asan", "msan"):
        raise ValueError(f"sanitizer must be 'asan' or 'msan', got {sanitizer!r}")


def shadow_to_app(addr: np.ndarray | int, sanitizer: str = "asan") -> np.ndarray:
    """Application addresses described by shadow addresses (vectorised, ``uint64``).

    For MSan an origin address maps to its application address too.
    """
    _check(sanitizer)
    a = np.asarray(addr, dtype=np.uint64)
    if sanitizer == "asan":
        return (a - np.uint64(ASAN_SHADOW_OFFSET)) << np.uint64(ASAN_SCALE)
    app = a ^ np.uint64(MSAN_XOR)
    from_origin = (a - np.uint64(MSAN_ORIGIN)) ^ np.uint64(MSAN_XOR)
    in_app = np.zeros(a.shape, bool)
    for lo, hi in _MSAN_APP:
        in_app |= (app >= np.uint64(lo)) & (app < np.uint64(hi))
    return np.where(in_app, app, from_origin)


def app_to_shadow(addr: np.ndarray | int, sanitizer: str = "asan") -> np.ndarray:
    """Shadow addresses of application addresses (vectorised, ``uint64``)."""
    _check(sanitizer)
    a = np.asarray(addr, dtype=np.uint64)
    if sanitizer == "asan":
        return (a >> np.uint64(ASAN_SCALE)) + np.uint64(ASAN_SHADOW_OFFSET)
    return a ^ np.uint64(MSAN_XOR)


@dataclass(frozen=True, repr=False)
class ShadowMap(Summary):
    """Resident shadow, seen from the application side.

    Attributes
    ----------
    sanitizer : str
    shadow : Regions
        Shadow pages in the category (resident by default), in shadow addresses.
    app : Regions
        The application ranges those shadow pages describe (categories carried over).
    vma_bytes : numpy.ndarray
        Application bytes with materialised shadow per VMA of the table (``vma_labels``).
    vma_labels : list of str
    """

    sanitizer: str
    shadow: Regions
    app: Regions
    vma_bytes: np.ndarray
    vma_labels: list[str]

    def _title(self) -> str:
        return "Materialised shadow"

    def _rows(self) -> dict[str, str]:
        top = np.argsort(self.vma_bytes)[::-1][:8]
        rows = {
            "sanitizer": self.sanitizer.upper(),
            "resident shadow": f"{human_bytes(self.shadow.size)} in {len(self.shadow):,} runs",
            "application memory described": human_bytes(self.app.size),
        }
        for i in top.tolist():
            if self.vma_bytes[i]:
                rows[f"  {self.vma_labels[i]} #{i}"] = human_bytes(int(self.vma_bytes[i]))
        return rows


def materialised_shadow(
    data: Capture | Regions,
    *,
    at: int = -1,
    vmas: Vmas | None = None,
    sanitizer: str = "auto",
    category=Category.PRESENT,
) -> ShadowMap:
    """Which application memory has resident shadow at one snapshot.

    Parameters
    ----------
    data : Capture or Regions
        A capture (snapshot ``at``) or one unfiltered scan (then give ``vmas``).
    vmas : Vmas, optional
        The VMA table (a capture brings its own).
    sanitizer : {"auto", "asan", "msan"}
        ``"auto"`` uses ``detect_sanitizer``.
    category : category spec or Mask
        Which shadow pages count (default ``PRESENT``).

    Returns
    -------
    ShadowMap

    Raises
    ------
    ValueError
        No sanitizer shadow in the layout (with ``"auto"``), or TSan (not mappable).
    """
    regs, vmas = snapshot(data, at, vmas)
    if sanitizer == "auto":
        found = detect_sanitizer(vmas)
        if found is None:
            raise ValueError(
                "no sanitizer shadow in this layout (no anonymous VMA inside a known ASan / "
                "MSan / TSan shadow range); pass sanitizer='asan' or 'msan' to force one"
            )
        sanitizer = found
    _check(sanitizer)
    mask = category if isinstance(category, Mask) else Mask(require=category)
    a = regs.array
    a = a[mask.matches(a["categories"])]
    if sanitizer == "asan":
        ranges = np.array(_ASAN_SHADOW, dtype=np.uint64)
    else:
        sh = shadow_ranges(vmas)
        ranges = np.stack([sh.start, sh.end], axis=1) if len(sh) else np.zeros((0, 2), np.uint64)
    # Keep the parts of matching regions inside the shadow ranges (vectorised over both).
    lo = np.maximum(a["start"][:, None], ranges[None, :, 0])
    hi = np.minimum(a["end"][:, None], ranges[None, :, 1])
    ri, ki = np.nonzero(hi > lo)
    shadow = np.empty(ri.size, REGION_DTYPE)
    shadow["start"], shadow["end"] = lo[ri, ki], hi[ri, ki]
    shadow["categories"] = a["categories"][ri]
    order = np.argsort(shadow["start"], kind="stable")
    shadow = shadow[order]
    app = shadow.copy()
    app["start"] = shadow_to_app(shadow["start"], sanitizer)
    app["end"] = shadow_to_app(shadow["end"] - np.uint64(1), sanitizer) + np.uint64(
        1 << ASAN_SCALE if sanitizer == "asan" else 1
    )
    app = app[np.argsort(app["start"], kind="stable")]
    vb = np.zeros(len(vmas), np.int64)
    if len(vmas) and app.size:
        # MSan shadow and origin describe the same bytes: count each application byte once.
        us, ue = union_columns(app["start"], app["end"])
        flat = np.zeros(us.size, REGION_DTYPE)
        flat["start"], flat["end"] = us, ue
        pts = np.stack([vmas.start, vmas.end], axis=1).ravel()
        c = prefix_coverage(flat, np.array([0, flat.size]), pts)[0]
        vb = c[1::2] - c[0::2]
    return ShadowMap(
        sanitizer,
        Regions(shadow, page_size=regs.page_size),
        Regions(app, page_size=regs.page_size),
        vb,
        [vmas.label(i) for i in range(len(vmas))],
    )
