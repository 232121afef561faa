"""``/proc/PID/maps`` as a typed, columnar VMA table (``Vmas``) used to label addresses."""

from __future__ import annotations

import enum
import html
from collections.abc import Iterable

import numpy as np

from ._kernel import procfs
from ._kernel.procfs import Pid
from ._units import human_bytes

__all__ = ["VmaKind", "Vmas", "read_maps", "VMA_DTYPE", "SHADOW_RANGES"]


class VmaKind(enum.IntEnum):
    """What a VMA is, as far as its maps line tells."""

    ANON = 0
    HEAP = 1
    STACK = 2
    FILE = 3  # a mapped file (library, executable, data file)
    SHM = 4  # SysV shm, memfd, /dev/shm, shared anonymous ("/dev/zero (deleted)")
    VDSO = 5  # [vdso], [vvar], [vvar_vclock], [vsyscall], [uprobes]
    SHADOW = 6  # a sanitizer shadow range (see SHADOW_RANGES)
    GUARD = 7  # an inaccessible (---p) anonymous gap: thread-stack guards, reservations
    OTHER = 8


# Fixed sanitizer shadow layouts on x86-64 (compiler-rt's asan_mapping.h, msan_allocator /
# tsan_platform.h). An anonymous VMA inside one of these is shadow, provided the process shows
# that sanitizer's signature: an anonymous reservation of at least _SIGNATURE_BYTES inside its
# ranges (ordinary programs never reserve a TiB there, but a big arena may land in a range).
SHADOW_RANGES: dict[str, list[tuple[int, int]]] = {
    "asan": [
        (0x00007FFF7000, 0x00008FFF7000),  # LowShadow (its VMA starts one page low)
        (0x02008FFF7000, 0x10007FFF8000),  # HighShadow
        (0x00008FFF7000, 0x02008FFF7000),  # ShadowGap (PROT_NONE, reserved)
    ],
    "msan": [
        (0x010000000000, 0x100000000000),  # shadow + origin for app 0x7... (msan_platform x86-64)
        (0x200000000000, 0x300000000000),
        (0x400000000000, 0x500000000000),
        (0x500000000000, 0x510000000000),
    ],
    "tsan": [
        (0x008000000000, 0x020000000000),  # shadow
        (0x020000000000, 0x030000000000),  # meta shadow
        (0x300000000000, 0x340000000000),
    ],
}

VMA_DTYPE = np.dtype(
    [
        ("start", "<u8"),
        ("end", "<u8"),
        ("offset", "<u8"),
        ("inode", "<u8"),
        ("dev_major", "<u4"),
        ("dev_minor", "<u4"),
        ("perms", "S4"),  # e.g. b"rw-p"
        ("kind", "u1"),
    ]
)

_SPECIAL = {
    "[heap]": VmaKind.HEAP,
    "[stack]": VmaKind.STACK,
    "[vdso]": VmaKind.VDSO,
    "[vvar]": VmaKind.VDSO,
    "[vvar_vclock]": VmaKind.VDSO,
    "[vsyscall]": VmaKind.VDSO,
    "[uprobes]": VmaKind.VDSO,
}


_SIGNATURE_BYTES = 1 << 40


def _kind(path: str, perms: str, inode: int) -> VmaKind:
    # Most VMAs are mapped files, then anonymous memory: test those first (thousands per call).
    if path[:1] == "/":
        if path.startswith(_SHM_PREFIXES) or (perms[3] == "s" and inode == 0):
            return VmaKind.SHM
        return VmaKind.FILE
    if not path or path.startswith("[anon:"):
        if perms.startswith("---"):
            return VmaKind.GUARD
        return VmaKind.ANON
    if path in _SPECIAL:
        return _SPECIAL[path]
    if path.startswith("[stack"):  # "[stack:TID]" on old kernels
        return VmaKind.STACK
    if perms[3] == "s" and inode == 0:
        return VmaKind.SHM
    return VmaKind.OTHER


_SHM_PREFIXES = ("/dev/shm/", "/SYSV", "/memfd:", "/dev/zero")


def _mark_shadow(a: np.ndarray) -> None:
    """Re-label anonymous VMAs inside the shadow ranges of a sanitizer the process runs."""
    anon = (a["kind"] == VmaKind.ANON) | (a["kind"] == VmaKind.GUARD)
    if not anon.any():
        return
    start, end = a["start"], a["end"]
    for ranges in SHADOW_RANGES.values():  # three sanitizers, a few ranges each
        inside = np.zeros(len(a), dtype=bool)
        for lo, hi in ranges:
            inside |= (start >= np.uint64(lo)) & (end <= np.uint64(hi))
        inside &= anon
        if ((end - start)[inside] >= _SIGNATURE_BYTES).any():
            a["kind"][inside] = VmaKind.SHADOW


def is_shared_memory_path(path: str | bytes) -> bool:
    """Whether a ``MAP_SHARED`` mapping with this maps path is memory write tracking may arm.

    Shared memory (memfd, POSIX/SysV shm, shared anonymous memory: ``/dev/zero``) and shared
    files are; a device (``/dev/dri/...``) or a kernel object (``anon_inode:[io_uring]``,
    ``[perf_event]``, bpf maps) is driver memory whose faults the driver handles: never.
    """
    p = path.encode(errors="surrogateescape") if isinstance(path, str) else path
    if p.startswith((b"anon_inode:", b"[")):
        return False
    if p.startswith(b"/dev/"):
        return p.startswith((b"/dev/shm/", b"/dev/zero"))
    return True


class Vmas:
    """A VMA table: one structured array (``VMA_DTYPE``) plus a parallel array of paths.

    Attributes
    ----------
    array : numpy.ndarray
        Fields ``start``, ``end``, ``offset``, ``inode``, ``dev_major``, ``dev_minor``,
        ``perms`` (bytes such as ``b"rw-p"``) and ``kind`` (a ``VmaKind`` value).
    paths : numpy.ndarray
        Object array of path strings ("" for anonymous memory, "[heap]" and so on).
    """

    __slots__ = ("array", "paths")

    def __init__(self, array: np.ndarray | None = None, paths: Iterable[str] | None = None):
        self.array = np.empty(0, VMA_DTYPE) if array is None else np.asarray(array, VMA_DTYPE)
        p = [] if paths is None else list(paths)
        self.paths = np.array(p, dtype=object) if p else np.empty(len(self.array), dtype=object)
        if not p:
            self.paths[:] = ""
        if len(self.paths) != len(self.array):
            raise ValueError("paths and array differ in length")

    @classmethod
    def parse(cls, text: str, *, detect_shadow: bool = True) -> Vmas:
        """Parse the text of a ``/proc/PID/maps`` file."""
        # Column by column: assigning whole lists is several times faster than filling a
        # structured array row by row, and a big process has thousands of VMAs.
        rows = [line.split(None, 5) for line in text.splitlines()]
        a = np.empty(len(rows), VMA_DTYPE)
        bounds = [r[0].partition("-") for r in rows]
        starts = [int(b[0], 16) for b in bounds]
        ends = [int(b[2], 16) for b in bounds]
        devs = [r[3].partition(":") for r in rows]
        inodes = [int(r[4]) for r in rows]
        perms = [r[1] for r in rows]
        paths = [r[5].strip() if len(r) > 5 else "" for r in rows]
        a["start"] = starts
        a["end"] = ends
        a["offset"] = [int(r[2], 16) for r in rows]
        a["inode"] = inodes
        a["dev_major"] = [int(d[0], 16) for d in devs]
        a["dev_minor"] = [int(d[2], 16) for d in devs]
        a["perms"] = [p.encode() for p in perms]
        a["kind"] = [_kind(path, perm, inode) for path, perm, inode in zip(paths, perms, inodes)]
        if detect_shadow:
            _mark_shadow(a)
        return cls(a, paths)

    @property
    def start(self) -> np.ndarray:
        return self.array["start"]

    @property
    def end(self) -> np.ndarray:
        return self.array["end"]

    @property
    def kind(self) -> np.ndarray:
        return self.array["kind"]

    @property
    def size(self) -> int:
        """Total bytes mapped."""
        return int((self.array["end"] - self.array["start"]).sum())

    def writable_private(self) -> Vmas:
        """VMAs that are ``rw-p``."""
        p = self.array["perms"]
        sel = np.char.startswith(p, b"rw") & np.char.endswith(p, b"p")
        return self[sel]

    def trackable(self) -> np.ndarray:
        """Whether write tracking registers each VMA by default: writable memory, private or
        shared (see :func:`is_shared_memory_path`).
        """
        p = self.array["perms"]
        keep = np.char.startswith(p, b"rw")
        shared = np.flatnonzero(keep & np.char.endswith(p, b"s"))
        for i in shared.tolist():  # few: shared writable mappings are rare
            keep[i] = is_shared_memory_path(self.paths[i])
        return keep

    def find(self, addresses: np.ndarray | int) -> np.ndarray:
        """Index of the VMA holding each address, or -1 (vectorised, VMAs sorted by start)."""
        addr = np.asarray(addresses, dtype=np.uint64)
        i = np.searchsorted(self.array["start"], addr, side="right") - 1
        ok = (i >= 0) & (addr < self.array["end"][np.maximum(i, 0)]) if len(self) else i < -1
        return np.where(ok, i, -1)

    def label(self, i: int) -> str:
        """A short human label: the file name, ``[heap]``, ``anon``, ``asan shadow`` ..."""
        path = str(self.paths[i])
        kind = VmaKind(int(self.array["kind"][i]))
        if kind == VmaKind.SHADOW:
            return "shadow"
        if path:
            return path.rsplit("/", 1)[-1] if path.startswith("/") else path
        return kind.name.lower()

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def __getitem__(self, key) -> Vmas:
        if isinstance(key, (int, np.integer)):
            key = slice(int(key), int(key) + 1 or None)
        return Vmas(self.array[key], self.paths[key])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vmas):
            return NotImplemented
        return np.array_equal(self.array, other.array) and list(self.paths) == list(other.paths)

    __hash__ = None  # type: ignore[assignment]

    def to_pandas(self):  # noqa: ANN201 - pandas is optional
        """A ``pandas.DataFrame`` with one row per VMA and readable perms / kind columns."""
        import pandas as pd

        df = pd.DataFrame({k: self.array[k] for k in VMA_DTYPE.names if k not in ("perms", "kind")})
        df["perms"] = self.array["perms"].astype(str)
        df["kind"] = [VmaKind(k).name.lower() for k in self.array["kind"]]
        df["path"] = self.paths
        return df

    def __repr__(self) -> str:
        return f"<Vmas n={len(self)} size={human_bytes(self.size)}>"

    def _repr_html_(self, max_rows: int = 30) -> str:
        rows = []
        for i in range(min(len(self), max_rows)):
            r = self.array[i]
            rows.append(
                f"<tr><td><code>{int(r['start']):#014x}-{int(r['end']):#014x}</code></td>"
                f"<td>{r['perms'].decode()}</td><td>{VmaKind(int(r['kind'])).name.lower()}</td>"
                f"<td>{html.escape(str(self.paths[i]))}</td></tr>"
            )
        if len(self) > max_rows:
            rows.append(f"<tr><td colspan=4><i>… {len(self) - max_rows} more</i></td></tr>")
        return (
            f"<div><b>Vmas</b>: {len(self):,} VMAs, {human_bytes(self.size)} mapped<table>"
            "<tr><th>range</th><th>perms</th><th>kind</th><th>path</th></tr>"
            f"{''.join(rows)}</table></div>"
        )


def read_maps(pid: Pid = "self", *, procfs_root: str = procfs.PROCFS) -> Vmas:
    """Read ``/proc/PID/maps`` of a process.

    Parameters
    ----------
    pid : int or "self"
        The process.
    procfs_root : str
        Where procfs is mounted (tests point this at a fake tree).

    Returns
    -------
    Vmas

    Raises
    ------
    NoSuchProcess, AccessDenied
    """
    pid = procfs.normalize_pid(pid)
    return Vmas.parse(procfs.read_text(pid, "maps", procfs_root))
