"""``process_madvise(2)`` with ``MADV_PAGEOUT`` on another process's pages (Linux >= 5.10).

Raw syscall only; ``pmviz.accessed`` builds access probing on top. ``pidfd_open`` comes from
``os.pidfd_open``.
"""

from __future__ import annotations

import ctypes
import os
import platform

import numpy as np

SYS_process_madvise = {"x86_64": 440, "aarch64": 440, "riscv64": 440}.get(platform.machine(), 440)
MADV_PAGEOUT = 21
# The kernel takes at most UIO_MAXIOV (1024) iovecs per call (include/uapi/linux/uio.h).
IOV_MAX = 1024

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def process_madvise(pidfd: int, starts: np.ndarray, lengths: np.ndarray, advice: int) -> int:
    """Advise the ranges ``[starts[i], starts[i] + lengths[i])`` of the process behind ``pidfd``.

    Issued in batches of ``IOV_MAX`` iovecs. Returns the bytes the kernel advised; raises
    ``OSError`` when a call fails before advising anything (``EPERM``: needs
    PTRACE_MODE_READ_FSCREDS and, for ``MADV_PAGEOUT``, the same user or CAP_SYS_NICE;
    ``EINVAL``: an unsupported advice or a bad range; ``ESRCH``: the process is gone).
    """
    iov = np.empty((len(starts), 2), dtype=np.uint64)
    iov[:, 0] = starts
    iov[:, 1] = lengths
    done = 0
    for lo in range(0, len(iov), IOV_MAX):  # one syscall per 1024 ranges
        part = np.ascontiguousarray(iov[lo : lo + IOV_MAX])
        rc = _syscall(
            ctypes.c_long(SYS_process_madvise),
            ctypes.c_long(pidfd),
            ctypes.c_void_p(part.ctypes.data),
            ctypes.c_ulong(len(part)),
            ctypes.c_long(advice),
            ctypes.c_ulong(0),
        )
        if rc < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        done += int(rc)
    return done
