"""Sparsity and sanitizer shadow on hand-built layouts."""

import numpy as np
import pytest
from synthetic import BASE, PAGE, P, S, W, regions, two_vma_capture, vmas

from pmviz.analysis.sanitizers import (
    ASAN_SHADOW_OFFSET,
    app_to_shadow,
    detect_sanitizer,
    materialised_shadow,
    shadow_to_app,
)
from pmviz.analysis.sparsity import sparsity
from pmviz.categories import Category as C
from pmviz.maps import VmaKind, Vmas
from pmviz.mask import Mask
from pmviz.regions import Regions


def test_sparsity_of_a_vma_by_hand():
    # 64-page VMA: present runs of 1, 2, 4 (mixed bits merge: report only PRESENT), holes 3, 5.
    table = vmas((BASE, BASE + 64 * PAGE, "rw-p", VmaKind.ANON, ""))
    r = regions(
        (0, 1, P | W),
        (1, 4, W),
        (4, 5, P | W),
        (5, 6, P | C.FILE),
        (6, 11, 0),
        (11, 15, P | W),
        (15, 64, 0),
    )
    sp = sparsity(r, vmas=table, vma=0)
    assert sp.reserved_bytes == 64 * PAGE and sp.matched_bytes == 7 * PAGE
    assert sp.region_pages.tolist() == [1, 2, 4] and sp.hole_pages.tolist() == [3, 5]
    assert sp.n_scan_regions == 7
    assert sp.pages_per_region == pytest.approx(7 / 3)
    assert sp.region_bytes_out == 3 * 24 and sp.pagemap_bytes_out == 64 * 8
    assert sp.ioctl_calls == 1 and sp.compression == pytest.approx(512 / 72)
    counts, edges = sp.size_histogram("regions")
    assert edges.tolist() == [1, 2, 4, 8] and counts.tolist() == [1, 1, 1]
    assert "Sparsity" in sp._repr_html_()
    assert sparsity(r, vmas=table, vma="anon").region_pages.tolist() == [1, 2, 4]
    assert sparsity(r, start=BASE, end=BASE + 5 * PAGE).matched_bytes == 2 * PAGE


def test_sparsity_of_a_capture_never_counts_unmapped_gaps_as_holes():
    sp = sparsity(two_vma_capture(), at=3)  # heap 0-2 present; anon 0-4 present
    assert sp.region_pages.tolist() == [2, 4] and sp.hole_pages.tolist() == []
    assert sp.reserved_bytes == 16 * PAGE
    sw = sparsity(two_vma_capture(), Mask(require=S), at=2, vma="anon")
    assert sw.matched_bytes == 2 * PAGE
    with pytest.raises(ValueError, match="labels here"):
        sparsity(two_vma_capture(), vma="[stack]")


def test_asan_mapping_round_trips_and_matches_the_formula():
    app = np.array([0x602000000010, 0x7FFF0000, 0x10007FFF8000], dtype=np.uint64)
    sh = app_to_shadow(app, "asan")
    assert sh.tolist() == [(int(a) >> 3) + ASAN_SHADOW_OFFSET for a in app]
    assert (shadow_to_app(sh, "asan") == app & ~np.uint64(7)).all()
    m = np.array([0x7F0000001000], np.uint64)
    assert shadow_to_app(app_to_shadow(m, "msan"), "msan").tolist() == m.tolist()
    assert (
        shadow_to_app(app_to_shadow(m, "msan") + np.uint64(0x100000000000), "msan").tolist()
        == m.tolist()
    )
    with pytest.raises(ValueError, match="TSan"):
        shadow_to_app(m, "tsan")


def _asan_layout():
    heap = 0x602000000000
    sh_lo = (heap >> 3) + ASAN_SHADOW_OFFSET  # shadow of the heap start, page aligned here
    text = "\n".join(
        [
            "00007fff8000-00008fff7000 rw-p 00000000 00:00 0 ",
            "00008fff7000-02008fff7000 ---p 00000000 00:00 0 ",
            "02008fff7000-10007fff8000 rw-p 00000000 00:00 0 ",
            f"{heap:012x}-{heap + 0x100000:012x} rw-p 00000000 00:00 0 ",
        ]
    )
    return Vmas.parse(text), heap, sh_lo


def test_detect_and_map_materialised_asan_shadow():
    table, heap, sh = _asan_layout()
    assert detect_sanitizer(table) == "asan"
    assert detect_sanitizer(Vmas.parse("7f0000000000-7f0000001000 rw-p 00000000 00:00 0 ")) is None
    # Two resident shadow pages: the first and the third of the heap's shadow.
    scan = Regions.from_arrays(
        [sh, sh + PAGE, sh + 2 * PAGE, heap],
        [sh + PAGE, sh + 2 * PAGE, sh + 3 * PAGE, heap + 0x100000],
        [P | W, 0, P | W, P | W],
    )
    m = materialised_shadow(scan, vmas=table)
    assert m.sanitizer == "asan"
    assert m.shadow.start.tolist() == [sh, sh + 2 * PAGE]
    # One shadow page describes 8 application pages (32 KiB).
    assert m.app.start.tolist() == [heap, heap + 16 * PAGE]
    assert m.app.end.tolist() == [heap + 8 * PAGE, heap + 24 * PAGE]
    assert m.vma_bytes.tolist() == [0, 0, 0, 16 * PAGE]
    with pytest.raises(ValueError, match="no sanitizer"):
        materialised_shadow(scan, vmas=Vmas())


def test_materialised_shadow_of_the_recorded_asan_sample():
    import pathlib

    import pmviz

    path = pathlib.Path(__file__).parent.parent / "sample_data" / "asan-phases.pmviz"
    if not path.exists():
        pytest.skip("sample capture not built")
    cap = pmviz.open(str(path))
    assert detect_sanitizer(cap.vmas_at(-1)) == "asan"
    m = materialised_shadow(cap)
    assert m.shadow.size > 0 and m.app.size == 8 * m.shadow.size
    assert (app_to_shadow(m.app.start, "asan") == m.shadow.start).all()
    # Shadow describes memory the program mapped: nearly all of it lies in the app's VMAs.
    assert m.vma_bytes.sum() > 0.95 * m.app.size
