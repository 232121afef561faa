"""Text and HTML reprs of analysis results, from one dict of plain-text rows each.

Every public result object defines ``_rows() -> dict[str, str]`` (plain text, nothing
escaped) and inherits :class:`Summary`'s ``__repr__`` (an indented text block, also what an
untrusted notebook shows) and ``_repr_html_`` (a two-column table, every value escaped).
"""

from __future__ import annotations

import html

from .._units import human_bytes

__all__ = ["Summary", "table", "text", "human_bytes"]


def table(title: str, rows: dict[str, str]) -> str:
    """A two-column key/value table under a bold title (keys and values escaped)."""
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in rows.items()
    )
    return f"<div><b>{html.escape(title)}</b><table>{body}</table></div>"


def text(title: str, rows: dict[str, str]) -> str:
    """``Title`` then one indented ``key: value`` line per row."""
    width = max((len(k) for k in rows), default=0)
    return "\n".join([title] + [f"  {k.strip():<{width}}  {v}" for k, v in rows.items()])


class Summary:
    """Mixin: ``__repr__`` and ``_repr_html_`` from ``_rows()`` under ``_title()``."""

    def _title(self) -> str:
        return type(self).__name__

    def _rows(self) -> dict[str, str]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return text(self._title(), self._rows())

    def _repr_html_(self) -> str:
        return table(self._title(), self._rows())
