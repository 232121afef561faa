"""Shared fixtures: a real swap file and real memory layouts in child processes.

``swapfile``        session-scoped swap file, on for the session, always off again afterwards.
``layout_factory``  ``spawn(areas) -> Layout``: child processes holding real memory layouts
                    (see ``tests/layouts.py``), killed and reaped at teardown.
``file_dir``        a directory for file-backed areas (inside pytest's tmp dir).
``under_swap``      the ``swapfile`` when root, else nothing: modules that must also hold
                    under real swap (recorder, tracking) use it for every test.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # make `import layouts` work from any test

from layouts import Area, Layout, spawn_layout  # noqa: E402
from privileges import marker_skip_reason  # noqa: E402

__all__ = ["Area", "Layout"]

SWAP_SIZE = 256 << 20


def pytest_runtest_setup(item):
    """``kernel`` and ``root`` markers skip, with the reason, where the feature or the
    privilege is missing (rather than failing on a machine that cannot run them)."""
    markers = {m.name for m in item.iter_markers()} & {"kernel", "root"}
    if markers:
        from pmviz.features import features

        reason = marker_skip_reason(markers, features(), os.geteuid())
        if reason is not None:
            pytest.skip(reason)


def _active_swaps() -> list[str]:
    with open("/proc/swaps") as f:
        return [line.split()[0] for line in f.read().splitlines()[1:] if line.strip()]


def _swapoff(path: str) -> None:
    # /proc/swaps shows the resolved path; swapoff wants the file we gave swapon.
    if os.path.realpath(path) in {os.path.realpath(p) for p in _active_swaps()}:
        subprocess.run(["swapoff", path], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def swapfile(tmp_path_factory):
    """A 256 MiB swap file, swapped on for the whole session; yields its path.

    Skips unless root (swapon needs CAP_SYS_ADMIN). Teardown runs ``swapoff`` and deletes
    the file even when tests failed; a failing swapoff fails the session loudly rather than
    leaving swap on silently.
    """
    if os.geteuid() != 0:
        pytest.skip("swapon needs root (CAP_SYS_ADMIN); run the suite as root for swap tests")
    path = str(tmp_path_factory.mktemp("swap") / "pmviz-test.swap")
    try:
        subprocess.run(["fallocate", "-l", str(SWAP_SIZE), path], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        # Some filesystems reject swap on preallocated (unwritten) extents; write it for real.
        subprocess.run(
            ["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={SWAP_SIZE >> 20}"],
            check=True,
            capture_output=True,
        )
    os.chmod(path, 0o600)
    subprocess.run(["mkswap", path], check=True, capture_output=True)
    try:
        proc = subprocess.run(["swapon", path], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"swapon {path} failed: {proc.stderr.strip()}")
        _clear_features_cache()
        yield path
    finally:
        try:
            _swapoff(path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
            _clear_features_cache()


@pytest.fixture
def under_swap(request):
    """Run the test with the session swap file on when root can have one; plain otherwise."""
    if os.geteuid() == 0:
        return request.getfixturevalue("swapfile")
    return None


def _clear_features_cache() -> None:
    # features() caches swap_active; the swap state just changed.
    from pmviz.features import features

    features.cache_clear()


@pytest.fixture
def file_dir(tmp_path):
    d = tmp_path / "files"
    d.mkdir()
    return str(d)


@pytest.fixture
def layout_factory(tmp_path):
    """``spawn(areas, file_dir=None) -> Layout``; every child is killed and reaped at teardown."""
    stack = contextlib.ExitStack()

    def spawn(areas, *, file_dir=None):
        if file_dir is None and any(a.kind.startswith("file") for a in areas):
            file_dir = str(tmp_path)
        return stack.enter_context(spawn_layout(areas, file_dir=file_dir))

    with stack:
        yield spawn
