"""pmviz.names.object_ranges: real buffers of real objects, found by their addresses."""

from __future__ import annotations

import array
import ctypes
import mmap

import numpy as np
import pytest

from pmviz.magic import _merge_names
from pmviz.names import NamedRange, as_records, from_records, object_ranges


def _addr(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def test_numpy_array_and_its_views_resolve_to_the_owner():
    a = np.zeros(8_000_000)
    v = a[::2]  # a view, and a view of a view
    w = v[10:20].reshape(2, 5)
    got = object_ranges({"a": a, "v": v, "w": w})
    assert got == [NamedRange(_addr(a), _addr(a) + a.nbytes, "a: float64[8_000_000]")]
    # only views named: the range is still the owner's, the label says so
    only = object_ranges({"w": w})
    assert only == [NamedRange(_addr(a), _addr(a) + a.nbytes, "w: view of float64[8_000_000]")]


def test_owner_with_negative_strides_and_2d_shape():
    b = np.ones((1000, 3), dtype=np.int32)
    flipped = b[::-1].copy()[::-1]  # owner is the copy; the view starts at its end
    (r,) = object_ranges({"f": flipped})
    owner = flipped.base
    assert (r.start, r.end) == (_addr(owner), _addr(owner) + owner.nbytes)
    assert r.label == "f: view of int32[1_000, 3]"
    assert object_ranges({"b": b})[0].label == "b: int32[1_000, 3]"


def test_python_buffers():
    ba = bytearray(b"x" * 10_000)
    by = b"y" * 5000
    m = mmap.mmap(-1, 3 * 4096)
    arr = array.array("d", range(1000))
    mv = memoryview(ba)[100:200]
    got = {r.label: r for r in object_ranges({"ba": ba, "by": by, "m": m, "arr": arr, "mv": mv})}
    c_ba = ctypes.addressof((ctypes.c_char * len(ba)).from_buffer(ba))
    assert (got["ba: bytearray[10_000]"].start, got["ba: bytearray[10_000]"].end) == (
        c_ba,
        c_ba + 10_000,
    )
    # the memoryview shares the bytearray's range: the owner's name wins
    assert "mv: memoryview of bytearray[10_000]" not in got
    assert object_ranges({"mv": mv})[0].label == "mv: memoryview of bytearray[10_000]"
    c_m = ctypes.addressof((ctypes.c_char * len(m)).from_buffer(m))
    assert (got["m: mmap[12_288]"].start, got["m: mmap[12_288]"].end) == (c_m, c_m + 12_288)
    addr, n = arr.buffer_info()
    assert (got["arr: array('d')[1_000]"].start, got["arr: array('d')[1_000]"].end) == (
        addr,
        addr + 8 * n,
    )
    assert got["by: bytes[5_000]"].end - got["by: bytes[5_000]"].start == 5000
    m.close()
    assert object_ranges({"m": m}) == []  # a closed mmap has no memory


def test_containers_underscores_min_bytes_and_oddities():
    xs = [np.zeros(100), np.zeros(200)]
    d = {"k": bytearray(64)}
    ns = {
        "xs": xs,
        "d": d,
        "_hidden": np.zeros(10),
        "Out": {1: np.zeros(10)},
        "small": np.zeros(1),
        "empty": np.zeros(0),
        "text": "not a buffer",
        "n": 5,
    }
    labels = [r.label for r in object_ranges(ns, min_bytes=16)]
    assert sorted(labels) == sorted(
        ["xs[0]: float64[100]", "xs[1]: float64[200]", "d['k']: bytearray[64]"]
    )


def test_pyarrow_buffers_when_imported():
    pa = pytest.importorskip("pyarrow")
    t = pa.table({"x": pa.array(np.arange(1000, dtype=np.int64)), "s": ["a", None] * 500})
    got = object_ranges({"t": t})
    x = t.column("x").chunk(0).buffers()[1]
    assert NamedRange(x.address, x.address + x.size, "t: ['x'] arrow int64[1_000] data") in got
    assert any(r.label.startswith("t: ['s'] arrow string[1_000] validity") for r in got)


def test_records_round_trip_and_freed_objects():
    a = NamedRange(0x1000, 0x3000, "a: x")
    b = NamedRange(0x5000, 0x6000, "b: y")
    assert from_records(as_records([b, a])) == [a, b]
    assert from_records(None) == []
    # b was freed by the cell and nothing reused its range; c took a's old place
    c = NamedRange(0x2000, 0x4000, "c: z")
    merged = _merge_names([c], [a, b])
    assert merged == [c, NamedRange(0x5000, 0x6000, "b: y (freed)")]
