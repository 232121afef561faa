"""Capture files: round trips, lazy windows, crash leftovers, damage, and third-party readers."""

import html
import json
import os
import shutil

import numpy as np
import pytest

import pmviz
from pmviz import CaptureError, Regions
from pmviz.capture import Capture, CaptureMeta
from pmviz.maps import Vmas
from pmviz.storage import CaptureWriter, reader, save, writer
from pmviz.storage import format as fmt
from pmviz.storage import open as open_capture

MAPS = (
    "00400000-00402000 r-xp 00000000 08:01 42 /usr/bin/prog\n"
    "00600000-00800000 rw-p 00000000 00:00 0 [heap]\n"
    "7f0000000000-7f0040000000 rw-p 00000000 00:00 0 \n"
)


def synthetic(n=120, regions=200, seed=0, written=True):
    """A steady workload: the same layout every snapshot, a few categories flipping."""
    rng = np.random.default_rng(seed)
    starts = 0x7F0000000000 + np.arange(regions, dtype=np.uint64) * 0x10000
    v1, v2 = Vmas.parse(MAPS), Vmas.parse(MAPS.replace("7f0040000000", "7f0080000000"))
    snaps = []
    for i in range(n):
        cats = np.full(regions, 0xA, np.uint64)
        cats[rng.integers(0, regions, 5)] = 0x12
        r = Regions.from_arrays(starts, starts + 0x8000, cats)
        w = Regions.from_arrays(starts[: i % 7], starts[: i % 7] + 0x1000, 2) if written else None
        snaps.append((10**9 + i * 10**7, r, w, v1 if i < n // 2 else v2))
    return Capture.from_snapshots(CaptureMeta(pid=42, command=["prog", "x"]), snaps)


def same(a, b):
    assert a.n_snapshots == b.n_snapshots
    assert np.array_equal(a.time_ns, b.time_ns)
    assert np.array_equal(a.regions, b.regions)
    assert np.array_equal(a.region_offsets, b.region_offsets)
    assert (a.written is None) == (b.written is None)
    if a.written is not None:
        assert np.array_equal(a.written, b.written)
        assert np.array_equal(a.written_offsets, b.written_offsets)
    assert all(a.vmas_at(i) == b.vmas_at(i) for i in range(a.n_snapshots))
    for k in a.telemetry:
        assert np.array_equal(a.telemetry[k], b.telemetry[k]), k


def test_roundtrip_and_lazy_loading(tmp_path):
    cap = synthetic()
    path = save(cap, str(tmp_path / "c.pmviz"))
    d = open_capture(path)
    assert isinstance(d, Capture) and d.complete
    assert d._regions is None  # nothing loaded yet
    assert d.regions_at(5) == cap.regions_at(5) and d.written_at(6) == cap.written_at(6)
    assert d._regions is None  # a single snapshot did not load the rest
    assert d.meta.command == ["prog", "x"] and d.meta.format_version == fmt.FORMAT_VERSION
    same(d, cap)
    same(open_capture(path).window(0.3, 0.5), cap.window(0.3, 0.5))
    same(open_capture(path).select(np.array([3, 90, 7])), cap.select(np.array([3, 90, 7])))
    same(open_capture(path).downsample(every=7), cap.downsample(every=7))
    for (a, x), (b, y) in zip(open_capture(path).chunks(max_rows=3000), cap.chunks(max_rows=3000)):
        assert a == b
        same(x, y)
    got = list(open_capture(path).changes(slice(5, 100), max_rows=500))
    want = list(cap.changes(slice(5, 100), max_rows=500))
    assert all(
        np.array_equal(g.rows, w.rows) and np.array_equal(g.sign, w.sign) for g, w in zip(got, want)
    )
    lo, hi = 0x7F0000000000 + 0x10000 * 20 + 0x4000, 0x7F0000000000 + 0x10000 * 30
    same(open_capture(path).address_window(lo, hi), cap.address_window(lo, hi))
    assert "pmviz capture" in d._repr_html_() and html.escape(str(path)) in d._repr_html_()
    with pytest.raises(CaptureError, match="already exists"):
        save(cap, path)
    save(synthetic(n=3, written=False), path, overwrite=True)
    assert not open_capture(path).has_written and open_capture(path).written_at(0) is None


def test_time_window_reads_only_its_row_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(fmt, "ROW_GROUP_ROWS", 1000)
    cap = synthetic(n=400)
    path = save(cap, str(tmp_path / "c.pmviz"))
    read = []
    orig = reader._PartFile.read_rows

    def spy(self, lo, hi, columns):
        t = orig(self, lo, hi, columns)
        g0 = int(np.searchsorted(self.rg_offsets, lo, side="right")) - 1
        g1 = int(np.searchsorted(self.rg_offsets, hi, side="left"))
        read.append((self.part.table, g1 - g0))
        return t

    monkeypatch.setattr(reader._PartFile, "read_rows", spy)
    d = open_capture(path)
    w = d.window(2.0, 2.04)  # 4 snapshots x 200 regions = 800 rows of 80,000
    same(w, cap.window(2.0, 2.04))
    assert ("regions", 1) in read or ("regions", 2) in read
    assert all(n <= 2 for t, n in read if t == "regions")


def test_incremental_writer_merges_and_survives_leftovers(tmp_path):
    cap = synthetic(n=60)
    path = str(tmp_path / "w.pmviz")
    w = CaptureWriter(path, cap.meta, has_written=True, merge_every=4)
    for n in range(1, 61, 3):
        w.flush(cap.select(slice(0, n)))
        same(open_capture(path), cap.select(slice(0, n)))  # every flush is a readable capture
        assert not open_capture(path).complete
    w.close(cap, cap.meta.replace(end_reason="count reached"))
    assert os.listdir(os.path.join(path, "regions")) == ["000000000-000000060.parquet"]
    assert not os.path.exists(os.path.join(path, fmt.RESERVE_FILE))
    d = open_capture(path)
    assert d.complete and d.meta.end_reason == "count reached"
    same(d, cap)


def test_crash_leftovers_are_ignored(tmp_path):
    cap = synthetic(n=30)
    path = str(tmp_path / "k.pmviz")
    w = CaptureWriter(path, cap.meta, has_written=True, merge_every=1000)
    for n in (10, 20, 30):
        w.flush(cap.select(slice(0, n)))
    # A merge that wrote its regions part but died before its snapshots part and the deletes,
    # a temporary file of an interrupted write, and regions of snapshots never committed.
    rows, kind = cap._stored(0, 20)
    w._write_part("regions", 0, 20, writer._rows_table(rows, np.diff(cap._coff[:21]), 0, kind))
    open(os.path.join(path, "regions", ".tmp-000000030-000000040.parquet"), "wb").write(b"PAR1")
    os.rename(
        os.path.join(path, "snapshots", fmt.part_name(20, 30)),
        os.path.join(path, "snapshots", ".tmp-" + fmt.part_name(20, 30)),
    )
    d = open_capture(path)
    assert not d.complete and d.meta.end_reason.startswith("incomplete")
    same(d, cap.select(slice(0, 20)))


def in_four_parts(cap, path):
    """``cap`` (40 snapshots) written as parts of snapshots 0-9, 10-19, 20-29 and 30-39."""
    w = CaptureWriter(path, cap.meta, has_written=True, merge_every=1000)
    for n in (10, 20, 30, 40):
        w.flush(cap.select(slice(0, n)))
    w.finish(cap.meta)
    return path


def damage(path, how):
    with open(path, "r+b") as f:
        if how == "truncate":
            f.truncate(os.path.getsize(path) // 2)
        else:  # flip bytes in the middle of the data pages
            f.seek(os.path.getsize(path) // 3)
            data = f.read(64)
            f.seek(os.path.getsize(path) // 3)
            f.write(bytes(b ^ 0x5A for b in data))


@pytest.mark.parametrize("how", ["truncate", "corrupt"])
@pytest.mark.parametrize("table", ["regions", "snapshots"])
def test_damaged_part_is_named_and_the_rest_readable(tmp_path, how, table):
    cap = synthetic(n=40)
    path = in_four_parts(cap, str(tmp_path / "d.pmviz"))
    victim = os.path.join(path, table, fmt.part_name(10, 20))
    damage(victim, how)
    with pytest.raises(CaptureError) as err:
        open_capture(path).regions  # noqa: B018 - data pages are checked when read
    assert victim in str(err.value) and err.value.path == victim
    with pytest.warns(pmviz.PmvizWarning, match="skipped damaged parts"):
        d = open_capture(path, strict=False)
        d.regions  # noqa: B018
    # snapshots stored as changes need their keyframe: lost up to the next keyframe after 20
    k = int(cap.keyframes[cap.keyframes >= 20][0]) if (cap.keyframes >= 20).any() else 40
    keep = np.r_[0:10, k:40]
    assert d.snapshot_ids.tolist() == keep.tolist()
    same(d, cap.select(keep))


def test_not_a_capture_newer_version_bad_meta(tmp_path):
    with pytest.raises(CaptureError, match="does not exist"):
        open_capture(tmp_path / "nope.pmviz")
    (tmp_path / "plain").mkdir()
    with pytest.raises(CaptureError, match="not a pmviz capture.*capture.json"):
        open_capture(tmp_path / "plain")
    (tmp_path / "file.pmviz").write_text("x")
    with pytest.raises(CaptureError, match="is a directory|a capture is a directory"):
        open_capture(tmp_path / "file.pmviz")
    path = save(synthetic(n=2), str(tmp_path / "v.pmviz"))
    meta_path = os.path.join(path, fmt.META_FILE)
    doc = json.loads(open(meta_path).read())
    open(meta_path, "w").write(json.dumps(doc | {"format_version": 99}))
    with pytest.raises(CaptureError, match="version 99 is newer.*upgrade pmviz") as err:
        open_capture(path)
    assert err.value.path == meta_path
    open(meta_path, "w").write('{"format": "pmviz-capture", "format_ver')
    with pytest.raises(CaptureError, match="not valid JSON"):
        open_capture(path)
    open(meta_path, "w").write(json.dumps(doc))
    os.unlink(os.path.join(path, "regions", fmt.part_name(0, 2)))
    with pytest.raises(CaptureError, match="no regions part holds snapshot 0"):
        open_capture(path)
    open(os.path.join(path, "regions", "junk.csv"), "w").write("x")
    with pytest.raises(CaptureError, match="junk.csv"):
        open_capture(path)
    with pytest.raises(CaptureError, match="not a pmviz capture; refusing"):
        save(synthetic(n=2), str(tmp_path / "plain"), overwrite=True)


SNAPSHOT_SQL = """
WITH k AS (
    SELECT max(snapshot) AS k FROM '{path}/snapshots/*.parquet'
    WHERE keyframe AND snapshot <= {i}
)
SELECT start, "end", categories
FROM '{path}/regions/*.parquet', k
WHERE snapshot BETWEEN k.k AND {i}
GROUP BY start, "end", categories
HAVING sum(CASE WHEN change = -1 THEN -1 ELSE 1 END) > 0
ORDER BY start
"""
"""Rebuilding snapshot i from format-2 parts (the example of docs/capture-format.md)."""


def test_parts_are_readable_by_pandas_polars_duckdb_dask(tmp_path):
    cap = synthetic(n=50)
    path = save(cap, str(tmp_path / "t.pmviz"))
    regions_dir = os.path.join(path, "regions")
    assert len(cap.keyframes) > 1  # the SQL below must cross keyframes

    import pandas as pd

    df = pd.read_parquet(regions_dir)
    assert len(df) == cap.stored_rows and list(df.columns) == [
        "snapshot",
        "start",
        "end",
        "categories",
        "change",
    ]
    snaps = pd.read_parquet(os.path.join(path, "snapshots"))
    assert snaps["region_rows"].tolist() == np.diff(cap.region_offsets).tolist()
    assert snaps["keyframe"].to_numpy().nonzero()[0].tolist() == cap.keyframes.tolist()

    import duckdb

    con = duckdb.connect()
    for i in (0, 7, 33, 49, *cap.keyframes.tolist()):
        got = con.execute(SNAPSHOT_SQL.format(path=path, i=i)).fetchnumpy()
        want = cap.regions_at(i).array
        assert np.array_equal(got["start"], want["start"]), i
        assert np.array_equal(got["end"], want["end"]) and np.array_equal(
            got["categories"], want["categories"]
        )
    t = con.execute(
        f"SELECT time_ns FROM '{path}/snapshots/*.parquet' ORDER BY snapshot"
    ).fetchnumpy()["time_ns"]
    assert np.array_equal(t, cap.time_ns)

    import polars as pl

    k = (
        pl.scan_parquet(os.path.join(path, "snapshots", "*.parquet"))
        .filter(pl.col("keyframe") & (pl.col("snapshot") <= 33))
        .select(pl.col("snapshot").max())
        .collect()
        .item()
    )
    s33 = (
        pl.scan_parquet(os.path.join(regions_dir, "*.parquet"))
        .filter(pl.col("snapshot").is_between(k, 33))
        .group_by("start", "end", "categories")
        .agg(pl.when(pl.col("change") == -1).then(-1).otherwise(1).sum().alias("n"))
        .filter(pl.col("n") > 0)
        .sort("start")
        .collect()
    )
    assert s33["start"].to_list() == cap.regions_at(33).array["start"].tolist()

    import dask.dataframe as dd

    ddf = dd.read_parquet(regions_dir)
    assert int(ddf["categories"].count().compute()) == cap.stored_rows
    vm = pd.read_parquet(os.path.join(path, "vmas"))
    assert set(vm["path"]) == {b"/usr/bin/prog", b"[heap]", b""}


def test_bundled_v1_captures_still_open_and_rewrite_as_v2(tmp_path):
    # tests/data/format1: two of the sample captures as the first release wrote them
    root = os.path.join(os.path.dirname(__file__), "data", "format1")
    for name in sorted(os.listdir(root)):
        if not name.endswith(".pmviz"):
            continue
        v1 = open_capture(os.path.join(root, name))
        assert v1.version == 1 and v1.meta.format_version == 1
        v2 = open_capture(save(v1, str(tmp_path / name)))
        assert v2.version == 2
        same(v1, v2)
        assert v2.stored_rows < v1.n_regions


def test_non_utf8_paths_roundtrip_exactly(tmp_path):
    maps = b"7f0000000000-7f0000001000 rw-p 00000000 08:01 7 /tmp/x\xff.dat\n"
    v = Vmas.parse(maps.decode("utf-8", "surrogateescape"))
    r = Regions.from_arrays([0x7F0000000000], [0x7F0000001000], [8])
    cap = Capture.from_snapshots(CaptureMeta(), [(0, r, None, v)])
    d = open_capture(save(cap, str(tmp_path / "b.pmviz")))
    assert d.vmas_at(0).paths[0].encode("utf-8", "surrogateescape") == b"/tmp/x\xff.dat"


def test_marks_are_stored(tmp_path):
    from pmviz.capture import Mark

    cap = synthetic(n=10)
    cap.marks = [Mark(int(cap.time_ns[3]), "sort"), Mark(int(cap.time_ns[8]), "done")]
    d = open_capture(save(cap, str(tmp_path / "m.pmviz")))
    assert d.marks == cap.marks
    assert d.slice(0.0, 0.05).marks == cap.marks[:1]


def test_size_per_region_on_a_steady_workload(tmp_path):
    cap = synthetic(n=600, regions=300, written=False)
    path = save(cap, str(tmp_path / "s.pmviz"))
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(path) for f in fs)
    assert size / cap.n_regions <= 2.0, size / cap.n_regions
    shutil.rmtree(path)


def test_capture_without_vma_tables_roundtrips(tmp_path):
    r = Regions.from_arrays([0x1000], [0x3000], [8])
    cap = Capture.from_snapshots(CaptureMeta(), [(0, r, None, None), (5, r, None, None)])
    d = open_capture(save(cap, str(tmp_path / "n.pmviz")))
    assert len(d.vmas_at(1)) == 0 and d.window(0, 1).regions_at(1) == r


def test_reading_does_not_import_pandas(tmp_path):
    import subprocess
    import sys

    path = save(synthetic(n=20), str(tmp_path / "p.pmviz"))
    r = Regions.from_arrays([0x1000], [0x3000], [8])  # and one without VMA tables
    bare = save(Capture.from_snapshots(CaptureMeta(), [(0, r, None, None)]), str(tmp_path / "b"))
    code = (
        "import sys, pmviz; c = pmviz.open(sys.argv[1]); c.window(0.05, 0.1).vmas_at(0); "
        "c.regions_at(3); c.address_window(0, 1 << 47); pmviz.open(sys.argv[2]).window(0, 1); "
        "sys.exit('pandas' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code, path, bare]).returncode == 0


def _read_ahead_threads():
    import threading

    return [t for t in threading.enumerate() if t.name.startswith("pmviz-read-ahead")]


def test_changes_read_ahead_is_exact_reports_damage_and_leaves_no_thread(tmp_path):
    """Stored changes are read one chunk ahead in a thread: the same rows as in memory, a
    damaged part raises from the iteration that needs it, and no reader thread outlives the
    iteration (finished, abandoned or failed)."""
    cap = synthetic(n=40)
    path = in_four_parts(cap, str(tmp_path / "r.pmviz"))
    for whole in (False, True):
        got = list(open_capture(path).changes(max_rows=150, whole_keyframes=whole))
        want = list(cap.changes(max_rows=150, whole_keyframes=whole))
        assert len(got) == len(want) > 10
        for g, x in zip(got, want):
            assert (g.first, g.end) == (x.first, x.end)
            assert np.array_equal(g.snapshot, x.snapshot) and np.array_equal(g.rows, x.rows)
            assert np.array_equal(g.sign, x.sign)
    assert not _read_ahead_threads()

    it = open_capture(path).changes(max_rows=150)
    next(it), next(it)
    assert _read_ahead_threads()  # the next chunk is being read meanwhile
    it.close()
    assert not _read_ahead_threads()

    damage(os.path.join(path, "regions", fmt.part_name(30, 40)), "corrupt")
    seen = []
    with pytest.raises(CaptureError, match=fmt.part_name(30, 40)):
        for ch in open_capture(path).changes(max_rows=150):
            seen.append(ch.end)
    assert seen and max(seen) <= 30  # everything before the damaged part came
    assert not _read_ahead_threads()
