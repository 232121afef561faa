"""Which pages a process *accessed* (read or wrote), not only which it wrote.

Mechanisms:

``"vma"`` (:class:`VmaReferenced`)
    ``clear_refs`` + ``smaps`` ``Referenced:``: exact bytes per VMA, no per-page detail.
``"probe"`` (:class:`AccessProbe`)
    Page out a bounded random sample of resident pages from outside
    (``process_madvise(MADV_PAGEOUT)``); a probe that is present again at the next scan was
    accessed. Per-page sampling over adaptive regions (DAMON's manner), with a price: the
    target refaults what it touches.

Both return per-snapshot row tables (:mod:`pmviz.accessed._samples`) that
:class:`pmviz.analysis.accessed.AccessSeries` collects over time.
"""

from __future__ import annotations

from ._probe import AccessProbe
from ._samples import PROBED_DTYPE, REFERENCED_DTYPE, AccessSample, ProbeSample
from ._stats import wilson_interval
from ._vma import VmaReferenced, parse_smaps

__all__ = [
    "AccessProbe",
    "AccessSample",
    "ProbeSample",
    "PROBED_DTYPE",
    "REFERENCED_DTYPE",
    "VmaReferenced",
    "parse_smaps",
    "wilson_interval",
]
