"""The analysis layer on real captures, cross-checked against independent readings.

A capture of this process's own mapping is built from real ``pmviz.scan`` snapshots and
``WriteTracker`` written sets while the test writes and discards known pages; present pages
are checked against the classic ``/proc/self/pagemap`` read at the same moment (a different
kernel interface), written pages against what the test wrote.
"""

import mmap
import os

import numpy as np
import pytest

import pmviz
from pmviz._kernel import pagemap
from pmviz.analysis import (
    cumulative_written,
    heatmap_grid,
    snapshot_diff,
    sparsity,
    working_set_size,
    wss_curve,
)
from pmviz.capture import Capture, CaptureMeta

pytestmark = pytest.mark.kernel

PAGE = os.sysconf("SC_PAGE_SIZE")
N = 512
MADV_DONTNEED = 4

# Per step: pages written, then pages discarded (MADV_DONTNEED), in page indices.
STEPS = [
    (list(range(0, 64)), []),
    (list(range(32, 96)) + [300, 301], list(range(0, 16))),
    ([5, 6, 7, 400], list(range(64, 96))),
    (list(range(200, 264, 2)), [300]),
]


@pytest.fixture(scope="module")
def real():
    if not pmviz.features().pagemap_scan:
        pytest.skip("needs PAGEMAP_SCAN")
    mm = mmap.mmap(-1, N * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buf = np.frombuffer(mm, dtype=np.uint8)
    lo = buf.ctypes.data
    hi = lo + N * PAGE
    fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    snaps, present_ref = [], []
    try:
        with pmviz.WriteTracker([(lo, hi)]) as tracker:
            tracker.collect()  # start clean: everything armed
            for k, (write, drop) in enumerate(STEPS):
                for p in write:
                    buf[p * PAGE] = k + 1
                for p in drop:
                    mm.madvise(MADV_DONTNEED, p * PAGE, PAGE)
                written = tracker.collect()
                regions = pmviz.scan("self", lo, hi)
                entries = pagemap.read_entries(fd, lo, hi)
                present_ref.append((entries & np.uint64(pagemap.PM_PRESENT)) != 0)
                vmas = pmviz.read_maps("self")
                snaps.append((k * 100_000_000, regions, written, vmas))
        cap = Capture.from_snapshots(
            CaptureMeta(pid=os.getpid(), interval_ns=100_000_000, write_mechanism="uffd-wp"),
            snaps,
        )
        yield cap, lo, hi, np.array(present_ref)
    finally:
        os.close(fd)
        del buf
        mm.close()


def test_present_heatmap_matches_classic_pagemap(real):
    cap, lo, hi, present = real
    g = heatmap_grid(cap, "present", axis="linear", addr_range=(lo, hi), addr_bins=16)
    assert g.grid.shape == (len(STEPS), 16)
    expected = present.reshape(len(STEPS), 16, N // 16).mean(axis=2)
    np.testing.assert_allclose(g.grid, expected)
    ws = working_set_size(cap)
    assert (ws.resident // PAGE >= present.sum(axis=1)).all()  # the rest of the process too
    d = snapshot_diff(cap, 0, 1)
    got = d.became_resident.clip(lo, hi)
    assert got.n_pages == (present[1] & ~present[0]).sum()


def test_written_sets_are_exactly_the_pages_written(real):
    cap, lo, hi, _ = real
    g = heatmap_grid(cap, "written", axis="linear", addr_range=(lo, hi), addr_bins=N)
    for k, (write, _) in enumerate(STEPS):
        expected = np.zeros(N)
        expected[write] = 1
        np.testing.assert_array_equal(g.grid[k], expected, err_msg=f"step {k}")
    ever = sorted({p for w, _ in STEPS for p in w})
    assert cumulative_written(cap)[-1] == len(ever) * PAGE
    assert (wss_curve(cap, windows=(1,)).bytes[0] // PAGE).tolist() == [
        len(set(w)) for w, _ in STEPS
    ]


def test_sparsity_of_the_real_mapping(real):
    cap, lo, hi, present = real
    sp = sparsity(cap, start=lo, end=hi)
    assert sp.reserved_bytes == N * PAGE
    assert sp.matched_bytes == present[-1].sum() * PAGE
    runs = np.diff(np.concatenate([[0], present[-1].astype(np.int8), [0]]))
    assert sp.n_regions == (runs == 1).sum()
