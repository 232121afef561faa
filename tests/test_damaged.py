"""Damaged and untrusted captures: refused with the file and row named, or (``strict=False``)
dropped with a warning saying exactly what was dropped. Never a hang, never wrong totals.

Each damage is built on a real recording (the numpy workload, uffd-wp tracked, as format 1
stored every snapshot in full: tests/data/format1; the format 2 tests save it as format 2
first) by rewriting its Parquet parts with pyarrow by column name.
"""

import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pmviz
from pmviz import CaptureError
from pmviz.regions import REGION_DTYPE
from pmviz.storage import validate

SAMPLE = os.path.join(os.path.dirname(__file__), "data", "format1", "numpy-workload.pmviz")


@pytest.fixture
def cap_path(tmp_path):
    path = str(tmp_path / "run.pmviz")
    shutil.copytree(SAMPLE, path)
    return path


def part(path, table):
    (p,) = sorted(glob.glob(os.path.join(path, table, "*.parquet")))
    return p


def rewrite(path, fn, out=None):
    """Apply ``fn(dict of numpy columns) -> None`` to a part (by column name) and write it back."""
    t = pq.read_table(path)
    cols = {n: t.column(n).to_numpy(zero_copy_only=False).copy() for n in t.column_names}
    fn(cols)
    new = pa.table({n: pa.array(cols[n], type=t.schema.field(n).type) for n in t.column_names})
    pq.write_table(new.replace_schema_metadata(t.schema.metadata), out or path)


def set_row(cols, row, **values):
    for k, v in values.items():
        cols[k][row] = v


def strict_error(path):
    with pytest.raises(CaptureError) as err:
        c = pmviz.open(path)
        c.regions  # noqa: B018 - rows are checked when loaded
        c.written  # noqa: B018
        c.vma_tables  # noqa: B018
    return err.value


def lenient(path):
    with pytest.warns(pmviz.PmvizWarning, match="dropped|skipped") as w:
        c = pmviz.open(path, strict=False)
    return c, str(w[0].message)


def same_snapshots(a, b, ids):
    for k, i in enumerate(ids):
        assert a.regions_at(k) == b.regions_at(i)
        assert a.written_at(k) == b.written_at(i)
        assert a.vmas_at(k) == b.vmas_at(i)


# -- non-regular files ------------------------------------------------------------------------
@pytest.mark.parametrize("what", ["fifo", "symlink-to-fifo", "device", "directory"])
@pytest.mark.parametrize("where", ["regions", "capture.json"])
def test_non_regular_files_are_refused_not_read(cap_path, tmp_path, what, where):
    victim = (
        os.path.join(cap_path, "capture.json") if where == "capture.json" else part(cap_path, where)
    )
    os.unlink(victim)
    if what == "fifo":
        os.mkfifo(victim)
    elif what == "symlink-to-fifo":
        os.mkfifo(tmp_path / "fifo")
        os.symlink(tmp_path / "fifo", victim)
    elif what == "device":
        os.symlink("/dev/zero", victim)
    else:
        os.mkdir(victim)
    for cmd in (["info", cap_path], ["heatmap", cap_path, "-o", str(tmp_path / "h.png")]):
        out = subprocess.run(
            [sys.executable, "-m", "pmviz", *cmd], capture_output=True, text=True, timeout=120
        )
        assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
        assert "refusing to read" in out.stderr and victim in out.stderr
    err = strict_error(cap_path)
    assert err.path == victim and "regular file" in str(err)


# -- metadata ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, value, match",
    [
        ("format_version", True, "format_version must be an int"),
        ("page_size", 0, "page_size must be a power of two"),
        ("page_size", 3000, "page_size must be a power of two"),
        ("page_size", "4096", "page_size must be a power of two"),
        ("interval_ns", -1, "interval_ns must be an int >= 0"),
        ("pid", "1234", "pid must be"),
        ("command", "ls -l", "command must be a list"),
    ],
)
def test_bad_metadata_is_refused(cap_path, key, value, match):
    meta = os.path.join(cap_path, "capture.json")
    doc = json.load(open(meta))
    json.dump(doc | {key: value}, open(meta, "w"))
    with pytest.raises(CaptureError, match=match) as err:
        pmviz.open(cap_path)
    assert err.value.path == meta


# -- missing parts ----------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["part", "directory"])
def test_deleted_vmas(cap_path, how):
    if how == "part":
        os.unlink(part(cap_path, "vmas"))
    else:
        shutil.rmtree(os.path.join(cap_path, "vmas"))
    err = strict_error(cap_path)
    assert "no vmas part holds VMA table 0" in str(err)
    c, msg = lenient(cap_path)
    assert c.n_snapshots == 0 and "VMA table 0" in msg


@pytest.mark.parametrize("how", ["part", "directory"])
def test_deleted_written(cap_path, how):
    ref = pmviz.open(SAMPLE)
    if how == "part":
        os.unlink(part(cap_path, "written"))
        assert "no written part holds snapshot 0" in str(strict_error(cap_path))
        c, msg = lenient(cap_path)
        assert c.n_snapshots == 0
        return
    shutil.rmtree(os.path.join(cap_path, "written"))
    err = strict_error(cap_path)
    assert "written/ is missing" in str(err)
    c, msg = lenient(cap_path)
    assert not c.has_written and "every written set" in msg
    assert c.n_snapshots == ref.n_snapshots and c.regions_at(7) == ref.regions_at(7)


def test_written_directory_without_row_counts(cap_path):
    rewrite(
        part(cap_path, "snapshots"),
        lambda c: c.__setitem__("written_rows", np.full(len(c["written_rows"]), None)),
    )
    assert "no written row counts" in str(strict_error(cap_path))


# -- the snapshots table ----------------------------------------------------------------------
def test_shifted_region_rows(cap_path):
    def shift(c):
        c["region_rows"][3] += 5
        c["region_rows"][4] -= 5

    rewrite(part(cap_path, "snapshots"), shift)
    err = strict_error(cap_path)
    assert err.path == part(cap_path, "regions") and "region_rows/written_rows do not match" in str(
        err
    )
    c, msg = lenient(cap_path)
    ref = pmviz.open(SAMPLE)
    keep = [i for i in range(ref.n_snapshots) if i not in (3, 4)]
    assert c.snapshot_ids.tolist() == keep and "snapshot 3 " in msg and "snapshot 4 " in msg
    same_snapshots(c, ref, keep)
    out = subprocess.run(
        [sys.executable, "-m", "pmviz", "info", "--lenient", cap_path],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "dropped (damaged)  snapshot 3 (regions/" in out.stdout, (
        out.stdout
    )


def test_vma_table_out_of_range(cap_path):
    rewrite(part(cap_path, "snapshots"), lambda c: set_row(c, 5, vma_table=99))
    with pytest.raises(CaptureError, match="snapshot 5: vma_table 99 out of range"):
        pmviz.open(cap_path)


def test_backwards_time(cap_path):
    rewrite(part(cap_path, "snapshots"), lambda c: set_row(c, 10, time_ns=c["time_ns"][9] - 1))
    with pytest.raises(CaptureError, match="snapshot 10: time_ns goes backwards") as err:
        pmviz.open(cap_path)
    assert err.value.path == part(cap_path, "snapshots")
    c, msg = lenient(cap_path)
    assert c.n_snapshots == 0 and part(cap_path, "snapshots") in c.skipped_parts


def test_overlapping_parts(cap_path):
    p = part(cap_path, "snapshots")
    d = os.path.dirname(p)
    n = pmviz.open(cap_path).n_snapshots
    t = pq.read_table(p)
    pq.write_table(t.slice(0, 30), os.path.join(d, "000000000-000000030.parquet"))
    pq.write_table(t.slice(20, n - 20), os.path.join(d, f"000000020-{n:09d}.parquet"))
    os.unlink(p)
    with pytest.raises(CaptureError, match="overlaps") as err:
        pmviz.open(cap_path)
    assert err.value.path.endswith(f"000000020-{n:09d}.parquet")
    c, _ = lenient(cap_path)
    ref = pmviz.open(SAMPLE)
    assert c.n_snapshots == 30
    same_snapshots(c, ref, range(30))


# -- region rows ------------------------------------------------------------------------------
def _row_of_snapshot(path, snapshot, k=1):
    snap = pq.read_table(part(path, "regions"), columns=["snapshot"]).column(0).to_numpy()
    return int(np.searchsorted(snap, snapshot)) + k


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda c, r: set_row(c, r, start=c["end"][r], end=c["start"][r]), "start >= end"),
        (lambda c, r: set_row(c, r, end=0), "start >= end"),  # 2**64 wrapped
        (lambda c, r: set_row(c, r, end=2**64 - 4096), "beyond the user address space"),
        (lambda c, r: set_row(c, r, end=(1 << 57) + 4096), "beyond the user address space"),
        (lambda c, r: set_row(c, r, start=c["start"][r] + 8), "not page-aligned"),
        (lambda c, r: set_row(c, r, start=c["start"][r - 1]), "overlaps or precedes"),
        (
            lambda c, r: set_row(c, r, start=c["start"][r + 1], end=c["end"][r + 1]),
            "overlaps or precedes",
        ),  # a duplicate: the next row is out of order
    ],
)
def test_damaged_region_rows(cap_path, damage, reason):
    r = _row_of_snapshot(cap_path, 6)
    rewrite(part(cap_path, "regions"), lambda c: damage(c, r))
    err = strict_error(cap_path)
    assert err.path == part(cap_path, "regions") and reason in str(err) and "snapshot 6" in str(err)
    assert f"row {r}" in str(err) or f"row {r + 1}" in str(err)
    with pytest.raises(CaptureError, match=reason.split(" (")[0]):
        pmviz.open(cap_path).address_window(0, 2**47)  # reads row groups, not snapshots
    c, msg = lenient(cap_path)
    ref = pmviz.open(SAMPLE)
    keep = [i for i in range(ref.n_snapshots) if i != 6]
    assert c.address_window(0, 2**47).n_regions == ref.select(keep).n_regions
    assert c.snapshot_ids.tolist() == keep and "snapshot 6 " in msg and reason in msg
    same_snapshots(c, ref, keep)
    # totals stay sane: nothing like 4.5e15 resident pages
    assert c.regions_at(-1).n_pages == ref.regions_at(-1).n_pages


def test_damaged_written_rows(cap_path):
    rewrite(part(cap_path, "written"), lambda c: set_row(c, 0, end=0))
    err = strict_error(cap_path)
    assert err.path == part(cap_path, "written") and "row 0" in str(err)


def test_damaged_vma_rows(cap_path):
    rewrite(part(cap_path, "vmas"), lambda c: set_row(c, 2, start=c["end"][2]))
    err = strict_error(cap_path)
    assert err.path == part(cap_path, "vmas") and "row 2" in str(err)


def test_checks_are_functions_over_arrays():
    """What the format-2 reader calls: plain arrays in, CaptureError out."""
    rows = np.zeros(3, REGION_DTYPE)
    rows["start"], rows["end"] = [0x1000, 0x3000, 0x2000], [0x2000, 0x4000, 0x3000]
    off = np.array([0, 2, 3])
    validate.check_regions(rows, off, 4096, "x")  # the third row starts a new snapshot
    bad, first, reason = validate.region_problems(rows, np.array([0, 3]), 4096)
    assert bad.tolist() == [True] and first == 2 and "precedes" in reason
    with pytest.raises(CaptureError, match="row 12 \\(snapshot 7"):
        validate.check_regions(rows, np.array([0, 3]), 4096, "x", 7, first_row=10)
    validate.check_meta({"format_version": 2, "page_size": 16384}, "m")
    col = np.array([7, 7, 8])
    validate.check_regions(rows, off, 4096, "x", 7, snapshot_column=col)
    with pytest.raises(CaptureError, match="row 1 belongs to snapshot 8"):
        validate.check_regions(rows, off, 4096, "x", 7, snapshot_column=np.array([7, 8, 8]))
    with pytest.raises(
        CaptureError, match="2 rows for snapshots 7..8 where the snapshots table counts 3"
    ):
        validate.check_regions(rows, off, 4096, "x", 7, snapshot_column=col[:2])
    assert validate.id_ranges(np.array([0, 1, 2, 5, 7, 8])) == "0..2, 5, 7..8"


# -- crafted files (CVE-2023-47248) -----------------------------------------------------------
class _Spy(pa.ExtensionType):
    """An extension type whose deserializer records that it ran (as a pickle payload would)."""

    calls: list = []

    def __init__(self):
        super().__init__(pa.uint16(), "pmviz.test.spy")

    def __arrow_ext_serialize__(self):
        return b"payload"

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type, serialized):
        cls.calls.append(serialized)
        return cls()


def test_a_part_with_an_extension_type_is_refused_before_pyarrow_parses_it(cap_path):
    p = part(cap_path, "regions")
    t = pq.read_table(p)
    spy = pa.ExtensionArray.from_storage(_Spy(), t.column("categories").combine_chunks())
    crafted = t.set_column(t.schema.get_field_index("categories"), "categories", spy)
    pa.register_extension_type(_Spy())
    try:
        pq.write_table(crafted, p)
        _Spy.calls.clear()
        for strict in (True, False):
            with (
                pytest.raises(CaptureError, match="extension type.*CVE-2023-47248")
                if strict
                else pytest.warns(pmviz.PmvizWarning)
            ):
                pmviz.open(cap_path, strict=strict)
        assert _Spy.calls == []  # the deserializer never ran
        pq.read_table(p)  # the premise: plain pyarrow would have run it
        assert _Spy.calls
    finally:
        pa.unregister_extension_type("pmviz.test.spy")


def test_pyarrow_version_is_checked(monkeypatch):
    for bad in ("13.0.0", "14.0.0", "0.17.1"):
        with pytest.raises(ImportError, match="pyarrow >= 14.0.1.*CVE-2023-47248"):
            validate.check_pyarrow(bad)
    for good in ("14.0.1", "14.0.2", "15.0.0", "26.0.1", pa.__version__):
        validate.check_pyarrow(good)
    monkeypatch.setattr(pa.lib, "_py_extension_type_auto_load", True, raising=False)
    with pytest.raises(ImportError, match="auto-loading is enabled"):
        validate.check_pyarrow()


def test_declared_dependencies():
    import tomllib

    deps = tomllib.load(open(os.path.join(os.path.dirname(__file__), "..", "pyproject.toml"), "rb"))
    deps = deps["project"]["dependencies"]
    assert "pyarrow>=14.0.1" in deps and "numpy>=2.0" in deps


# -- format 2: keyframes and change rows ------------------------------------------------------
@pytest.fixture
def v2_path(tmp_path):
    from pmviz.storage import save

    path = save(pmviz.open(SAMPLE), str(tmp_path / "v2.pmviz"))
    assert pmviz.open(path).version == 2
    return path


def _change_rows_of(path, snapshot):
    t = pq.read_table(part(path, "regions"), columns=["snapshot", "change"])
    snap, kind = t.column(0).to_numpy(), t.column(1).to_numpy()
    rows = np.flatnonzero((snap == snapshot) & (kind > 0))
    assert len(rows) >= 2
    return rows


def test_v2_damaged_change_row_loses_the_snapshots_up_to_the_next_keyframe(v2_path):
    ref = pmviz.open(SAMPLE)
    keys = pmviz.open(v2_path).keyframes
    s = int(next(i for i in range(1, ref.n_snapshots) if i not in keys and i + 1 not in keys))
    nxt = int(keys[keys > s][0])
    r = int(_change_rows_of(v2_path, s)[0])
    rewrite(part(v2_path, "regions"), lambda c: set_row(c, r, start=c["start"][r] + 8))
    err = strict_error(v2_path)
    assert err.path == part(v2_path, "regions") and f"snapshot {s}" in str(err)
    assert "not page-aligned" in str(err) and f"row {r}" in str(err)
    c, msg = lenient(v2_path)
    keep = [i for i in range(ref.n_snapshots) if not s <= i < nxt]
    assert c.snapshot_ids.tolist() == keep
    assert f"snapshot {s} " in msg and "not page-aligned" in msg and "next keyframe" in msg
    same_snapshots(c, ref, keep)
    assert c.address_window(0, 2**47).n_regions == ref.select(keep).n_regions


def test_v2_change_rows_that_rebuild_overlapping_rows_are_refused(v2_path):
    ref = pmviz.open(SAMPLE)
    keys = pmviz.open(v2_path).keyframes
    s = int(next(i for i in range(1, ref.n_snapshots) if i not in keys))
    a, b = (int(x) for x in _change_rows_of(v2_path, s)[:2])
    # each row is sound on its own; the snapshot rebuilt from them holds a row twice
    rewrite(part(v2_path, "regions"), lambda c: set_row(c, b, start=c["start"][a], end=c["end"][a]))
    with pytest.raises(CaptureError, match=f"snapshot {s} rebuilt") as err:
        pmviz.open(v2_path).regions  # noqa: B018
    assert err.value.path == os.path.join(v2_path, "regions")
    with pytest.raises(CaptureError, match=f"snapshot {s} rebuilt"):
        pmviz.open(v2_path).regions_at(s)
