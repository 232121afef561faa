"""The on-disk layout of a capture (format version 2, reading 1; ``docs/capture-format.md``).

A capture is a directory ``NAME.pmviz/``::

    capture.json                      metadata (CaptureMeta + "format", "complete")
    snapshots/FIRST-END.parquet       one row per snapshot: time, VMA table, keyframe, row counts
    regions/FIRST-END.parquet         keyframe rows and change rows (``change``: 0, +1, -1)
    written/FIRST-END.parquet         pages written since the previous snapshot (if tracked)
    vmas/FIRST-END.parquet            the VMA tables first used by snapshots FIRST..END-1
    marks/FIRST-END.parquet           named instants recorded while snapshots FIRST..END-1 were
    SIDE/FIRST-END.parquet            a per-snapshot side table (``referenced``, ``probed`` ...),
                                      declared with its columns in ``capture.json``

``FIRST-END`` is the half-open snapshot range a part covers (zero-padded decimals). Every part
is written to a temporary name, fsynced and renamed, so a part either exists whole or not at
all. Small parts written every flush are later merged into one bigger part covering their
union; a reader ignores any part whose range lies inside another part's, which makes a crash
between writing the merged part and deleting the small ones harmless. The ``snapshots`` part is
written last for each range: it commits that range.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ..capture import FORMAT_VERSION
from ..errors import CaptureError
from . import validate

FORMAT_NAME = "pmviz-capture"
META_FILE = "capture.json"
RESERVE_FILE = ".reserve"
"""Space kept aside so a full disk still lets the recorder write the final metadata."""
RESERVE_BYTES = 256 * 1024
TABLES = ("vmas", "marks", "written", "regions", "snapshots")
"""In commit order: ``snapshots`` last. Readers list them in the reverse order (see
``list_all``), deleters delete in the reverse order too."""
SIDE_KEY = "side_tables"
"""``capture.json`` key declaring the side tables: ``{name: [[column, numpy type], ...]}``."""


def table_order(side: Sequence[str] = ()) -> tuple[str, ...]:
    """Every table of a capture with side tables ``side``, in commit order.

    Side parts are committed after ``written`` and before ``regions``: like the other rows,
    before the ``snapshots`` part that commits their range.
    """
    return (*TABLES[:3], *side, *TABLES[3:])


def side_schema(dtype: np.dtype) -> pa.Schema:
    """The Parquet schema of a side table with row type ``dtype``: ``snapshot`` + its columns."""
    fields = [pa.field("snapshot", pa.int64())]
    fields += [pa.field(n, pa.from_numpy_dtype(dtype[n])) for n in dtype.names or ()]
    return pa.schema(fields)


_PART_RE = re.compile(r"^(\d{9,})-(\d{9,})\.parquet$")

SNAPSHOTS_SCHEMA_V1 = pa.schema(
    [
        ("snapshot", pa.int64()),
        ("time_ns", pa.int64()),
        ("vma_table", pa.int32()),
        ("region_rows", pa.int64()),
        ("written_rows", pa.int64()),  # null in every row without write tracking
        ("scan_ns", pa.int64()),
        ("n_regions", pa.int64()),
        ("retries", pa.int64()),
        ("skipped_ticks", pa.int64()),
        ("collect_ns", pa.int64()),
        ("snapshot_ns", pa.int64()),
    ]
)
SNAPSHOTS_SCHEMA = pa.schema(
    list(SNAPSHOTS_SCHEMA_V1)
    + [
        ("keyframe", pa.bool_()),  # the snapshot's regions rows are all its rows
        ("change_rows", pa.int64()),  # rows of this snapshot in `regions` (keyframe or changes)
    ]
)
"""Version 2: ``region_rows`` is the snapshot's region count; ``change_rows`` its stored rows."""
WRITTEN_SCHEMA = pa.schema(
    [
        ("snapshot", pa.int64()),
        ("start", pa.uint64()),
        ("end", pa.uint64()),
        ("categories", pa.uint16()),
    ]
)
REGIONS_SCHEMA_V1 = WRITTEN_SCHEMA
REGIONS_SCHEMA = pa.schema(list(WRITTEN_SCHEMA) + [("change", pa.int8())])
"""``change``: 0 a keyframe row, +1 a row that appears, -1 a row that disappears."""
VMAS_SCHEMA_V1 = pa.schema(
    [
        ("vma_table", pa.int32()),
        ("start", pa.uint64()),
        ("end", pa.uint64()),
        ("offset", pa.uint64()),
        ("inode", pa.uint64()),
        ("dev_major", pa.uint32()),
        ("dev_minor", pa.uint32()),
        ("perms", pa.string()),
        ("kind", pa.uint8()),
        ("path", pa.string()),
    ]
)
VMAS_SCHEMA = pa.schema(
    [f if f.name != "path" else pa.field("path", pa.binary()) for f in VMAS_SCHEMA_V1]
)
"""Version 2 stores paths as bytes (Linux paths are bytes; read back with surrogateescape)."""
MARKS_SCHEMA = pa.schema([("time_ns", pa.int64()), ("label", pa.string())])
SCHEMAS = {
    "snapshots": SNAPSHOTS_SCHEMA,
    "regions": REGIONS_SCHEMA,
    "written": WRITTEN_SCHEMA,
    "vmas": VMAS_SCHEMA,
    "marks": MARKS_SCHEMA,
}
SCHEMAS_V1 = {
    "snapshots": SNAPSHOTS_SCHEMA_V1,
    "regions": REGIONS_SCHEMA_V1,
    "written": WRITTEN_SCHEMA,
    "vmas": VMAS_SCHEMA_V1,
}


def schemas(version: int) -> dict[str, pa.Schema]:
    """The table schemas of a format version."""
    return SCHEMAS_V1 if version == 1 else SCHEMAS


ROW_GROUP_ROWS = 1 << 19
"""Region rows per row group: big enough for zstd to see many snapshots, small enough that a
1 % time window of a large capture reads a few row groups."""

# Measured in benchmarks/bench_storage.py. Consecutive snapshots repeat long runs of identical
# addresses; zstd removes that repetition only within one data page, so a page must span many
# snapshots: one page per column chunk (Arrow's default cap of 20,000 rows per page cost 20x
# in size). Plain + zstd beats dictionary and DELTA encodings for the address columns (delta
# encoding hides the cross-snapshot repetition); low-cardinality columns get dictionaries.
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": ["snapshot", "categories", "change", "vma_table", "perms", "kind", "path"],
    "write_statistics": True,
    "write_page_checksum": True,
    "data_page_size": ROW_GROUP_ROWS * 8,
    "max_rows_per_page": ROW_GROUP_ROWS,
}


@dataclass(frozen=True, order=True)
class Part:
    """One committed Parquet file: ``table`` rows for snapshots ``[first, end)``."""

    first: int
    end: int
    table: str
    path: str

    def contains(self, other: Part) -> bool:
        return self.first <= other.first and other.end <= self.end and self != other


def part_name(first: int, end: int) -> str:
    return f"{first:09d}-{end:09d}.parquet"


def list_parts(root: str, table: str) -> tuple[list[Part], list[str]]:
    """The live parts of one table (superseded ones dropped) and the names of stray files."""
    d = os.path.join(root, table)
    if not os.path.isdir(d):
        return [], []
    parts, stray = [], []
    for name in sorted(os.listdir(d)):
        m = _PART_RE.match(name)
        if m is None:
            if not name.startswith(".tmp-"):  # temporaries of an interrupted write are expected
                stray.append(os.path.join(d, name))
            continue
        first, end = int(m.group(1)), int(m.group(2))
        if end <= first:
            stray.append(os.path.join(d, name))
            continue
        parts.append(Part(first, end, table, os.path.join(d, name)))
    live = [p for p in parts if not any(q.contains(p) for q in parts)]
    return sorted(live), stray


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either the old or the new content."""
    d, name = os.path.split(path)
    tmp = os.path.join(d, f".tmp-{name}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    fsync_dir(d)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def encode_meta(meta: dict[str, Any], *, complete: bool) -> bytes:
    doc = {**meta, "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "complete": complete}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def read_meta(root: str) -> dict[str, Any]:
    """Read and check ``capture.json``; every problem is a CaptureError naming the file."""
    if not os.path.exists(root):
        raise CaptureError(root, "no such capture (the path does not exist)")
    if not os.path.isdir(root):
        raise CaptureError(root, "not a pmviz capture: a capture is a directory NAME.pmviz/")
    path = os.path.join(root, META_FILE)
    if os.path.lexists(path):
        validate.check_part_file(path)  # a FIFO would block the read below forever
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if os.path.isfile(os.path.join(root, "session.json")):
            raise CaptureError(
                root,
                "a pmviz session (several processes), not one capture: pmviz.open(path) "
                "returns the Session, .capture(pid) one process's capture (CLI: --pid N; "
                "pmviz info lists the pids)",
            ) from None
        raise CaptureError(
            root, f"not a pmviz capture: it has no {META_FILE} (was it written by pmviz record?)"
        ) from None
    except OSError as err:
        raise CaptureError(path, f"cannot read: {os.strerror(err.errno or 0)}") from err
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CaptureError(path, f"damaged metadata (not valid JSON: {err})") from err
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise CaptureError(path, f"not a pmviz capture metadata file (no format={FORMAT_NAME!r})")
    version = doc.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CaptureError(path, f"damaged metadata: bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise CaptureError(
            path,
            f"capture format version {version} is newer than this pmviz reads "
            f"(up to {FORMAT_VERSION}); upgrade pmviz (pip install -U pmviz)",
        )
    validate.check_meta(doc, path)
    return doc
