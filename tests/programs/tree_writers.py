"""A process tree of known writers, for recording with scope="tree" (tests/test_session.py).

    python3 tree_writers.py DIR

root ── A (fork) ── G (fork of A)
     └─ B (fork; writes DIR/ready-Bpre.json, waits for DIR/exec, then execs this file as
           "--exec-child")

Every process maps a private anonymous buffer of BUF_PAGES pages; root and A (and G, through
A) share a memfd of SHM_PAGES pages mapped MAP_SHARED. Each process, once its memory is mapped,
writes DIR/ready-ROLE.json ({"pid", "buf", "shm"}), waits for DIR/go, writes exactly the pages
of WRITES[ROLE] (and SHM_WRITES[ROLE] of the memfd), writes DIR/done-ROLE, waits for DIR/end,
then exits with EXIT[ROLE] (parents reap their children first). Nothing touches the buffers
before DIR/go: their written sets must be exactly these pages.
"""

from __future__ import annotations

import json
import mmap
import os
import sys
import time

BUF_PAGES = 64
SHM_PAGES = 16
PAGE = mmap.PAGESIZE
WRITES = {"root": [0, 5, 6, 7], "A": [1, 10, 11], "G": [2, 20], "B": [3, 4, 30]}
# pages 2 and 3 of the memfd have two writers each: in both written sets, counted once
SHM_WRITES = {"root": [2, 8, 9], "A": [0, 1, 2, 3], "G": [3], "B": []}
EXIT = {"root": 0, "A": 11, "G": 13, "B": 12}


def address(m: mmap.mmap) -> int:
    import ctypes

    return ctypes.addressof(ctypes.c_char.from_buffer(m))


def wait_for(path: str) -> None:
    while not os.path.exists(path):
        time.sleep(0.005)


def run(role: str, d: str, buf: mmap.mmap, shm: mmap.mmap | None) -> None:
    ready = {"pid": os.getpid(), "buf": address(buf), "shm": address(shm) if shm else None}
    tmp = os.path.join(d, f".ready-{role}")
    with open(tmp, "w") as f:
        json.dump(ready, f)
    os.rename(tmp, os.path.join(d, f"ready-{role}.json"))
    wait_for(os.path.join(d, "go"))
    for p in WRITES[role]:
        buf[p * PAGE] = 1
    if shm is not None:
        for p in SHM_WRITES[role]:
            shm[p * PAGE] = 1
    open(os.path.join(d, f"done-{role}"), "w").close()
    wait_for(os.path.join(d, "end"))


def main() -> None:
    if sys.argv[1] == "--exec-child":
        d = sys.argv[2]
        buf = mmap.mmap(-1, BUF_PAGES * PAGE, flags=mmap.MAP_PRIVATE)
        run("B", d, buf, None)
        os._exit(EXIT["B"])
    d = sys.argv[1]
    buf = mmap.mmap(-1, BUF_PAGES * PAGE, flags=mmap.MAP_PRIVATE)
    fd = os.memfd_create("tree-writers-shm")
    os.ftruncate(fd, SHM_PAGES * PAGE)
    shm = mmap.mmap(fd, SHM_PAGES * PAGE, flags=mmap.MAP_SHARED)
    a = os.fork()
    if a == 0:
        g = os.fork()
        if g == 0:
            run("G", d, buf, shm)
            os._exit(EXIT["G"])
        run("A", d, buf, shm)
        os.waitpid(g, 0)
        os._exit(EXIT["A"])
    b = os.fork()
    if b == 0:
        with open(os.path.join(d, ".ready-Bpre"), "w") as f:
            json.dump({"pid": os.getpid()}, f)
        os.rename(os.path.join(d, ".ready-Bpre"), os.path.join(d, "ready-Bpre.json"))
        wait_for(os.path.join(d, "exec"))
        os.execv(sys.executable, [sys.executable, os.path.abspath(__file__), "--exec-child", d])
    run("root", d, buf, shm)
    os.waitpid(a, 0)
    os.waitpid(b, 0)
    sys.exit(EXIT["root"])


if __name__ == "__main__":
    main()
