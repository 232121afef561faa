"""Many captures at once: summaries, SQL (DuckDB) and per-capture analyses (Dask).

>>> from pmviz import fleet
>>> f = fleet.open("sample_data/fleet/*.pmviz")            # doctest: +SKIP
>>> f.summaries(client="serial")                          # doctest: +SKIP
>>> f.sql("SELECT capture_id, max(resident_bytes) FROM snapshot_bytes GROUP BY 1")  # doctest: +SKIP

Needs the ``fleet`` extra (``pip install pmviz[fleet]``: duckdb, dask[distributed], fsspec,
pandas). See ``docs/fleet.md``.
"""

from __future__ import annotations

from ._fleet import Fleet, open
from ._run import CaptureResult

__all__ = ["Fleet", "CaptureResult", "open"]
