"""Build the catalog file: the bundled parquet materialized once per idc-index-data version.

The build runs in a child process (`python -m idc_mcp.catalog.build TARGET THREADS`): it peaks above
1 GB, and the server must stay small. Concurrent servers wait on one portable file lock (`files.file_lock`).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from idc_mcp.catalog.schemas import bundled_tables
from idc_mcp.catalog.sqltext import quote_identifier, sql_literal
from idc_mcp.config import Settings
from idc_mcp.files import atomic_output, file_lock

log = logging.getLogger(__name__)

# Bumped when the layout of the catalog file changes, so an old cache is rebuilt. The file is written
# atomically (temp file + rename), so its existence under this name means it is complete.
CATALOG_LAYOUT = 2  # 2: exact distinct counts per column in FACTS_SCHEMA
CATALOG_FILE = f"catalog-v{CATALOG_LAYOUT}.duckdb"
# Sorting the main index clusters rows so that DuckDB's zone maps skip most row groups on the
# columns people filter by.
_SORT_KEYS = {"index": ("collection_id", "Modality", "PatientID", "StudyInstanceUID")}
# Facts about the tables computed once here (exact distinct counts: ~3 s for all bundled tables), kept in
# their own schema so that they are never listed or queryable as catalog tables.
FACTS_SCHEMA = "idc_mcp_facts"
DISTINCT_COUNTS = f"{FACTS_SCHEMA}.distinct_counts"


def build_catalog_file(target: Path, threads: int = 2) -> None:
    """Materialize the bundled parquet files into a DuckDB file, atomically (temp file + rename)."""
    started = time.monotonic()
    with atomic_output(target) as tmp:
        con = duckdb.connect(str(tmp), config={"threads": threads, "autoload_known_extensions": False})
        try:
            con.execute("SET enable_progress_bar = false")
            con.execute("SET preserve_insertion_order = false")
            for name, info in bundled_tables().items():
                path = sql_literal(str(info.parquet_path))
                order = _SORT_KEYS.get(name)
                order_sql = f" ORDER BY {', '.join(quote_identifier(c) for c in order)}" if order else ""
                table = quote_identifier(name)
                con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet({path}){order_sql}")
            _write_distinct_counts(con, list(bundled_tables()))
            con.execute("CHECKPOINT")
        finally:
            con.close()
    log.info("built catalog %s in %.1f s", target, time.monotonic() - started)


def _write_distinct_counts(con: duckdb.DuckDBPyConnection, tables: list[str]) -> None:
    """Exact count(DISTINCT) of every scalar column (nested ones are profiled per path at run time)."""
    con.execute(f"CREATE SCHEMA {FACTS_SCHEMA}")
    con.execute(
        f"CREATE TABLE {DISTINCT_COUNTS} (table_name VARCHAR, column_name VARCHAR, distinct_count BIGINT)"
    )
    for table in tables:
        columns = con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = ? "
            "AND data_type NOT LIKE '%[]' AND data_type NOT LIKE 'STRUCT%' AND data_type NOT LIKE 'MAP%'",
            [table],
        ).fetchall()
        for (column,) in columns:
            con.execute(
                f"INSERT INTO {DISTINCT_COUNTS} SELECT ?, ?, count(DISTINCT {quote_identifier(column)}) "
                f"FROM {quote_identifier(table)}",
                [table, column],
            )


def _catalog_is_current(path: Path) -> bool:
    return path.is_file()


def ensure_catalog_file(settings: Settings) -> Path:
    """Return the catalog file for this idc-index-data version, building it once (process-safe)."""
    target = settings.version_cache_dir / CATALOG_FILE
    if _catalog_is_current(target):
        return target
    with file_lock(target.parent / ".catalog.lock"):
        if not _catalog_is_current(target):
            # A child process: the build peaks above 1 GB, the server must stay small.
            done = subprocess.run(
                [sys.executable, "-m", "idc_mcp.catalog.build", str(target), str(settings.threads)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0 or not _catalog_is_current(target):
                raise RuntimeError(f"building the IDC catalog failed: {done.stderr.strip()[-2000:]}")
    return target


if __name__ == "__main__":
    build_catalog_file(Path(sys.argv[1]), int(sys.argv[2]))
