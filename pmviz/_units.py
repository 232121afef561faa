"""Durations and sizes as people type them (``"100ms"``, ``"2.5s"``, ``"512M"``, ``"2G"``) and
as pmviz prints them (``"1.5 MiB"``).

Shared by the CLI and the notebook magics (both parse the same options), and by every repr,
report and plot label (one byte format everywhere).
"""

from __future__ import annotations

import re

__all__ = ["MAX_SECONDS", "human_bytes", "parse_seconds", "parse_size"]

MAX_SECONDS = 1e9
"""Longest interval or duration accepted (about 31 years; longer overflows the timers)."""

_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_seconds(text: str) -> float:
    """``"100ms"``, ``"2.5s"``, ``"1m"``, ``"0.1"`` (seconds) -> float seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*([a-z]*)\s*", text)
    if m is None or m.group(2) not in ("", *_UNITS):
        raise ValueError(
            f"{text!r} is not a duration; use e.g. 100ms, 2s, 1.5m (units: {', '.join(_UNITS)})"
        )
    seconds = float(m.group(1)) * _UNITS.get(m.group(2), 1.0)
    if not seconds <= MAX_SECONDS:  # (also inf and nan)
        raise ValueError(f"{text!r} is too long; at most {MAX_SECONDS:g} s (about 31 years)")
    return seconds


def parse_size(text: str) -> int:
    """``"512M"``, ``"2G"``, ``"1.5g"``, ``"4096"`` (bytes; K/M/G/T are powers of 1024)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if m is None:
        raise ValueError(f"{text!r} is not a size; use e.g. 512M, 2G, 1.5G or a number of bytes")
    size = float(m.group(1)) * _SIZE_UNITS[m.group(2)]
    if not 1 <= size < 1 << 63:
        raise ValueError(f"{text!r}: a size must be at least 1 byte")
    return int(size)


def human_bytes(n: float) -> str:
    """``"1.5 MiB"``-style text: IEC units, three significant digits (``"119 MiB"``,
    ``"1.02 GiB"``), whole bytes below 1 KiB.
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < (1024 if unit == "B" else 1023.5) or unit == "PiB":
            break  # (1023.7 KiB would print as "1024 KiB": that is 1 MiB)
        n /= 1024
    if unit == "B" or abs(n) >= 99.95:  # (.3g would write 1000 as 1e+03)
        return f"{n:.0f} {unit}"
    return f"{n:.3g} {unit}"
