"""Write tracking of unmodified programs by syscall injection, against real programs.

The C programs in ``tests/programs/`` print the exact pages they write per phase; the phases
are driven through a pipe, so every ``collect()`` falls between two phases while the program
sits in a blocking ``read``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import pmviz
from pmviz import injection
from pmviz.errors import AccessDenied, NoSuchProcess, PmvizWarning
from pmviz.regions import Regions

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("under_swap")]  # swap on, as root

PAGE = os.sysconf("SC_PAGE_SIZE")
PROGRAMS = os.path.join(os.path.dirname(__file__), "programs")

if not (pmviz.features().uffd_wp_async and os.uname().machine == "x86_64"):
    pytest.skip("needs x86-64 and userfaultfd async write-protect", allow_module_level=True)


@pytest.fixture(scope="module")
def bins(tmp_path_factory):
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    out = tmp_path_factory.mktemp("programs")
    paths = {}
    for name in ("phases", "threads", "signals"):
        exe = out / name
        subprocess.run(
            ["cc", "-O1", "-pthread", "-o", str(exe), os.path.join(PROGRAMS, f"{name}.c")],
            check=True,
        )
        paths[name] = str(exe)
    return paths


class Driven:
    """A phases/threads program on pipes: send commands, parse what it says it wrote."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.buffers: list[tuple[int, int]] = []
        self.noise = (0, 0)
        # Header: one "buf ADDR NPAGES" line per buffer (threads: then "noise ADDR NPAGES").
        n = 5 if os.path.basename(proc.args[-1]) == "threads" else 1
        for _ in range(n):
            kind, addr, npages = proc.stdout.readline().split()
            span = (int(addr, 16), int(addr, 16) + int(npages) * PAGE)
            if kind == "noise":
                self.noise = span
            else:
                self.buffers.append(span)

    def send(self, cmd: str) -> None:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def phase(self, k: int) -> set[int]:
        self.send(f"phase {k}")
        written: set[int] = set()
        while True:
            words = self.proc.stdout.readline().split()
            assert words, "program ended early"
            if words[0] == "map":
                lo = int(words[1], 16)
                self.buffers.append((lo, lo + int(words[2]) * PAGE))
            elif words[0] == "written":
                written = {int(w, 16) for w in words[1:]}
            elif words[0] == "done":
                assert int(words[1]) == k
                return written
            else:
                raise AssertionError(f"unexpected output {words}")

    def finish(self) -> str:
        self.send("sum")
        out = self.proc.stdout.readline().strip()
        assert self.proc.wait(timeout=10) == 0
        return out


def start(exe: str, launcher=subprocess.Popen):
    return launcher([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)


def pages(regions: Regions, spans) -> set[int]:
    out: set[int] = set()
    for lo, hi in spans:
        r = regions.clip(lo, hi)
        for s, e in zip(r.start.tolist(), r.end.tolist()):
            out.update(range(s, e, PAGE))
    return out


def in_spans(addrs: set[int], spans) -> set[int]:
    return {a for a in addrs if any(lo <= a < hi for lo, hi in spans)}


def untracked_checksum(exe: str, phases: int) -> str:
    d = Driven(start(exe))
    for k in range(phases):
        d.phase(k)
    return d.finish()


def assert_left_as_found(pid: int, fds_before: list[str] | None) -> None:
    status = open(f"/proc/{pid}/status").read()
    assert "TracerPid:\t0\n" in status
    state = status.split("State:\t")[1][0]
    assert state in "RS", state
    links = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:  # closed meanwhile
            pass
    assert "anon_inode:[userfaultfd]" not in links
    if fds_before is not None:
        assert sorted(os.listdir(f"/proc/{pid}/fd")) == fds_before
    flags = [
        ln for ln in open(f"/proc/{pid}/smaps").read().splitlines() if ln.startswith("VmFlags")
    ]
    assert not any(" uw" in ln for ln in flags), "a VMA is still registered with userfaultfd"


def run_phases(tracker, d: Driven, n: int) -> None:
    """Each phase's reported written set, within the program's buffers, equals the known one;
    whole-process collects contain every known page.
    """
    for k in range(n):
        known = d.phase(k)
        got = tracker.collect()
        assert in_spans(known, d.buffers) == known  # the program writes only its buffers
        assert pages(got, d.buffers) == known, f"phase {k}"
        assert known <= pages(got, [(0, 1 << 47)])
        assert got.categories.tolist() == [int(pmviz.Category.WRITTEN)] * len(got)


def test_attach_exact_sets_while_blocked_in_read(bins):
    expected = untracked_checksum(bins["phases"], 6)
    d = Driven(start(bins["phases"]))
    fds = sorted(os.listdir(f"/proc/{d.proc.pid}/fd"))
    time.sleep(0.05)  # let it reach read(0)
    assert open(f"/proc/{d.proc.pid}/wchan").read() in ("pipe_read", "anon_pipe_read")
    with injection.attach(d.proc.pid) as tracker:
        assert tracker.mechanism == "uffd-wp" and tracker.process is None
        assert isinstance(tracker, pmviz.tracking.WriteSource)
        assert sorted(os.listdir(f"/proc/{d.proc.pid}/fd")) == fds  # no fd left in the target
        assert "TracerPid:\t0\n" in open(f"/proc/{d.proc.pid}/status").read()
        assert pages(tracker.collect(), d.buffers) == set()  # blocked: nothing written
        run_phases(tracker, d, 6)
    assert_left_as_found(d.proc.pid, fds)
    assert d.finish() == expected


def test_launch_exact_sets_from_first_step(bins):
    expected = untracked_checksum(bins["phases"], 6)
    tracker = injection.track(
        [bins["phases"]], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    with tracker:
        d = Driven(tracker.process)
        startup = tracker.collect()
        assert startup.n_pages > 0  # ld.so, libc and stdio wrote before main's first printf
        assert pages(startup, d.buffers) == set()  # ... but not its buffer
        run_phases(tracker, d, 6)
        fds = sorted(os.listdir(f"/proc/{d.proc.pid}/fd"))
    assert_left_as_found(d.proc.pid, fds)
    assert d.finish() == expected
    assert tracker.wait() == 0 and not tracker.alive


def test_launch_matches_untracked_output(bins):
    """Byte-identical stdout (ASLR off so that printed addresses agree)."""
    cmd = ["setarch", "-R", bins["phases"]]
    script = "phase 0\nphase 1\nphase 2\nsleep\nsum\n"
    plain = subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=20)
    with injection.track(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as t:
        out, _ = t.process.communicate(script, timeout=20)
    assert t.process.returncode == plain.returncode == 0
    assert out == plain.stdout and "checksum" in out and "slept ok" in out


def test_attach_in_nanosleep_restarts_correctly(bins):
    d = Driven(start(bins["phases"]))
    d.send("sleep")
    time.sleep(0.1)
    assert open(f"/proc/{d.proc.pid}/wchan").read() == "hrtimer_nanosleep"
    with injection.attach(d.proc.pid):
        pass  # the injection interrupted nanosleep: -ERESTART_RESTARTBLOCK must restart
    assert d.proc.stdout.readline().strip() == "slept ok"
    d.finish()


def test_repeated_attach_detach_of_a_busy_program():
    """A program in a tight read/write syscall loop: many injections, identical output."""
    code = "import sys,hashlib\nh=hashlib.sha256()\nfor i in range(400000): h.update(str(i).encode())\nprint(h.hexdigest())"
    expected = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    n = 0
    while p.poll() is None and n < 30:
        try:
            with injection.attach(p.pid) as t:
                t.collect()
            n += 1
        except NoSuchProcess:
            break
    assert p.communicate(timeout=30)[0] == expected.stdout
    assert n > 3


def test_multithreaded_busy_target(bins):
    expected = untracked_checksum(bins["threads"], 4)
    d = Driven(start(bins["threads"]))
    time.sleep(0.05)
    with injection.attach(d.proc.pid) as tracker:
        for k in range(4):
            known = d.phase(k)
            time.sleep(0.05)  # give the busy thread CPU time on this 2-core box
            got = tracker.collect()
            assert pages(got, d.buffers) == known, f"phase {k}"
            assert pages(got, [d.noise]), (
                f"phase {k}: the busy thread writes are reported {d.noise}"
            )
        collector = []
        time.sleep(0.05)
        th = threading.Thread(target=lambda: collector.append(tracker.collect()))
        th.start()
        th.join()  # collect() from another thread
        assert pages(collector[0], [d.noise])
    assert d.finish() == expected  # also: no "error nanosleep" from the sleeping thread


def test_exec_is_tracked_again(bins):
    script = f"read x; exec {bins['phases']}"
    t = injection.track(
        ["sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    with t:
        t.collect()
        t.process.stdin.write("go\n")
        t.process.stdin.flush()
        d = Driven(t.process)  # the header comes from the exec'd program
        with pytest.warns(PmvizWarning, match="exec"):
            assert t.collect().n_pages == 0
        assert t.events and "exec" in t.events[0]
        run_phases(t, d, 3)
    d.finish()


def test_exit_is_reported(bins):
    t = injection.track([bins["phases"]], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    with t:
        t.process.communicate("sum\n", timeout=10)
        assert not t.alive
        with pytest.raises(NoSuchProcess):
            t.collect()
    t.close()  # idempotent


def test_sigkill_of_pmviz_leaves_target_running(bins):
    expected = untracked_checksum(bins["phases"], 3)
    d = Driven(start(bins["phases"]))
    fds = sorted(os.listdir(f"/proc/{d.proc.pid}/fd"))
    code = textwrap.dedent(f"""
        import os, signal, pmviz.injection
        t = pmviz.injection.attach({d.proc.pid})
        t.collect()
        print("armed", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    helper = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert helper.returncode == -signal.SIGKILL and "armed" in helper.stdout
    assert_left_as_found(d.proc.pid, fds)  # the kernel dropped the uffd with pmviz
    for k in range(3):
        d.phase(k)
    assert d.finish() == expected


def _traced_by_helper(pid: int) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import sys, time
        from pmviz._kernel import ptrace
        ptrace.seize({pid})
        print("seized", flush=True)
        sys.stdin.read()
    """)
    h = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert h.stdout.readline().strip() == "seized"
    return h


def test_already_traced_is_refused_and_falls_back(bins):
    d = Driven(start(bins["phases"]))
    helper = _traced_by_helper(d.proc.pid)
    try:
        with pytest.raises(AccessDenied, match="already traced by process"):
            injection.attach(d.proc.pid)
        source, reason = injection.open_write_source(d.proc.pid)
        assert source is None and reason.startswith("present/swapped-only recording")
        assert "already traced" in reason
    finally:
        helper.communicate("", timeout=10)
    d.phase(0)
    d.finish()


@pytest.mark.root
def test_other_users_process_names_capability(bins):
    if os.geteuid() != 0:
        pytest.skip("needs root to run a helper as another user")
    d = Driven(start(bins["phases"]))
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {os.path.dirname(os.path.dirname(pmviz.__file__))!r})
        import pmviz.injection
        pmviz.features()
        os.setgid(65534); os.setuid(65534)  # after the imports: stdlib may be root-only
        try:
            pmviz.injection.attach({d.proc.pid})
        except pmviz.AccessDenied as err:
            print(err)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "another user" in out.stdout and "CAP_SYS_PTRACE" in out.stdout, out
    d.finish()


def test_no_fd_or_thread_leaks_in_pmviz(bins):
    def own_fds() -> set[str]:
        return set(os.listdir("/proc/self/fd"))

    d = Driven(start(bins["phases"]))
    before_fds, before_threads = own_fds(), threading.active_count()
    for _ in range(5):
        with injection.attach(d.proc.pid) as t:
            d.phase(0)
            t.collect()
        t = injection.track(["true"])
        t.wait()
        t.close()
    assert own_fds() == before_fds
    assert threading.active_count() == before_threads  # tracer threads ended
    d.finish()


def test_bad_arguments():
    with pytest.raises(TypeError, match="list of arguments"):
        injection.track("ls -l")
    with pytest.raises(ValueError, match="own process"):
        injection.attach(os.getpid())
    with pytest.raises(NoSuchProcess):
        injection.attach(2**22 + 12345)
    with pytest.raises(FileNotFoundError):
        injection.track(["/nonexistent/program"])


@pytest.mark.root
def test_kernel_thread_is_refused_as_having_no_user_memory():
    if os.geteuid() != 0:
        pytest.skip("reading a kernel thread's maps needs root")
    with pytest.raises(ValueError, match="kernel thread"):
        injection.attach(2)  # kthreadd


def test_sqlite3_workload_unchanged_and_tracked(tmp_path):
    if shutil.which("sqlite3") is None:
        pytest.skip("sqlite3 not installed")
    sql = textwrap.dedent("""
        CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n REAL);
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 60000)
        INSERT INTO t SELECT x, printf('%08d', x*7919 % 100003), x*1.5 FROM c;
        CREATE INDEX ti ON t(v);
        SELECT count(*), sum(n), min(v), max(v) FROM t;
        SELECT v FROM t ORDER BY v DESC LIMIT 3;
        UPDATE t SET n = n * 2 WHERE id % 3 = 0;
        SELECT sum(n) FROM t;
    """)
    plain = subprocess.run(
        ["sqlite3", str(tmp_path / "a.db")], input=sql, capture_output=True, text=True
    )
    t = injection.track(
        ["sqlite3", str(tmp_path / "b.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    with t:
        t.process.stdin.write(sql)
        t.process.stdin.close()
        total = set()
        while t.alive:
            try:
                total |= pages(t.collect(), [(0, 1 << 47)])
            except NoSuchProcess:
                break
            time.sleep(0.02)
        out = t.process.stdout.read()
    assert t.wait() == 0
    assert out == plain.stdout and "60000" in out
    assert len(total) > 100  # its page cache and heap were written, and reported


def test_redis_server_attached_under_benchmark(tmp_path):
    if not (shutil.which("redis-server") and shutil.which("redis-benchmark")):
        pytest.skip("redis not installed")
    port = str(20000 + os.getpid() % 20000)
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            port,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if (
                subprocess.run(
                    ["redis-cli", "-p", port, "ping"], capture_output=True, text=True
                ).stdout.strip()
                == "PONG"
            ):
                break
            time.sleep(0.05)
        with injection.attach(server.pid) as t:
            bench = subprocess.run(
                ["redis-benchmark", "-p", port, "-n", "3000", "-t", "set,get", "-q"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            written = t.collect()
        assert bench.returncode == 0 and "SET" in bench.stdout
        assert written.n_pages > 10
        assert_left_as_found(server.pid, None)  # its client sockets come and go
        r = subprocess.run(["redis-cli", "-p", port, "dbsize"], capture_output=True, text=True)
        assert int(r.stdout) >= 1  # it kept serving after detach
    finally:
        server.terminate()
        server.wait(timeout=10)


MEMORY_SCRIPT = r"""
import ctypes, mmap, os, sys
P = mmap.PAGESIZE
m = mmap.mmap(-1, 64 * P, flags=mmap.MAP_PRIVATE)

def addr():
    c = ctypes.c_char.from_buffer(m)
    a = ctypes.addressof(c)
    del c  # release the buffer export, or resize() would refuse
    return a

print(hex(addr()), flush=True)
for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == "w":
        for i in args:
            m[int(i) * P] = (m[int(i) * P] + 1) % 256
        print("ok", flush=True)
    elif cmd == "fork":
        pid = os.fork()
        if pid == 0:
            for i in range(10):
                m[i * P] = 7
            os._exit(0)
        print("child", os.waitpid(pid, 0)[1], flush=True)
    elif cmd == "grow":
        m.resize(512 * P)  # mremap(MREMAP_MAYMOVE)
        print(hex(addr()), flush=True)
    elif cmd == "unmap":
        m.close()
        print("ok", flush=True)
"""


def test_fork_mremap_munmap_of_tracked_memory():
    p = subprocess.Popen(
        [sys.executable, "-c", MEMORY_SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )

    def cmd(line: str) -> str:
        p.stdin.write(line + "\n")
        p.stdin.flush()
        return p.stdout.readline().strip()

    base = int(p.stdout.readline(), 16)
    span = [(base, base + 64 * PAGE)]
    with injection.attach(p.pid) as t:
        t.collect()
        assert cmd("w 1 5 9") == "ok"
        assert pages(t.collect(), span) == {base + i * PAGE for i in (1, 5, 9)}
        # fork: the child writes freely (its copy is not tracked), the parent is unaffected
        assert cmd("fork") == "child 0"
        assert cmd("w 2") == "ok"
        assert pages(t.collect(), span) == {base + 2 * PAGE}
        # mremap moves the VMA and the kernel drops its registration: the moved memory is
        # registered again and reported by content once, then exactly again
        new = int(cmd("grow"), 16)
        moved = [(new, new + 512 * PAGE)]
        assert cmd("w 300") == "ok"
        got = pages(t.collect(), moved)
        assert {new + 300 * PAGE, new + 1 * PAGE, new + 2 * PAGE} <= got
        assert cmd("w 3 400") == "ok"
        assert pages(t.collect(), moved) == {new + 3 * PAGE, new + 400 * PAGE}
        # munmap of tracked memory: nothing reported there, nothing breaks
        assert cmd("unmap") == "ok"
        assert pages(t.collect(), moved) == set()
    assert_left_as_found(p.pid, None)
    p.stdin.close()
    assert p.wait(timeout=10) == 0


def test_ctrl_c_and_errors_of_ours_leave_target_as_found(bins, monkeypatch):
    d = Driven(start(bins["phases"]))
    fds = sorted(os.listdir(f"/proc/{d.proc.pid}/fd"))
    # An error of ours in the middle of the injection (after userfaultfd() ran in the target)
    from pmviz._kernel import inject

    def fail(pid, fd):
        raise OSError(5, "injected failure")

    monkeypatch.setattr(inject, "take_fd", fail)
    with pytest.raises(OSError, match="injected failure"):
        injection.attach(d.proc.pid)
    monkeypatch.undo()
    assert_left_as_found(d.proc.pid, fds)  # its uffd was closed again, registers restored
    d.phase(0)
    # Ctrl-C in a pmviz process that collects in a loop
    code = textwrap.dedent(f"""
        import time, pmviz.injection
        with pmviz.injection.attach({d.proc.pid}) as t:
            print("armed", flush=True)
            while True:
                t.collect()
                time.sleep(0.005)
    """)
    h = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert h.stdout.readline().strip() == "armed"
    time.sleep(0.1)
    h.send_signal(signal.SIGINT)
    _, err = h.communicate(timeout=20)
    assert "KeyboardInterrupt" in err
    assert_left_as_found(d.proc.pid, fds)
    d.phase(1)
    d.finish()


def test_stopped_target_is_refused_and_stays_stopped(bins):
    d = Driven(start(bins["phases"]))
    os.kill(d.proc.pid, signal.SIGSTOP)
    try:
        for _ in range(100):
            if open(f"/proc/{d.proc.pid}/status").read().split("State:\t")[1][0] == "T":
                break
            time.sleep(0.01)
        with pytest.raises(pmviz.Error, match="stopped"):
            injection.attach(d.proc.pid)
        # PTRACE_DETACH wakes a group-stopped tracee so that it re-enters the stop
        # (__ptrace_unlink): it may read "R" for a moment before it is "T" again.
        for _ in range(100):
            status = open(f"/proc/{d.proc.pid}/status").read()
            if "State:\tT" in status:
                break
            time.sleep(0.01)
        assert "State:\tT" in status and "TracerPid:\t0\n" in status
    finally:
        os.kill(d.proc.pid, signal.SIGCONT)
    d.phase(0)
    d.finish()


def test_huge_sparse_vma_is_skipped_not_armed():
    """Arming allocates page tables for a whole VMA: a huge sparse one is skipped instead.

    (0x4000 = MAP_NORESERVE, which the mmap module does not export.)
    """
    code = (
        "import mmap, sys; m = mmap.mmap(-1, 4 << 30, flags=mmap.MAP_PRIVATE | 0x4000);"
        "m[0] = 1; print('ready', flush=True); sys.stdin.read()"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )

    def vm_pte() -> int:
        line = [ln for ln in open(f"/proc/{p.pid}/status") if ln.startswith("VmPTE")][0]
        return int(line.split()[1])

    try:
        assert p.stdout.readline().strip() == "ready"
        before = vm_pte()
        with injection.attach(p.pid, max_vma_bytes=1 << 30) as t:
            t.collect()
            assert vm_pte() - before < 1024  # KiB; arming 4 GiB would have cost 8 MiB
            big = [s for s in t.skipped if s.end - s.start == 4 << 30]
            assert big and "max_vma_bytes" in big[0].reason
    finally:
        p.kill()
        p.wait()


def test_signal_storm_during_injections(bins):
    """SIGALRM every 200 us, reads without SA_RESTART: many attach/collect/close cycles must
    neither lose nor add an EINTR the program cannot handle, nor change what it computes.
    """
    data = bytes(range(256)) * 64
    p = subprocess.Popen([bins["signals"]], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    for i in range(20):
        p.stdin.write(data[i * 800 : (i + 1) * 800])
        p.stdin.flush()
        with injection.attach(p.pid) as t:
            t.collect()
    p.stdin.write(data[16000:])
    out, _ = p.communicate(timeout=20)
    plain = subprocess.run([bins["signals"]], input=data, capture_output=True, timeout=20)
    assert p.returncode == plain.returncode == 0
    assert out.split()[:2] == plain.stdout.split()[:2]  # the same checksum
    assert out.endswith(b"signals yes\n")  # and it did run under the storm


def test_track_forks_without_preexec_fn(monkeypatch):
    """Regression: track() forked with ``preexec_fn=PTRACE_TRACEME`` from a threaded process
    (CPython documents deadlock risk); now the child stops itself and is seized at exec."""
    seen = []
    real = subprocess.Popen

    class Spy(real):
        def __init__(self, *args, **kwargs):
            seen.append(kwargs.get("preexec_fn"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(injection.subprocess, "Popen", Spy)
    with injection.track([sys.executable, "-c", "b = bytearray(b'x') * (8 << 20)"]) as t:
        assert t.wait(timeout=60) == 0
    assert seen == [None]
    with pytest.raises(ValueError, match="preexec_fn"):
        injection.track(["true"], preexec_fn=lambda: None)


def test_wait_stop_has_a_timeout():
    """Regression: ``ptrace.wait_stop`` blocked forever on a thread that never stops."""
    from pmviz._kernel import ptrace

    child = subprocess.Popen(["sleep", "30"])
    try:
        ptrace.seize(child.pid)  # seized, never interrupted: no stop will come
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match="uninterruptible sleep"):
            ptrace.wait_stop(child.pid, timeout=0.2)
        assert time.monotonic() - t0 < 30
    finally:
        child.kill()
        child.wait()


def test_held_back_signals_keep_their_thread_direction():
    """Regression: a signal held back during an injection was re-raised with kill() to the
    whole process even when it had been sent to one thread (tgkill)."""
    from pmviz._kernel import ptrace
    from pmviz._kernel.process import tgkill

    child = subprocess.Popen(["sleep", "30"])
    try:
        ptrace.seize(child.pid)
        for send, directed in (
            (lambda: tgkill(child.pid, child.pid, 10), True),
            (lambda: os.kill(child.pid, 10), False),
        ):
            send()  # SIGUSR1: a signal-delivery stop of the tracee
            stop = ptrace.wait_stop(child.pid)
            assert stop.kind == "signal" and stop.sig == 10
            assert ptrace.signal_is_thread_directed(child.pid) is directed
            ptrace.cont(child.pid, 0)  # suppressed: sleep keeps running
    finally:
        child.kill()
        child.wait()
