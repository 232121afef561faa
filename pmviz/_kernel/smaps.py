"""``/proc/PID/smaps_rollup``: the kernel's own per-process memory totals (proc(5))."""

from __future__ import annotations

from . import procfs
from .procfs import Pid

__all__ = ["parse_rollup", "read_rollup", "has_cap_sys_admin"]

_CAP_SYS_ADMIN = 21  # include/uapi/linux/capability.h


def parse_rollup(text: str) -> dict[str, int]:
    """``{"Rss": bytes, "Pss": bytes, ...}`` from the text of ``smaps_rollup``.

    The kernel prints every size in kB, truncated (``value >> 10``): a figure here is a
    multiple of 1024 and up to 1023 bytes below the kernel's own count.
    """
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if sep and len(fields) == 2 and fields[1] == "kB":
            out[name] = int(fields[0]) * 1024
    return out


def read_rollup(pid: Pid, procfs_root: str = procfs.PROCFS) -> dict[str, int]:
    """Parsed ``/proc/PID/smaps_rollup`` (needs the same access as ``pagemap``)."""
    return parse_rollup(procfs.read_text(pid, "smaps_rollup", procfs_root))


def has_cap_sys_admin(procfs_root: str = procfs.PROCFS) -> bool:
    """Whether this process holds CAP_SYS_ADMIN now (``CapEff`` of ``/proc/self/status``).

    Read fresh on every call: a process that drops privileges must see the change (the
    pagemap PFN check is made against the opener's capabilities).
    """
    for line in procfs.read_text("self", "status", procfs_root).splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> _CAP_SYS_ADMIN & 1)
    return False
