"""Run a piece of a test as an unprivileged user (uid/gid 65534, nobody) in a forked child."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

import pmviz


def as_nobody(fn: Callable[[], str], *, dumpable: bool = True) -> tuple[str, str]:
    """Run ``fn() -> str`` as nobody; return ``("ok", result)`` or ``(exception name, message)``.

    A pmviz error comes back under its class name; anything else is prefixed ``RAW`` so a
    test can tell a translated error from a leaked ``OSError``. ``dumpable=False`` keeps the
    state ``setuid()`` leaves behind, which hides the process's own /proc files from it; a
    real user's process is dumpable.
    """
    pmviz.features()  # probe (and import) before dropping privileges
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            if dumpable:
                ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
            try:
                msg = f"ok\t{fn()}"
            except pmviz.Error as err:
                msg = f"{type(err).__name__}\t{err}"
            except BaseException as err:
                msg = f"RAW {type(err).__name__}\t{err}"
            os.write(w, msg.encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    kind, _, text = out.partition("\t")
    return kind, text


def marker_skip_reason(markers: set[str], feats: object, euid: int) -> str | None:
    """Why a test with these markers cannot run here (``None``: it can).

    ``kernel`` tests need PAGEMAP_SCAN and userfaultfd async write-protect (Linux >= 6.7);
    ``root`` tests need euid 0 (swap files, other users' processes).
    """
    if "root" in markers and euid != 0:
        return "needs root (euid 0): swap files, other users' processes; run the suite as root"
    if "kernel" in markers:
        if not getattr(feats, "pagemap_scan", False):
            release = getattr(feats, "kernel_release", "?")
            return f"needs PAGEMAP_SCAN (Linux >= 6.7); kernel {release} lacks it"
        if not getattr(feats, "uffd_wp_async", False):
            why = getattr(feats, "uffd_reason", "unknown")
            return f"needs userfaultfd with async write-protect (Linux >= 6.7): {why}"
    return None
