"""Small HTML tables for the ``_repr_html_`` of analysis results (notebooks)."""

from __future__ import annotations

import html

from ..regions import _human_bytes

__all__ = ["table", "human_bytes"]

human_bytes = _human_bytes


def table(title: str, rows: dict[str, str]) -> str:
    """A two-column key/value table under a bold title (values are trusted HTML)."""
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{v}</td></tr>"
        for k, v in rows.items()
    )
    return f"<div><b>{html.escape(title)}</b><table>{body}</table></div>"
