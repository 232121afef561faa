"""Forward compatibility: PAGE_IS_ACCESSED (bit 9) is detected by probing, never assumed."""

from __future__ import annotations

import errno
import os

import pytest

import pmviz
from pmviz._kernel import pagemap_scan as pms
from pmviz.features import PAGE_IS_ACCESSED


@pytest.mark.kernel
def test_accessed_category_matches_the_kernels_verdict():
    if not pmviz.features().pagemap_scan:
        pytest.skip("no PAGEMAP_SCAN here")
    fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    try:
        arg = pms.PmScanArg(size=96, start=0, end=0, return_mask=PAGE_IS_ACCESSED)
        try:
            pms.ioctl_scan(fd, arg)
            accepted = True
        except OSError as err:
            assert err.errno == errno.EINVAL
            accepted = False
    finally:
        os.close(fd)
    assert pmviz.features().accessed_category is accepted
    assert pmviz.features().as_dict()["accessed_category"] is accepted
