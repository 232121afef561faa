"""The classic-pagemap fallback agrees with PAGEMAP_SCAN on every category it can know."""

from __future__ import annotations

import mmap
import os
import warnings
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from layouts import (
    DEVZERO,
    DONTNEED,
    PMD,
    PMD_PAGES,
    RICH,
    SWAP,
    Area,
    random_areas,
    spawn_layout,
)

import pmviz
import pmviz.fallback as fallback
import pmviz.scanning as scanning
from pmviz import Category, Mask, PmvizWarning, UnsupportedKernel
from pmviz._kernel import pagemap as pm
from pmviz._kernel import pagemap_scan
from pmviz.fallback import KNOWN_CATEGORIES, UNKNOWN_CATEGORIES, scan_pagemap

pytestmark = pytest.mark.kernel

KNOWN = int(KNOWN_CATEGORIES)
KNOWN_REPORT = Mask(report=KNOWN_CATEGORIES)


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    with spawn_layout(RICH, file_dir=str(tmp_path_factory.mktemp("rich"))) as layout:
        yield layout


@pytest.fixture(scope="module")
def swapped(swapfile, tmp_path_factory):
    with spawn_layout(SWAP, file_dir=str(tmp_path_factory.mktemp("swap"))) as layout:
        yield layout


def known_masks():
    field = st.integers(0, KNOWN).map(lambda v: v & KNOWN)
    return st.builds(Mask.from_kernel, field, field, field, field)


def test_fallback_equals_ioctl_on_known_categories(rich):
    ioctl = pmviz.scan(rich.pid, *rich.span)
    fb = scan_pagemap(rich.pid, *rich.span)
    assert KNOWN_REPORT.apply(fb) == KNOWN_REPORT.apply(ioctl)
    assert fb.pages_with(UNKNOWN_CATEGORIES, all_of=False) == 0
    assert fb.n_pages == ioctl.n_pages  # same VMAs, same pages


def test_fallback_equals_ioctl_on_the_whole_process(rich):
    # The interpreter's own memory too. WRITTEN of empty pages is the one heuristic (it can
    # only be wrong after MADV_DONTNEED of whole 2 MiB blocks), so compare without it here.
    mask = Mask(report=KNOWN_CATEGORIES & ~Category.WRITTEN)
    assert mask.apply(scan_pagemap(rich.pid)) == mask.apply(pmviz.scan(rich.pid))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mask=known_masks(), max_pages=st.one_of(st.just(0), st.integers(1, 6000)))
def test_fallback_filters_like_the_kernel(rich, mask, max_pages):
    got = scan_pagemap(rich.pid, *rich.span, mask=mask, max_pages=max_pages)
    assert got == pmviz.scan(rich.pid, *rich.span, mask=mask, max_pages=max_pages)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fallback_range_scans(rich, data):
    lo, hi = rich.span
    a = data.draw(st.integers(0, (hi - lo) >> 12))
    b = data.draw(st.integers(a, (hi - lo) >> 12))
    start, end = lo + (a << 12), lo + (b << 12)
    got = KNOWN_REPORT.apply(scan_pagemap(rich.pid, start, end))
    assert got == KNOWN_REPORT.apply(pmviz.scan(rich.pid, start, end))


def test_fallback_on_really_swapped_pages(swapped):
    ioctl = pmviz.scan(swapped.pid, *swapped.span)
    fb = scan_pagemap(swapped.pid, *swapped.span)
    assert KNOWN_REPORT.apply(fb) == KNOWN_REPORT.apply(ioctl)
    assert fb.pages_with(Category.SWAPPED) == ioctl.pages_with(Category.SWAPPED) > 100
    # uffd-wp swap entries (bit 57) are not WRITTEN, exactly as in the ioctl.
    su = fb.clip(*swapped.range("swp_uffd"))
    assert su.pages_with(Category.SWAPPED | Category.WRITTEN) == 8


def test_huge_zero_page_is_pfnzero_not_file(rich):
    lo, _ = rich.range("thp")
    zero = lo + 512 * 4096  # the second PMD was only read: the huge zero page
    fd = os.open(f"/proc/{rich.pid}/pagemap", os.O_RDONLY)
    try:
        entry = int(pm.read_entries(fd, zero, zero + 4096)[0])
    finally:
        os.close(fd)
    assert entry & pm.PM_PRESENT and entry & pm.PM_FILE  # the classic pagemap says "file"
    fb = scan_pagemap(rich.pid, zero, zero + (2 << 20))
    assert fb.array.tolist() == [
        (zero, zero + (2 << 20), int(Category.PRESENT | Category.PFNZERO | Category.WRITTEN))
    ]


def test_dontneed_caveat_is_exactly_the_documented_one(layout_factory):
    layout = layout_factory(DONTNEED)
    lo, hi = layout.range("dn")
    ioctl = KNOWN_REPORT.apply(pmviz.scan(layout.pid, lo, hi))
    fb = KNOWN_REPORT.apply(scan_pagemap(layout.pid, lo, hi))
    zapped_block = (lo + 512 * 4096, hi)  # a whole block zapped: its page table stays
    assert ioctl.clip(*zapped_block).array["categories"].tolist() == [int(Category.WRITTEN)]
    assert fb.clip(*zapped_block).array["categories"].tolist() == [0]
    head = (lo, lo + 512 * 4096)  # zapped pages next to mapped ones: pte_none, both WRITTEN
    assert fb.clip(*head) == ioctl.clip(*head)


def test_masks_on_unknown_categories_warn(rich):
    with pytest.warns(PmvizWarning, match="HUGE"):
        got = scan_pagemap(rich.pid, *rich.span, mask=Mask(require=Category.HUGE))
    assert len(got) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scan_pagemap(rich.pid, *rich.span, mask=Mask(require=Category.PRESENT))


def test_without_pfns_pfnzero_is_unknown(rich, monkeypatch):
    monkeypatch.setattr(fallback, "_zero_pfn", lambda: 0)
    lo, hi = rich.range("zero")
    fb = scan_pagemap(rich.pid, lo, hi)
    assert fb.pages_with(Category.PFNZERO) == 0
    assert pmviz.scan(rich.pid, lo, hi).pages_with(Category.PFNZERO) == 32
    with pytest.warns(PmvizWarning, match="PFNZERO"):
        scan_pagemap(rich.pid, lo, hi, mask=Mask(require=Category.PFNZERO))


def test_zero_pfn_probe_finds_the_zero_page():
    if not pmviz.features().pfn_visible:
        pytest.skip("PFNs are hidden without CAP_SYS_ADMIN")
    assert fallback._zero_pfn() > 0


def test_chunking_and_merging_across_chunks(rich, monkeypatch):
    # Small chunks: runs cut at chunk edges must merge back (chunks end on 2 MiB boundaries).
    whole = scan_pagemap(rich.pid, *rich.span)
    monkeypatch.setattr(fallback, "_CHUNK_PAGES", 1024)
    monkeypatch.setattr(fallback, "_scratch", fallback._Scratch())
    assert scan_pagemap(rich.pid, *rich.span) == whole


# A page-by-page checkerboard next to runs, zero pages, file pages and an untouched 2 MiB block:
# many runs per chunk (the dense, boolean-mask path) and a PMD hole in one layout.
DENSE = [
    Area(
        "checker",
        4 * PMD_PAGES,
        write=[[0, 700, 2], [700, 900], [901, 1000, 3]],
        read=[[1000, 1100, 2], [1100, 1200]],
    ),
    Area("file", 300, kind="file_private", read=[[0, 300, 2]], write=[[1, 300, 6]]),
]


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    with spawn_layout(DENSE, file_dir=str(tmp_path_factory.mktemp("dense"))) as layout:
        yield layout


@pytest.mark.parametrize(
    ("chunk", "block", "small"), [(None, None, None), (1024, 1000, 900), (512, 96, 600)]
)
def test_one_region_per_page_equals_the_ioctl(dense, monkeypatch, chunk, block, small):
    # Run-length encoding with many runs goes block by block; runs cut at chunk and block
    # edges (here at odd places too) must merge back into exactly the kernel's regions, and
    # a result outgrowing the scratch output moves to a RegionBuffer intact.
    if chunk:
        monkeypatch.setattr(fallback, "_CHUNK_PAGES", chunk)
        monkeypatch.setattr(fallback, "_DENSE_PAGES", block)
        monkeypatch.setattr(fallback, "_SMALL_REGIONS", small)
        monkeypatch.setattr(fallback, "_scratch", fallback._Scratch())
        # No recycled result memory (it could hold an equal earlier result).
        monkeypatch.setattr(pagemap_scan, "_spare", [])
    ioctl = pmviz.scan(dense.pid, *dense.span)
    fb = scan_pagemap(dense.pid, *dense.span)
    assert KNOWN_REPORT.apply(fb) == KNOWN_REPORT.apply(ioctl)
    # Already merged as the kernel merges, without help from Mask.apply: no THP, uffd or
    # MADV_DONTNEED here, so (PFNs visible) the fallback knows everything the kernel says.
    a = fb.array
    assert not np.any(
        (a["end"][:-1] == a["start"][1:]) & (a["categories"][:-1] == a["categories"][1:])
    )
    if pmviz.features().pfn_visible:
        assert fb == ioctl
    lo, _ = dense.range("checker")
    checker = fb.clip(lo, lo + 700 * 4096)
    assert len(checker) == 700 and checker.n_pages == 700
    assert fb.clip(lo + 3 * PMD, lo + 4 * PMD).array["categories"].tolist() == [0]  # a hole
    if pmviz.features().pfn_visible:
        zero = fb.clip(lo + 1000 * 4096, lo + 1200 * 4096)
        assert (
            zero.pages_with(Category.PFNZERO)
            == 150
            == ioctl.clip(lo + 1000 * 4096, lo + 1200 * 4096).pages_with(Category.PFNZERO)
        )
    assert fb == scan_pagemap(dense.pid, *dense.span)  # scratch reuse leaves no trace


# -- backend selection --------------------------------------------------------------------------


def _without_pagemap_scan(monkeypatch):
    fake = replace(pmviz.features(), pagemap_scan=False, categories=Category(0))
    monkeypatch.setattr(scanning, "features", lambda: fake)


def test_auto_backend_falls_back_when_the_probe_says_no(rich, monkeypatch):
    calls = []
    real = fallback.scan_pagemap

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(fallback, "scan_pagemap", spy)
    expected = pmviz.scan(rich.pid, *rich.span)  # probe says yes: the ioctl, no fallback
    assert calls == []
    _without_pagemap_scan(monkeypatch)
    with pytest.warns(PmvizWarning, match="fallback"):
        got = pmviz.scan(rich.pid, *rich.span)
    assert len(calls) == 1
    assert KNOWN_REPORT.apply(got) == KNOWN_REPORT.apply(expected)


def test_ioctl_backend_without_pagemap_scan_names_the_fallback(monkeypatch):
    _without_pagemap_scan(monkeypatch)
    with pytest.raises(UnsupportedKernel, match="backend='pagemap'") as info:
        pmviz.scan(backend="ioctl")
    assert info.value.feature == "PAGEMAP_SCAN"
    with pytest.raises(UnsupportedKernel, match="backend='pagemap'"):
        pmviz.Pagemap().scan()


def test_clear_written_needs_the_ioctl():
    with pytest.raises(UnsupportedKernel, match="PAGEMAP_SCAN"):
        pmviz.scan(backend="pagemap", clear_written=True)


def test_fallback_result_is_a_plain_regions_array(rich):
    fb = scan_pagemap(rich.pid, *rich.span)
    assert fb.array.dtype == pmviz.regions.REGION_DTYPE
    assert np.all(fb.start[1:] >= fb.end[:-1]) and np.all(fb.end > fb.start)
    assert pickle_roundtrip(fb) == fb


def pickle_roundtrip(obj):
    import pickle

    return pickle.loads(pickle.dumps(obj))


@st.composite
def drawn_layouts(draw):
    return random_areas(draw, swap=True)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(areas=drawn_layouts(), mask=known_masks(), max_pages=st.integers(0, 2000))
def test_random_layouts_agree(swapfile, tmp_path_factory, areas, mask, max_pages):
    # Layouts drawn by hypothesis, swapped pages included: the kernel's own answer, the
    # offline emulation and the fallback must all agree.
    with spawn_layout(areas, file_dir=str(tmp_path_factory.mktemp("drawn"))) as layout:
        full = pmviz.scan(layout.pid, *layout.span)
        expected = mask.apply(full, max_pages=max_pages)
        assert pmviz.scan(layout.pid, *layout.span, mask=mask, max_pages=max_pages) == expected
        fb = scan_pagemap(layout.pid, *layout.span)
        assert KNOWN_REPORT.apply(fb) == KNOWN_REPORT.apply(full)
        got = scan_pagemap(layout.pid, *layout.span, mask=mask, max_pages=max_pages)
        assert got == expected


def test_lean_maps_reader_agrees_with_read_maps(rich):
    spans = fallback._vma_spans(rich.pid, 0, 1 << 64)
    vmas = pmviz.read_maps(rich.pid)
    assert [(s, e) for s, e, _, _ in spans] == list(zip(vmas.start.tolist(), vmas.end.tolist()))
    assert [p for _, _, p, _ in spans] == list(vmas.paths)
    assert [sh for *_, sh in spans] == [p[3:4] == b"s" for p in vmas.array["perms"].tolist()]
    lo, hi = rich.range("zero")
    assert fallback._vma_spans(rich.pid, lo + 4096, hi - 4096) == [
        (lo + 4096, hi - 4096, "", False)
    ]


def test_lean_maps_reader_stops_at_the_range_end(rich, monkeypatch):
    # maps is read in growing pieces and no further than the first VMA past the range:
    # records cut between two reads must still parse, and a range ends the read early.
    every = fallback._vma_spans(rich.pid, 0, 1 << 64)
    reads = []
    real_read = os.read

    def counting_read(fd, size):
        reads.append(size)
        return real_read(fd, size)

    monkeypatch.setattr(fallback.os, "read", counting_read)
    for i in (0, 1, len(every) // 2, len(every) - 1):
        s, e, _, _ = every[i]
        reads.clear()
        assert fallback._vma_spans(rich.pid, s, e) == [every[i]]
        if i < 10:
            assert len(reads) <= 2  # the first 5 KiB hold the VMA and the next one
    reads.clear()
    assert fallback._vma_spans(rich.pid, 0, 1 << 64) == every
    assert len(reads) >= 3  # several pieces, cut anywhere in a record


def test_runs_differing_only_in_exclusivity_merge(tmp_path):
    # Pages of one file mapped twice here: the ones mapped in both are not "exclusive"
    # (bit 56), which is no category, so the kernel returns a single region.
    path = tmp_path / "twice"
    path.write_bytes(b"\1" * 64 * 4096)
    with open(path, "r+b") as f:
        first, second = mmap.mmap(f.fileno(), 64 * 4096), mmap.mmap(f.fileno(), 64 * 4096)
    a, b = np.frombuffer(first, np.uint8), np.frombuffer(second, np.uint8)
    try:
        int(a[::4096].sum()) + int(b[16 * 4096 : 32 * 4096 : 4096].sum())
        start = a.ctypes.data
        end = start + 64 * 4096
        fd = os.open("/proc/self/pagemap", os.O_RDONLY)
        try:
            exclusive = pm.read_entries(fd, start, end) & np.uint64(pm.PM_MMAP_EXCLUSIVE)
        finally:
            os.close(fd)
        if not 0 < np.count_nonzero(exclusive) < 64:
            # Exclusivity is decided per folio: when the page cache put the file in one large
            # folio (seen once in a full run), every page of it is shared, and the layout this
            # test needs cannot be built.
            pytest.skip("the file's pages came in a large folio shared by both mappings")
        fb = scan_pagemap("self", start, end)
        assert fb == pmviz.scan("self", start, end)
        assert fb.array.tolist() == [
            (start, end, int(Category.FILE | Category.PRESENT | Category.WRITTEN))
        ]
    finally:
        del a, b
        first.close()
        second.close()


def test_private_dev_zero_mapping_is_anonymous_memory(layout_factory):
    """Regression: a private /dev/zero mapping is anonymous to the kernel, so its huge zero
    page is PRESENT|PFNZERO (not FILE|PRESENT as the classic pagemap's file bit suggested)."""
    layout = layout_factory(DEVZERO)
    lo, hi = layout.range("dz")
    ioctl = pmviz.scan(layout.pid, lo, hi)
    fb = scan_pagemap(layout.pid, lo, hi)
    assert ioctl.pages_with(Category.FILE) == 0
    assert fb.pages_with(Category.FILE) == 0
    assert KNOWN_REPORT.apply(fb) == KNOWN_REPORT.apply(ioctl)
    if pmviz.features().pfn_visible:  # PFNZERO of the 4 KiB zero pages needs PFNs
        assert fb.pages_with(Category.PFNZERO) == ioctl.pages_with(Category.PFNZERO) >= 512
