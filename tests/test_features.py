"""features(): the run-time probe of this machine's kernel (never the version string)."""

from __future__ import annotations

import json
import os

import pytest

import pmviz
from pmviz import Category
from pmviz._kernel import pagemap_scan as pms
from pmviz.features import features, user_address_limit

pytestmark = pytest.mark.kernel


def test_probe_matches_the_reference_machine():
    f = features()
    assert f.kernel_release == os.uname().release
    assert f.page_size == os.sysconf("SC_PAGE_SIZE")
    assert f.pagemap_scan is True
    assert f.categories == pmviz.ALL_CATEGORIES and f.guard
    assert f.uffd_wp_async is True and f.uffd_reason == "ok"
    assert f.soft_dirty is False  # CONFIG_MEM_SOFT_DIRTY is not set here (spec header)
    assert f.thp_mode in ("always", "madvise", "never")
    assert f.write_mechanisms == ["uffd-wp"]
    assert f.pfn_visible == (os.geteuid() == 0)


def test_probed_categories_are_exactly_what_the_kernel_accepts():
    # CRIU's probe (spec §6): every probed bit is accepted, the next bit up is not.
    with pmviz.Pagemap() as pm:
        cats = int(features().categories)
        assert pms.probe(pm.fd, cats)
        assert not pms.probe(pm.fd, cats << 1 & ~cats)


def test_user_address_limit_is_exact():
    limit = user_address_limit()
    with pmviz.Pagemap() as pm:
        pms.ioctl_scan(pm.fd, pms.PmScanArg(size=96, start=limit & ~4095, end=limit))
        with pytest.raises(OSError):
            pms.ioctl_scan(pm.fd, pms.PmScanArg(size=96, start=limit & ~4095, end=limit + 1))


def test_features_is_cached_and_serialisable():
    assert features() is features()
    d = features().as_dict()
    assert json.loads(json.dumps(d))["categories"] == int(Category(0x1FF))
    assert d["write_mechanisms"] == features().write_mechanisms


@pytest.mark.root
def test_swap_active_follows_the_swapfile(swapfile):
    features.cache_clear()
    assert features().swap_active


def test_features_reads_as_a_table_in_text_and_html():
    # Notebook 01 shows features() first thing: a table, not a raw dataclass repr.
    f = features()
    text = repr(f)
    assert not text.startswith("Features(kernel_release=")
    assert f.kernel_release in text and "write tracking" in text and "uffd-wp" in text
    assert f"{f.user_address_limit:#x}" in text
    page = f._repr_html_()
    assert page.startswith("<table class='pmviz-features'>")
    assert page.count("<tr>") == len(text.splitlines()) - 2
    assert "PAGEMAP_SCAN" in page and "<td style='text-align:left'>yes</td>" in page


def test_no_remedy_advises_setcap_on_the_interpreter():
    """``setcap cap_sys_ptrace+ep`` on python would hand every user of that interpreter ptrace
    over every process: no message may suggest it."""
    root = os.path.dirname(pmviz.__file__)
    offenders = []
    for base, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(base, name), encoding="utf-8") as f:
                    if "setcap" in f.read():
                        offenders.append(name)
    assert offenders == []


@pytest.mark.root
def test_access_denied_names_safe_remedies():
    from privileges import as_nobody

    def scan_init() -> str:
        pmviz.scan(1)
        return "scanned"

    kind, msg = as_nobody(scan_init)
    assert kind == "AccessDenied", (kind, msg)
    assert "setcap" not in msg and "sudo" in msg and "CAP_SYS_PTRACE" in msg


def test_markers_skip_with_the_reason_where_the_kernel_or_privilege_is_missing():
    from types import SimpleNamespace

    from privileges import marker_skip_reason

    full = SimpleNamespace(
        pagemap_scan=True, uffd_wp_async=True, kernel_release="6.18", uffd_reason="ok"
    )
    old = SimpleNamespace(
        pagemap_scan=False, uffd_wp_async=False, kernel_release="6.1", uffd_reason="no"
    )
    no_uffd = SimpleNamespace(
        pagemap_scan=True, uffd_wp_async=False, kernel_release="6.8", uffd_reason="ENOSYS"
    )
    assert marker_skip_reason({"kernel", "root"}, full, 0) is None
    assert marker_skip_reason(set(), old, 1000) is None
    assert "root" in marker_skip_reason({"root"}, full, 1000)
    assert "PAGEMAP_SCAN" in marker_skip_reason({"kernel"}, old, 0)
    assert "6.1" in marker_skip_reason({"kernel"}, old, 0)
    assert "ENOSYS" in marker_skip_reason({"kernel"}, no_uffd, 0)
    assert marker_skip_reason({"root"}, old, 0) is None  # root alone needs no kernel feature
