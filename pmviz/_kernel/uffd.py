"""userfaultfd async write-protect, in this process (spec §4).

Raw syscalls and ioctls only; ``pmviz.tracking`` builds the typed tracker on top.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform

UFFD_API = 0xAA
UFFDIO_API = 0xC018AA3F
UFFDIO_REGISTER = 0xC020AA00
UFFDIO_UNREGISTER = 0x8010AA01
UFFDIO_WRITEPROTECT = 0xC018AA06
USERFAULTFD_IOC_NEW = 0xAA00

UFFD_FEATURE_WP_HUGETLBFS_SHMEM = 1 << 12
UFFD_FEATURE_WP_UNPOPULATED = 1 << 13
UFFD_FEATURE_WP_ASYNC = 1 << 15
UFFDIO_REGISTER_MODE_WP = 2
UFFDIO_WRITEPROTECT_MODE_WP = 1
UFFD_USER_MODE_ONLY = 1

SYS_userfaultfd = {"x86_64": 323, "aarch64": 282, "riscv64": 282, "i686": 374, "i386": 374}.get(
    platform.machine(), 323
)

WANTED_FEATURES = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_ioctl = _libc.ioctl
_ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
_ioctl.restype = ctypes.c_int


class UffdioApi(ctypes.Structure):
    _fields_ = [
        ("api", ctypes.c_uint64),
        ("features", ctypes.c_uint64),
        ("ioctls", ctypes.c_uint64),
    ]


class UffdioRange(ctypes.Structure):
    _fields_ = [("start", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class UffdioRegister(ctypes.Structure):
    _fields_ = [("range", UffdioRange), ("mode", ctypes.c_uint64), ("ioctls", ctypes.c_uint64)]


class UffdioWriteprotect(ctypes.Structure):
    _fields_ = [("range", UffdioRange), ("mode", ctypes.c_uint64)]


def _check(rc: int) -> int:
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return rc


def create(*, user_mode_only: bool = True) -> int:
    """A new userfaultfd (O_CLOEXEC | O_NONBLOCK); raises ``OSError``.

    ``UFFD_USER_MODE_ONLY`` lets unprivileged users create one whatever
    ``vm.unprivileged_userfaultfd`` says; write-protect tracking never needs kernel-mode faults.
    """
    flags = os.O_CLOEXEC | os.O_NONBLOCK | (UFFD_USER_MODE_ONLY if user_mode_only else 0)
    fd = _syscall(ctypes.c_long(SYS_userfaultfd), ctypes.c_long(flags))
    if fd < 0:
        err = ctypes.get_errno()
        if err == errno.ENOSYS or err == errno.EPERM:
            # /dev/userfaultfd is the other door (Linux >= 6.1), governed by file permissions.
            try:
                dev = os.open("/dev/userfaultfd", os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                raise OSError(err, os.strerror(err)) from None
            try:
                fd = _check(_ioctl(dev, USERFAULTFD_IOC_NEW, ctypes.c_void_p(flags)))
            finally:
                os.close(dev)
            return fd
        raise OSError(err, os.strerror(err))
    return int(fd)


def api(fd: int, features: int = WANTED_FEATURES) -> int:
    """UFFDIO_API handshake; returns the kernel's *supported* feature set (spec §4 step 2)."""
    arg = UffdioApi(api=UFFD_API, features=features)
    _check(_ioctl(fd, UFFDIO_API, ctypes.addressof(arg)))
    return int(arg.features)


def register_wp(fd: int, start: int, length: int) -> int:
    """Register ``[start, start+length)`` in WP mode; returns the supported-ioctls mask."""
    arg = UffdioRegister(range=UffdioRange(start, length), mode=UFFDIO_REGISTER_MODE_WP)
    _check(_ioctl(fd, UFFDIO_REGISTER, ctypes.addressof(arg)))
    return int(arg.ioctls)


def unregister(fd: int, start: int, length: int) -> None:
    arg = UffdioRange(start, length)
    _check(_ioctl(fd, UFFDIO_UNREGISTER, ctypes.addressof(arg)))


def writeprotect(fd: int, start: int, length: int, protect: bool = True) -> None:
    arg = UffdioWriteprotect(
        range=UffdioRange(start, length), mode=UFFDIO_WRITEPROTECT_MODE_WP if protect else 0
    )
    _check(_ioctl(fd, UFFDIO_WRITEPROTECT, ctypes.addressof(arg)))


def probe_wp_async() -> tuple[bool, str]:
    """Whether this process may create an async-WP uffd, and if not, why."""
    try:
        fd = create()
    except OSError as err:
        return False, f"userfaultfd(): {os.strerror(err.errno or 0)}"
    try:
        supported = api(fd, WANTED_FEATURES)
        if not supported & UFFD_FEATURE_WP_ASYNC:
            return False, "UFFD_FEATURE_WP_ASYNC missing (needs Linux >= 6.7)"
        return True, "ok"
    except OSError as err:
        return (
            False,
            f"UFFDIO_API with WP_ASYNC: {os.strerror(err.errno or 0)} (needs Linux >= 6.7)",
        )
    finally:
        os.close(fd)
