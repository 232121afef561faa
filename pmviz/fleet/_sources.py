"""Where a fleet's captures are: local paths, globs and fsspec URLs, resolved to capture dirs."""

from __future__ import annotations

import contextlib
import glob as _glob
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..storage import format as fmt

_LOCAL = ("file", "local")


@dataclass(frozen=True)
class Source:
    """One capture directory: ``url`` as the user's filesystem names it.

    ``local`` is a plain path when the filesystem is this machine's (``file://`` included),
    else None (the capture is copied to a temporary directory to be read).
    """

    url: str
    local: str | None

    @property
    def name(self) -> str:
        return os.path.basename(self.url.rstrip("/"))


def _has_magic(s: str) -> bool:
    return any(c in s for c in "*?[")


def _local_sources(pattern: str) -> list[Source]:
    pattern = os.path.expanduser(pattern)
    hits = sorted(_glob.glob(pattern)) if _has_magic(pattern) else [pattern]
    out = []
    for h in hits:
        if os.path.isfile(os.path.join(h, fmt.META_FILE)):
            out.append(h)
        elif os.path.isdir(h) and not _has_magic(pattern):
            # A directory of captures: its children that are captures.
            kids = sorted(_glob.glob(os.path.join(_glob.escape(h), "*", fmt.META_FILE)))
            out.extend(os.path.dirname(k) for k in kids)
        elif not os.path.exists(h):
            raise FileNotFoundError(2, "no such capture or directory", h)
    return [Source(os.path.abspath(p), os.path.abspath(p)) for p in out]


def resolve(
    paths_or_glob: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> list[Source]:
    """The capture directories named by paths, globs or fsspec URLs (in order, no repeats).

    A directory that is not a capture stands for the captures directly inside it.

    Raises
    ------
    FileNotFoundError
        A path without glob characters does not exist.
    ValueError
        Nothing matched.
    """
    items = [paths_or_glob] if isinstance(paths_or_glob, (str, os.PathLike)) else paths_or_glob
    found: list[Source] = []
    for item in items:
        s = os.fspath(item)
        if "://" not in s:
            found.extend(_local_sources(s))
            continue
        import fsspec

        fs, path = fsspec.core.url_to_fs(s)
        protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
        if any(p in _LOCAL for p in protocols):
            found.extend(_local_sources(path))
            continue
        hits = sorted(fs.glob(path)) if _has_magic(path) else [path]
        for h in hits:
            if fs.isfile(f"{h.rstrip('/')}/{fmt.META_FILE}"):
                found.append(Source(fs.unstrip_protocol(h), None))
            elif fs.isdir(h):
                for k in sorted(fs.glob(f"{h.rstrip('/')}/*/{fmt.META_FILE}")):
                    found.append(Source(fs.unstrip_protocol(k.rsplit("/", 1)[0]), None))
    seen: set[str] = set()
    out = [s for s in found if not (s.url in seen or seen.add(s.url))]  # type: ignore[func-returns-value]
    if not out:
        raise ValueError(
            f"no pmviz capture (a directory with {fmt.META_FILE}) in {paths_or_glob!r}"
        )
    return out


@contextlib.contextmanager
def local_copy(source: Source) -> Iterator[str]:
    """A local directory holding the capture: itself, or a temporary copy of a remote one."""
    if source.local is not None:
        yield source.local
        return
    import fsspec

    fs, path = fsspec.core.url_to_fs(source.url)
    tmp = tempfile.mkdtemp(prefix="pmviz-fleet-")
    try:
        dest = os.path.join(tmp, source.name or "capture.pmviz")
        fs.get(path.rstrip("/") + "/", dest, recursive=True)
        yield dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
