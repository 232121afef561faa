"""This machine's own DAMON, and how tests of accessed bits live with it.

The machine runs a kdamond on physical addresses (we must leave its sysfs alone). Each
sampling interval it clears the accessed bit of a page in every region it monitors (rmap
mkold), and its ``pageout`` scheme pages out memory it finds cold, swap permitting. Both act
on our test children too: a page read in a phase may read "not referenced", a page meant to
stay resident may be on swap. The kernel is right about what happened; the test's truth is
not what happened. Tests whose truth DAMON can change run again (up to ``ATTEMPTS`` times)
where such a DAMON runs, and once elsewhere, so they stay exact on a machine without one.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
ATTEMPTS = 3


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def paddr_damon_running() -> bool:
    """Whether a kdamond monitors physical memory (see the module docstring)."""
    for state in glob.glob("/sys/kernel/mm/damon/admin/kdamonds/*/state"):
        try:
            ops = glob.glob(os.path.join(os.path.dirname(state), "contexts/*/operations"))
            if _read(state) == "on" and any(_read(o) == "paddr" for o in ops):
                return True
        except OSError:
            continue
    return False


def with_damon_retries(attempt: Callable[[int], T]) -> T:
    """``attempt(k)`` for k = 0, 1, ... until it returns without an AssertionError: up to
    ``ATTEMPTS`` times where a physical DAMON runs, once elsewhere. The last failure is
    raised."""
    n = ATTEMPTS if paddr_damon_running() else 1
    for k in range(n - 1):
        try:
            return attempt(k)
        except AssertionError:
            pass
    return attempt(n - 1)
