"""A fixed-size summary of one capture: one Parquet row that fleet queries read instead of
the capture (``docs/capture-format.md`` §8).

Fleet profilers reduce data at the source; so does pmviz. Whatever a capture's length, its
summary has the same columns and the same list lengths (percentiles, a fixed idle-age
histogram, the dirty-rate curve and the CRIU dump-size series resampled to fixed points), so
hundreds of summaries make one small table. Every figure comes from ``pmviz.analysis``; the
capture is read chunk by chunk, as those analyses do.

The summary is written as ``summary.parquet`` inside the capture directory when a recording
finishes (``pmviz record``, ``pmviz.record(out=...)``) and by :func:`summarize` for older
captures (cached there, keyed on the capture's metadata file).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .analysis.migration import dirty_bytes, dump_size, precopy_estimate
from .analysis.sanitizers import detect_sanitizer, materialised_shadow, shadow_ranges
from .analysis.sparsity import sparsity
from .analysis.working_set import idle_time, working_set_size
from .capture import Capture
from .errors import PmvizWarning
from .storage import format as fmt

__all__ = [
    "SUMMARY_FILE",
    "SUMMARY_VERSION",
    "PERCENTILES",
    "IDLE_EDGES_S",
    "CURVE_POINTS",
    "summarize",
    "write_summary",
    "read_summary",
    "CaptureSummary",
]

SUMMARY_FILE = "summary.parquet"
SUMMARY_VERSION = 1
PERCENTILES = (50, 90, 99)
"""Percentiles of the per-snapshot series, numpy ``method="inverted_cdf"``: the smallest
value with at least p % of the snapshots at or below it (DuckDB's ``quantile_disc``)."""
IDLE_EDGES_S = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, float("inf"))
"""Idle-age bins in seconds since the last write: ``[edge[k], edge[k+1])``."""
IDLE_SHARE_S = 1.0
"""``idle_share``: resident bytes not written for at least this long (or never written)."""
CURVE_POINTS = 16
"""Points of the resampled dirty-rate curve and dump-size series."""
PRECOPY_BANDWIDTH = 1.25e9
"""Link of the pre-copy estimate: 10 Gbit/s (as ``pmviz report``), downtime budget 0.3 s."""


class CaptureSummary(Mapping[str, Any]):
    """One capture's summary: a read-only mapping of column name to value.

    ``to_arrow()`` / ``to_pandas()`` give the one-row table stored as ``summary.parquet``.
    """

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):  # noqa: ANN204
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def to_arrow(self) -> pa.Table:
        """The one-row table, with the summary's schema (lists have fixed lengths)."""
        return pa.Table.from_pylist([self._values], schema=SCHEMA)

    def to_pandas(self):  # noqa: ANN201 - pandas is optional
        """The one-row table as a pandas DataFrame."""
        return self.to_arrow().to_pandas()

    def __repr__(self) -> str:
        v = self._values
        return (
            f"<CaptureSummary {v['capture_id']} {v['command_name'] or '?'}: "
            f"{v['n_snapshots']} snapshots over {v['duration_s']:.2f} s, "
            f"resident peak {v['resident_peak']:,} B>"
        )

    def _repr_html_(self) -> str:
        from .analysis._html import human_bytes, table

        v = self._values
        rows = {
            "capture": f"{v['capture_id']} ({v['command_name'] or 'command unknown'})",
            "snapshots": f"{v['n_snapshots']:,} over {v['duration_s']:.2f} s",
            "resident p50 / p99 / peak": " / ".join(
                human_bytes(v[k]) for k in ("resident_p50", "resident_p99", "resident_peak")
            ),
            "CRIU dump (peak)": human_bytes(v["dump_peak"]),
        }
        if v["written_peak"] is not None:
            rows["written per interval (peak)"] = human_bytes(v["written_peak"])
        if v["idle_share"] is not None:
            rows[f"idle ≥ {IDLE_SHARE_S:g} s (share of resident)"] = f"{v['idle_share']:.0%}"
        if v["recording_overhead"] is not None:
            rows["recording overhead"] = f"{v['recording_overhead']:.2%} of the time"
        return table("Capture summary", rows)


def _pct_fields(name: str) -> list[tuple[str, pa.DataType]]:
    return [(f"{name}_p{p}", pa.int64()) for p in PERCENTILES] + [(f"{name}_peak", pa.int64())]


SCHEMA = pa.schema(
    [
        ("capture_id", pa.string()),
        ("host", pa.string()),
        ("pid", pa.int64()),
        ("command_name", pa.string()),
        ("start_wall_ns", pa.int64()),
        ("pmviz_version", pa.string()),
        ("summary_version", pa.int32()),
        ("kernel_release", pa.string()),
        ("write_mechanism", pa.string()),
        ("anonymized", pa.bool_()),
        ("complete", pa.bool_()),
        ("end_reason", pa.string()),
        ("page_size", pa.int64()),
        ("interval_ns", pa.int64()),
        ("n_snapshots", pa.int64()),
        ("duration_s", pa.float64()),
        ("region_rows", pa.int64()),
        *_pct_fields("resident"),
        ("resident_last", pa.int64()),
        ("swapped_peak", pa.int64()),
        *_pct_fields("written"),
        ("written_total", pa.int64()),
        *_pct_fields("accessed"),
        ("idle_bytes", pa.list_(pa.int64())),
        ("idle_never_bytes", pa.int64()),
        ("idle_share", pa.float64()),
        ("dirty_window_s", pa.list_(pa.float64())),
        ("dirty_bytes", pa.list_(pa.int64())),
        ("dirty_rate_peak", pa.float64()),
        ("dump_time_s", pa.list_(pa.float64())),
        ("dump_bytes", pa.list_(pa.int64())),
        ("dump_peak", pa.int64()),
        ("dump_last", pa.int64()),
        ("precopy_downtime_s", pa.float64()),
        ("precopy_total_bytes", pa.int64()),
        ("precopy_converged", pa.bool_()),
        ("present_runs", pa.int64()),
        ("present_density", pa.float64()),
        ("sanitizer", pa.string()),
        ("shadow_reserved_bytes", pa.int64()),
        ("shadow_resident_bytes", pa.int64()),
        ("shadow_density", pa.float64()),
        ("scan_ns_p50", pa.int64()),
        ("scan_ns_p99", pa.int64()),
        ("snapshot_ns_total", pa.int64()),
        ("recording_overhead", pa.float64()),
        ("skipped_ticks", pa.int64()),
        ("retries", pa.int64()),
        ("capture_json_sha256", pa.string()),
    ],
    metadata={
        "pmviz.summary_version": str(SUMMARY_VERSION),
        "pmviz.percentiles": json.dumps(PERCENTILES),
        "pmviz.idle_edges_s": json.dumps([e if np.isfinite(e) else "inf" for e in IDLE_EDGES_S]),
        "pmviz.curve_points": str(CURVE_POINTS),
    },
)


# -- computing --------------------------------------------------------------------------------
def _percentiles(name: str, values: np.ndarray | None) -> dict[str, int | None]:
    keys = [f"{name}_p{p}" for p in PERCENTILES] + [f"{name}_peak"]
    if values is None or not values.size:
        return dict.fromkeys(keys)
    v = np.asarray(values)
    qs = np.percentile(v, PERCENTILES, method="inverted_cdf")
    return dict(zip(keys, [int(q) for q in qs] + [int(v.max())]))


def _resample(n: int) -> np.ndarray:
    """``CURVE_POINTS`` snapshot indices spread evenly over ``n`` snapshots (repeats if few)."""
    return np.rint(np.linspace(0, max(n - 1, 0), CURVE_POINTS)).astype(np.int64)


def capture_id(capture: Capture | str | os.PathLike[str]) -> str:
    """A stable id: a hash of the metadata and the snapshot times (16 hex digits).

    For a capture directory: ``sha256(capture.json bytes + time_ns as little-endian int64)``,
    computable from the files alone (DuckDB views and other tools need no pmviz). An
    in-memory capture hashes its metadata as JSON instead. An anonymized or sliced copy has
    another id (its metadata or times differ).
    """
    root = getattr(capture, "path", None) if isinstance(capture, Capture) else capture
    h = hashlib.sha256()
    if root is not None:
        root = os.fspath(root)
        with open(os.path.join(root, fmt.META_FILE), "rb") as f:
            h.update(f.read())
        parts, _ = fmt.list_parts(root, "snapshots")
        for part in parts:
            t = pq.read_table(part.path, columns=["time_ns"])
            h.update(np.ascontiguousarray(t.column(0).to_numpy(), dtype="<i8").tobytes())
    else:
        assert isinstance(capture, Capture)
        h.update(json.dumps(capture.meta.as_dict(), sort_keys=True, default=str).encode())
        h.update(np.ascontiguousarray(capture.time_ns, dtype="<i8").tobytes())
    return h.hexdigest()[:16]


def _command_name(capture: Capture) -> str | None:
    cmd = capture.meta.command
    if not cmd:  # anonymized: a label the sharer may have left (sample_data/make_fleet.py)
        program = capture.meta.extra.get("program")
        return program if isinstance(program, str) else None
    name = os.path.basename(cmd[0])
    # An interpreter runs the program named next (python3 script.py, sh -c ...).
    if name.startswith(("python", "sh", "bash")) and len(cmd) > 1:
        nxt = next((a for a in cmd[1:] if not a.startswith("-")), None)
        if nxt is not None:
            return f"{name} {os.path.basename(nxt)}"
    return name


def _idle(capture: Capture, resident_last: int) -> dict[str, Any]:
    edges = np.asarray(IDLE_EDGES_S)
    if not capture.has_written or not capture.n_snapshots:
        return {"idle_bytes": None, "idle_never_bytes": None, "idle_share": None}
    it = idle_time(capture, among="resident")
    age_s = it.intervals * it.interval_s
    k = np.clip(np.searchsorted(edges, age_s, side="right") - 1, 0, edges.size - 2)
    hist = np.bincount(k, weights=it.bytes.astype(np.float64), minlength=edges.size - 1)
    idle = int(it.bytes[age_s >= IDLE_SHARE_S].sum()) + it.never
    return {
        "idle_bytes": [int(b) for b in np.rint(hist)],
        "idle_never_bytes": int(it.never),
        "idle_share": idle / resident_last if resident_last else 0.0,
    }


def _dirty(capture: Capture, dump: np.ndarray) -> dict[str, Any]:
    none = dict.fromkeys(
        ["dirty_window_s", "dirty_bytes", "dirty_rate_peak", "precopy_downtime_s",
         "precopy_total_bytes", "precopy_converged"]
    )  # fmt: skip
    if not capture.has_written or capture.n_snapshots < 2:
        return none
    secs, dirty = dirty_bytes(capture, "max", exact_upto=16)
    # Resample the curve at window lengths spread geometrically from one interval to the
    # whole capture: the same points for every capture of the same interval and length.
    win = np.geomspace(secs[1], secs[-1], CURVE_POINTS) if secs[-1] > 0 else np.zeros(CURVE_POINTS)
    pre = precopy_estimate(capture, bandwidth=PRECOPY_BANDWIDTH, dirty=(secs, dirty), dump=dump)
    return {
        "dirty_window_s": [float(w) for w in win],
        "dirty_bytes": [int(b) for b in np.rint(np.interp(win, secs, dirty))],
        "dirty_rate_peak": float(dirty[1] / secs[1]) if secs[1] > 0 else None,
        "precopy_downtime_s": pre.downtime_s,
        "precopy_total_bytes": pre.total_bytes,
        "precopy_converged": pre.converged,
    }


def _shadow(capture: Capture) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(
        ["sanitizer", "shadow_reserved_bytes", "shadow_resident_bytes", "shadow_density"]
    )
    if not capture.n_snapshots:
        return out
    vmas = capture.vmas_at(-1)
    found = detect_sanitizer(vmas)
    if found is None:
        return out
    sh = shadow_ranges(vmas)
    reserved = int((sh.end - sh.start).astype(np.int64).sum())
    out.update(sanitizer=found, shadow_reserved_bytes=reserved)
    if found == "tsan":  # detected, not mappable (pmviz.analysis.sanitizers)
        return out
    resident = int(materialised_shadow(capture, sanitizer=found).shadow.size)
    out.update(
        shadow_resident_bytes=resident,
        shadow_density=resident / reserved if reserved else None,
    )
    return out


def _telemetry(capture: Capture, duration_ns: int) -> dict[str, Any]:
    tel = capture.telemetry

    def col(name: str) -> np.ndarray | None:
        a = tel.get(name)
        return None if a is None or not len(a) else np.asarray(a, np.int64)

    scan, snap = col("scan_ns"), col("snapshot_ns")
    skipped, retries = col("skipped_ticks"), col("retries")
    out: dict[str, Any] = {
        "scan_ns_p50": None, "scan_ns_p99": None, "snapshot_ns_total": None,
        "recording_overhead": None,
        "skipped_ticks": None if skipped is None else int(skipped.sum()),
        "retries": None if retries is None else int(retries.sum()),
    }  # fmt: skip
    if scan is not None:
        q = np.percentile(scan, (50, 99), method="inverted_cdf")
        out.update(scan_ns_p50=int(q[0]), scan_ns_p99=int(q[1]))
    if snap is not None:
        out["snapshot_ns_total"] = int(snap.sum())
        # Share of the recording's wall time spent taking snapshots (the target runs on, but
        # the recorder's CPU time and the kernel walk are this long).
        span = duration_ns + (capture.meta.interval_ns or 0)
        out["recording_overhead"] = float(snap.sum() / span) if span > 0 else None
    return out


def _accessed(capture: Capture) -> dict[str, Any]:
    # Accessed (referenced) tables exist only in captures recorded with access sampling; the
    # attribute is absent from pmviz versions without them.
    series = getattr(capture, "accessed", None)
    fn = getattr(series, "accessed_bytes", None)
    if fn is None:
        return _percentiles("accessed", None)
    try:
        est = np.asarray(fn(), np.float64)
    except Exception as err:  # noqa: BLE001 - an optional column must not lose the summary
        warnings.warn(f"accessed bytes not summarized: {err}", PmvizWarning, stacklevel=3)
        return _percentiles("accessed", None)
    est = est[np.isfinite(est)]
    return _percentiles("accessed", np.rint(est).astype(np.int64))


def compute_summary(capture: Capture, *, host: str | None = None) -> CaptureSummary:
    """Compute a capture's summary (without reading or writing ``summary.parquet``)."""
    meta = capture.meta
    path = getattr(capture, "path", None)
    n = capture.n_snapshots
    times = capture.times
    duration_ns = int(capture.time_ns[-1] - capture.time_ns[0]) if n else 0
    ws = working_set_size(capture)
    resident_last = int(ws.resident[-1]) if n else 0
    dump = dump_size(capture)
    pick = _resample(n)
    v: dict[str, Any] = {
        "capture_id": capture_id(capture),
        "host": host if host is not None else meta.extra.get("host"),
        "pid": meta.pid,
        "command_name": _command_name(capture),
        "start_wall_ns": meta.start_wall_ns,
        "pmviz_version": meta.pmviz_version,
        "summary_version": SUMMARY_VERSION,
        "kernel_release": meta.kernel_release,
        "write_mechanism": meta.write_mechanism,
        "anonymized": meta.anonymized,
        "complete": bool(getattr(capture, "complete", True)),
        "end_reason": meta.end_reason,
        "page_size": meta.page_size,
        "interval_ns": meta.interval_ns,
        "n_snapshots": n,
        "duration_s": duration_ns / 1e9,
        "region_rows": capture.n_regions,
        **_percentiles("resident", ws.resident),
        "resident_last": resident_last,
        "swapped_peak": int(ws.swapped.max(initial=0)),
        **_percentiles("written", ws.written),
        "written_total": None if ws.written is None else int(ws.written.sum()),
        **_accessed(capture),
        **_idle(capture, resident_last),
        **_dirty(capture, dump),
        "dump_time_s": [float(t) for t in times[pick]] if n else None,
        "dump_bytes": [int(b) for b in dump[pick]] if n else None,
        "dump_peak": int(dump.max(initial=0)),
        "dump_last": int(dump[-1]) if n else 0,
        "present_runs": None,
        "present_density": None,
        **_shadow(capture),
        **_telemetry(capture, duration_ns),
        "capture_json_sha256": _meta_digest(os.fspath(path)) if path is not None else None,
    }
    if n:
        last = capture.regions_at(-1)
        if len(capture.vmas_at(-1)) or not len(last):
            sp = sparsity(capture)
        else:  # no maps recorded: measure over the scanned span
            sp = sparsity(capture, start=int(last.start[0]), end=int(last.end[-1]))
        v["present_runs"] = sp.n_regions
        v["present_density"] = sp.density
    return CaptureSummary({f.name: v[f.name] for f in SCHEMA})


# -- files ------------------------------------------------------------------------------------
def _meta_digest(root: str) -> str | None:
    try:
        with open(os.path.join(root, fmt.META_FILE), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def read_summary(path: str | os.PathLike[str]) -> CaptureSummary | None:
    """The cached ``summary.parquet`` of a capture directory, or None when absent or stale.

    Stale: written by another summary version, or for other metadata (the capture was
    rewritten, or was still being recorded).
    """
    root = os.fspath(path)
    f = os.path.join(root, SUMMARY_FILE)
    if not os.path.isfile(f):
        return None
    try:
        t = pq.read_table(f)
    except (OSError, pa.ArrowException):
        return None
    if t.num_rows != 1 or t.schema.metadata is None:
        return None
    if t.schema.metadata.get(b"pmviz.summary_version") != str(SUMMARY_VERSION).encode():
        return None
    row = t.to_pylist()[0]
    if row.get("capture_json_sha256") != _meta_digest(root):
        return None
    return CaptureSummary({fld.name: row.get(fld.name) for fld in SCHEMA})


def write_summary(summary: CaptureSummary, path: str | os.PathLike[str]) -> str:
    """Write ``summary`` as ``summary.parquet`` in the capture directory ``path`` (atomically).

    Returns the file's path.
    """
    root = os.fspath(path)
    values = dict(summary)
    values["capture_json_sha256"] = _meta_digest(root)
    table = CaptureSummary(values).to_arrow()
    out = os.path.join(root, SUMMARY_FILE)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    fmt.write_atomic(out, sink.getvalue().to_pybytes())
    return out


def summarize(
    capture: Capture | str | os.PathLike[str],
    *,
    host: str | None = None,
    cache: bool = True,
) -> CaptureSummary:
    """The fixed-size summary of a capture, from its ``summary.parquet`` when up to date.

    Parameters
    ----------
    capture : Capture or path
        A capture directory (or an opened capture). A directory's summary is read from
        ``summary.parquet`` when that is current, else computed and (``cache``) written there
        — only for a finished capture (``complete``), since a recording one still changes.
    host : str, optional
        The host column (default: what the capture's metadata says, else empty). Recordings
        summarized as they finish record the machine's host name.
    cache : bool
        Read and write ``summary.parquet``.

    Returns
    -------
    CaptureSummary

    Raises
    ------
    CaptureError
        The capture is damaged (its parts are checked as they are read).

    Examples
    --------
    >>> import pmviz
    >>> s = pmviz.summarize("sample_data/numpy-workload.pmviz", cache=False)
    >>> s["n_snapshots"] > 0 and s["resident_peak"] >= s["resident_p50"]
    True
    """
    from .storage import open as open_capture

    root = getattr(capture, "path", None) if isinstance(capture, Capture) else capture
    root = None if root is None else os.fspath(root)
    if root is not None and cache:
        cached = read_summary(root)
        if cached is not None and (host is None or cached["host"] == host):
            return cached
    cap = capture if isinstance(capture, Capture) else open_capture(capture)
    s = compute_summary(cap, host=host)
    if root is not None and cache and _finished(root):
        try:
            write_summary(s, root)
        except OSError as err:  # read-only share: the summary is still returned
            warnings.warn(
                f"{root}: summary not cached ({err.strerror or err})", PmvizWarning, stacklevel=2
            )
    return s


def _finished(root: str) -> bool:
    try:
        return bool(fmt.read_meta(root).get("complete"))
    except Exception:  # noqa: BLE001 - an unreadable metadata file: just do not cache
        return False


def summarize_recording(path: str | os.PathLike[str]) -> CaptureSummary | None:
    """Summarize a capture a recording just finished (``pmviz record``, ``pmviz.record``).

    Never raises: a failed summary must not turn a successful recording into an error; it
    is reported as a ``PmvizWarning`` and can be computed later with :func:`summarize`.
    """
    try:
        meta = fmt.read_meta(os.fspath(path))
        host = None if meta.get("anonymized") else socket.gethostname()
        return summarize(path, host=host)
    except Exception as err:  # noqa: BLE001 - see above
        warnings.warn(f"{os.fspath(path)}: summary not written: {err}", PmvizWarning, stacklevel=2)
        return None


def summarize_session_recording(path: str | os.PathLike[str]) -> int:
    """Summarize every capture of a session a recording just finished (``scope="tree"`` ...).

    Each process's capture gets its ``summary.parquet`` as a single recording's does, so a
    fleet over sessions reads summaries, not raw parts. Never raises (as
    :func:`summarize_recording`); returns how many captures were summarized.
    """
    from .storage import open_session

    try:
        rels = open_session(os.fspath(path)).processes.column("capture").to_pylist()
    except Exception as err:  # noqa: BLE001 - see summarize_recording
        warnings.warn(
            f"{os.fspath(path)}: summaries not written: {err}", PmvizWarning, stacklevel=2
        )
        return 0
    done = [summarize_recording(os.path.join(os.fspath(path), rel)) for rel in rels if rel]
    return sum(d is not None for d in done)
