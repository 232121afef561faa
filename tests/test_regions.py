"""Regions: the struct page_region array and its accessors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import pmviz
from pmviz import Category, Region, Regions
from pmviz.regions import REGION_DTYPE

PAGE = 4096


@pytest.fixture
def regions():
    return Regions.from_arrays(
        [0x1000, 0x3000, 0x10000],
        [0x3000, 0x4000, 0x20000],
        [0xA, 0x12, 0x4A],
    )


def test_layout_is_struct_page_region():
    assert REGION_DTYPE.itemsize == 24
    assert [REGION_DTYPE.fields[n][1] for n in ("start", "end", "categories")] == [0, 8, 16]
    assert all(REGION_DTYPE.fields[n][0] == np.dtype("<u8") for n in REGION_DTYPE.names)


def test_counts(regions):
    assert len(regions) == 3
    assert regions.page_counts.tolist() == [2, 1, 16]
    assert regions.n_pages == 19
    assert regions.size == 19 * PAGE
    assert regions.pages_with(Category.PRESENT) == 18
    assert regions.pages_with(Category.SWAPPED | Category.HUGE, all_of=False) == 17
    assert regions.select(Category.HUGE).start.tolist() == [0x10000]


def test_indexing_and_iteration(regions):
    assert regions[1] == Region(0x3000, 0x4000, Category.WRITTEN | Category.SWAPPED)
    assert regions[1].size == PAGE
    assert isinstance(regions[1:], Regions) and len(regions[1:]) == 2
    assert [r.start for r in regions] == [0x1000, 0x3000, 0x10000]
    assert len(regions[regions.categories == 0xA]) == 1


def test_equality_and_pickle(regions):
    assert regions == Regions(regions.array.copy())
    assert regions != regions[:2]
    assert regions != Regions(regions.array, page_size=16384)
    assert pickle.loads(pickle.dumps(regions)) == regions


def test_clip(regions):
    c = regions.clip(0x2000, 0x18000)
    assert c.array.tolist() == [
        (0x2000, 0x3000, 0xA),
        (0x3000, 0x4000, 0x12),
        (0x10000, 0x18000, 0x4A),
    ]
    assert len(regions.clip(0x5000, 0x5000)) == 0
    assert len(regions.clip(0x5000, 0x1000)) == 0
    assert regions.clip(0, 1 << 47) == regions


def test_concat_and_empty():
    assert len(Regions()) == 0 and Regions().n_pages == 0
    both = Regions.concat(
        [Regions.from_arrays([0], [PAGE], 8), Regions.from_arrays([PAGE], [2 * PAGE], 8)]
    )
    assert both.array.tolist() == [(0, PAGE, 8), (PAGE, 2 * PAGE, 8)]  # no merging
    assert len(Regions.concat([])) == 0


def test_repr_and_html(regions):
    assert "n=3" in repr(regions) and "WRITTEN|PRESENT" in repr(regions)
    html = regions._repr_html_()
    assert "3 regions" in html and "HUGE" in html and "<table>" in html
    many = Regions.from_arrays(np.arange(30) * 2 * PAGE, np.arange(30) * 2 * PAGE + PAGE, 8)
    assert "10 more regions" in many._repr_html_()


def test_html_counts_pages_of_the_regions_page_size():
    big = Regions.from_arrays([0], [3 * 16384], 8, page_size=16384)  # e.g. an arm64 capture
    html = big._repr_html_()
    assert "text-align:right'>3</td>" in html and "PRESENT: 3 pages" in html


def test_a_live_scan_is_kernel_written_regions():
    r = pmviz.scan()
    assert r.array.dtype == REGION_DTYPE
    assert np.all(r.end > r.start) and np.all(r.start[1:] >= r.end[:-1])
    assert r.page_size == pmviz.features().page_size


@pytest.mark.parametrize(
    "args, message",
    [
        (([0x3000], [0x1000], 8), r"row 0: start 0x3000 > end 0x1000 \(a reversed range\)"),
        (([0x1000, 0x5000], [0x2000, 0x4000], 8), "row 1: start 0x5000 > end 0x4000"),
        (([-4096], [0x1000], 8), r"start\[0\] is negative \(-4096\)"),
        ((np.array([0x1000, -1]), [0x2000, 0x3000], 8), r"start\[1\] is negative"),
        (([0x1000], [0x2000], -8), r"categories\[0\] is negative"),
        (([[0x1000, 0x2000]], [[0x2000, 0x3000]], 8), "start must be a 1-D sequence"),
        (([0x1000], [8192.5], 8), "end must hold integers"),
        (([0x1000], [2**64], 8), r"end must hold integers in \[0, 2\*\*64\)"),
        (([0x1000, 0x2000], [0x2000], 8), "same length"),
        (([0x1000], [0x2000], [8, 8]), "same length"),
    ],
)
def test_from_arrays_refuses_what_it_would_wrap(args, message):
    with pytest.raises(ValueError, match=message):
        Regions.from_arrays(*args)


def test_constructor_refuses_2d_plain_and_negative_arrays():
    good = Regions.from_arrays([0x1000], [0x2000], 8).array
    assert Regions(good).array is good  # kernel layout: wrapped, not copied
    with pytest.raises(ValueError, match="1-D structured array.*from_arrays"):
        Regions(np.array([[0x1000, 0x2000, 8]], np.uint64))  # astype would fill every field
    with pytest.raises(ValueError, match="1-D structured array"):
        Regions(np.stack([good, good]))
    signed = np.array(
        [(-4096, 0x2000, 8)], [("start", "<i8"), ("end", "<i8"), ("categories", "<i8")]
    )
    with pytest.raises(ValueError, match=r"start\[0\] is negative"):
        Regions(signed)
    ok = Regions(signed[["end", "categories", "start"]][:0])  # other field order, no rows
    assert len(ok) == 0
    rev = good.copy()
    rev["start"], rev["end"] = good["end"], good["start"]
    with pytest.raises(ValueError, match="row 0: start 0x2000 > end 0x1000"):
        Regions(rev)
    with pytest.raises(ValueError, match="power of two"):
        Regions(good, page_size=3000)
    converted = Regions(
        np.array([(0x1000, 0x3000, 8)], [("start", "<i8"), ("end", "<i8"), ("categories", "<u2")])
    )
    assert converted.n_pages == 2 and converted.array.dtype == REGION_DTYPE


def test_indexing_keeps_rows_and_validates_nothing_twice(regions):
    with pytest.raises(IndexError):
        regions[None]
    assert regions[1:] == Regions(regions.array[1:])
