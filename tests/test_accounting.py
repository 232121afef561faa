"""pmviz.accounting on a real process tree: figures equal smaps_rollup's, sharing counted once."""

from __future__ import annotations

import contextlib
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest
from privileges import as_nobody

from pmviz._kernel import pagemap as pm
from pmviz._kernel import pagemap_scan as pms
from pmviz._kernel.smaps import parse_rollup, read_rollup
from pmviz.accounting import EXCLUSIVE, UNKNOWN, account, identify, written_attribution
from pmviz.errors import AccessDenied
from pmviz.maps import read_maps
from pmviz.regions import Regions

pytestmark = pytest.mark.kernel

PAGE = mmap.PAGESIZE
PROGRAM = os.path.join(os.path.dirname(__file__), "programs", "shared_tree.py")
SIZES = {"anon": 64, "memfd": 32, "shared_file": 16, "private_file": 8, "thp": 1536}
NOBODY = 65534


class Tree:
    """The running shared_tree.py: pids by role and the address of each mapping."""

    def __init__(self, proc: subprocess.Popen, lines: list[list[str]]) -> None:
        self.proc = proc
        self.pid = {line[0]: int(line[1]) for line in lines}
        self.addr = dict(zip(SIZES, (int(a) for a in lines[0][2:])))

    @property
    def pids(self) -> list[int]:
        return [self.pid["parent"], self.pid["child1"], self.pid["child2"]]

    def pages(self, name: str, first: int = 0, last: int | None = None) -> tuple[int, int]:
        """Virtual page numbers ``[lo, hi)`` of pages [first, last) of a mapping."""
        base = self.addr[name] // PAGE
        return base + first, base + (SIZES[name] if last is None else last)


@contextlib.contextmanager
def run_tree(user: int | None = None):
    d = tempfile.mkdtemp(prefix="pmviz-tree-")
    os.chmod(d, 0o777)
    kwargs: dict = {}
    python, program = sys.executable, PROGRAM
    if user is not None:
        # Another user may not reach this interpreter or checkout: the program needs only
        # the standard library, so run the system's python on a copy in the scratch dir.
        kwargs = {"user": user, "group": user, "extra_groups": []}
        python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
        program = shutil.copy(PROGRAM, d)
        os.chmod(program, 0o644)
    proc = subprocess.Popen(
        [python, program, d],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        **kwargs,
    )
    try:
        lines = []
        while (line := proc.stdout.readline().split()) != ["ready"]:
            assert line, "shared_tree.py exited early"
            lines.append(line)
        yield Tree(proc, lines)
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        shutil.rmtree(d)


@pytest.fixture(scope="module")
def tree():
    with run_tree() as t:
        yield t


def _rollup_figures(pid: int) -> dict[str, int]:
    r = read_rollup(pid)
    return {
        "rss_bytes": r["Rss"],
        "pss_kb": r["Pss"] // 1024,
        "uss_bytes": r["Private_Clean"] + r["Private_Dirty"],
        "shared_bytes": r["Shared_Clean"] + r["Shared_Dirty"],
        "swap_bytes": r["Swap"],
    }


def _our_figures(row: dict) -> dict[str, int]:
    return {
        "rss_bytes": row["rss_bytes"],
        "pss_kb": row["pss_bytes"] // 1024,
        "uss_bytes": row["uss_bytes"],
        "shared_bytes": row["shared_bytes"],
        "swap_bytes": row["swap_bytes"],
    }


def _keys_in(ids, pid: int, lo: int, hi: int) -> np.ndarray:
    p = next(p for p in ids.processes if p.pid == pid)
    sel = (p.pages >= lo) & (p.pages < hi)
    return p.keys[sel]


def _distinct_pfns(pids: list[int]) -> int:
    """Independently: every present page's PFN of every process, by the classic pagemap."""
    pfns: set[int] = set()
    zero = None
    for pid in pids:
        vmas = read_maps(pid)
        with open(f"/proc/{pid}/pagemap", "rb") as f:
            for i in range(len(vmas)):
                if vmas.paths[i] in ("[vvar]", "[vvar_vclock]"):
                    continue
                start, end = int(vmas.start[i]), int(vmas.end[i])
                f.seek(start // PAGE * 8)
                e = np.frombuffer(f.read((end - start) // PAGE * 8), dtype=np.uint64)
                e = e[(e & np.uint64(pm.PM_PRESENT)) != 0] & np.uint64(pm.PM_PFN_MASK)
                pfns.update(e.tolist())
    with open("/proc/kpageflags", "rb") as f:  # the shared zero page is not in Rss
        for pfn in list(pfns):
            f.seek(pfn * 8)
            if int.from_bytes(f.read(8), "little") >> 24 & 1:  # KPF_ZERO_PAGE
                zero = pfn
    return len(pfns) - (zero is not None)


def _agreeing(measure, pids: list[int], rows=lambda result: result):
    """``measure()`` and the smaps_rollup figures it agrees with, read while they stood still.

    A library page's map count changes whenever any process on the machine maps or unmaps
    that library, and a loaded test machine starts hundreds of processes a second: a count
    can rise and fall back within one reading, which comparing the rollup before and after
    cannot see. So the reading is retried until it agrees with a rollup that stood still. A
    systematic error never agrees: the test then fails with the last difference.
    """
    last = None
    for _ in range(40):
        before = {pid: _rollup_figures(pid) for pid in pids}
        result = measure()
        if before == {pid: _rollup_figures(pid) for pid in pids}:
            ours = {row["pid"]: _our_figures(row) for row in rows(result)}
            if ours == before:
                return result, before
            last = {pid: (ours[pid], before[pid]) for pid in ours if ours[pid] != before[pid]}
        time.sleep(0.05)
    pytest.fail(f"never agreed with a steady smaps_rollup in 40 tries; last (ours, kernel): {last}")


@pytest.mark.root
def test_pfn_figures_equal_smaps_rollup(tree):
    table, rollups = _agreeing(
        lambda: account(tree.pids, mode="pfn", page_size=PAGE), tree.pids, lambda t: t.to_pylist()
    )
    assert table.schema.metadata[b"mode"] == b"pfn"
    rows = table.to_pylist()
    assert [r["pid"] for r in rows] == tree.pids
    for row in rows:
        # Exact: RSS, private, shared and swap to the byte; PSS in the kernel's kB (its
        # fixed-point sum >> 12 is our byte value; smaps_rollup prints that >> 10).
        assert _our_figures(row) == rollups[row["pid"]]
        assert row["unknown_bytes"] == 0 and row["reason"] == ""


@pytest.mark.root
def test_huge_pages_shared_after_fork_are_counted_per_page(tree):
    """PMD-mapped THPs shared copy-on-write by three processes, one split in child 2's copy:
    PSS and private/shared still follow each 4 KiB page's map count, as smaps does."""
    rollups = {pid: read_rollup(pid) for pid in tree.pids}
    if rollups[tree.pid["parent"]].get("AnonHugePages", 0) == 0:
        pytest.skip("no transparent huge page formed (THP disabled or memory fragmented)")
    ids = identify(tree.pids, mode="pfn")
    keys = [_keys_in(ids, pid, *tree.pages("thp")) for pid in tree.pids]
    # one page differs: child 2 wrote page 600 and got its own copy
    assert (keys[0] != keys[2]).sum() == 1 and np.array_equal(keys[0], keys[1])
    test_pfn_figures_equal_smaps_rollup(tree)


@pytest.mark.root
def test_pfn_tree_total_is_the_number_of_distinct_pfns(tree):
    table = account(tree.pids, mode="pfn")
    total = sum(table.column("counted_bytes").to_pylist())
    assert total == _distinct_pfns(tree.pids) * PAGE
    naive = sum(table.column("rss_bytes").to_pylist())
    assert total < naive


@pytest.mark.root
def test_pfn_identifies_each_kind_of_sharing(tree):
    ids = identify(tree.pids, mode="pfn")
    par, c1, c2 = tree.pids
    # memfd and the MAP_SHARED file: one set of pages for all three.
    for name in ("memfd", "shared_file", "private_file"):
        keys = [_keys_in(ids, pid, *tree.pages(name)) for pid in tree.pids]
        assert len(keys[0]) == SIZES[name]
        assert all(np.array_equal(keys[0], k) for k in keys[1:]), name
    # anon after fork: child 1 copied pages [0, 16), child 2 [8, 24): 64 + 16 + 16 distinct.
    anon = [_keys_in(ids, pid, *tree.pages("anon")) for pid in tree.pids]
    assert len(np.unique(np.concatenate(anon))) == 64 + 16 + 16
    assert np.array_equal(anon[0][24:], anon[1][24:]) and np.array_equal(anon[0][24:], anon[2][24:])
    assert not np.intersect1d(anon[1][:16], anon[0]).size
    assert not np.intersect1d(anon[2][8:24], np.concatenate([anon[0], anon[1]])).size


def _written(tree) -> dict[int, Regions]:
    def regions(*spans):
        lo = [tree.pages(n, a, b)[0] * PAGE for n, a, b in spans]
        hi = [tree.pages(n, a, b)[1] * PAGE for n, a, b in spans]
        order = np.argsort(lo)
        return Regions.from_arrays(np.array(lo)[order], np.array(hi)[order], 2)

    par, c1, c2 = tree.pids
    return {
        par: regions(("memfd", 0, 32), ("shared_file", 0, 16), ("anon", 0, 64)),
        c1: regions(("anon", 0, 16), ("memfd", 0, 8)),
        c2: regions(("anon", 8, 24), ("memfd", 4, 12), ("shared_file", 0, 4)),
    }


@pytest.mark.parametrize("mode", ["pfn", "inode"])
def test_shared_written_pages_are_every_writers(tree, mode):
    if mode == "pfn" and os.geteuid() != 0:
        pytest.skip("pfn mode needs root")
    ids = identify(tree.pids, mode=mode)
    w = written_attribution(_written(tree), ids)
    assert w["pid"].tolist() == tree.pids
    assert w["written_bytes"].tolist() == [(32 + 16 + 64) * PAGE, 24 * PAGE, 28 * PAGE]
    # memfd pages [0, 12) have two writers or more, shared_file [0, 4) two; the anonymous
    # pages each child wrote are its own copies (copy-on-write), never shared-written.
    assert w["shared_written_bytes"].tolist() == [16 * PAGE, 8 * PAGE, 12 * PAGE]
    table = account(tree.pids, mode=mode, written=_written(tree))
    assert table.column("shared_written_bytes").to_pylist() == [16 * PAGE, 8 * PAGE, 12 * PAGE]


def _agrees_inode(row: dict, r: dict) -> bool:
    return (
        row["rss_bytes"] == r["Rss"]
        and row["uss_bytes"] == r["Private_Clean"] + r["Private_Dirty"]
        and row["shared_bytes"] == r["Shared_Clean"] + r["Shared_Dirty"]
        and row["pss_bytes"] == r["Pss"]
        and row["swap_bytes"] == r["Swap"]
    )


def _inode_result(pids_and_addr: str) -> str:
    """In a nobody child: account + identities in inode mode, and the pfn-mode error."""
    import json

    from pmviz.accounting import account, identify

    pids = [int(p) for p in pids_and_addr.split(",")]
    for _ in range(40):  # see _agreeing: a reading that agrees with a steady rollup
        rollups = {str(pid): open(f"/proc/{pid}/smaps_rollup").read() for pid in pids}
        table = account(pids, mode="inode")
        if rollups == {str(pid): open(f"/proc/{pid}/smaps_rollup").read() for pid in pids}:
            if all(
                _agrees_inode(r, parse_rollup(rollups[str(r["pid"])])) for r in table.to_pylist()
            ):
                break
        time.sleep(0.05)
    ids = identify(pids, mode="inode")
    try:
        account(pids, mode="pfn")
        pfn_error = ""
    except AccessDenied as err:
        pfn_error = str(err)
    try:
        account([1], mode="inode")  # init: another user's process
        other_error = ""
    except AccessDenied as err:
        other_error = str(err)
    per = {str(p.pid): {"pages": p.pages.tolist(), "keys": p.keys.tolist()} for p in ids.processes}
    return json.dumps(
        {
            "rows": table.to_pylist(),
            "ids": per,
            "pfn_error": pfn_error,
            "other_error": other_error,
            "rollups": rollups,
            "auto": account(pids).schema.metadata[b"mode"].decode(),
        }
    )


def test_inode_mode_as_nobody_names_file_pages_and_flags_cow(tmp_path):
    import json

    with run_tree(user=NOBODY if os.geteuid() == 0 else None) as t:
        arg = ",".join(map(str, t.pids))
        _inode_result(arg)  # once as root: every module it needs is loaded before the fork
        kind, out = as_nobody(lambda: _inode_result(arg))  # (nobody cannot read site-packages)
        assert kind == "ok", out
        res = json.loads(out)
    assert res["auto"] == "inode"
    assert "CAP_SYS_ADMIN" in res["pfn_error"] and "mode='inode'" in res["pfn_error"]
    assert "CAP_SYS_PTRACE" in res["other_error"]
    for row in res["rows"]:
        r = parse_rollup(res["rollups"][str(row["pid"])])
        assert row["mode"] == "inode"
        assert row["rss_bytes"] == r["Rss"]
        assert row["uss_bytes"] == r["Private_Clean"] + r["Private_Dirty"]
        assert row["shared_bytes"] == r["Shared_Clean"] + r["Shared_Dirty"]
        assert row["pss_bytes"] == r["Pss"] and row["swap_bytes"] == r["Swap"]
        assert row["unknown_bytes"] > 0 and "CAP_SYS_ADMIN" in row["reason"]

    def keys(pid, name, first=0, last=None):
        p = res["ids"][str(pid)]
        lo, hi = t.pages(name, first, last)
        pages, k = np.array(p["pages"]), np.array(p["keys"])
        return k[(pages >= lo) & (pages < hi)]

    par, c1, c2 = t.pids
    for name in ("memfd", "shared_file", "private_file"):  # file pages: the same keys
        k = [keys(pid, name) for pid in t.pids]
        assert len(k[0]) == SIZES[name] and (k[0] >= 0).all()
        assert all(np.array_equal(k[0], x) for x in k[1:]), name
    # anon: a page each child copied is exclusive; one still shared after fork is unknown.
    assert (keys(par, "anon", 8, 16) == EXCLUSIVE).all()
    assert (keys(par, "anon", 0, 8) == UNKNOWN).all() and (keys(par, "anon", 16) == UNKNOWN).all()
    assert (keys(c1, "anon", 0, 16) == EXCLUSIVE).all() and (keys(c1, "anon", 16) == UNKNOWN).all()
    assert (keys(c2, "anon", 8, 24) == EXCLUSIVE).all()
    assert (keys(c2, "anon", 0, 8) == UNKNOWN).all() and (keys(c2, "anon", 24) == UNKNOWN).all()
    # Counted once: the shared mappings' pages count only for the parent (first in order).
    rows = {r["pid"]: r for r in res["rows"]}
    shared_pages = SIZES["memfd"] + SIZES["shared_file"] + SIZES["private_file"]
    assert rows[par]["tree_shared_bytes"] >= shared_pages * PAGE
    assert rows[c1]["counted_bytes"] + rows[c1]["unknown_bytes"] < rows[c1]["rss_bytes"]


SWAPPER = textwrap.dedent(
    """
    import mmap, sys
    m = mmap.mmap(-1, 64 * mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for p in range(64):
        m[p * mmap.PAGESIZE] = 1
    m.madvise(21, 0, 32 * mmap.PAGESIZE)  # MADV_PAGEOUT (Linux >= 5.4)
    print("ready", flush=True)
    sys.stdin.read()
    """
)


@pytest.mark.root
def test_swap_equals_smaps_rollup(swapfile):
    proc = subprocess.Popen(
        [sys.executable, "-c", SWAPPER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        for _ in range(50):  # reclaim writes back asynchronously
            if read_rollup(proc.pid)["Swap"] >= 32 * PAGE:
                break
            time.sleep(0.1)
        rows, rollups = _agreeing(lambda: account([proc.pid], mode="pfn").to_pylist(), [proc.pid])
        row = rows[0]
        assert row["swap_bytes"] >= 32 * PAGE
        assert _our_figures(row) == rollups[proc.pid]
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def test_exited_process_is_left_out_and_bad_arguments_fail_clearly():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    table = account([os.getpid(), proc.pid])
    assert table.column("pid").to_pylist() == [os.getpid()]
    with pytest.raises(ValueError, match="'auto', 'pfn' or 'inode'"):
        account([os.getpid()], mode="pfns")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="page_size"):
        account([os.getpid()], page_size=pms.PAGE_SIZE * 2)


ZERO_READER = textwrap.dedent(
    """
    import mmap, sys
    m = mmap.mmap(-1, 32 * mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    total = sum(m[p * mmap.PAGESIZE] for p in range(32))  # read only: the zero page
    print("ready", m.find(b"x"), total, flush=True)
    sys.stdin.read()
    """
)


@pytest.mark.root
def test_classic_pagemap_path_drops_zero_pages_by_kpageflags(tree, monkeypatch):
    """Without PAGEMAP_SCAN (Linux < 6.7) every mapped page is read from the classic pagemap
    and the zero page is told by KPF_ZERO_PAGE: the figures still equal smaps_rollup's."""
    import types

    import pmviz.accounting as acc

    proc = subprocess.Popen(
        [sys.executable, "-c", ZERO_READER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout.readline().startswith("ready")
        pids = [proc.pid, *tree.pids]
        scan_rows, _ = _agreeing(lambda: account(pids, mode="pfn").to_pylist(), pids)
        monkeypatch.setattr(acc, "features", lambda: types.SimpleNamespace(pagemap_scan=False))
        rows, rollups = _agreeing(lambda: account(pids, mode="pfn").to_pylist(), pids)
        for row in rows:
            assert _our_figures(row) == rollups[row["pid"]]
        counted = [r["counted_bytes"] for r in rows]
        assert counted == [r["counted_bytes"] for r in scan_rows]
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
