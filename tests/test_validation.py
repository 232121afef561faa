"""Validation parity: pmviz rejects exactly the arguments the kernel rejects (spec §2).

Every verdict is compared with a raw ctypes ``PAGEMAP_SCAN`` on a quiescent child process in
the same test, never with a table written down beforehand.
"""

from __future__ import annotations

import errno

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from layouts import Area, spawn_layout

import pmviz
from pmviz import Category, Mask
from pmviz._kernel import pagemap_scan as pms
from pmviz.features import user_address_limit

pytestmark = pytest.mark.kernel

PAGE = pms.PAGE_SIZE
U64 = (1 << 64) - 1
LIMIT = user_address_limit()
FIELDS = ("category_inverted", "category_mask", "category_anyof_mask", "return_mask")
CAPACITY = 1 << 16  # regions; far more than the child has, so no call can overrun it


@pytest.fixture(scope="module")
def child():
    areas = [Area("a", 64, write=[[0, 64, 3]]), Area("b", 512, huge=True, write=[0])]
    with spawn_layout(areas) as layout:
        with pmviz.Pagemap(layout.pid) as pm:
            layout.fd = pm.fd
            layout.buf = np.zeros(CAPACITY, dtype=pms.REGION_DTYPE)
            assert len(pmviz.scan(layout.pid)) < CAPACITY
            yield layout


def raw_errno(fd: int, **fields) -> int | None:
    """The kernel's verdict: None, or the errno of a validation failure."""
    arg = pms.PmScanArg(**fields)
    try:
        pms.ioctl_scan(fd, arg)
    except OSError as err:
        if err.errno == errno.EPERM:  # CHECK_WPASYNC met a VMA: validation had passed
            return None
        return err.errno
    return None


def addresses(child_span):
    lo, hi = child_span
    return st.one_of(
        st.sampled_from(
            [
                0,
                PAGE,
                lo,
                hi,
                lo + 1,
                hi - 1,
                LIMIT,
                LIMIT - 1,
                LIMIT + 1,
                LIMIT - PAGE,
                LIMIT + PAGE,
                1 << 47,
                1 << 56,
                1 << 63,
                U64,
                U64 - PAGE + 1,
            ]
        ),
        st.integers(0, 1 << 48).map(lambda a: a & ~(PAGE - 1)),
        st.integers(0, U64),
    )


category_fields = st.one_of(
    st.integers(0, 0x1FF),
    st.integers(0, 0x1FF),
    st.integers(0, 0x3FF),
    st.sampled_from([1 << 9, 1 << 10, 1 << 31, 1 << 63, U64]),
    st.integers(0, U64),
)


@st.composite
def raw_args(draw, child):
    lo, hi = child.span
    start = draw(addresses(child.span))
    end = draw(
        st.one_of(addresses(child.span), st.integers(-3 * PAGE, 3 * PAGE).map(lambda d: start + d))
    )
    end = end % (U64 + 1)
    vec_mode = draw(st.sampled_from(["buf", "buf", "null", "bad"]))
    if vec_mode == "buf":
        vec = child.buf.ctypes.data
        vec_len = draw(st.one_of(st.integers(0, CAPACITY), st.integers(0, U64)))
    elif vec_mode == "null":
        vec, vec_len = 0, draw(st.sampled_from([0, 0, 1, 512, U64]))
    else:
        # Not our memory: only with an empty range, so nothing is ever copied out (§3.6).
        vec = draw(
            st.sampled_from([8, LIMIT - 24, LIMIT - 23, LIMIT, LIMIT + 1, 1 << 47, 1 << 63, U64])
        )
        vec_len = draw(st.sampled_from([0, 1, 2, 1 << 40, U64]))
        end = start
    return dict(
        size=draw(st.sampled_from([96] * 8 + [0, 88, 95, 97, 104, U64])),
        flags=draw(st.one_of(st.integers(0, 3), st.integers(0, 3), st.integers(0, U64))),
        start=start,
        end=end,
        vec=vec,
        vec_len=vec_len,
        max_pages=draw(st.one_of(st.just(0), st.integers(0, U64))),
        **{f: draw(category_fields) for f in FIELDS},
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_check_args_predicts_the_kernel(child, data):
    args = data.draw(raw_args(child))
    predicted = pms.check_args(
        **{k: v for k, v in args.items() if k != "max_pages"},
        categories=int(pmviz.features().categories),
        limit=LIMIT,
    )
    actual = raw_errno(child.fd, **args)
    assert (predicted[0] if predicted else None) == actual, (args, predicted)


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"size": 88}, errno.EINVAL),
        ({"size": 104}, errno.EINVAL),
        ({"flags": 4}, errno.EINVAL),
        ({"flags": U64}, errno.EINVAL),
        ({"return_mask": 1 << 9}, errno.EINVAL),
        ({"category_anyof_mask": 1 << 9}, errno.EINVAL),
        ({"start": 1}, errno.EINVAL),
        ({"start": PAGE, "end": 0}, errno.EFAULT),  # end < start: EFAULT, not EINVAL
        ({"end": LIMIT + 1}, errno.EFAULT),
        ({"end": 1 << 47}, errno.EFAULT),
        ({"start": LIMIT, "end": LIMIT}, None),
        ({"start": LIMIT + PAGE, "end": LIMIT + PAGE}, errno.EFAULT),
        ({"end": LIMIT}, None),
        ({"end": 5}, None),  # unaligned end is rounded up
        ({"vec_len": 1}, errno.EINVAL),  # vec == NULL with a length
        ({"vec": 1 << 63}, errno.EFAULT),  # a kernel vec fails even with vec_len == 0
        ({"vec": LIMIT - 24, "vec_len": 1}, None),
        ({"vec": LIMIT - 23, "vec_len": 1}, errno.EFAULT),
        ({"vec": 4096, "vec_len": 1 << 60}, errno.EFAULT),  # saturating multiplication
        ({"category_mask": 0x1FF, "category_inverted": 0x1FF, "return_mask": 0}, None),
    ],
)
def test_spec_section_2_cases(child, fields, expected):
    args = {"size": 96, **fields}
    assert raw_errno(child.fd, **args) == expected
    got = pms.check_args(**args, limit=LIMIT)
    assert (got[0] if got else None) == expected


# -- pmviz.scan raises exactly when the ioctl fails ---------------------------------------------


def pmviz_verdict(pid, start, end, fields, max_pages, clear_written=False):
    """None when pmviz scans, else (exception type, message)."""
    try:
        mask = Mask.from_kernel(**fields)
        pmviz.scan(pid, start, end, mask=mask, max_pages=max_pages, clear_written=clear_written)
    except (ValueError, TypeError) as err:
        return type(err), str(err)
    return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_pmviz_raises_exactly_when_the_kernel_fails(child, data):
    start = data.draw(addresses(child.span))
    end = data.draw(
        st.one_of(addresses(child.span), st.integers(-2 * PAGE, 2 * PAGE).map(lambda d: start + d))
    )
    end %= U64 + 1
    fields = {f: data.draw(category_fields) for f in FIELDS}
    max_pages = data.draw(st.one_of(st.just(0), st.integers(0, U64)))
    clear_written = data.draw(st.booleans())
    kernel = raw_errno(
        child.fd,
        size=96,
        flags=pms.PM_SCAN_WP_MATCHING if clear_written else 0,
        start=start,
        end=end,
        vec=child.buf.ctypes.data,
        vec_len=CAPACITY,
        max_pages=max_pages,
        **fields,
    )
    ours = pmviz_verdict(child.pid, start, end, fields, max_pages, clear_written)
    assert (ours is None) == (kernel is None), (start, end, fields, kernel, ours)
    if ours is not None:
        predicted = pms.check_args(start=start, end=end, **fields, limit=LIMIT)
        assert predicted is not None
        assert predicted[1] in ours[1], ours  # the message names the offending field


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("bit", [9, 10, 31, 62, 63])
def test_unknown_category_bit_in_each_field(child, field, bit):
    fields = {f: 0 for f in FIELDS}
    fields[field] = (1 << bit) | int(Category.PRESENT)
    assert raw_errno(child.fd, size=96, **fields) == errno.EINVAL
    with pytest.raises(ValueError) as info:
        Mask.from_kernel(**fields)
    assert field in str(info.value) and f"bit {bit}" in str(info.value)


def test_unknown_category_names_are_rejected_with_the_valid_choices():
    with pytest.raises(ValueError, match="PRESENT") as info:
        Mask(require="presnt")
    assert "presnt" in str(info.value)
    with pytest.raises(ValueError, match="both required and excluded"):
        Mask(require="written", exclude="written")


def test_guard_bit_on_a_kernel_without_it(monkeypatch):
    # Simulated 6.7-6.14 kernel: categories 0xFF. The kernel would say EINVAL for GUARD.
    from dataclasses import replace

    import pmviz.scanning as scanning

    old = pmviz.features()
    monkeypatch.setattr(scanning, "features", lambda: replace(old, categories=Category(0xFF)))
    with pytest.raises(ValueError, match="GUARD") as info:
        pmviz.scan(mask=Mask(require=Category.GUARD))
    assert "6.15" in str(info.value)
    assert pms.check_args(return_mask=0x100, categories=0xFF)[1] == "return_mask"
    pmviz.scan(mask=Mask(require=Category.PRESENT, report=0xFF))  # fine without GUARD


@pytest.mark.parametrize("max_pages", [-1, -(1 << 63), 1 << 64, 1 << 70])
def test_max_pages_outside_u64_is_rejected_not_wrapped(child, max_pages):
    # ctypes would silently wrap -1 to ULONG_MAX (= unlimited); pmviz refuses instead.
    with pytest.raises(ValueError, match="max_pages"):
        pmviz.scan(child.pid, max_pages=max_pages)
    with pytest.raises(ValueError, match="max_pages"):
        Mask().apply(pmviz.scan(child.pid), max_pages=max_pages)


def test_max_pages_huge_is_unlimited_like_the_kernel(child):
    assert raw_errno(child.fd, size=96, max_pages=U64, end=LIMIT, return_mask=0x1FF) is None
    assert pmviz.scan(child.pid, max_pages=U64) == pmviz.scan(child.pid)
    with pytest.raises(TypeError, match="max_pages"):
        pmviz.scan(child.pid, max_pages=1.5)


def test_range_messages_name_the_field(child):
    lo, _ = child.span
    with pytest.raises(ValueError, match="start=.*page-aligned"):
        pmviz.scan(child.pid, lo + 1, lo + PAGE)
    with pytest.raises(ValueError, match="end=.*below start"):
        pmviz.scan(child.pid, lo + PAGE, lo)
    with pytest.raises(ValueError, match="end=.*highest user address"):
        pmviz.scan(child.pid, 0, LIMIT + 1)
    with pytest.raises(TypeError, match="start"):
        pmviz.scan(child.pid, "0x1000")
    assert len(pmviz.scan(child.pid, LIMIT, LIMIT)) == 0  # start == end == limit is fine
