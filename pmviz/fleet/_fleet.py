"""The ``Fleet``: a set of captures, queried together."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import CaptureError, PmvizWarning
from ..summary import SCHEMA, capture_id, summarize
from ._run import CaptureResult, run_all
from ._sources import Source, resolve
from ._sql import connect


def _summary_task(path: str) -> dict[str, Any]:
    return dict(summarize(path))


def _id_task(path: str) -> str:
    """The capture's id, after checking every part's footer (DuckDB would stop at a bad one)."""
    import pyarrow.parquet as pq

    from ..storage import format as fmt
    from ..storage.validate import check_footer, check_part_file

    for table in fmt.TABLES:
        for part in fmt.list_parts(path, table)[0]:
            check_part_file(part.path)
            check_footer(part.path)
            try:
                pq.read_metadata(part.path)  # parses the footer (Thrift), as DuckDB will
            except Exception as err:  # noqa: BLE001 - pyarrow's many error types
                raise CaptureError(part.path, f"damaged part ({err})") from err
    return capture_id(path)


class _Opened:
    """``fn(pmviz.open(path))``, picklable for Dask workers."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, path: str) -> Any:
        from ..storage import open as open_capture

        return self.fn(open_capture(path))


class Fleet:
    """Captures from many runs and machines, queried together.

    Parameters
    ----------
    sources : list of Source
        From :func:`open`.
    memory_limit : str
        DuckDB's memory limit (e.g. ``"1GB"``); beyond it, DuckDB spills to ``temp_directory``.
    temp_directory : str, optional
        Where DuckDB spills (default: a temporary directory removed with the fleet).
    threads : int, optional
        DuckDB threads (default: its own, the CPU count).
    """

    def __init__(
        self,
        sources: Sequence[Source],
        *,
        memory_limit: str = "1GB",
        temp_directory: str | None = None,
        threads: int | None = None,
    ) -> None:
        self.sources = list(sources)
        self.memory_limit = memory_limit
        self.threads = threads
        if temp_directory is None:
            temp_directory = tempfile.mkdtemp(prefix="pmviz-duckdb-")
            self._cleanup = weakref.finalize(self, shutil.rmtree, temp_directory, True)
        self.temp_directory = temp_directory
        self._summaries: Any = None
        self._con: Any = None
        self._ids: dict[str, str] = {}
        self.sql_errors: dict[str, str] = {}
        """Captures left out of the SQL views (a damaged part): url -> error."""

    # -- what is in it ---------------------------------------------------------------------
    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.sources]

    def __len__(self) -> int:
        return len(self.sources)

    def __repr__(self) -> str:
        return f"<pmviz Fleet of {len(self)} captures>"

    def _repr_html_(self) -> str:
        from html import escape

        items = "".join(f"<li><code>{escape(u)}</code></li>" for u in self.urls[:10])
        more = f"<li>… {len(self) - 10} more</li>" if len(self) > 10 else ""
        return f"<b>pmviz fleet</b>: {len(self)} captures<ul>{items}{more}</ul>"

    # -- per capture, in parallel ------------------------------------------------------------
    def map(
        self,
        fn: Callable[[Any], Any],
        client: Any = None,
        *,
        workers: int | None = None,
        scheduler: str | None = None,
        progress: bool = True,
    ) -> list[CaptureResult]:
        """Run ``fn(capture)`` on every capture (opened with ``pmviz.open``).

        Parameters
        ----------
        fn : callable
            Takes a ``Capture``; its result must pickle (it travels back from the worker).
        client : dask.distributed.Client or "serial", optional
            Where to run. Default: a ``LocalCluster`` of ``workers`` processes, created and
            closed here, when dask.distributed is installed; serially otherwise.
        workers : int, optional
            Processes of that LocalCluster (default: the CPU count).
        scheduler : str, optional
            Address of a running Dask scheduler (``tcp://host:8786``) instead.
        progress : bool
            A progress bar (tqdm).

        Returns
        -------
        list of CaptureResult
            In the fleet's order. A capture that failed (damaged, or ``fn`` raised) has
            ``error`` set (``"CaptureError: ..."``) and ``value`` None; the others run on.
        """
        return run_all(
            _Opened(fn), self.sources, client=client, workers=workers, scheduler=scheduler,
            progress=progress, desc="fleet map",
        )  # fmt: skip

    def summaries(
        self,
        client: Any = None,
        *,
        workers: int | None = None,
        scheduler: str | None = None,
        progress: bool = True,
    ):  # noqa: ANN201 - pandas is optional
        """One row per capture (``pmviz.summarize``), computing and caching missing summaries.

        Parameters are those of :meth:`map`. Columns: ``url``, ``error`` (None, or why the
        capture could not be summarized: its other columns are then null), then the summary
        columns (``docs/capture-format.md`` §8).

        Returns
        -------
        pandas.DataFrame
        """
        import pandas as pd

        results = run_all(
            _summary_task, self.sources, client=client, workers=workers, scheduler=scheduler,
            progress=progress, desc="summaries",
        )  # fmt: skip
        rows = []
        for r in results:
            row: dict[str, Any] = {"url": r.url, "error": r.error}
            row.update(r.value if r.value is not None else dict.fromkeys(SCHEMA.names))
            rows.append(row)
        df = pd.DataFrame(rows, columns=["url", "error", *SCHEMA.names])
        self._summaries = df
        return df

    # -- SQL ---------------------------------------------------------------------------------
    def connect(self) -> Any:
        """The fleet's DuckDB connection with its views (``pmviz.fleet._sql`` lists them).

        ``summaries`` is there once :meth:`summaries` ran (or :meth:`sql` needed it).
        """
        if self._con is None:
            checked = run_all(_id_task, self.sources, client="serial", progress=False)
            self.sql_errors = {r.url: str(r.error) for r in checked if not r.ok}
            for url, err in self.sql_errors.items():
                warnings.warn(
                    f"{url}: left out of the SQL views: {err}", PmvizWarning, stacklevel=2
                )
            # Two copies of one capture have one id: the views take the first copy only, so
            # that no snapshot is counted twice.
            first: dict[str, Source] = {}
            for src, r in zip(self.sources, checked):
                cid = r.value
                if not r.ok:
                    continue
                if cid in first:
                    warnings.warn(
                        f"{src.url} is a copy of {first[cid].url} (capture id {cid}); the SQL "
                        "views use the first", PmvizWarning, stacklevel=2,
                    )  # fmt: skip
                else:
                    first[cid] = src
            self._con = connect(
                list(first.values()), list(first), memory_limit=self.memory_limit,
                temp_directory=self.temp_directory, threads=self.threads,
            )  # fmt: skip
            self._ids = dict(zip([s.url for s in first.values()], first))
        if self._summaries is not None:
            # One row per capture id, from the copies the views use.
            urls = set(self._ids)
            self._con.register("summaries", self._summaries[self._summaries["url"].isin(urls)])
        return self._con

    def sql(self, query: str, *, client: Any = "serial"):  # noqa: ANN201 - pandas is optional
        """Run a DuckDB query over the fleet's views; returns a pandas DataFrame.

        Views: ``captures``, ``summaries``, ``snapshots``, ``regions`` (stored rows:
        keyframes and changes), ``snapshot_bytes`` (resident / swapped / dump / written bytes
        per snapshot, rebuilt exactly), ``written``, ``vmas``, ``marks``; each with
        ``capture_id``. ``client`` computes missing summaries when the query names
        ``summaries`` (default: in this process).

        Examples
        --------
        >>> f.sql("SELECT capture_id, max(resident_bytes) AS peak "    # doctest: +SKIP
        ...       "FROM snapshot_bytes GROUP BY capture_id ORDER BY peak DESC")
        """
        if self._summaries is None and "summaries" in query.lower():
            self.summaries(client=client, progress=False)
        return self.connect().sql(query).df()

    def close(self) -> None:
        """Close the DuckDB connection and remove its spill directory (when it made one)."""
        if self._con is not None:
            self._con.close()
            self._con = None
        cleanup = getattr(self, "_cleanup", None)
        if cleanup is not None:
            cleanup()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open(  # noqa: A001 - pmviz.fleet.open, as pmviz.open
    paths_or_glob: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    memory_limit: str = "1GB",
    temp_directory: str | None = None,
    threads: int | None = None,
) -> Fleet:
    """A fleet of captures from paths, globs or fsspec URLs.

    Parameters
    ----------
    paths_or_glob : str, path or list of them
        Capture directories, globs (``"runs/*/*.pmviz"``), directories of captures, or fsspec
        URLs (``file://``, ``s3://...`` where the fsspec backend is installed; remote
        captures are copied to a temporary directory to be analysed).
    memory_limit, temp_directory, threads
        DuckDB settings for :meth:`Fleet.sql` (see :class:`Fleet`).

    Returns
    -------
    Fleet

    Raises
    ------
    FileNotFoundError
        A named path does not exist.
    ValueError
        No capture matched.
    """
    return Fleet(
        resolve(paths_or_glob), memory_limit=memory_limit, temp_directory=temp_directory,
        threads=threads,
    )  # fmt: skip
