"""Differential tests of pmviz.scan against the live kernel, on real child-process layouts.

The oracle is the kernel itself: ``scan(mask=m, max_pages=k)`` must equal the offline
``m.apply(scan(), max_pages=k)``, a scan resumed from many small vectors must equal one big
call (including > 512 regions, spec §3.4's stale walk_end), and per-range scans must equal the
clipped full scan.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from layouts import DONTNEED, RICH, SWAP, Area, spawn_layout
from privileges import as_nobody

import pmviz
from pmviz import Category, Mask
from pmviz._kernel import pagemap_scan as pms
from pmviz._kernel import procfs
from pmviz.errors import AccessDenied, NoSuchProcess

pytestmark = pytest.mark.kernel

PAGE = pms.PAGE_SIZE
ALL = int(pmviz.ALL_CATEGORIES)

masks = st.builds(
    Mask.from_kernel,
    st.integers(0, ALL),
    st.integers(0, ALL),
    st.integers(0, ALL),
    st.integers(0, ALL),
)
# Friendlier masks are far likelier to match something than four random fields.
simple_masks = st.builds(
    lambda req, anyof, exc, rep: Mask(require=req & ~exc, anyof=anyof, exclude=exc, report=rep),
    st.integers(0, ALL),
    st.sampled_from([0, 0, int(Category.PRESENT | Category.SWAPPED), ALL, 0x3]),
    st.integers(0, ALL),
    st.sampled_from([ALL, ALL, int(Category.PRESENT), int(Category.WRITTEN), 0, 0x5A]),
)
any_mask = st.one_of(masks, simple_masks)
FAST = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    with spawn_layout(RICH, file_dir=str(tmp_path_factory.mktemp("rich"))) as layout:
        layout.full = pmviz.scan(layout.pid)
        layout.span_full = pmviz.scan(layout.pid, *layout.span)
        yield layout


@pytest.fixture(scope="module")
def swapped(swapfile, tmp_path_factory):
    with spawn_layout(SWAP, file_dir=str(tmp_path_factory.mktemp("swap"))) as layout:
        layout.span_full = pmviz.scan(layout.pid, *layout.span)
        yield layout


def max_pages_for(full: pmviz.Regions):
    n = max(full.n_pages, 1)
    return st.one_of(
        st.just(0), st.integers(1, 40), st.integers(1, n + 10), st.sampled_from([511, 512, 513])
    )


# -- the layouts are what we think they are ----------------------------------------------------


def test_rich_layout_has_every_state(rich):
    r = rich.span_full
    for cat in Category:
        if cat == Category.SOFT_DIRTY:  # CONFIG_MEM_SOFT_DIRTY is off on this kernel
            continue
        assert r.pages_with(cat) > 0, f"no {cat.name} page in the fixture"
    assert r.clip(*rich.range("thp")).pages_with(Category.HUGE | Category.PFNZERO) == 512
    assert r.clip(*rich.range("hole")).array["categories"].tolist() == [0]
    assert len(r.clip(*rich.range("alt"))) == 2048


def test_swapped_layout_is_really_swapped(swapped):
    r = swapped.span_full
    swp = r.clip(*swapped.range("swp"))
    assert swp.pages_with(Category.SWAPPED) == 64 + 56
    assert swp.pages_with(Category.GUARD) == 0
    # uffd-wp swap entries: SWAPPED without WRITTEN; written-after-arm ones keep WRITTEN.
    su = r.clip(*swapped.range("swp_uffd"))
    assert su.pages_with(Category.SWAPPED | Category.WPALLOWED) == 64
    assert su.pages_with(Category.SWAPPED | Category.WRITTEN) == 8
    sg = r.clip(*swapped.range("swp_guard"))
    assert sg.pages_with(Category.SWAPPED) == 32 + 4
    assert sg.pages_with(Category.GUARD) == 4


# -- scan(mask) == mask.apply(scan()) ----------------------------------------------------------


@FAST
@given(data=st.data())
def test_kernel_mask_equals_offline_apply(rich, data):
    mask = data.draw(any_mask)
    max_pages = data.draw(max_pages_for(rich.span_full))
    got = pmviz.scan(rich.pid, *rich.span, mask=mask, max_pages=max_pages)
    assert got == mask.apply(rich.span_full, max_pages=max_pages)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mask=any_mask, max_pages=st.one_of(st.just(0), st.integers(1, 200_000)))
def test_kernel_mask_equals_offline_apply_whole_process(rich, mask, max_pages):
    # The whole address space of the (quiescent) child: interpreter, libraries, stack, vdso.
    # Reclaim under memory pressure from elsewhere on the machine can still drop its page
    # cache between two scans, so compare against a full scan bracketing the masked one.
    got, full = _between_stable_full_scans(
        rich.pid, lambda: pmviz.scan(rich.pid, mask=mask, max_pages=max_pages)
    )
    assert got == mask.apply(full, max_pages=max_pages)


def _between_stable_full_scans(pid, fn, tries=5):
    for _ in range(tries):
        before = pmviz.scan(pid)
        got = fn()
        if pmviz.scan(pid) == before:
            return got, before
    raise AssertionError(f"the full scan of {pid} never held still over {tries} tries")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_kernel_mask_equals_offline_apply_swapped(swapped, data):
    mask = data.draw(any_mask)
    max_pages = data.draw(max_pages_for(swapped.span_full))
    got = pmviz.scan(swapped.pid, *swapped.span, mask=mask, max_pages=max_pages)
    assert got == mask.apply(swapped.span_full, max_pages=max_pages)


def test_merging_crosses_vma_boundaries(rich):
    # adj_a (anon, written) and adj_b (file, read) are adjacent VMAs: PRESENT-only output
    # merges them into one region; the full output keeps them apart (spec §3.4 step 3).
    lo, _ = rich.range("adj_a")
    _, hi = rich.range("adj_b")
    present = Mask(require=Category.PRESENT, report=Category.PRESENT)
    assert pmviz.scan(rich.pid, lo, hi, mask=present).array.tolist() == [(lo, hi, 8)]
    assert len(pmviz.scan(rich.pid, lo, hi)) == 2
    everything_zero = Mask(report=0)
    assert pmviz.scan(rich.pid, lo, hi, mask=everything_zero).array.tolist() == [(lo, hi, 0)]


# -- resuming -----------------------------------------------------------------------------------


def _raw(pid: int, start: int, end: int, **kw) -> np.ndarray:
    with pmviz.Pagemap(pid) as pm:
        return pms.scan_range(pm.fd, start, end, **kw)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    capacity=st.sampled_from([1, 2, 3, 7, 64, 511, 512, 513, 1000, 4095, 4096, 4097]),
    mask=any_mask,
    max_pages=st.one_of(st.just(0), st.integers(1, 5000)),
)
def test_resumed_scan_equals_one_big_call(rich, capacity, mask, max_pages):
    lo, hi = rich.span
    fields = mask.kernel_fields()
    small = _raw(rich.pid, lo, hi, capacity=capacity, max_pages=max_pages, **fields)
    big = _raw(rich.pid, lo, hi, capacity=1 << 20, max_pages=max_pages, **fields)
    one = _one_call(rich.pid, lo, hi, max_pages=max_pages, **fields)
    assert np.array_equal(small, one)
    assert np.array_equal(big, one)


def _one_call(pid: int, start: int, end: int, **kw) -> np.ndarray:
    """A single ioctl with a vector larger than any answer: the definition of correct."""
    buf = np.zeros(1 << 16, dtype=pms.REGION_DTYPE)
    arg = pms.PmScanArg(size=96, start=start, end=end, vec=buf.ctypes.data, vec_len=len(buf))
    for k, v in kw.items():
        setattr(arg, k, v)
    with pmviz.Pagemap(pid) as pm:
        n = pms.ioctl_scan(pm.fd, arg)
    assert n < len(buf)
    return buf[:n]


def test_stale_walk_end_after_512_regions_gives_no_duplicates(rich):
    lo, hi = rich.range("alt")  # 2048 one-page regions
    one = _one_call(rich.pid, lo, hi, return_mask=ALL)
    assert len(one) == 2048
    # A CRIU-style loop (start = walk_end) is what the bug breaks (spec §3.4): a call that
    # completes with more than 512 regions leaves walk_end at its last 512-region stop (page
    # 1536 of 2048 on 6.18.44), so the loop scans the tail again. Ours resumes from the last
    # region's end, only after a full vector, and must equal the single call at every size.
    naive, start, walk_ends = [], lo, []
    buf = np.zeros(4096, dtype=pms.REGION_DTYPE)
    with pmviz.Pagemap(rich.pid) as pm:
        while start < hi:
            arg = pms.PmScanArg(
                size=96, start=start, end=hi, vec=buf.ctypes.data, vec_len=4096, return_mask=ALL
            )
            n = pms.ioctl_scan(pm.fd, arg)
            naive.extend(buf[:n].tolist())
            start = arg.walk_end
            walk_ends.append(start)
        for capacity in (0, 513, 600, 1000, 1400, 2048, 4096):
            got = pms.scan_range(pm.fd, lo, hi, return_mask=ALL, capacity=capacity)
            assert np.array_equal(got, one), capacity
            assert len(np.unique(got["start"])) == len(got)
    # The naive loop returns every region once, then again every region after the stale
    # walk_end: exactly the last 512 (2560 regions for 2048) on 6.18.44, none on a kernel
    # that reports walk_end = end after a completed call.
    stale = walk_ends[0]
    k = int(np.searchsorted(one["start"], stale))
    assert naive == one.tolist() + one[k:].tolist()
    assert (stale, len(naive)) in ((hi, 2048), (int(one["start"][1536]), 2560)), (
        hex(stale),
        len(naive),
    )


def test_max_pages_cut_inside_a_thp_and_inside_a_hole(rich):
    for area, mask in (
        ("thp", Mask(require=Category.HUGE)),
        ("hole", Mask()),
        ("adj_b", Mask(require=Category.FILE)),
    ):
        lo, hi = rich.range(area)
        for max_pages in (1, 100, 511, 512, 513, 700):
            got = pmviz.scan(rich.pid, lo, hi, mask=mask, max_pages=max_pages)
            assert got.n_pages == min(max_pages, mask.apply(rich.span_full.clip(lo, hi)).n_pages)
            assert got == mask.apply(rich.span_full.clip(lo, hi), max_pages=max_pages)
            small = _raw(rich.pid, lo, hi, capacity=1, max_pages=max_pages, **mask.kernel_fields())
            assert np.array_equal(small, got.array)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_range_scan_equals_clipped_full_scan(rich, data):
    lo, hi = rich.span
    n = (hi - lo) // PAGE
    a = data.draw(st.integers(0, n))
    b = data.draw(st.integers(a, n))
    start, end = lo + a * PAGE, lo + b * PAGE
    unaligned_end = data.draw(st.booleans()) and end > start
    got = pmviz.scan(rich.pid, start, end - 1 if unaligned_end else end)  # end rounds up (§2)
    assert got == rich.span_full.clip(start, end)
    mask = data.draw(simple_masks)
    assert pmviz.scan(rich.pid, start, end, mask=mask) == mask.apply(got)


def test_default_range_is_the_whole_address_space(rich):
    limit = pmviz.features().user_address_limit
    got, full = _between_stable_full_scans(rich.pid, lambda: pmviz.scan(rich.pid, 0, limit))
    assert got == full
    assert rich.full.clip(*rich.span) == rich.span_full
    assert rich.full.start[0] >= 0 and len(np.unique(rich.full.start)) == len(rich.full)


def test_pagemap_object_reuses_its_fd(rich):
    with pmviz.Pagemap(rich.pid) as pm:
        first = pm.scan(*rich.span)
        assert all(pm.scan(*rich.span) == first for _ in range(5))
    with pytest.raises(ValueError, match="closed"):
        pm.scan()


# -- clear_written (PM_SCAN_WP_MATCHING) ------------------------------------------------------


def test_clear_written_reports_then_rearms(layout_factory):
    layout = layout_factory(
        [
            Area("plain", 64, write=[[0, 64]]),
            Area("uffd", 1024, uffd=True, write=[[0, 300]], write_after_arm=[3, [100, 110], 700]),
        ]
    )
    lo, hi = layout.range("uffd")
    written = Mask(require=Category.WRITTEN, report=Category.WRITTEN)
    before = pmviz.scan(layout.pid, lo, hi)
    expected = written.apply(before)
    assert expected.n_pages == 1 + 10 + 1
    # Whole process: only the registered VMA takes part, the others are skipped (§3.2).
    got = pmviz.scan(layout.pid, mask=written, clear_written=True)
    assert got == expected
    assert pmviz.scan(layout.pid, lo, hi).pages_with(Category.WRITTEN) == 0
    assert pmviz.scan(layout.pid, lo, hi, mask=written, clear_written=True).n_pages == 0
    plain = pmviz.scan(layout.pid, *layout.range("plain"))
    assert plain.pages_with(Category.WRITTEN | Category.PRESENT) == 64  # untouched
    layout.do("write", "uffd", [5, [200, 203], 1023])
    got = pmviz.scan(layout.pid, lo, hi, mask=written, clear_written=True)
    assert [(s - lo) // PAGE for s in got.start] == [5, 200, 1023]
    assert got.n_pages == 5


def test_clear_written_with_max_pages_rearms_only_what_it_reports(layout_factory):
    layout = layout_factory([Area("uffd", 1000, uffd=True, write_after_arm=[[0, 1000, 2]])])
    lo, hi = layout.range("uffd")
    written = Mask(require=Category.WRITTEN, report=Category.WRITTEN)
    first = pmviz.scan(layout.pid, lo, hi, mask=written, clear_written=True, max_pages=498)
    assert first.n_pages == 498 and len(first) == 498
    rest = pmviz.scan(layout.pid, lo, hi, mask=written, clear_written=True)
    assert rest.n_pages == 2  # selftest sanity #4: ret + ret3 == 500
    assert int(rest.start[0]) == int(first.end[-1]) + PAGE


def test_clear_written_default_mask_is_written_only(layout_factory):
    layout = layout_factory([Area("uffd", 64, uffd=True, write_after_arm=[7])])
    got = pmviz.scan(layout.pid, *layout.range("uffd"), clear_written=True)
    assert got.n_pages == 1 and all(int(c) & Category.WRITTEN for c in got.categories)


# -- errors -------------------------------------------------------------------------------------


def test_vanished_pid_is_no_such_process():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(NoSuchProcess) as info:
        pmviz.scan(proc.pid)
    assert info.value.pid == proc.pid
    with pytest.raises(NoSuchProcess):
        pmviz.scan(proc.pid, backend="pagemap")


def test_process_exiting_under_an_open_pagemap_is_no_such_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pm = pmviz.Pagemap(proc.pid)
        assert pm.scan().n_pages > 0
    finally:
        proc.kill()
        proc.wait()
    with pytest.raises(NoSuchProcess, match="exited"):
        pm.scan()
    pm.close()


def test_bad_pid_arguments():
    with pytest.raises(TypeError, match="pid"):
        pmviz.scan("not-a-pid")
    with pytest.raises(ValueError, match="positive"):
        pmviz.scan(0)
    with pytest.raises(ValueError, match="backend"):
        pmviz.scan(backend="bpf")
    with pytest.raises(TypeError, match="Mask"):
        pmviz.scan(mask=Category.PRESENT)


def _as_nobody(target: int | str, backend: str = "auto", dumpable: bool = True) -> tuple[str, str]:
    """Scan ``target`` ("child" = the unprivileged process itself) as nobody."""
    import pmviz.fallback  # noqa: F401 - import everything before dropping privileges

    def scan() -> str:
        t = os.getpid() if target == "child" else target
        return str(pmviz.scan(t, backend=backend).pages_with(Category.PRESENT))

    return as_nobody(scan, dumpable=dumpable)


@pytest.mark.root
def test_reading_a_root_process_as_nobody_is_access_denied_naming_the_capability():
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to nobody")
    for backend in ("ioctl", "pagemap"):
        kind, text = _as_nobody(os.getpid(), backend)
        assert kind == "AccessDenied", text
        assert "CAP_SYS_PTRACE" in text


@pytest.mark.root
def test_a_non_root_user_can_scan_its_own_process():
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to nobody")
    for target in ("self", "child"):
        for backend in ("ioctl", "pagemap"):
            kind, text = _as_nobody(target, backend)
            assert kind == "ok", (target, backend, text)
            assert int(text) > 0


@pytest.mark.root
def test_a_process_that_dropped_privileges_is_told_how_to_read_itself():
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to nobody")
    kind, text = _as_nobody("self", "ioctl", dumpable=False)
    assert kind == "AccessDenied" and "PR_SET_DUMPABLE" in text


def test_access_denied_to_own_files_names_dumpability_others_the_capability():
    own = [
        procfs.translate(PermissionError(13, "denied"), p, "maps") for p in ("self", os.getpid())
    ]
    other = procfs.translate(PermissionError(13, "denied"), 1, "pagemap")
    assert all(isinstance(e, AccessDenied) and "PR_SET_DUMPABLE" in str(e) for e in own)
    assert isinstance(other, AccessDenied) and "CAP_SYS_PTRACE" in str(other)
    assert "PR_SET_DUMPABLE" not in str(other)


# -- the other layouts also scan consistently ---------------------------------------------------


def test_dontneed_layout_scans_consistently(layout_factory):
    layout = layout_factory(DONTNEED)
    lo, hi = layout.range("dn")
    r = pmviz.scan(layout.pid, lo, hi)
    # Zapped anon memory is pte_none, reported WRITTEN on 6.18.44 (spec §3.5, 2026 fix).
    assert r.pages_with(Category.PRESENT) == 600 - 10 - 88
    assert r.pages_with(Category.WRITTEN) == 600
