"""Capture: the in-memory columnar model (synthetic data, no kernel needed)."""

import numpy as np
import pytest

from pmviz import Regions
from pmviz.capture import Capture, CaptureMeta
from pmviz.maps import Vmas
from pmviz.recorder import CaptureBuilder

MAPS = (
    "00400000-00402000 r-xp 00000000 08:01 42 /usr/bin/prog\n"
    "00600000-00800000 rw-p 00000000 00:00 0 [heap]\n"
    "7f0000000000-7f0000100000 rw-p 00000000 00:00 0 \n"
)


def _snapshots(n=6):
    v1 = Vmas.parse(MAPS)
    v2 = Vmas.parse(MAPS + "7f0000200000-7f0000300000 rw-p 00000000 00:00 0 \n")
    out = []
    for i in range(n):
        r = Regions.from_arrays(
            [0x400000, 0x600000, 0x7F0000000000 + 0x1000 * i],
            [0x402000, 0x600000 + 0x1000 * (i + 1), 0x7F0000100000],
            [0xC, 0xA, 0x8 | (i & 2)],
        )
        w = Regions.from_arrays([0x600000], [0x600000 + 0x1000 * (i + 1)], [2])
        out.append((1_000 + i * 100_000_000, r, w, v1 if i < 3 else v2))
    return out


def test_from_snapshots_layout_and_accessors():
    snaps = _snapshots()
    cap = Capture.from_snapshots(CaptureMeta(pid=7), snaps)
    assert cap.n_snapshots == len(cap) == 6
    assert cap.region_offsets.tolist() == [0, 3, 6, 9, 12, 15, 18]
    assert cap.n_regions == 18 and cap.has_written
    assert len(cap.vma_tables) == 2 and cap.vma_index.tolist() == [0, 0, 0, 1, 1, 1]
    np.testing.assert_allclose(cap.times, np.arange(6) * 0.1)
    for i, (t, r, w, v) in enumerate(snaps):
        s = cap.snapshot(i)
        assert s.time_ns == t and s.regions == r and s.written == w and s.vmas == v
    assert cap.regions_at(-1) == snaps[-1][1]
    assert len(cap.snapshots) == 6 and cap.snapshots[-1].regions == snaps[-1][1]
    assert [s.index for s in cap.snapshots[1:3]] == [1, 2]
    assert [s.time_ns for s in cap] == [t for t, *_ in snaps]
    with pytest.raises(IndexError):
        cap.regions_at(6)


def test_select_window_and_address_window():
    snaps = _snapshots()
    cap = Capture.from_snapshots(CaptureMeta(), snaps)
    sub = cap.select(np.array([4, 1]))
    assert sub.regions_at(0) == snaps[4][1] and sub.regions_at(1) == snaps[1][1]
    assert sub.written_at(1) == snaps[1][2]
    assert sub.vmas_at(0) == snaps[4][3] and sub.vmas_at(1) == snaps[1][3]
    assert len(sub.vma_tables) == 2
    w = cap.window(0.15, 0.35)
    assert w.time_ns.tolist() == [snaps[2][0], snaps[3][0]]
    assert cap.window(10, 20).n_snapshots == 0
    a = cap.address_window(0x601000, 0x7F0000002000)
    for i in range(6):
        want = snaps[i][1].clip(0x601000, 0x7F0000002000)
        want = want[want.page_counts > 0]
        assert a.regions_at(i) == want
    assert len(a.vmas_at(0)) == 2  # [heap] and the anon VMA overlap the window
    with pytest.raises(ValueError, match="start <= end"):
        cap.address_window(5, 1)


def test_builder_views_are_consistent_and_immutable():
    snaps = _snapshots(40)
    b = CaptureBuilder(CaptureMeta(), has_written=True)
    views = []
    for i, (t, r, w, v) in enumerate(snaps):
        b.append(t, r.array, w.array, v if i in (0, 3) else None, {"scan_ns": i, "n_regions": 3})
        views.append(b.capture())
    full = Capture.from_snapshots(CaptureMeta(), snaps)
    last = views[-1]
    assert np.array_equal(last.regions, full.regions)
    assert np.array_equal(last.written, full.written)
    assert last.telemetry["scan_ns"].tolist() == list(range(40))
    # an early view still shows exactly its snapshots after the buffers grew
    assert views[2].n_snapshots == 3 and views[2].regions_at(2) == snaps[2][1]
    assert last.vmas_at(39) == snaps[3][3]
    tail = b.capture(start=38)
    assert tail.n_snapshots == 2 and tail.regions_at(0) == snaps[38][1]


def test_meta_roundtrip_keeps_unknown_keys():
    m = CaptureMeta(pid=3, command=["a"], extra={"x": 1})
    d = m.as_dict() | {"from_the_future": True}
    back = CaptureMeta.from_dict(d)
    assert back.pid == 3 and back.extra == {"x": 1, "from_the_future": True}


def test_to_pandas_and_html():
    cap = Capture.from_snapshots(CaptureMeta(pid=9, command=["<prog>"]), _snapshots())
    df = cap.to_pandas()
    assert len(df) == 18 and df["snapshot"].tolist()[:4] == [0, 0, 0, 1]
    assert (df["start"].to_numpy() == cap.regions["start"]).all()
    assert len(cap.to_pandas("written")) == 6
    assert cap.to_pandas("snapshots")["vma_table"].tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="regions"):
        cap.to_pandas("bogus")
    html = cap._repr_html_()
    assert "pid 9" in html and "&lt;prog&gt;" in html and "6 over 0.50 s" in html
