"""pmviz.fleet: summaries serial = on a 2-worker Dask LocalCluster = DuckDB SQL over the parts;
damaged captures reported, never fatal; file:// URLs; the CLI; summary.parquet caching.

The fleet: the bundled captures (format 1), the same saved as format 2 (keyframes + changes),
synthetic captures with write tracking and a keyframe policy exercised by churn, and one
damaged copy (a regions part cut short).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import pmviz
from pmviz import fleet
from pmviz.capture import Capture, CaptureMeta
from pmviz.regions import Regions
from pmviz.storage import save
from pmviz.summary import SUMMARY_FILE, capture_id, read_summary, summarize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = [os.path.join(ROOT, "sample_data", n) for n in
           ("numpy-workload.pmviz", "redis-benchmark.pmviz", "asan-phases.pmviz")]  # fmt: skip


def synthetic(seed: int, n: int = 30) -> Capture:
    """Regions that change category and size over time, with written sets."""
    rng = np.random.default_rng(seed)
    base = 0x7F0000000000
    snaps = []
    for i in range(n):
        k = 20 + rng.integers(0, 20)
        starts = base + np.arange(k, dtype=np.uint64) * 0x10000
        ends = starts + (rng.integers(1, 16, k).astype(np.uint64) * 4096)
        cats = rng.choice([8 | 1, 8 | 2 | 1, 16, 4 | 8, 32], k).astype(np.uint16)
        w = rng.random(k) < 0.3
        wr = Regions.from_arrays(starts[w], starts[w] + 4096, np.full(w.sum(), 2, np.uint16))
        snaps.append(
            (
                i * 50_000_000 + int(rng.integers(0, 1000)),
                Regions.from_arrays(starts, ends, cats),
                wr,
                None,
            )
        )
    meta = CaptureMeta(command=["python3", f"work{seed % 3}.py"], interval_ns=50_000_000,
                       write_mechanism="uffd-wp", pmviz_version=pmviz.__version__)  # fmt: skip
    return Capture.from_snapshots(meta, snaps)


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fleet")
    for p in SAMPLES:
        shutil.copytree(p, d / os.path.basename(p))
        c = pmviz.open(p)
        c.meta = c.meta.replace(extra={**c.meta.extra, "copy": "format 2"})  # another capture id
        save(c, str(d / ("v2-" + os.path.basename(p))))
    for seed in range(4):
        save(synthetic(seed), str(d / f"synthetic-{seed}.pmviz"))
    bad = d / "damaged.pmviz"
    shutil.copytree(SAMPLES[0], bad)
    (part,) = sorted((bad / "regions").iterdir())
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 2])  # cut short: footer gone
    return d


def copy_of(src, dst):
    shutil.copytree(src, dst)
    for p in dst.glob(f"*/{SUMMARY_FILE}"):
        p.unlink()
    return dst


def comparable(df):
    df = df.copy()
    root = os.path.dirname(df["url"].iloc[0])
    df["error"] = df["error"].str.replace(root, "ROOT")
    return df.drop(columns=["url"]).sort_values(["capture_id", "error"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def serial(fleet_dir, tmp_path_factory):
    d = copy_of(fleet_dir, tmp_path_factory.mktemp("serial") / "f")
    return fleet.open(str(d / "*.pmviz")).summaries(client="serial", progress=False)


def test_summaries_have_one_row_per_capture_and_the_damaged_one_failed(serial):
    assert len(serial) == 11
    bad = serial[serial["url"].str.endswith("damaged.pmviz")]
    assert len(bad) == 1 and bad["error"].iloc[0].startswith("CaptureError")
    assert "regions" in bad["error"].iloc[0] and bad["resident_peak"].isna().all()
    ok = serial[serial["error"].isna()]
    assert len(ok) == 10 and (ok["resident_peak"] > 0).all()
    assert (ok["resident_peak"] >= ok["resident_p99"]).all()
    assert (ok["resident_p99"] >= ok["resident_p50"]).all()
    # Fixed size: every list column has the same length in every row that has it.
    for col in ("idle_bytes", "dirty_bytes", "dirty_window_s", "dump_bytes", "dump_time_s"):
        lengths = {len(v) for v in ok[col] if v is not None}
        assert len(lengths) == 1, col
    asan = ok[ok["sanitizer"] == "asan"]
    assert len(asan) == 2 and (asan["shadow_density"] > 0).all()
    # format 1 and format 2 copies of the same recording summarize to the same figures
    v1 = ok[ok["url"].str.endswith("/numpy-workload.pmviz")].iloc[0]
    v2 = ok[ok["url"].str.endswith("/v2-numpy-workload.pmviz")].iloc[0]
    for col in ("resident_peak", "resident_p50", "dump_peak", "written_total", "idle_never_bytes"):
        assert v1[col] == v2[col], col
    assert v1["capture_id"] != v2["capture_id"]


def test_serial_equals_two_worker_local_cluster(fleet_dir, serial, tmp_path):
    distributed = pytest.importorskip("distributed")
    d = copy_of(fleet_dir, tmp_path / "f")
    before = (
        set(distributed.LocalCluster._instances)
        if hasattr(distributed.LocalCluster, "_instances")
        else None
    )
    par = fleet.open(str(d / "*.pmviz")).summaries(workers=2, progress=False)
    pd.testing.assert_frame_equal(comparable(par), comparable(serial))
    if before is not None:  # the cluster was closed: no new live instance left behind
        assert all(c.status.name == "closed" for c in distributed.LocalCluster._instances - before)


def test_duckdb_sql_over_the_parts_equals_the_summaries(fleet_dir, serial, tmp_path):
    f = fleet.open(str(fleet_dir / "*.pmviz"), memory_limit="256MB")
    with pytest.warns(pmviz.PmvizWarning, match="damaged.pmviz: left out of the SQL views"):
        f.connect()
    q = f.sql("""
        SELECT capture_id,
            count(*) AS n_snapshots,
            (max(time_ns) - min(time_ns)) / 1e9 AS duration_s,
            max(resident_bytes) AS resident_peak,
            quantile_disc(resident_bytes, 0.5) AS resident_p50,
            quantile_disc(resident_bytes, 0.9) AS resident_p90,
            quantile_disc(resident_bytes, 0.99) AS resident_p99,
            arg_max(resident_bytes, snapshot) AS resident_last,
            max(swapped_bytes) AS swapped_peak,
            max(dump_bytes) AS dump_peak,
            arg_max(dump_bytes, snapshot) AS dump_last,
            max(written_bytes) AS written_peak,
            quantile_disc(written_bytes, 0.5) AS written_p50,
            quantile_disc(written_bytes, 0.99) AS written_p99,
            sum(written_bytes) AS written_total
        FROM snapshot_bytes GROUP BY capture_id
    """)
    tel = f.sql("""SELECT capture_id, sum(region_rows) AS region_rows,
                   sum(snapshot_ns) AS snapshot_ns_total, sum(skipped_ticks) AS skipped_ticks
                   FROM snapshots GROUP BY capture_id""")
    ok = serial[serial["error"].isna()].set_index("capture_id")
    q = q.set_index("capture_id").loc[ok.index]
    tel = tel.set_index("capture_id").loc[ok.index]
    assert len(q) == 10
    for col in q.columns:
        a, b = q[col].to_numpy(), ok[col].to_numpy()
        same = [(x == y) or (pd.isna(x) and pd.isna(y)) for x, y in zip(a, b)]
        assert all(same), (col, a, b)
    for col in ("region_rows",):
        assert (tel[col].to_numpy() == ok[col].to_numpy()).all(), col
    real = ok["snapshot_ns_total"].notna()
    assert (
        tel["snapshot_ns_total"][real].to_numpy() == ok["snapshot_ns_total"][real].to_numpy()
    ).all()
    # The summaries view and the ids of the part views agree.
    joined = f.sql("SELECT count(*) AS n FROM summaries s JOIN captures c USING (capture_id)")
    assert joined["n"].iloc[0] == 10  # the damaged capture is left out of the views, said so
    assert list(f.sql_errors) == [str(fleet_dir / "damaged.pmviz")]
    assert "bad footer" in f.sql_errors[str(fleet_dir / "damaged.pmviz")]
    # Raw stored rows: keyframe + change rows, fewer than the dense rows of format 2 copies
    rows = f.sql("SELECT capture_id, count(*) AS n FROM regions GROUP BY 1").set_index("capture_id")
    dense = tel["region_rows"]
    v2 = ok[ok.index.isin(rows.index) & ok["url"].str.contains("/v2-")].index
    assert (rows.loc[v2, "n"] < dense.loc[v2]).all()
    assert f.connect().execute("SELECT current_setting('memory_limit')").fetchone()[0] in (
        "244.1 MiB",
        "256.0 MB",
    )
    f.close()


def test_map_reports_errors_and_runs_on(fleet_dir):
    f = fleet.open(str(fleet_dir / "*.pmviz"))
    res = f.map(lambda c: c.n_snapshots if "synthetic-1" not in c.path else 1 / 0,
                client="serial", progress=False)  # fmt: skip
    assert len(res) == 11
    errors = {os.path.basename(r.url): r.error for r in res if not r.ok}
    assert set(errors) == {"damaged.pmviz", "synthetic-1.pmviz"}
    assert errors["synthetic-1.pmviz"].startswith("ZeroDivisionError")
    assert errors["damaged.pmviz"].startswith("CaptureError")
    assert all(r.value > 0 for r in res if r.ok)


def test_file_urls_and_lists(fleet_dir):
    url = "file://" + str(fleet_dir / "synthetic-*.pmviz")
    f = fleet.open(url)
    assert len(f) == 4 and all(os.path.isabs(u) for u in f.urls)
    df = f.summaries(client="serial", progress=False)
    assert df["error"].isna().all()
    peaks = f.sql("SELECT capture_id, max(resident_bytes) AS p FROM snapshot_bytes GROUP BY 1")
    assert sorted(peaks["p"]) == sorted(df["resident_peak"])
    # a directory of captures stands for the captures in it; a list mixes forms
    assert len(fleet.open([str(fleet_dir), url])) == 11
    with pytest.raises(FileNotFoundError):
        fleet.open(str(fleet_dir / "nope.pmviz"))
    with pytest.raises(ValueError, match="no pmviz capture"):
        fleet.open(str(fleet_dir / "*.nothing"))


def test_summary_is_cached_and_refreshed_when_the_capture_changes(tmp_path):
    p = tmp_path / "c.pmviz"
    save(synthetic(7), str(p))
    s = summarize(str(p))
    assert (p / SUMMARY_FILE).exists() and read_summary(str(p)) == s
    assert s["capture_id"] == capture_id(str(p)) == capture_id(pmviz.open(str(p)))
    save(synthetic(8), str(p), overwrite=True)  # another capture at the same path
    assert read_summary(str(p)) is None
    assert summarize(str(p))["capture_id"] != s["capture_id"]


@pytest.mark.kernel
def test_record_writes_the_summary(tmp_path):
    out = tmp_path / "self.pmviz"
    pmviz.record("self", interval=0.02, count=4, out=str(out), progress=False)
    s = read_summary(str(out))
    assert s is not None and s["n_snapshots"] == 4 and s["host"]
    assert s["resident_peak"] > 0 and s["recording_overhead"] > 0


def test_cli(fleet_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT}
    out = tmp_path / "s.parquet"
    pattern = str(fleet_dir / "synthetic-*.pmviz")
    r = subprocess.run([sys.executable, "-m", "pmviz", "fleet", "summarize", pattern, "-o",
                        str(out), "--serial", "--no-progress"], env=env, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert len(pd.read_parquet(out)) == 4
    r = subprocess.run([sys.executable, "-m", "pmviz", "fleet", "query", pattern,
                        "SELECT count(*) AS n FROM captures", "--csv"], env=env,
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0 and r.stdout.split() == ["n", "4"], r.stderr
    html = tmp_path / "fleet.html"
    r = subprocess.run([sys.executable, "-m", "pmviz", "fleet", "report", str(fleet_dir),
                        "-o", str(html), "--serial", "--no-progress", "--capture-reports", "2"],
                       env=env, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    page = html.read_text()
    assert page.count("<img src='data:image/png;base64,") == 6
    assert "Failed captures (1)" in page and "damaged.pmviz" in page
    assert len(list((tmp_path / "fleet-captures").glob("*.html"))) == 2
    assert 'href="fleet-captures/' in page


def test_fleet_views(serial):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pmviz.plotting import fleet as views

    fig, ax = plt.subplots()
    lines = views.cdf(serial, "resident_peak", ax=ax)
    ok = serial[serial["error"].isna()]
    x, y = lines[0].get_xdata(), lines[0].get_ydata()
    assert np.array_equal(x[1:], np.sort(ok["resident_peak"].to_numpy(float)))
    assert y[0] == 0 and y[-1] == 1.0 and np.all(np.diff(y) > 0)
    out = views.box(serial, "dump_peak", ax=ax)
    assert len(out["boxes"]) == ok["command_name"].fillna("(unknown)").nunique()
    bars = views.idle_share(serial, ax=ax)
    assert all(0 <= b.get_width() <= 1 for b in bars)
    t = views.top(serial, "resident_peak", 3)
    assert [r["resident_peak"] for r in t.rows] == sorted(ok["resident_peak"], reverse=True)[:3]
    assert t._repr_html_().count("<a href=") == 0  # no report written: no dead links
    report = os.path.join(t.rows[1]["url"], "report.html")
    open(report, "w").close()
    try:
        html = views.top(serial, "resident_peak", 3)._repr_html_()
        assert html.count("<a href=") == 1 and f'href="{report}"' in html
        linked = views.top(serial, "resident_peak", 3, reports={t.rows[0]["url"]: "r0.html"})
        assert 'href="r0.html"' in linked._repr_html_()
    finally:
        os.unlink(report)
    plt.close(fig)


def test_remote_fsspec_url_is_copied_to_analyse_and_read_in_place_by_duckdb(fleet_dir):
    fsspec = pytest.importorskip("fsspec")
    mem = fsspec.filesystem("memory")
    for name in ("synthetic-0.pmviz", "v2-asan-phases.pmviz"):
        mem.put(str(fleet_dir / name), f"/pmviz-test/{name}", recursive=True)
    try:
        f = fleet.open("memory://pmviz-test/*.pmviz")
        assert f.urls == ["memory:///pmviz-test/synthetic-0.pmviz",
                          "memory:///pmviz-test/v2-asan-phases.pmviz"]  # fmt: skip
        df = f.summaries(client="serial", progress=False)
        assert df["error"].isna().all()
        local = fleet.open(
            [str(fleet_dir / "synthetic-0.pmviz"), str(fleet_dir / "v2-asan-phases.pmviz")]
        )
        ref = local.summaries(client="serial", progress=False)
        assert list(df["capture_id"]) == list(ref["capture_id"])
        assert list(df["resident_peak"]) == list(ref["resident_peak"])
        peaks = f.sql("SELECT capture_id, max(resident_bytes) AS p FROM snapshot_bytes GROUP BY 1")
        assert dict(zip(peaks["capture_id"], peaks["p"])) == dict(
            zip(ref["capture_id"], ref["resident_peak"])
        )
    finally:
        mem.rm("/pmviz-test", recursive=True)


def test_map_on_a_running_scheduler_by_address(fleet_dir):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        f = fleet.open(str(fleet_dir / "synthetic-*.pmviz"))
        res = f.map(lambda c: c.n_snapshots, scheduler=cluster.scheduler_address, progress=False)
        assert [r.value for r in res] == [30, 30, 30, 30]
        with distributed.Client(cluster) as client:  # or a client of your own
            res = f.map(lambda c: len(c.vma_tables), client, progress=False)
            assert all(r.ok for r in res)
