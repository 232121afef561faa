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

from typing import Any, Protocol, runtime_checkable

from .._kernel.procfs import Pid
from ._probe import AccessProbe
from ._samples import PROBED_DTYPE, REFERENCED_DTYPE, AccessSample, ProbeSample
from ._stats import wilson_interval
from ._vma import VmaReferenced, parse_smaps

__all__ = [
    "AccessProbe",
    "AccessSample",
    "AccessSource",
    "ACCESSED_MODES",
    "open_access_source",
    "ProbeSample",
    "PROBED_DTYPE",
    "REFERENCED_DTYPE",
    "VmaReferenced",
    "parse_smaps",
    "wilson_interval",
]


ACCESSED_MODES = ("none", "vma", "probe")


@runtime_checkable
class AccessSource(Protocol):
    """What a recorder calls once per snapshot (``VmaReferenced`` or ``AccessProbe``).

    ``collect()`` returns the sample of the interval ending now (an ``AccessSample`` with
    ``REFERENCED_DTYPE`` rows, or a ``ProbeSample`` with ``PROBED_DTYPE`` rows); ``close()``
    is idempotent.
    """

    mechanism: str

    def collect(self) -> AccessSample | ProbeSample: ...

    def close(self) -> None: ...


def open_access_source(pid: Pid, accessed: str, **options: Any) -> AccessSource | None:
    """The access mechanism a recorder option names: ``"vma"``, ``"probe"`` or ``"none"``.

    Parameters
    ----------
    pid : int
        The target.
    accessed : {"none", "vma", "probe"}
    **options
        Passed to :class:`AccessProbe` (``pages_per_s``, ``max_fraction``, ``interval`` ...).

    Returns
    -------
    AccessSource or None
        ``None`` for ``"none"``.
    """
    if accessed not in ACCESSED_MODES:
        raise ValueError(f"accessed must be one of {ACCESSED_MODES}, got {accessed!r}")
    if accessed == "vma":
        if options:
            raise TypeError(f"accessed='vma' takes no options, got {sorted(options)}")
        return VmaReferenced(pid)
    if accessed == "probe":
        return AccessProbe(pid, **options)
    return None
