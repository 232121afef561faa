"""Running one function per capture: in this process, or on Dask (local or remote cluster).

Each task catches its own exception and returns it as text, so a damaged capture is one
failed row of the result and never stops the others.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._sources import Source, local_copy


@dataclass(frozen=True)
class CaptureResult:
    """What ``fn`` returned for one capture, or why it failed (``error``, else None)."""

    url: str
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def run_one(fn: Callable[[str], Any], source: Source) -> CaptureResult:
    """``fn(local capture directory)`` with any exception turned into the result's error."""
    try:
        with local_copy(source) as path:
            return CaptureResult(source.url, fn(path))
    except Exception as err:  # noqa: BLE001 - reported per capture, see the module docstring
        tb = traceback.extract_tb(err.__traceback__)
        where = f" (at {tb[-1].filename}:{tb[-1].lineno})" if tb and not _is_pmviz(err) else ""
        return CaptureResult(source.url, None, _describe(err) + where)


def _is_pmviz(err: BaseException) -> bool:
    from ..errors import Error

    return isinstance(err, Error)


def distributed_available() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def run_all(
    fn: Callable[[str], Any],
    sources: Sequence[Source],
    *,
    client: Any = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    desc: str = "captures",
) -> list[CaptureResult]:
    """``run_one(fn, s)`` for every source, in order of ``sources``.

    ``client``: a ``dask.distributed.Client`` to use; ``"serial"`` for this process; None for
    a ``LocalCluster`` of ``workers`` processes (default: CPU count) when dask.distributed is
    installed (serially otherwise), or a client of the cluster at ``scheduler``.
    """
    from tqdm.auto import tqdm

    if client is None and scheduler is None and not distributed_available():
        client = "serial"
    if isinstance(client, str):
        if client != "serial":
            raise ValueError(f"client must be a dask Client, 'serial' or None, got {client!r}")
        bar = tqdm(sources, desc=desc, unit="capture", disable=not progress)
        return [run_one(fn, s) for s in bar]
    if client is not None:
        return _on_dask(client, fn, sources, progress, desc)
    from distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as c:
            return _on_dask(c, fn, sources, progress, desc)
    n = workers or os.cpu_count() or 1
    # processes: the analyses are numpy, partly holding the GIL; one thread per worker.
    with (
        LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as c,
    ):
        return _on_dask(c, fn, sources, progress, desc)


def _on_dask(
    client: Any, fn: Callable[[str], Any], sources: Sequence[Source], progress: bool, desc: str
) -> list[CaptureResult]:
    from distributed import as_completed
    from tqdm.auto import tqdm

    futures = client.map(run_one, [fn] * len(sources), list(sources), pure=False)
    index = {f.key: i for i, f in enumerate(futures)}
    out: list[CaptureResult | None] = [None] * len(sources)
    with tqdm(total=len(sources), desc=desc, unit="capture", disable=not progress) as bar:
        for fut in as_completed(futures):
            i = index[fut.key]
            try:
                out[i] = fut.result()
            except Exception as err:  # noqa: BLE001 - a worker died: that capture failed
                out[i] = CaptureResult(sources[i].url, None, _describe(err))
            bar.update()
    return [r for r in out if r is not None]
