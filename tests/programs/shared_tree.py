"""A process tree with known sharing, for the accounting tests.

Usage: ``python3 shared_tree.py DIR`` (DIR: a scratch directory for the files).

The parent maps, before forking two children:
- ``anon``: 64 private anonymous pages, all written (copy-on-write shared after fork);
- ``memfd``: 32 pages of a memfd, ``MAP_SHARED``, all written;
- ``shared_file``: 16 pages of DIR/shared.bin, ``MAP_SHARED``, all written;
- ``private_file``: 8 pages of DIR/private.bin, ``MAP_PRIVATE``, read only;
- ``thp``: 6 MiB of anonymous memory with ``MADV_HUGEPAGE``, all written (huge pages where
  THP is enabled, shared copy-on-write after fork).
Each child reads every page of the three file mappings (shared mappings are not copied at
fork: a child maps what it touches), then child 1 writes anon pages [0, 16) (its own copies)
and memfd pages [0, 8); child 2 writes anon pages [8, 24), memfd pages [4, 12), shared_file
pages [0, 4) and thp page 600 (splitting that huge page in its copy).
Each process prints one line ``ROLE PID`` and the address of each mapping, in SIZES order;
the parent prints ``ready`` when all are set up; then everything waits until stdin closes.
"""

from __future__ import annotations

import mmap
import os
import sys

PAGE = mmap.PAGESIZE
SIZES = {"anon": 64, "memfd": 32, "shared_file": 16, "private_file": 8, "thp": 1536}
CHILD_WRITES = {
    1: {"anon": (0, 16), "memfd": (0, 8)},
    2: {"anon": (8, 24), "memfd": (4, 12), "shared_file": (0, 4), "thp": (600, 601)},
}


def _write(m: mmap.mmap, first: int, last: int, value: int) -> None:
    for p in range(first, last):
        m[p * PAGE] = value
        m[p * PAGE + PAGE - 1] = value


def _addr(m: mmap.mmap) -> int:
    import ctypes

    return ctypes.addressof(ctypes.c_char.from_buffer(m))


def main() -> None:
    d = sys.argv[1]
    anon = mmap.mmap(-1, SIZES["anon"] * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    _write(anon, 0, SIZES["anon"], 1)
    # 6 MiB asking for transparent huge pages: its aligned 2 MiB parts fault in as PMD-mapped
    # THPs (where THP is enabled), shared copy-on-write after fork; child 2's write splits one.
    thp = mmap.mmap(-1, SIZES["thp"] * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        thp.madvise(mmap.MADV_HUGEPAGE)
    _write(thp, 0, SIZES["thp"], 1)
    mfd = os.memfd_create("pmviz-test-shared")
    os.ftruncate(mfd, SIZES["memfd"] * PAGE)
    memfd = mmap.mmap(mfd, SIZES["memfd"] * PAGE, flags=mmap.MAP_SHARED)
    _write(memfd, 0, SIZES["memfd"], 1)
    files = {}
    for name in ("shared_file", "private_file"):
        path = os.path.join(d, name + ".bin")
        with open(path, "wb") as f:
            f.write(b"\x07" * SIZES[name] * PAGE)
        fd = os.open(path, os.O_RDWR)
        shared = name == "shared_file"
        files[name] = mmap.mmap(
            fd, SIZES[name] * PAGE, flags=mmap.MAP_SHARED if shared else mmap.MAP_PRIVATE
        )
        os.close(fd)
    _write(files["shared_file"], 0, SIZES["shared_file"], 1)
    for p in range(SIZES["private_file"]):  # read: page cache pages, mapped
        _ = files["private_file"][p * PAGE]
    maps = {"anon": anon, "memfd": memfd, **files, "thp": thp}
    addrs = " ".join(str(_addr(maps[k])) for k in SIZES)
    r, w = os.pipe()  # children report readiness through it
    children = []
    for role in (1, 2):
        pid = os.fork()
        if pid == 0:
            os.close(r)
            for name in ("memfd", "shared_file", "private_file"):  # map every page (read)
                for page in range(SIZES[name]):
                    _ = maps[name][page * PAGE]
            for name, (a, b) in CHILD_WRITES[role].items():
                _write(maps[name], a, b, 1 + role)
            os.write(w, f"child{role} {os.getpid()} {addrs}\n".encode())
            sys.stdin.read()
            os._exit(0)
        children.append(pid)
    os.close(w)
    lines = b""
    while lines.count(b"\n") < 2:
        lines += os.read(r, 4096)
    sys.stdout.write(f"parent {os.getpid()} {addrs}\n" + lines.decode() + "ready\n")
    sys.stdout.flush()
    sys.stdin.read()
    for pid in children:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
