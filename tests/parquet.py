"""Independent answers for tests: plain DuckDB over idc-index-data's parquet files (not our Catalog)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import idc_index_data

from idc_mcp.catalog.schemas import bundled_tables

PKG = Path(idc_index_data.__file__).parent
INDEX = str(idc_index_data.IDC_INDEX_PARQUET_FILEPATH)
COLLECTIONS = str(PKG / "collections_index.parquet")
ANALYSIS = str(PKG / "analysis_results_index.parquet")


def _run(setup: list[str], sql: str, params: list[Any] | None) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    try:
        for statement in setup:
            con.execute(statement)
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def parquet_sql(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Run SQL over the raw parquet files with a plain DuckDB connection; tables keep our names."""
    views = [
        f"CREATE VIEW \"{name}\" AS SELECT * FROM read_parquet('{info.parquet_path}')"
        for name, info in bundled_tables().items()
    ]
    return _run(views, sql, params)


def truth(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Run SQL where {index}, {collections}, {analysis} name the parquet files."""
    text = sql.format(
        index=f"read_parquet('{INDEX}')",
        collections=f"read_parquet('{COLLECTIONS}')",
        analysis=f"read_parquet('{ANALYSIS}')",
    )
    return _run([], text, params)


def bundled_citation_count() -> int:
    """Citations the bundled metadata holds: one per source of a collection, one per analysis result. Read
    from the data, so that the next idc-index-data release changes it without a test change."""
    rows = truth("SELECT (SELECT sum(len(sources)) FROM {collections}) + (SELECT count(*) FROM {analysis})")
    return int(rows[0][0])
