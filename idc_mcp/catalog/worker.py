"""The query worker: a child process that holds the locked, read-only DuckDB connection and runs queries.

Started by `catalog.executor` as `python -m idc_mcp.catalog.worker FD` (FD: its end of a socket pair).
It reads its start-up message (where the catalog is, its DuckDB settings, the extra index files) from
stdin, caps its own address space (`RLIMIT_AS`, so no DuckDB function can take more memory than that,
whatever it allocates outside DuckDB's `memory_limit`), opens the catalog with the lockdown, reports
the table facts, and then runs each request on its own thread and cursor. A query is interrupted by a
timer after its timeout; one that cannot be interrupted is ended by the parent killing this process,
which costs only this process: the server lives on and starts another worker.

Only the standard library, duckdb and the catalog's own ground modules are imported here (not pydantic:
the start-up message holds plain values): the worker starts in a fraction of a second and stays small.
"""

from __future__ import annotations

import logging
import pickle
import queue
import re
import shutil
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import duckdb

from idc_mcp.catalog.build import ensure_catalog_at
from idc_mcp.catalog.facts import preload as preload_facts
from idc_mcp.catalog.sqltext import quote_identifier, sql_literal
from idc_mcp.child_process import current_rss, exit_with_parent, limit_address_space

log = logging.getLogger("idc_mcp.catalog.worker")

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Turning a nested DuckDB value into Python objects costs ~40x its size and cannot be interrupted: a
# list of a million structs (25 MB in DuckDB) became 1.3 GB of Python objects and took 20 s. Results
# with nested columns are converted a few rows at a time and refused above this many Python bytes.
MAX_NESTED_PYTHON_BYTES = 160 * 1024 * 1024
# Queries run at once in one worker (the server sends no more than that; each thread reserves stack).
MAX_CONCURRENT = 8


def _config(opening: dict[str, Any]) -> dict[str, Any]:
    """How every query connection starts: no extension loading, capped threads and memory, no spilling."""
    return {
        "autoload_known_extensions": False,
        "autoinstall_known_extensions": False,
        "threads": opening["threads"],
        "memory_limit": opening["memory_limit"],
        # Never spill: an empty temp_directory means no spill folder at all (DuckDB 1.5 creates
        # `<catalog>.tmp/` on a large query even when max_temp_directory_size is 0B); the size cap
        # stays as a second line for versions that treat '' differently.
        "temp_directory": "",
        "max_temp_directory_size": "0B",
        # Memory freed by a query goes back to the system while the worker is idle (seconds later),
        # instead of staying resident at the high-water mark: the worker went from 183 to 134 MiB within
        # 5 s of the issue 26 kinds (it stayed at 184 without). Queries run back to back keep their peak.
        "allocator_background_threads": True,
    }


def open_locked(opening: dict[str, Any], files: dict[str, Path]) -> duckdb.DuckDBPyConnection:
    """Open the catalog read-only, attach the extra index files, then lock it down (see README: Security)."""
    path = ensure_catalog_at(Path(opening["catalog"]), opening["threads"])
    conn = duckdb.connect(str(path), read_only=True, config=_config(opening))
    for name, file in sorted(files.items()):
        try:
            alias = quote_identifier("x_" + name)
            conn.execute(f"ATTACH {sql_literal(str(file))} AS {alias} (READ_ONLY)")
        except duckdb.Error as exc:
            # A damaged cache file must not take the whole catalog down: skip it (fetch_index redoes it).
            log.warning("skipping the cached index %s (%s): %s", name, file, exc)
    conn.execute("SET enable_external_access = false")
    conn.execute("SET lock_configuration = true")
    return conn


def open_provisional(
    opening: dict[str, Any], files: dict[str, Path], scratch: Path
) -> duckdb.DuckDBPyConnection:
    """Until the catalog file is built: views over private copies of the bundled parquet, locked down.

    A first-ever start would otherwise wait 7-15 s for the build. DuckDB reads these files itself, so
    external access is allowed for exactly these paths (`allowed_paths`); they are copies in a private
    temporary folder, so even SQL that bypassed the validator could not touch the installed package.
    """
    from idc_mcp.catalog.schemas import bundled_tables

    conn = duckdb.connect(":memory:", config=_config(opening))
    allowed = []
    for name, info in bundled_tables().items():
        copy = scratch / f"{name}.parquet"
        shutil.copyfile(info.parquet_path, copy)
        allowed.append(str(copy))
        conn.execute(
            f"CREATE VIEW {quote_identifier(name)} AS SELECT * FROM read_parquet({sql_literal(str(copy))})"
        )
    for name, file in sorted(files.items()):
        try:
            conn.execute(f"ATTACH {sql_literal(str(file))} AS {quote_identifier('x_' + name)} (READ_ONLY)")
        except duckdb.Error as exc:
            log.warning("skipping the cached index %s (%s): %s", name, file, exc)
    conn.execute(f"SET allowed_paths = [{', '.join(map(sql_literal, allowed))}]")
    conn.execute("SET enable_external_access = false")
    conn.execute("SET lock_configuration = true")
    return conn


def load_facts(conn: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Tables, their columns and row counts, and which attached file serves each fetched table."""
    rows = conn.execute(
        "SELECT database_name, table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE NOT internal AND schema_name = 'main' ORDER BY column_index"
    ).fetchall()
    main = {table for database, table, _, _ in rows if not database.startswith("x_")}
    extra: dict[str, str] = {}
    columns: dict[str, list[tuple[str, str]]] = {}
    for database, table, column, dtype in rows:
        if database.startswith("x_"):
            # A fetched file never shadows a bundled table, nor another file's table.
            if table in main or extra.setdefault(table, database) != database:
                continue
        columns.setdefault(table, []).append((column, dtype))
    counts = {}
    for table in columns:
        ref = table_ref(table, extra)
        counts[table] = int(conn.execute(f"SELECT count(*) FROM {ref}").fetchone()[0])  # type: ignore[index]
    databases = conn.execute("SELECT database_name FROM duckdb_databases()").fetchall()
    attached = sorted(d[0][2:] for d in databases if d[0].startswith("x_"))
    return {
        "columns": columns,
        "row_counts": counts,
        "extra": extra,
        "attached": attached,
        "preloaded": preload_facts(conn),
    }


def table_ref(table: str, extra: dict[str, str]) -> str:
    if table in extra:
        return f"{quote_identifier(extra[table])}.{quote_identifier(table)}"
    return quote_identifier(table)


# DuckDB's own kinds of nested type (DuckDBPyType.id). The worker asks DuckDB, which typed the result;
# code that only has a type's text reads it with sqlglot (sql.types), never by hand.
_NESTED_TYPE_IDS = frozenset({"list", "array", "struct", "map", "union"})


def _is_nested(duckdb_type: Any) -> bool:
    return getattr(duckdb_type, "id", None) in _NESTED_TYPE_IDS


class _Refused(Exception):
    """A result this worker will not convert (the message says why and what to do)."""


def _fetch_rows(result: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    """All rows as Python tuples, refusing nested results too large to convert safely.

    A nested value costs ~40x its DuckDB size as Python objects, and the conversion cannot be
    interrupted: nested results are fetched a few rows at a time and their Python size is added up,
    so conversion stops at MAX_NESTED_PYTHON_BYTES. (Arrow is not used to size them: it needs its own
    thread pool, which cannot start under the worker's address-space cap.)
    """
    description = result.description or []
    nested = [i for i, d in enumerate(description) if _is_nested(d[1])]
    if not nested:
        return result.fetchall()
    rows: list[tuple[Any, ...]] = []
    size = 0
    while chunk := result.fetchmany(16):
        size += sum(_python_size(row[i]) for row in chunk for i in nested)
        if size > MAX_NESTED_PYTHON_BYTES:
            raise _Refused(
                f"the result holds more than {MAX_NESTED_PYTHON_BYTES // 2**20} MB of nested values "
                "(lists, structs, maps) once converted. Return fewer list elements (filter before "
                "list()/array_agg(), or unnest and aggregate)"
            )
        rows.extend(chunk)
    return rows


def _python_size(value: Any) -> int:
    """Bytes held by a converted value and everything it contains (iterative: values nest deeply)."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        total += sys.getsizeof(item)
        if isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
    return total


class Worker:
    """Runs requests on a fixed pool of threads, each query on its own cursor with its own deadline.

    The threads (and the one that interrupts late queries) exist before any query runs: after a query
    exhausted the address space, no new thread could be started.
    """

    def __init__(
        self,
        conn: duckdb.DuckDBPyConnection,
        facts: dict[str, Any],
        channel: Connection,
        threads: int = MAX_CONCURRENT,
    ) -> None:
        self.conn = conn
        self.extra: dict[str, str] = facts["extra"]
        self.channel = channel
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        # request -> (cursor, deadline) of the queries running now
        self._running: dict[int, tuple[duckdb.DuckDBPyConnection, float]] = {}
        self._cancelled: set[int] = set()
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        for i in range(threads):
            threading.Thread(target=self._serve_queue, name=f"query-{i}", daemon=True).start()
        threading.Thread(target=self._interrupt_late, name="deadlines", daemon=True).start()

    def send(self, message: tuple[Any, ...]) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with self._send_lock:
            self.channel.send_bytes(data)

    def serve(self) -> None:
        while True:
            try:
                message = self.channel.recv()
            except (EOFError, OSError):
                return  # the server is gone: so is this worker
            kind = message[0]
            if kind == "execute":
                self._queue.put(message[1:])
            elif kind == "cancel":
                self._cancel(message[1])
            elif kind == "stop":
                return

    def _serve_queue(self) -> None:
        while (job := self._queue.get()) is not None:
            self._execute(*job)

    def _interrupt_late(self) -> None:
        while True:
            time.sleep(0.02)
            now = time.monotonic()
            with self._lock:
                late = [cur for cur, deadline in self._running.values() if deadline <= now]
            for cur in late:
                cur.interrupt()

    def _cancel(self, request: int) -> None:
        with self._lock:
            self._cancelled.add(request)
            running = self._running.get(request)
        if running is not None:
            running[0].interrupt()

    def _execute(self, request: int, sql: str, params: list[Any] | None, timeout_s: float) -> None:
        try:
            reply = self._run(request, sql, params, timeout_s)
        except duckdb.InterruptException:
            cancelled = request in self._cancelled
            reply = ("cancelled" if cancelled else "timeout", f"{timeout_s:g}")
        except _Refused as exc:
            reply = ("too_large", str(exc))
        except duckdb.OutOfMemoryException as exc:
            reply = ("memory", str(exc).splitlines()[0][:300])
        except MemoryError:
            reply = ("memory", "the result did not fit in the worker's memory")
        except duckdb.Error as exc:
            reply = ("duckdb", (type(exc).__name__, str(exc)))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it as an error
            log.exception("query failed in the worker")
            reply = ("internal", f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._running.pop(request, None)
                self._cancelled.discard(request)
        try:
            self.send((request, *reply, current_rss()))
        except MemoryError:
            self.send((request, "memory", "the result did not fit in the worker's memory", current_rss()))
        except (OSError, ValueError):
            pass  # the parent is gone

    def _run(
        self, request: int, sql: str, params: list[Any] | None, timeout_s: float
    ) -> tuple[str, tuple[list[str], list[str], list[tuple[Any, ...]], float]]:
        started = time.monotonic()
        cur = self.conn.cursor()
        try:
            with self._lock:
                if request in self._cancelled:
                    raise duckdb.InterruptException("cancelled before it started")
                self._running[request] = (cur, started + timeout_s)
            # Fetched tables are views per cursor (~2 ms each): only those the SQL can name get one.
            words = {w.lower() for w in _WORD.findall(sql)}
            for name in [n for n in self.extra if n.lower() in words]:
                view, ref = quote_identifier(name), table_ref(name, self.extra)
                cur.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {ref}")
            result = cur.execute(sql, params or None)
            description = result.description or []
            rows = _fetch_rows(result)
            elapsed = time.monotonic() - started
            return "ok", ([d[0] for d in description], [str(d[1]) for d in description], rows, elapsed)
        finally:
            cur.close()


def _without_dataframe_libraries() -> None:
    """Make pandas, numpy and pyarrow unimportable here.

    DuckDB imports pandas and numpy the first time a query binds a parameter (to check whether a value
    is one of their types): 0.3-0.7 s and ~90 MiB of resident memory in a worker that only ever hands
    back Python tuples. Absent, DuckDB binds parameters as it does where they are not installed.
    """
    for name in ("pandas", "numpy", "pyarrow"):
        sys.modules.setdefault(name, None)  # type: ignore[assignment]  # `import name` now fails


def main() -> int:
    _without_dataframe_libraries()
    exit_with_parent()
    start = pickle.load(sys.stdin.buffer)
    logging.basicConfig(level=start.get("log_level", "WARNING"), stream=sys.stderr)
    # Plain values, not the server's Settings: this process never imports pydantic (~20 MiB resident).
    opening: dict[str, Any] = start["opening"]
    files = {name: Path(p) for name, p in start["files"].items()}
    channel = Connection(int(sys.argv[1]))
    built = Path(opening["catalog"]).is_file()
    scratch = None if built else Path(tempfile.mkdtemp(prefix="idc-mcp-provisional-"))
    try:
        conn = open_locked(opening, files) if scratch is None else open_provisional(opening, files, scratch)
        facts = load_facts(conn)
        facts["provisional"] = scratch is not None  # answering from the parquet while the file is built
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it on the next query
        channel.send(("failed", f"{type(exc).__name__}: {exc}"))
        return 1
    worker = Worker(conn, facts, channel, start.get("threads", MAX_CONCURRENT))
    try:
        if scratch is None:
            # Capped once open, with its threads started: the open itself is ours; what queries
            # allocate is bounded. (A provisional worker is not capped: its build child would
            # inherit the cap. The server's watch on its resident memory still holds.)
            limit_address_space(start["address_space_bytes"])
        channel.send(("ready", facts, current_rss()))
        if scratch is not None:
            threading.Thread(target=_build_then_report, args=(opening, worker), daemon=True).start()
        worker.serve()
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _build_then_report(opening: dict[str, Any], worker: Worker) -> None:
    """Build the catalog file (one thread: the provisional worker answers meanwhile), then tell the
    server, which replaces this worker by one on the file once no query runs."""
    try:
        ensure_catalog_at(Path(opening["catalog"]), 1)
    except Exception:  # noqa: BLE001 - the next worker's open retries the build and reports it
        log.exception("building the catalog failed")
    worker.send((0, "built", None, current_rss()))


if __name__ == "__main__":
    sys.exit(main())
