"""Mask: construction, validation, value semantics, and offline emulation (``apply``).

``apply`` is checked against a deliberately naive page-by-page transcription of the kernel's
``pagemap_scan_output`` + ``push_range`` (spec §3.3-§3.4) on synthetic regions, including
soft-dirty, which this kernel cannot produce; the live-kernel comparison is in test_scanning.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmviz import ALL_CATEGORIES, Category, Mask, Regions

PAGE = 4096
ALL = int(ALL_CATEGORIES)


def kernel_reference(mask: Mask, regions: Regions, max_pages: int = 0) -> list[tuple]:
    """The kernel's per-page loop, written the slow and obvious way."""
    out: list[list[int]] = []
    found = 0
    limit = max_pages or (1 << 64) - 1
    for start, end, cats in regions.array.tolist():
        for addr in range(start, end, PAGE):
            c = cats ^ mask.category_inverted
            if (c & mask.category_mask) != mask.category_mask:
                continue
            if mask.category_anyof_mask and not c & mask.category_anyof_mask:
                continue
            if found == limit:
                return [tuple(r) for r in out]
            shown = cats & mask.return_mask
            if out and out[-1][1] == addr and out[-1][2] == shown:
                out[-1][1] = addr + PAGE
            else:
                out.append([addr, addr + PAGE, shown])
            found += 1
    return [tuple(r) for r in out]


@st.composite
def recordings(draw):
    """Sorted regions with gaps (VMA holes) and unmerged neighbours (VMA edges)."""
    n = draw(st.integers(0, 25))
    addr = draw(st.integers(0, 64)) * PAGE
    rows = []
    for _ in range(n):
        addr += draw(st.sampled_from([0, 0, 0, PAGE, 5 * PAGE]))
        length = draw(st.integers(1, 6)) * PAGE
        cats = draw(st.one_of(st.integers(0, ALL), st.sampled_from([0xA, 0x2, 0x4A, 0x12, 0x112])))
        rows.append((addr, addr + length, cats))
        addr += length
    return Regions.from_arrays(*zip(*rows)) if rows else Regions()


field = st.one_of(st.integers(0, ALL), st.sampled_from([0, 0, 2, 8, 0x18, ALL]))
any_mask = st.builds(Mask.from_kernel, field, field, field, field)


@settings(max_examples=300, deadline=None)
@given(mask=any_mask, regions=recordings(), max_pages=st.integers(0, 40))
def test_apply_equals_the_kernel_loop(mask, regions, max_pages):
    got = mask.apply(regions, max_pages=max_pages)
    assert got.array.tolist() == kernel_reference(mask, regions, max_pages)


@settings(max_examples=200, deadline=None)
@given(mask=any_mask, regions=recordings())
def test_apply_is_idempotent_on_its_own_full_output(mask, regions):
    full = Mask().apply(regions)  # merging is all the full mask does
    assert mask.apply(full) == mask.apply(regions)


def test_apply_merges_across_gaps_only_when_adjacent():
    r = Regions.from_arrays([0, 4096, 12288], [4096, 8192, 16384], [0xA, 0xA, 0xA])
    assert Mask().apply(r).array.tolist() == [(0, 8192, 0xA), (12288, 16384, 0xA)]


def test_apply_truncates_inside_a_region():
    r = Regions.from_arrays([0], [512 * PAGE], [0x4A])  # a THP
    assert Mask().apply(r, max_pages=100).array.tolist() == [(0, 100 * PAGE, 0x4A)]


def test_apply_shares_an_already_final_array():
    r = Regions.from_arrays([0, PAGE], [PAGE, 2 * PAGE], [0xA, 0x2])
    out = Mask().apply(r)
    assert out == r and np.shares_memory(out.array, r.array)
    cut = Mask().apply(r, max_pages=1)
    assert cut.n_pages == 1 and r.n_pages == 2  # truncation copies, never edits the input


def test_soft_dirty_synthetic():
    # CONFIG_MEM_SOFT_DIRTY is off here: exercise the bit on recorded data.
    sd = int(Category.SOFT_DIRTY)
    r = Regions.from_arrays([0, PAGE, 2 * PAGE], [PAGE, 2 * PAGE, 3 * PAGE], [0xA | sd, 0xA, sd])
    dirty = Mask(require=Category.SOFT_DIRTY, report=Category.SOFT_DIRTY)
    assert dirty.apply(r).array.tolist() == [(0, PAGE, sd), (2 * PAGE, 3 * PAGE, sd)]
    assert Mask(report=Category.SOFT_DIRTY).apply(r).array.tolist() == [
        (0, PAGE, sd),
        (PAGE, 2 * PAGE, 0),
        (2 * PAGE, 3 * PAGE, sd),
    ]


# -- construction and value semantics -----------------------------------------------------------


def test_friendly_constructor_maps_to_kernel_fields():
    m = Mask(require="present", anyof=["WRITTEN", Category.SWAPPED], exclude="file|pfnzero")
    assert m.kernel_fields() == {
        "category_inverted": int(Category.FILE | Category.PFNZERO),
        "category_mask": int(Category.PRESENT | Category.FILE | Category.PFNZERO),
        "category_anyof_mask": int(Category.WRITTEN | Category.SWAPPED),
        "return_mask": ALL,
    }


def test_repr_is_readable_and_round_trips():
    criu = Mask(anyof=Category.PRESENT | Category.SWAPPED, exclude=Category.FILE | Category.PFNZERO)
    assert repr(criu) == "Mask(anyof=PRESENT|SWAPPED, exclude=FILE|PFNZERO, report=ALL)"
    odd = Mask.from_kernel(category_inverted=Category.WRITTEN, return_mask=8)
    assert repr(odd).startswith("Mask.from_kernel(")
    assert eval(repr(odd), {"Mask": Mask}) == odd


@given(any_mask)
def test_value_semantics(mask):
    same = Mask.from_kernel(**mask.kernel_fields())
    assert same == mask and hash(same) == hash(mask)
    assert pickle.loads(pickle.dumps(mask)) == mask
    with pytest.raises(AttributeError, match="immutable"):
        mask.return_mask = 0


def test_replace_validates():
    m = Mask().replace(return_mask=8)
    assert m.return_mask == 8
    with pytest.raises(ValueError, match="return_mask"):
        m.replace(return_mask=1 << 9)
    with pytest.raises(TypeError, match="valid"):
        m.replace(flags=1)


def test_from_kernel_type_and_range_errors():
    with pytest.raises(TypeError, match="category_mask"):
        Mask.from_kernel(category_mask="present")
    with pytest.raises(ValueError, match="__u64"):
        Mask.from_kernel(return_mask=-1)
    with pytest.raises(ValueError, match="bit 9"):
        Mask.from_kernel(category_anyof_mask=1 << 9)


def test_matches_is_the_kernel_formula():
    m = Mask(require=Category.PRESENT, exclude=Category.FILE)
    cats = np.array([0x8, 0xC, 0x0, 0xA], dtype=np.uint64)
    assert m.matches(cats).tolist() == [True, False, False, True]
    impossible = Mask.from_kernel(category_inverted=ALL, category_mask=ALL, return_mask=ALL)
    assert impossible.matches(np.array([0, 1], dtype=np.uint64)).tolist() == [True, False]


def test_c_initializer_names_the_bits():
    text = Mask(require="written", report="written").c_initializer()
    assert ".category_mask = PAGE_IS_WRITTEN," in text
    assert ".category_inverted = 0," in text
    assert text.startswith("struct pm_scan_arg arg = {")
