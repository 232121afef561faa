#!/usr/bin/env python3
"""Rebuild the bundled sample captures by recording real programs on this machine.

    python3 sample_data/make_samples.py            # all samples
    python3 sample_data/make_samples.py asan-phases redis-benchmark

Each sample is recorded with ``pmviz.record`` / ``pmviz.Recorder`` (write tracking where this
machine offers it), anonymized with ``Capture.anonymize`` (paths and command lines
stripped) and saved as ``sample_data/NAME.pmviz``. The session sample (``shm-pool``: a
process tree, one capture per process plus the accounting table) is recorded with
``pmviz.record(..., scope="tree", accounting=True)`` and anonymized with
``pmviz.storage.session_anonymize.anonymize_session``. See ``sample_data/README.md``.

Needs: root or ptrace rights over the children (write tracking by injection), ``clang`` or
``gcc`` with AddressSanitizer, Debian's ``redis-server`` and ``redis-tools``.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pmviz
from pmviz.capture import Capture
from pmviz.maps import Vmas
from pmviz.storage import save
from pmviz.storage.session_anonymize import anonymize_session
from pmviz.summary import summarize_session_recording

HERE = Path(__file__).resolve().parent
PROGRAMS = HERE / "programs"
MAX_SAMPLE_BYTES = 5 << 20  # nothing tracked in git may exceed this


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_asan(tmp: Path) -> Path:
    """Compile programs/asan_phases.c with AddressSanitizer (clang, else gcc)."""
    cc = shutil.which("clang") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("need clang or gcc with -fsanitize=address")
    exe = tmp / "asan_phases"
    subprocess.run(
        [cc, "-O1", "-g", "-fsanitize=address", "-fno-omit-frame-pointer",
         str(PROGRAMS / "asan_phases.c"), "-o", str(exe)],
        check=True,
    )  # fmt: skip
    return exe


def record_asan(tmp: Path) -> pmviz.Capture:
    """An ASan-built C program allocating and freeing heap in phases (shadow memory)."""
    exe = build_asan(tmp)
    # 50 ms snapshots, 400 ms per phase: ~8 snapshots per phase, ~2.5 s in all.
    # No write tracking: registering uffd-wp over ASan's ~16 TiB of rw-p MAP_NORESERVE shadow
    # and arming it makes the kernel build page tables for all of it; on this machine that
    # exhausted its 24 GiB within seconds (see README.md here). Present/swapped is what
    # notebook 03 needs.
    return pmviz.record([str(exe), "400"], interval=0.05, writes="none", progress=True)


def record_numpy(tmp: Path) -> pmviz.Capture:
    """A numpy workload: allocate, fill front to back, hot loop, sort, release."""
    cmd = [sys.executable, str(PROGRAMS / "numpy_workload.py")]
    return pmviz.record(cmd, interval=0.1, writes="auto", progress=True)


def record_redis(tmp: Path) -> pmviz.Capture:
    """Debian's redis-server attached while redis-benchmark drives it (SET/GET/LPUSH)."""
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--daemonize", "no", "--dir", str(tmp), "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            ping = subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True
            )
            if ping.stdout.strip() == "PONG":
                break
            time.sleep(0.05)
        else:
            raise SystemExit("redis-server did not answer PING")
        recorder = pmviz.Recorder(server.pid, interval=0.1, writes="auto", progress=False)
        recorder.start()
        try:
            time.sleep(0.5)  # idle baseline
            subprocess.run(
                ["redis-benchmark", "-p", str(port), "-q", "-n", "150000", "-r", "50000",
                 "-d", "256", "-c", "8", "-t", "set,get,lpush"],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            subprocess.run(["redis-cli", "-p", str(port), "flushall"], check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            time.sleep(0.6)  # after FLUSHALL: what stays resident
        finally:
            capture = recorder.stop()
    finally:
        server.terminate()
        server.wait(timeout=10)
    return capture if capture is not None else recorder.capture


def _start_redis(tmp: Path) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--daemonize", "no", "--dir", str(tmp), "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(100):
        ping = subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True
        )
        if ping.stdout.strip() == "PONG":
            return server, port
        time.sleep(0.05)
    server.kill()
    raise SystemExit("redis-server did not answer PING")


def record_redis_get(tmp: Path) -> pmviz.Capture:
    """redis-server loaded with 100,000 keys, then recorded with access sampling while
    ``redis-benchmark -t get`` reads them: a small written set, a large accessed one."""
    server, port = _start_redis(tmp)
    try:
        # 100,000 keys of 512 bytes (~70 MiB resident), written before the recording starts
        subprocess.run(
            ["redis-benchmark", "-p", str(port), "-q", "-n", "300000", "-r", "100000",
             "-d", "512", "-c", "8", "-t", "set"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        recorder = pmviz.Recorder(
            server.pid, interval=0.1, writes="auto", accessed="vma", progress=False
        )
        recorder.start()
        try:
            time.sleep(0.5)  # idle baseline
            subprocess.run(
                ["redis-benchmark", "-p", str(port), "-q", "-n", "400000", "-r", "100000",
                 "-d", "512", "-c", "8", "-t", "get"],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(0.5)  # idle tail
        finally:
            capture = recorder.stop()
    finally:
        server.terminate()
        server.wait(timeout=10)
    return capture


# name -> (recording function, keep real addresses?)
# The ASan sample keeps its addresses: notebook 03 relies on the fixed x86-64 shadow offset
# (shadow = (addr >> 3) + 0x7fff8000). Paths and command lines are stripped everywhere.
SAMPLES: dict[str, tuple[Callable[[Path], pmviz.Capture], bool]] = {
    "asan-phases": (record_asan, True),
    "numpy-workload": (record_numpy, False),
    "redis-benchmark": (record_redis, False),
    "redis-get": (record_redis_get, False),
}


def anonymized(capture: pmviz.Capture, *, keep_addresses: bool) -> pmviz.Capture:
    """``capture.anonymize()``; with ``keep_addresses``, its path/command stripping only.

    ``anonymize`` always rebases addresses; the ASan sample must keep them (the shadow
    offset is absolute), so it takes the stripped VMA paths and metadata from an anonymized
    copy and puts them on the original addresses (inode and device numbers zeroed too).
    """
    anon = capture.anonymize()
    if not keep_addresses:
        return anon
    tables = []
    for orig, stripped in zip(capture.vma_tables, anon.vma_tables):
        arr = orig.array.copy()
        arr["inode"] = 0
        arr["dev_major"] = 0
        arr["dev_minor"] = 0
        arr["offset"] = 0  # as anonymize does: offsets tell which part of a file is mapped
        tables.append(Vmas(arr, stripped.paths))
    meta = anon.meta.replace(extra={**anon.meta.extra, "addresses": "real (not rebased)"})
    return Capture(
        meta,
        anon.time_ns,  # relative times, as anonymize makes them
        capture.regions,
        capture.region_offsets,
        written=capture.written,
        written_offsets=capture.written_offsets,
        vma_tables=tables,
        vma_index=capture.vma_index,
        telemetry=capture.telemetry,
        marks=anon.marks,
        side_tables={
            k: (capture.side_rows(k), capture.side_offsets(k)) for k in capture.side_tables
        },
    )


def record_shm_pool(tmp: Path) -> Path:
    """A multiprocessing pool over shared memory, as a session with accounting (root: PFNs)."""
    out = tmp / "shm-pool-raw.pmviz"
    cmd = [sys.executable, str(PROGRAMS / "shm_pool.py")]
    pmviz.record(cmd, scope="tree", out=str(out), accounting=True, interval=0.1, progress=True)
    return out


# name -> recording function returning a session directory (anonymized as a whole).
SESSIONS: dict[str, Callable[[Path], Path]] = {
    "shm-pool": record_shm_pool,
}


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", choices=[*SAMPLES, *SESSIONS, []], help="default: all")
    parser.add_argument(
        "--reanonymize",
        action="store_true",
        help="do not record: anonymize the bundled captures again (after the anonymization "
        "scheme changed) and rewrite them in the current capture format",
    )
    args = parser.parse_args(argv)
    names = args.names or [*SAMPLES, *SESSIONS]
    if args.reanonymize:
        for name in names:
            if name in SESSIONS:
                out = HERE / f"{name}.pmviz"
                with tempfile.TemporaryDirectory(prefix="pmviz-samples-") as tmp:
                    again = anonymize_session(str(out), str(Path(tmp) / "again.pmviz"))
                    shutil.rmtree(out)
                    shutil.copytree(again, out)
                summarize_session_recording(out)
                print(f"== {name}: {_du(out) / 1024:.0f} KiB (session)")
                continue
            out = HERE / f"{name}.pmviz"
            capture = pmviz.open(str(out)).select(slice(None))  # loaded whole, then replaced
            save(anonymized(capture, keep_addresses=SAMPLES[name][1]), str(out), overwrite=True)
            print(f"== {name}: {_du(out) / 1024:.0f} KiB, format {pmviz.open(str(out)).version}")
        return 0
    with tempfile.TemporaryDirectory(prefix="pmviz-samples-") as tmp:
        for name in names:
            if name in SESSIONS:
                print(f"== {name}", flush=True)
                out = HERE / f"{name}.pmviz"
                anonymize_session(str(SESSIONS[name](Path(tmp))), str(out), overwrite=True)
                summarize_session_recording(out)  # of the anonymized captures: no host name
                session = pmviz.open(str(out))
                print(f"   {len(session.pids)} processes, {_du(out) / 1024:.0f} KiB -> "
                      f"{out.relative_to(HERE.parent)}")  # fmt: skip
                continue
            record, keep = SAMPLES[name]
            print(f"== {name}", flush=True)
            capture = anonymized(record(Path(tmp)), keep_addresses=keep)
            out = HERE / f"{name}.pmviz"
            save(capture, str(out), overwrite=True)
            size = _du(out)
            print(f"   {len(capture)} snapshots, writes={capture.meta.write_mechanism}, "
                  f"accessed={capture.meta.accessed_mechanism}, "
                  f"{size / 1024:.0f} KiB -> {out.relative_to(HERE.parent)}")  # fmt: skip
            big = [p for p in out.rglob("*") if p.is_file() and p.stat().st_size > MAX_SAMPLE_BYTES]
            if big:
                raise SystemExit(f"{big[0]} is over {MAX_SAMPLE_BYTES >> 20} MiB: too big for git")
    total = sum(
        _du(HERE / f"{n}.pmviz") for n in [*SAMPLES, *SESSIONS] if (HERE / f"{n}.pmviz").exists()
    )
    print(f"sample_data: {total / 2**20:.1f} MiB of captures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
