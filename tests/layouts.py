"""Real memory layouts built in a child process, for differential tests against the kernel.

A layout is a list of :class:`Area` descriptions. :func:`spawn_layout` starts a child Python
process (this file run as a script) that maps every area at a 2 MiB-aligned address (spec
gotcha 8: whether an untouched page is a PMD hole or a ``pte_none`` depends on its 2 MiB
neighbourhood), puts its pages into the described states, prints the addresses as one JSON
line and then blocks, quiescent, reading stdin until the parent closes it.

Page sets (``write=``, ``read=`` ...) are lists whose items are a page index ``i``, a
``[lo, hi]`` range or a ``[lo, hi, step]`` range, relative to the area start.

Order of operations in the child, per area: map -> MADV_HUGEPAGE -> write -> read ->
uffd register + arm -> write_after_arm -> read_after_arm -> dontneed -> pageout -> guard ->
MADV_NOHUGEPAGE (so khugepaged cannot collapse anything while the tests look).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

PAGE = os.sysconf("SC_PAGE_SIZE")
PMD = 2 << 20
PMD_PAGES = PMD // PAGE

PageSet = Sequence[int | Sequence[int]]

KINDS = ("anon", "shared", "file_private", "file_shared", "memfd", "devzero")


@dataclass
class Area:
    """One mapping of a layout and what happens to its pages."""

    name: str
    pages: int
    kind: str = "anon"
    """anon (private anonymous), shared (MAP_SHARED anonymous = shmem), file_private,
    file_shared (a real file in ``file_dir``), memfd (MAP_SHARED memfd), devzero (a private
    mapping of /dev/zero: anonymous memory to the kernel, a file path in maps)."""
    huge: bool = False
    """MADV_HUGEPAGE before faulting (THP); frozen with MADV_NOHUGEPAGE at the end."""
    write: PageSet = ()
    read: PageSet = ()
    uffd: bool = False
    """Register the whole area for async uffd-WP and arm it (write-protect everything)."""
    write_after_arm: PageSet = ()
    read_after_arm: PageSet = ()
    dontneed: PageSet = ()
    pageout: PageSet = ()
    """MADV_PAGEOUT: really swapped only while a swap device is on (the ``swapfile`` fixture)."""
    guard: PageSet = ()
    """MADV_GUARD_INSTALL (102) guard pages."""
    gap_before: bool = True
    """Leave at least 2 MiB unmapped before this area; False makes it adjacent to the previous
    one (which must then end on a 2 MiB boundary to be truly adjacent)."""
    prot: str = "rw"


@dataclass
class Layout:
    """A running child process holding a layout."""

    proc: subprocess.Popen
    areas: dict[str, tuple[int, int]] = field(default_factory=dict)
    span: tuple[int, int] = (0, 0)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def range(self, name: str) -> tuple[int, int]:
        return self.areas[name]

    def do(self, op: str, area: str, pages: PageSet) -> None:
        """Make the child ``write``/``read`` pages of an area, or madvise them (``dontneed``,
        ``pageout``, ``guard``); returns when it is done and quiescent again.
        """
        self.proc.stdin.write(json.dumps({"op": op, "area": area, "pages": list(pages)}) + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        if reply != "ok\n":
            raise RuntimeError(f"layout child failed on {op} {area}: {self.proc.stderr.read()}")

    def close(self) -> None:
        _reap(self.proc)


def _reap(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


@contextlib.contextmanager
def spawn_layout(
    areas: Sequence[Area], *, file_dir: str | None = None, timeout: float = 60.0
) -> Iterator[Layout]:
    """Start a child holding ``areas``; yield a :class:`Layout`; kill and reap it on exit."""
    for a in areas:
        if a.kind not in KINDS:
            raise ValueError(f"area {a.name}: kind must be one of {KINDS}, got {a.kind!r}")
        if a.kind.startswith("file") and file_dir is None:
            raise ValueError(f"area {a.name}: file mappings need file_dir")
    spec = {"areas": [asdict(a) for a in areas], "file_dir": file_dir}
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else ""
        if not line:
            if proc.poll() is None:  # (silent past the timeout)
                proc.kill()
            _, err = proc.communicate(timeout=5)  # (before _reap closes the pipes)
            _reap(proc)
            raise RuntimeError(f"layout child failed: {err}")
        info = json.loads(line)
        layout = Layout(
            proc,
            {k: tuple(v) for k, v in info["areas"].items()},
            tuple(info["span"]),
        )
        yield layout
    finally:
        _reap(proc)


# -- layouts shared by the kernel-layer tests ---------------------------------------------------

# Every page state the ioctl distinguishes without swap, each area 2 MiB aligned.
RICH = [
    Area("alt", 2048, write=[[0, 2048, 2]]),  # 2048 regions: > 512 (stale walk_end, §3.4)
    Area("thp", 1024, huge=True, write=[0], read=[600]),  # a THP and a huge zero page
    Area("hole", 1024),  # untouched: PMD holes
    Area("zero", 64, read=[[0, 32]], write=[40]),  # 4 KiB zero pages, then pte_none
    Area("shared", 64, kind="shared", write=[[0, 16]], read=[[30, 34]]),
    Area("memfd", 16, kind="memfd", write=[1]),
    Area("fpriv", 64, kind="file_private", read=[0], write=[20]),
    Area("fshared", 64, kind="file_shared", read=[40], write=[2]),
    Area("guard", 64, write=[[0, 64]], guard=[[4, 8], 20, [30, 40, 2]]),
    Area(
        "uffd",
        256,
        uffd=True,
        write=[[0, 128]],
        write_after_arm=[3, 50, [100, 110]],
        read_after_arm=[200],
    ),
    Area("adj_a", 512, write=[[0, 512]]),
    Area("adj_b", 512, kind="file_private", read=[[0, 512, 16]], gap_before=False),
    Area("noaccess", 16, prot=""),
]

# A private /dev/zero mapping: the huge zero page (a read THP fault), a THP, 4 KiB zero pages.
DEVZERO = [
    Area("dz", 1536, kind="devzero", huge=True, read=[0, [1100, 1130]], write=[600]),
]

# Really swapped pages (needs the swapfile fixture), with and without a uffd-wp bit.
SWAP = [
    Area("swp", 256, write=[[0, 256]], pageout=[[0, 128, 2], [200, 256]]),
    Area("swp_uffd", 64, write=[[0, 64]], uffd=True, write_after_arm=[[0, 8]], pageout=[[0, 64]]),
    Area("swp_guard", 64, write=[[0, 64]], pageout=[[0, 32]], guard=[[40, 44]]),
]

# MADV_DONTNEED of a whole 2 MiB block: the page table stays (the fallback's documented miss).
DONTNEED = [Area("dn", 600, write=[[0, 600]], dontneed=[[10, 20], [512, 600]])]


# -- the child ----------------------------------------------------------------------------------


def _pages(spec: PageSet, n: int) -> list[int]:
    out: set[int] = set()
    for item in spec:
        if isinstance(item, int):
            out.add(item)
        else:
            out.update(range(*item))
    bad = [p for p in out if not 0 <= p < n]
    if bad:
        raise ValueError(f"pages {bad[:5]} outside the area of {n} pages")
    return sorted(out)


def _runs(pages: list[int]) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) runs of sorted page indices."""
    runs: list[tuple[int, int]] = []
    for p in pages:
        if runs and runs[-1][1] == p:
            runs[-1] = (runs[-1][0], p + 1)
        else:
            runs.append((p, p + 1))
    return runs


def _child(spec: dict) -> None:  # pragma: no cover - runs in the child
    import ctypes
    import mmap

    import numpy as np

    from pmviz._kernel import uffd

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

    MAP_FIXED, MAP_NORESERVE = 0x10, 0x4000
    MADV = {
        "dontneed": 4,
        "hugepage": 14,
        "nohugepage": 15,
        "pageout": 21,
        "guard": 102,
    }
    PROT = {"": 0, "r": 1, "rw": 3}

    def check(ok: bool, what: str) -> None:
        if not ok:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    def madvise(addr: int, runs: list[tuple[int, int]], advice: str) -> None:
        for lo, hi in runs:
            rc = libc.madvise(addr + lo * PAGE, (hi - lo) * PAGE, MADV[advice])
            check(rc == 0, f"madvise({advice})")

    areas = [dict(a) for a in spec["areas"]]
    offsets, off = [], 0
    for a in areas:
        if a["gap_before"] and off:
            off += PMD
        offsets.append(off)
        size = a["pages"] * PAGE
        off += -(-size // PMD) * PMD
    total = off + PMD
    # One PROT_NONE reservation, 2 MiB aligned, then each area MAP_FIXED over its slot; the
    # slack is unmapped again so that only the areas remain.
    raw = libc.mmap(
        None, total + PMD, 0, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE, -1, 0
    )
    check(raw not in (None, ctypes.c_void_p(-1).value), "mmap reserve")
    base = -(-raw // PMD) * PMD
    libc.munmap(raw, total + PMD)

    keep: list[object] = []  # fds and mmaps that must outlive the blocking read
    ufd = None
    result = {}
    for a, o in zip(areas, offsets):
        n = a["pages"]
        size = n * PAGE
        addr = base + o
        prot = PROT[a["prot"]]
        flags = MAP_FIXED
        fd = -1
        if a["kind"] == "anon":
            flags |= mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
        elif a["kind"] == "shared":
            flags |= mmap.MAP_SHARED | mmap.MAP_ANONYMOUS
        elif a["kind"] == "devzero":
            fd = os.open("/dev/zero", os.O_RDWR)
            flags |= mmap.MAP_PRIVATE
        elif a["kind"] == "memfd":
            fd = os.memfd_create(f"pmviz-{a['name']}")
            os.ftruncate(fd, size)
            flags |= mmap.MAP_SHARED
        else:
            path = os.path.join(spec["file_dir"], f"{a['name']}.bin")
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.write(fd, bytes(range(256)) * (size // 256))
            flags |= mmap.MAP_SHARED if a["kind"] == "file_shared" else mmap.MAP_PRIVATE
        if fd >= 0:
            keep.append(fd)
        got = libc.mmap(addr, size, prot, flags, fd, 0)
        check(got == addr, f"mmap {a['name']}")
        view = np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(addr))
        idx = lambda key: np.asarray(_pages(a[key], n), dtype=np.int64) * PAGE  # noqa: E731
        if a["huge"]:
            madvise(addr, [(0, n)], "hugepage")
        view[idx("write")] = 0x5A
        int(view[idx("read")].sum())  # read faults: the zero page for untouched anon memory
        if a["uffd"]:
            if ufd is None:
                ufd = uffd.create()
                uffd.api(ufd)
            uffd.register_wp(ufd, addr, size)
            uffd.writeprotect(ufd, addr, size, True)
        view[idx("write_after_arm")] = 0xA5
        int(view[idx("read_after_arm")].sum())
        madvise(addr, _runs(_pages(a["dontneed"], n)), "dontneed")
        madvise(addr, _runs(_pages(a["pageout"], n)), "pageout")
        madvise(addr, _runs(_pages(a["guard"], n)), "guard")
        if a["huge"]:
            madvise(addr, [(0, n)], "nohugepage")
        result[a["name"]] = [addr, addr + size]
    if ufd is not None:
        keep.append(ufd)
    lo = min(v[0] for v in result.values())
    hi = max(v[1] for v in result.values())
    sys.stdout.write(json.dumps({"areas": result, "span": [lo, hi]}) + "\n")
    sys.stdout.flush()
    views = {a["name"]: (result[a["name"]][0], a["pages"]) for a in areas}
    # Quiescent until the parent sends a command (one JSON line) or closes our stdin.
    for line in sys.stdin:
        cmd = json.loads(line)
        addr, n = views[cmd["area"]]
        pages = _pages(cmd["pages"], n)
        view = np.ctypeslib.as_array((ctypes.c_uint8 * (n * PAGE)).from_address(addr))
        if cmd["op"] == "write":
            view[np.asarray(pages, dtype=np.int64) * PAGE] = 0x3C
        elif cmd["op"] == "read":
            int(view[np.asarray(pages, dtype=np.int64) * PAGE].sum())
        else:
            madvise(addr, _runs(pages), cmd["op"])
        sys.stdout.write("ok\n")
        sys.stdout.flush()


if __name__ == "__main__":  # pragma: no cover
    _child(json.loads(sys.argv[1]))


def random_areas(draw, *, swap: bool = False) -> list[Area]:
    """A hypothesis-drawn layout (``draw`` from ``st.composite``): 1-4 areas of every kind.

    No MADV_DONTNEED and no paging out of shmem or file pages (both leave emptied page
    tables: the fallback's documented WRITTEN miss); MADV_PAGEOUT of anonymous memory only
    when ``swap`` (a swap device must be on for it to mean anything).
    """
    from hypothesis import strategies as st

    def page_set(n: int) -> list:
        spans = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 64)), max_size=4))
        step = draw(st.sampled_from([1, 1, 2, 3]))
        return [[lo, min(n, lo + length), step] for lo, length in spans]

    areas = []
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["anon", "anon", "shared", "memfd", "file_private", "devzero"]))
        n = draw(st.sampled_from([1, 7, 64, 511, 512, 513, 1024]))
        areas.append(
            Area(
                f"r{i}",
                n,
                kind=kind,
                huge=kind in ("anon", "devzero") and n >= 512 and draw(st.booleans()),
                write=page_set(n),
                read=page_set(n),
                uffd=kind in ("anon", "shared") and draw(st.booleans()),
                write_after_arm=page_set(n),
                # Paged-out shmem/file pages become pte_none, not swap entries (spec gotcha 9).
                pageout=page_set(n) if swap and kind == "anon" else [],
                guard=page_set(n) if kind == "anon" and draw(st.booleans()) else [],
                gap_before=draw(st.booleans()) or i == 0,
            )
        )
    return areas
