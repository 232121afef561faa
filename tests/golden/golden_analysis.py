"""Every analysis of ``pmviz.analysis`` on the bundled captures, as a flat dict of arrays.

``python3 tests/golden/golden_analysis.py`` writes ``analysis.npz`` beside this file (the
results of the code at the time it is run); ``tests/test_analysis_golden.py`` recomputes them
and compares. Keys are ``CAPTURE/ANALYSIS/FIELD``. Heatmaps use 48 address bins and the
pre-copy estimate a few link speeds so the file stays small (about 250 KiB).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES = os.path.join(HERE, "..", "..", "sample_data")
CAPTURES = ("asan-phases", "numpy-workload", "redis-benchmark")
GOLDEN = os.path.join(HERE, "analysis.npz")

# Floating-point results whose summation order the streaming code may change: compared to
# within float rounding (rtol 1e-12) instead of bit for bit. Every integer result is exact.
FLOAT_TOLERANT = ("/heatmap_grid/", "/diff_grid/grid", "/hilbert_map/image")


def assert_same(key: str, got: np.ndarray, want: np.ndarray) -> None:
    """``got`` equals the golden ``want``: exactly, or to float rounding for ``FLOAT_TOLERANT``.

    One deliberate change since the golden file (issue 15.2): a heatmap cell where nothing was
    mapped during its time bin is NaN ("not mapped at that time"), where it was 0.
    """
    key = "/" + key
    assert got.dtype == want.dtype and got.shape == want.shape, key
    if "/heatmap_grid/" in key and key.endswith("/grid"):
        unmapped = np.isnan(got) & ~np.isnan(want)
        assert (want[unmapped] == 0).all(), f"{key}: a cell with pages became unmapped"
        got, want = np.where(unmapped, 0.0, got), want
    if any(t in key for t in FLOAT_TOLERANT) and want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15, err_msg=key)
    else:
        np.testing.assert_array_equal(got, want, err_msg=key)


def _axis(prefix: str, ax) -> Iterator[tuple[str, np.ndarray]]:  # noqa: ANN001
    yield f"{prefix}/axis_kind", np.array(ax.kind)
    yield f"{prefix}/seg_start", ax.seg_start
    yield f"{prefix}/seg_end", ax.seg_end
    yield f"{prefix}/bands", ax.bands
    yield f"{prefix}/labels", np.array([str(x) for x in ax.labels.tolist()], dtype=str)


def _grid(prefix: str, g, axis: bool = True) -> Iterator[tuple[str, np.ndarray]]:  # noqa: ANN001
    yield f"{prefix}/grid", g.grid
    yield f"{prefix}/time_edges", g.time_edges
    yield f"{prefix}/addr_edges", g.addr_edges
    yield f"{prefix}/addr_pos", g.addr_pos
    yield f"{prefix}/category", np.array(g.category)
    if axis:
        yield from _axis(prefix, g.axis)


def results(cap, heatmaps_only: bool = False) -> Iterator[tuple[str, np.ndarray]]:  # noqa: ANN001
    """``(key, array)`` for every analysis of one capture (keys without the capture name)."""
    import pmviz.analysis as pa

    cats: list = ["present", "swapped", "file", pa.CRIU_DUMP_MASK]
    if cap.has_written:
        cats.insert(0, "written")
    for c in cats:
        name = c if isinstance(c, str) else "criu"
        kinds = ("compact", "occupied", "auto", "linear") if name == "present" else ("compact",)
        for kind in kinds:
            g = pa.heatmap_grid(cap, c, addr_bins=48, axis=kind)
            yield from _grid(f"heatmap_grid/{name}/{kind}", g, axis=name == "present")
    t_end = float(cap.times[-1])
    yield from _grid(
        "heatmap_grid/present/compact-time_bins",
        pa.heatmap_grid(cap, "present", addr_bins=48, time_bins=17),
    )
    yield from _grid(
        "heatmap_grid/present/compact-time_range",
        pa.heatmap_grid(
            cap, "present", addr_bins=40, time_bins=9, time_range=(0.3 * t_end, 0.8 * t_end)
        ),
    )
    ax = pa.address_axis(cap)
    mid = ax.to_real(np.array([ax.length // 3, 2 * ax.length // 3]))
    yield from _grid(
        "heatmap_grid/present/compact-addr_range",
        pa.heatmap_grid(cap, "present", addr_bins=32, addr_range=(int(mid[0]), int(mid[1]))),
    )
    if heatmaps_only:
        return

    ws = pa.working_set_size(cap)
    for f in ("time", "resident", "swapped", "written", "resident_by_kind", "swapped_by_kind"):
        v = getattr(ws, f)
        if v is not None:
            yield f"working_set_size/{f}", v
    if ws.written_by_kind is not None:
        yield "working_set_size/written_by_kind", ws.written_by_kind

    yield "dump_size", pa.dump_size(cap)
    n = cap.n_snapshots
    for a, b in ((0, -1), (n // 3, 2 * n // 3), (n - 2, n - 1)):
        d = pa.snapshot_diff(cap, a, b)
        for k, v in zip(d.changes(), (getattr(d, k) for k in d.changes())):
            yield f"snapshot_diff/{a}-{b}/{k}", v.array
        dg = pa.diff_grid(d, addr_bins=48)
        yield f"diff_grid/{a}-{b}/grid", dg.grid
        yield f"diff_grid/{a}-{b}/addr_edges", dg.addr_edges

    sp = pa.sparsity(cap)
    for f in ("ranges", "reserved_bytes", "matched_bytes", "n_scan_regions", "region_pages"):
        yield f"sparsity/all/{f}", np.asarray(getattr(sp, f))
    yield "sparsity/all/hole_pages", sp.hole_pages
    vm = cap.vmas_at(-1)
    big = int(np.argmax((vm.end - vm.start).astype(np.int64)))
    sp = pa.sparsity(cap, "present|written" if cap.has_written else "swapped", vma=big)
    yield "sparsity/largest/region_pages", sp.region_pages
    yield "sparsity/largest/hole_pages", sp.hole_pages
    yield "sparsity/largest/matched_bytes", np.asarray(sp.matched_bytes)

    hm = pa.hilbert_map(cap, "present", vma=big, order=5)
    yield "hilbert_map/image", hm.image
    yield "hilbert_map/edges", hm.edges

    if not cap.has_written:
        return
    yield "cumulative_written", pa.cumulative_written(cap)
    yield "wss_curve/bytes", pa.wss_curve(cap).bytes
    yield "wss_curve/long", pa.wss_curve(cap, windows=(3, 7, n)).bytes
    for at in (-1, n // 2):
        for among in ("resident", "written"):
            it = pa.idle_time(cap, at=at, among=among)
            yield f"idle_time/{at}-{among}/bytes", it.bytes
            yield f"idle_time/{at}-{among}/never", np.asarray(it.never)
    for at, window in ((-1, None), (-1, 10), (n // 2, 5)):
        t = pa.temperature(cap, at=at, window=window)
        p = f"temperature/{at}-{window}"
        yield f"{p}/regions", t.regions
        yield f"{p}/bytes", np.array([t.bytes[k] for k in ("cold", "warm", "hot")])
        yield f"{p}/vma_bytes", t.vma_bytes
    for stat in ("max", "mean"):
        secs, db = pa.dirty_bytes(cap, stat)
        yield f"dirty_bytes/{stat}/seconds", secs
        yield f"dirty_bytes/{stat}/bytes", db
    for bw in (1.25e8, 1.25e9, 1.25e10):
        e = pa.precopy_estimate(cap, bandwidth=bw, downtime=0.3)
        yield f"precopy/{bw:g}/round_bytes", e.round_bytes
        yield f"precopy/{bw:g}/round_s", e.round_s
        yield f"precopy/{bw:g}/converged", np.asarray(e.converged)


def compute(names: tuple[str, ...] = CAPTURES) -> dict[str, np.ndarray]:
    """Every result for every bundled capture, keyed ``CAPTURE/...``."""
    import pmviz

    out: dict[str, np.ndarray] = {}
    for name in names:
        cap = pmviz.open(os.path.join(SAMPLES, f"{name}.pmviz"))
        for k, v in results(cap):
            key = f"{name}/{k}"
            assert key not in out, key
            out[key] = np.asarray(v)
    return out


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(HERE, "..", ".."))
    res = compute()
    np.savez_compressed(GOLDEN, **res)
    print(f"wrote {len(res)} arrays to {GOLDEN} ({os.path.getsize(GOLDEN) / 1024:.0f} KiB)")
