"""The IDC catalog: a locked-down, read-only DuckDB database over idc-index-data's bundled parquet.

The bundled parquet files are materialized once per idc-index-data version into a DuckDB file in the
cache folder (`<cache>/<version>/catalog.duckdb`); queries run against that file opened read-only, so
the data can never be written through SQL. Specialized indices fetched later are converted to DuckDB
files of their own and attached read-only (see `indices/fetch.py`). The lockdown is the second line of
defence: SQL reaches it only after `sql.guard.validate` accepted it.

The connection lives in a worker process (`catalog.worker`, run by `catalog.executor`): every query
is bounded in time and memory whatever DuckDB function it calls, because the worker's address space
is capped and a worker that does not stop in time is killed and replaced. This process never
imports DuckDB. Lockdown, in order: extension autoload/autoinstall off (at open), memory limit and
thread cap, attach the extra indices, external access off, configuration locked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idc_mcp.catalog.executor import (
    Executor,
    ExecutorError,
    MemoryExceeded,
    QueryCancelled,
    QueryFailed,
    QueryStopped,
    QueryTimeout,
    ResultTooLarge,
)
from idc_mcp.catalog.result_cache import ResultCache, ResultKey, TextKey
from idc_mcp.config import Settings, load_settings

__all__ = [
    "Catalog",
    "ExecutorError",
    "MemoryExceeded",
    "QueryCancelled",
    "QueryFailed",
    "QueryOutput",
    "QueryStopped",
    "QueryTimeout",
    "ResultTooLarge",
    "get_catalog",
]

log = logging.getLogger(__name__)

# Fetched indices live in this folder of the version cache dir, one DuckDB file each (see indices/fetch.py).
INDICES_DIR = "indices"


# Catalog.cache_key: (version cache folder, generation, answering from the parquet during the first build)
CacheKey = tuple[str, int, bool]


@dataclass
class QueryOutput:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    elapsed_s: float


class _Gate:
    """Many queries at once, or one reopen of the connection (it waits for running queries, holds new ones).

    DuckDB keeps a database instance alive while any cursor on it is open, and hands that (locked) instance
    out again, so the catalog can only be reopened with a new index attached once no query runs.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queries = 0
        self._reopening = False

    @contextmanager
    def query(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._reopening)
            self._queries += 1
        try:
            yield
        finally:
            with self._cond:
                self._queries -= 1
                self._cond.notify_all()

    @contextmanager
    def reopen(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._reopening)
            self._reopening = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._queries == 0)
        try:
            yield
        finally:
            with self._cond:
                self._reopening = False
                self._cond.notify_all()


class Catalog:
    """The query connection. Thread-safe: queries run concurrently in the worker, each on its own cursor."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        self._lock = threading.Lock()
        self._executor: Executor | None = None
        # Extra indices (fetched on demand): attached DuckDB files by index name (attached as `x_<name>`).
        self._files: dict[str, Path] = {}
        self._discovered = False
        self._gate = _Gate()
        # Bumped whenever the set of tables changes (a fetched index attached): part of result-cache keys.
        self.generation = 0
        # Replies of the `query` tool (see result_cache): the data is immutable per idc-index-data version.
        self.results: ResultCache[Any] = ResultCache()

    @property
    def cache_key(self) -> CacheKey:
        """What the catalog holds now, as a value: the one key every cache of answers computed from it
        starts with (query replies, table profiles, facts, license reports, download plans, value pools).

        Its version's cache folder (the catalog file and the indices fetched into it never change while
        open), the generation, bumped when a fetched index is attached (a name may then mean more), and
        whether it still answers from the parquet during its first build (without the build's facts:
        what was computed then is not what the built catalog answers)."""
        executor = self._executor
        provisional = executor is None or bool(executor.facts.get("provisional"))
        return (str(self.settings.version_cache_dir), self.generation, provisional)

    # -- opening -----------------------------------------------------------------------------------
    def _discover_cached_indices(self) -> None:
        """Register the indices fetched earlier (complete files only: temp files start with a dot)."""
        if self._discovered:
            return
        self._discovered = True
        folder = self.settings.version_cache_dir / INDICES_DIR
        if folder.is_dir():
            for file in sorted(folder.glob("*.duckdb")):
                if not file.name.startswith("."):
                    self._files.setdefault(file.stem, file)

    @property
    def executor(self) -> Executor:
        """The executor that runs this catalog's queries, started (and the catalog opened) on first use."""
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._discover_cached_indices()
                    # Published only once the worker reported its table facts: another thread that sees
                    # `_executor` set does not take the lock, and must not see an empty table list.
                    self._executor = self._start_executor()
        return self._executor

    def _start_executor(self) -> Executor:
        executor = Executor(self.settings, self._files, self.settings.worker_memory_bytes)
        self._keep_attached(executor)
        return executor

    def _keep_attached(self, executor: Executor) -> None:
        # A damaged cache file is skipped by the worker: forget it (fetch_index redoes it).
        attached = set(executor.facts.get("attached", ()))
        for name in [n for n in self._files if n not in attached]:
            del self._files[name]

    @property
    def _facts(self) -> dict[str, Any]:
        return self.executor.facts

    def settle(self) -> None:
        """Once the first build of the catalog file has finished, move this catalog onto it now (with its
        build-time facts) instead of when its worker is next idle. Nothing to do otherwise."""
        if not self._facts.get("provisional"):
            return
        with self._gate.reopen(), self._lock:
            if self._executor is not None and self._executor.facts.get("provisional"):
                self._executor.restart(self._files)
                self._keep_attached(self._executor)

    def register_index(self, name: str, db_file: Path) -> None:
        """Attach a fetched index (a DuckDB file holding its table(s)): the worker restarts with it.

        Every table in the file becomes queryable under its own name (usually one table called `name`).
        """
        with self._gate.reopen(), self._lock:
            self._discover_cached_indices()
            self._files[name] = db_file
            if self._executor is None:
                self._executor = self._start_executor()
            else:
                self._executor.restart(self._files)
                self._keep_attached(self._executor)
            self.generation += 1

    def close(self) -> None:
        """Stop the worker (a new one starts on next use)."""
        with self._gate.reopen(), self._lock:
            old, self._executor = self._executor, None
            if old is not None:
                old.close()

    def result_key(self, sql: str, max_rows: int) -> ResultKey:
        """The cache key of a reply to validated `sql` on this catalog as it is now."""
        return ResultKey(sql, max_rows, self.cache_key)

    def text_key(self, text: str, max_rows: int) -> TextKey:
        return TextKey(text, max_rows, self.cache_key)

    # -- facts -------------------------------------------------------------------------------------
    @property
    def building(self) -> bool:
        """True while the catalog file is being built (a first start of this data version): queries are
        answered from the bundled parquet meanwhile."""
        return self.executor.building_since is not None

    def installed_tables(self) -> list[str]:
        return list(self._facts["columns"])

    def is_installed(self, table: str) -> bool:
        return table in self._facts["columns"]

    def columns(self, table: str) -> list[tuple[str, str]]:
        """(column, DuckDB type) of an installed table; empty if not installed."""
        return [tuple(c) for c in self._facts["columns"].get(table, [])]  # type: ignore[misc]

    def preloaded_facts(self) -> dict[str, Any]:
        """The build-time facts the worker read when it opened the catalog (`catalog.facts.preload`):
        empty while it answers from the parquet views of a first-ever start."""
        return self._facts.get("preloaded") or {}

    def row_count(self, table: str) -> int | None:
        return self._facts["row_counts"].get(table)

    # -- running -----------------------------------------------------------------------------------
    def execute(
        self, sql: str, params: Sequence[Any] | None = None, timeout_s: float | None = None
    ) -> QueryOutput:
        """Run SQL that our own code wrote, or that `sqlguard` validated and regenerated.

        Never pass SQL from a caller that did not go through `sql.guard.validate`. Raises QueryStopped
        (QueryTimeout, MemoryExceeded), ResultTooLarge, QueryFailed (DuckDB's error) or QueryCancelled.
        """
        timeout = self.settings.query_timeout_s if timeout_s is None else timeout_s
        with self._gate.query():
            columns, types, rows, elapsed = self.executor.run(sql, list(params) if params else None, timeout)
        return QueryOutput(columns=columns, types=types, rows=rows, elapsed_s=elapsed)

    def records(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Rows as dicts, for trusted internal SQL."""
        out = self.execute(sql, params)
        return [dict(zip(out.columns, row, strict=True)) for row in out.rows]


_default: Catalog | None = None
_default_lock = threading.Lock()


def get_catalog() -> Catalog:
    """The process-wide catalog (opened lazily on first use)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Catalog()
    return _default
