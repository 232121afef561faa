"""DuckDB views over a fleet's Parquet parts (``docs/fleet.md`` lists them with examples).

Views (every one has a ``capture_id`` column, the id of ``pmviz.summary.capture_id``):

``captures``
    ``capture_id``, ``url``: one row per capture.
``snapshots``, ``vmas``, ``written``, ``marks``
    The capture tables (``docs/capture-format.md`` §2) as stored, with ``capture_id``.
``regions``
    The **stored** region rows: keyframe rows (``change`` 0) and change rows (+1 appears,
    -1 disappears at this snapshot), §2.2. Summing ``end - start`` per snapshot over these
    rows is wrong except on keyframes; use ``snapshot_bytes`` or rebuild as §2.2 shows.
``snapshot_bytes``
    One row per snapshot: ``resident_bytes``, ``swapped_bytes``, ``dump_bytes`` (CRIU) and
    ``written_bytes`` (null without write tracking), rebuilt exactly from the stored rows:
    each snapshot's signed byte change (a keyframe row counts +1) summed from its keyframe.
``summaries``
    One row per capture (``summary.parquet``), computed when missing.

Version-1 captures (every snapshot stored whole, no ``change`` / ``keyframe`` columns) get
``change`` 0 and ``keyframe`` true, which is what they mean.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..storage import format as fmt
from ._sources import Source

# (column, SQL default) a version-1 part lacks
_OPTIONAL = {
    "regions": {"change": "0::TINYINT"},
    "snapshots": {"keyframe": "true", "change_rows": "region_rows"},
}
_EMPTY = {
    "regions": 'snapshot BIGINT, start UBIGINT, "end" UBIGINT, categories USMALLINT, change TINYINT',
    "written": 'snapshot BIGINT, start UBIGINT, "end" UBIGINT, categories USMALLINT',
    "snapshots": "snapshot BIGINT, time_ns BIGINT, vma_table INTEGER, region_rows BIGINT, "
    "written_rows BIGINT, scan_ns BIGINT, n_regions BIGINT, retries BIGINT, "
    "skipped_ticks BIGINT, collect_ns BIGINT, snapshot_ns BIGINT, keyframe BOOLEAN, "
    "change_rows BIGINT",
    "vmas": 'vma_table INTEGER, start UBIGINT, "end" UBIGINT, "offset" UBIGINT, '
    "inode UBIGINT, dev_major UINTEGER, dev_minor UINTEGER, perms VARCHAR, kind UTINYINT, "
    "path BLOB",
    "marks": "time_ns BIGINT, label VARCHAR",
}

# Category bits (docs/capture-format.md §2.2) and the masks of pmviz.analysis.
_RESIDENT = "(categories & 8) != 0"
_SWAPPED = "(categories & 16) != 0 AND (categories & 256) = 0"
_DUMP = "(categories & 24) != 0 AND (categories & 292) = 0"  # CRIU: not FILE|PFNZERO|GUARD

SNAPSHOT_BYTES = f"""
CREATE OR REPLACE VIEW snapshot_bytes AS
WITH d AS (
    SELECT capture_id, snapshot,
        sum(CASE WHEN change = -1 THEN -1 ELSE 1 END * ("end" - start)::BIGINT
            * ({_RESIDENT})::BIGINT) AS resident,
        sum(CASE WHEN change = -1 THEN -1 ELSE 1 END * ("end" - start)::BIGINT
            * ({_SWAPPED})::BIGINT) AS swapped,
        sum(CASE WHEN change = -1 THEN -1 ELSE 1 END * ("end" - start)::BIGINT
            * ({_DUMP})::BIGINT) AS dump
    FROM regions GROUP BY capture_id, snapshot
), w AS (
    SELECT capture_id, snapshot, sum(("end" - start)::BIGINT) AS written
    FROM written GROUP BY capture_id, snapshot
), s AS (
    SELECT capture_id, snapshot, time_ns, written_rows,
        -- which keyframe run a snapshot belongs to: keyframes seen so far
        sum(keyframe::INTEGER) OVER (PARTITION BY capture_id ORDER BY snapshot) AS run
    FROM snapshots
)
SELECT s.capture_id, s.snapshot, s.time_ns,
    (sum(coalesce(d.resident, 0)) OVER k)::BIGINT AS resident_bytes,
    (sum(coalesce(d.swapped, 0)) OVER k)::BIGINT AS swapped_bytes,
    (sum(coalesce(d.dump, 0)) OVER k)::BIGINT AS dump_bytes,
    CASE WHEN s.written_rows IS NULL THEN NULL ELSE coalesce(w.written, 0) END AS written_bytes
FROM s
LEFT JOIN d USING (capture_id, snapshot)
LEFT JOIN w USING (capture_id, snapshot)
WINDOW k AS (PARTITION BY s.capture_id, s.run ORDER BY s.snapshot
             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
"""


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def connect(
    sources: Sequence[Source],
    ids: Sequence[str],
    *,
    memory_limit: str = "1GB",
    temp_directory: str,
    threads: int | None = None,
) -> Any:
    """A DuckDB connection with the views above (except ``summaries``, added by the fleet).

    DuckDB spills joins, sorts and aggregations to ``temp_directory`` beyond
    ``memory_limit`` instead of failing.
    """
    import duckdb
    import pandas as pd

    con = duckdb.connect(
        config={
            "memory_limit": memory_limit,
            "temp_directory": temp_directory,
            "preserve_insertion_order": False,  # lets large scans stream (less memory)
            **({"threads": threads} if threads else {}),
        }
    )
    remote = [s for s in sources if s.local is None]
    if remote:
        import fsspec

        for proto in sorted({s.url.split("://", 1)[0] for s in remote}):
            con.register_filesystem(fsspec.filesystem(proto))
    con.register(
        "_captures_df", pd.DataFrame({"capture_id": list(ids), "url": [s.url for s in sources]})
    )
    con.execute("CREATE TABLE captures AS SELECT * FROM _captures_df")
    con.unregister("_captures_df")
    for table in ("snapshots", "regions", "written", "vmas", "marks"):
        files, owner = _part_files(sources, ids, table)
        if not files:
            con.execute(f"CREATE TABLE {table} (capture_id VARCHAR, {_EMPTY[table]})")
            continue
        con.register(f"_{table}_files", pd.DataFrame({"filename": files, "capture_id": owner}))
        con.execute(f"CREATE TABLE _{table}_parts AS SELECT * FROM _{table}_files")
        con.unregister(f"_{table}_files")
        listing = "[" + ", ".join(_q(f) for f in files) + "]"
        scan = f"read_parquet({listing}, filename = true, union_by_name = true)"
        have = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
        cols = [c for c in have if c != "filename"]
        extra = [f"{d} AS {c}" for c, d in _OPTIONAL.get(table, {}).items() if c not in have]
        select = ", ".join([f't."{c}"' for c in sorted(cols)] + extra)
        con.execute(
            f"CREATE VIEW {table} AS SELECT p.capture_id, {select} FROM {scan} t "
            f"JOIN _{table}_parts p ON t.filename = p.filename"
        )
    con.execute(SNAPSHOT_BYTES)
    return con


def _part_files(
    sources: Sequence[Source], ids: Sequence[str], table: str
) -> tuple[list[str], list[str]]:
    files: list[str] = []
    owner: list[str] = []
    for src, cid in zip(sources, ids):
        if src.local is not None:
            parts, _ = fmt.list_parts(src.local, table)
            names = [p.path for p in parts]
        else:
            names = _remote_parts(src.url, table)
        files.extend(names)
        owner.extend([cid] * len(names))
    return files, owner


def _remote_parts(url: str, table: str) -> list[str]:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    d = f"{path.rstrip('/')}/{table}"
    if not fs.isdir(d):
        return []
    names = [os.path.basename(p) for p in fs.ls(d, detail=False)]
    ranges = []
    for n in names:
        m = fmt._PART_RE.match(n)
        if m:
            ranges.append((int(m.group(1)), int(m.group(2)), n))
    live = [r for r in ranges if not any(q[0] <= r[0] and r[1] <= q[1] and q != r for q in ranges)]
    return [fs.unstrip_protocol(f"{d}/{n}") for _, _, n in sorted(live)]
