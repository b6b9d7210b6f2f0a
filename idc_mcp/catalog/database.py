"""The IDC catalog: a locked-down, read-only DuckDB database over idc-index-data's bundled parquet.

The bundled parquet files are materialized once per idc-index-data version into a DuckDB file in the
cache folder (`<cache>/<version>/catalog.duckdb`); queries run against that file opened read-only, so
the data can never be written through SQL. Specialized indices fetched later are converted to DuckDB
files of their own and attached read-only (see `indices/fetch.py`). The lockdown is the second line of
defence: SQL reaches it only after `sql.guard.validate` accepted it.

Lockdown, in order: extension autoload/autoinstall off (at open), memory limit and thread cap, attach
the extra indices, external access off (no file, URL or extension access at all), configuration locked.
Each query runs in its own cursor and is interrupted by a timer after the query timeout.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from idc_mcp.cancellation import cancelled, on_cancel
from idc_mcp.catalog.build import ensure_catalog_file
from idc_mcp.catalog.sqltext import quote_identifier, sql_literal
from idc_mcp.config import Settings, load_settings

log = logging.getLogger(__name__)

# Fetched indices live in this folder of the version cache dir, one DuckDB file each (see indices/fetch.py).
INDICES_DIR = "indices"
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class QueryTimeout(Exception):
    """A query ran longer than the allowed time and was interrupted (or hit another run-time bound)."""


class ResultTooLarge(Exception):
    """A result holds more nested data than the server converts (a size refusal, not a timeout)."""


# Turning a nested DuckDB value into Python objects costs ~40x its size and cannot be interrupted: a
# list of a million structs (25 MB in DuckDB) became 1.3 GB of Python objects and took 20 s. Results
# with nested columns are sized in Arrow form first and refused above this many bytes.
MAX_NESTED_RESULT_BYTES = 8 * 1024 * 1024


def _is_nested(duckdb_type: str) -> bool:
    return "[" in duckdb_type or duckdb_type.startswith(("STRUCT", "MAP", "UNION"))


def _fetch_rows(cur: duckdb.DuckDBPyConnection, result: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    """All rows as Python tuples, refusing nested results too large to convert safely."""
    if not any(_is_nested(str(d[1])) for d in result.description or []):
        return result.fetchall()
    table = result.to_arrow_table()
    if table.nbytes > MAX_NESTED_RESULT_BYTES:
        raise ResultTooLarge(
            f"the result holds {table.nbytes / 2**20:.0f} MB of nested values (lists, structs, maps); "
            f"the limit is {MAX_NESTED_RESULT_BYTES // 2**20} MB. Return fewer list elements (filter before "
            "list()/array_agg(), or unnest and aggregate)"
        )
    # Converted by DuckDB itself, so values keep the types a direct fetchall() would give.
    return cur.from_arrow(table).fetchall()


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
    """The query connection. Thread-safe: every query gets its own cursor."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        self._lock = threading.Lock()
        self._conn: duckdb.DuckDBPyConnection | None = None
        # Extra indices (fetched on demand): attached DuckDB files by index name (attached as `x_<name>`),
        # and which attached file serves each of their tables (one file may hold several tables:
        # the clinical tables share one).
        self._files: dict[str, Path] = {}
        self._extra: dict[str, str] = {}
        self._discovered = False
        self._gate = _Gate()
        self._row_counts: dict[str, int] = {}
        self._columns: dict[str, list[tuple[str, str]]] = {}

    @property
    def key(self) -> str:
        """The catalog's content as a value, to key caches with: its version's cache folder. The
        catalog file and the indices fetched into that folder never change while they are open."""
        return str(self.settings.version_cache_dir)

    # -- opening -----------------------------------------------------------------------------------
    def _open(self) -> duckdb.DuckDBPyConnection:
        path = ensure_catalog_file(self.settings)
        conn = duckdb.connect(
            str(path),
            read_only=True,
            config={
                "autoload_known_extensions": False,
                "autoinstall_known_extensions": False,
                "threads": self.settings.threads,
                "memory_limit": self.settings.memory_limit,
                # Never spill: an empty temp_directory means no spill folder at all (DuckDB 1.5 creates
                # `<catalog>.tmp/` on a large query even when max_temp_directory_size is 0B); the size
                # cap stays as a second line for versions that treat '' differently.
                "temp_directory": "",
                "max_temp_directory_size": "0B",
            },
        )
        (locked,) = conn.execute("SELECT current_setting('lock_configuration')").fetchone()  # type: ignore[misc]
        attached = {r[0] for r in conn.execute("SELECT database_name FROM duckdb_databases()").fetchall()}
        if locked:
            # DuckDB shares one instance per file within a process: another Catalog already locked it.
            (external,) = conn.execute("SELECT current_setting('enable_external_access')").fetchone()  # type: ignore[misc]
            wanted = {"x_" + name for name in self._files}
            if external or not wanted <= attached:
                conn.close()
                raise RuntimeError("the catalog file is already open in this process with other settings")
            return conn
        for name, file in sorted(self._files.items()):
            try:
                alias = quote_identifier("x_" + name)
                conn.execute(f"ATTACH {sql_literal(str(file))} AS {alias} (READ_ONLY)")
            except duckdb.Error as exc:
                # A damaged cache file must not take the whole catalog down: skip it (fetch_index redoes it).
                log.warning("skipping the cached index %s (%s): %s", name, file, exc)
                del self._files[name]
        conn.execute("SET enable_external_access = false")
        conn.execute("SET lock_configuration = true")
        return conn

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
    def conn(self) -> duckdb.DuckDBPyConnection:
        if self._conn is None:
            with self._lock:
                if self._conn is None:
                    self._discover_cached_indices()
                    # Publish the connection only with its facts loaded: another thread that sees
                    # `_conn` set does not take the lock, and must not see an empty table list.
                    conn = self._open()
                    self._load_facts(conn)
                    self._conn = conn
        return self._conn

    def _load_facts(self, conn: duckdb.DuckDBPyConnection) -> None:
        columns: dict[str, list[tuple[str, str]]] = {}
        counts: dict[str, int] = {}
        rows = conn.execute(
            "SELECT database_name, table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE NOT internal AND schema_name = 'main' ORDER BY column_index"
        ).fetchall()
        main = {table for database, table, _, _ in rows if not database.startswith("x_")}
        extra: dict[str, str] = {}
        for database, table, column, dtype in rows:
            if database.startswith("x_"):
                # A fetched file never shadows a bundled table, nor another file's table.
                if table in main or extra.setdefault(table, database) != database:
                    continue
            columns.setdefault(table, []).append((column, dtype))
        self._extra = extra
        for table in columns:
            counts[table] = self._count(conn, table)
        self._columns, self._row_counts = columns, counts

    def _count(self, conn: duckdb.DuckDBPyConnection, table: str) -> int:
        ref = self._table_ref(table)
        return int(conn.execute(f"SELECT count(*) FROM {ref}").fetchone()[0])  # type: ignore[index]

    def _table_ref(self, table: str) -> str:
        if table in self._extra:
            return f"{quote_identifier(self._extra[table])}.{quote_identifier(table)}"
        return quote_identifier(table)

    def register_index(self, name: str, db_file: Path) -> None:
        """Attach a fetched index (a DuckDB file holding its table(s)) and reopen the catalog.

        Every table in the file becomes queryable under its own name (usually one table called `name`).
        """
        with self._gate.reopen(), self._lock:
            self._discover_cached_indices()
            self._files[name] = db_file
            # Close first: DuckDB hands out the cached (locked) instance while a connection is open.
            old, self._conn = self._conn, None
            if old is not None:
                old.close()
            new = self._open()
            self._load_facts(new)
            self._conn = new

    def close(self) -> None:
        """Close the connection (it reopens on next use)."""
        with self._gate.reopen(), self._lock:
            old, self._conn = self._conn, None
            if old is not None:
                old.close()

    # -- facts -------------------------------------------------------------------------------------
    def installed_tables(self) -> list[str]:
        _ = self.conn
        return list(self._columns)

    def is_installed(self, table: str) -> bool:
        return table in self.installed_tables()

    def columns(self, table: str) -> list[tuple[str, str]]:
        """(column, DuckDB type) of an installed table; empty if not installed."""
        _ = self.conn
        return list(self._columns.get(table, []))

    def row_count(self, table: str) -> int | None:
        _ = self.conn
        return self._row_counts.get(table)

    # -- running -----------------------------------------------------------------------------------
    @contextmanager
    def cursor(self, sql: str | None = None):  # type: ignore[no-untyped-def]
        """A cursor where the fetched tables that `sql` names (all of them when no SQL is given) are views.

        Views are per cursor and cost ~2 ms each, so only the tables a query can refer to get one.
        """
        with self._gate.query():
            cur = self.conn.cursor()
            extra = self._extra
            if sql is not None and extra:
                words = {w.lower() for w in _WORD.findall(sql)}
                extra = {name: db for name, db in extra.items() if name.lower() in words}
            try:
                for name in extra:
                    ref = self._table_ref(name)
                    view = quote_identifier(name)
                    cur.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {ref}")
                yield cur
            finally:
                cur.close()

    def execute(
        self, sql: str, params: Sequence[Any] | None = None, timeout_s: float | None = None
    ) -> QueryOutput:
        """Run SQL that our own code wrote, or that `sqlguard` validated and regenerated.

        Never pass SQL from a caller that did not go through `sql.guard.validate`.
        """
        timeout = self.settings.query_timeout_s if timeout_s is None else timeout_s
        with self.cursor(sql) as cur:
            timer = threading.Timer(timeout, cur.interrupt)
            timer.daemon = True
            started = time.monotonic()
            timer.start()
            try:
                with on_cancel(cur.interrupt):  # the caller went away: stop now, not at the timeout
                    result = cur.execute(sql, list(params) if params else None)
                    description = result.description or []
                    rows = _fetch_rows(cur, result)
            except duckdb.InterruptException as exc:
                if cancelled():
                    raise QueryTimeout("the query was stopped: the client went away") from exc
                raise QueryTimeout(f"the query took longer than {timeout:g} s and was stopped") from exc
            finally:
                timer.cancel()
            elapsed = time.monotonic() - started
        return QueryOutput(
            columns=[d[0] for d in description],
            types=[str(d[1]) for d in description],
            rows=rows,
            elapsed_s=elapsed,
        )

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
