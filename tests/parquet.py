"""Independent access to the bundled parquet files: tests compare our answers against these."""

from __future__ import annotations

from typing import Any

import duckdb
import idc_index_data

from idc_mcp.schemas import bundled_tables


def parquet_sql(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Run SQL over the raw parquet files with a plain DuckDB connection; tables keep our names."""
    con = duckdb.connect()
    try:
        for name, info in bundled_tables().items():
            con.execute(f"CREATE VIEW \"{name}\" AS SELECT * FROM read_parquet('{info.parquet_path}')")
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


__all__ = ["parquet_sql", "idc_index_data"]
