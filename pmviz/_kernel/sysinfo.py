"""``sysinfo(2)``: the machine's swap total in one syscall.

The recorder asks "is any swap device on?" before every snapshot of a uffd-wp recording
(markers and swap entries read alike, so with no swap every ambiguous page is a marker).
Reading ``/proc/swaps`` for that costs an open, a read and a close each time; ``sysinfo``
answers with ``totalswap`` (0 exactly when no swap area is active, mm/swapfile.c
``si_swapinfo``).
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["swap_total_bytes"]


class _Sysinfo(ctypes.Structure):
    # struct sysinfo, include/uapi/linux/sysinfo.h: 112 bytes on LP64 (_f is empty there)
    _fields_ = [
        ("uptime", ctypes.c_long),
        ("loads", ctypes.c_ulong * 3),
        ("totalram", ctypes.c_ulong),
        ("freeram", ctypes.c_ulong),
        ("sharedram", ctypes.c_ulong),
        ("bufferram", ctypes.c_ulong),
        ("totalswap", ctypes.c_ulong),
        ("freeswap", ctypes.c_ulong),
        ("procs", ctypes.c_ushort),
        ("pad", ctypes.c_ushort),
        ("totalhigh", ctypes.c_ulong),
        ("freehigh", ctypes.c_ulong),
        ("mem_unit", ctypes.c_uint),
        ("_f", ctypes.c_char * (20 - 2 * ctypes.sizeof(ctypes.c_ulong) - 4)),
    ]


_libc = ctypes.CDLL(None, use_errno=True)
_sysinfo = _libc.sysinfo
_sysinfo.argtypes = [ctypes.POINTER(_Sysinfo)]


def swap_total_bytes() -> int:
    """Bytes of swap space on (every active swap device and file), 0 when none is.

    Raises
    ------
    OSError
        ``sysinfo`` failed (it cannot, short of a bad pointer).
    """
    info = _Sysinfo()  # (not shared: callers may run in several threads)
    if _sysinfo(ctypes.byref(info)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"sysinfo(): {os.strerror(err)}")
    return int(info.totalswap) * max(int(info.mem_unit), 1)
