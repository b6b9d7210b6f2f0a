"""Independent answers for tests: plain DuckDB over idc-index-data's parquet files (not our Catalog)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import idc_index_data

PKG = Path(idc_index_data.__file__).parent
INDEX = str(idc_index_data.IDC_INDEX_PARQUET_FILEPATH)
COLLECTIONS = str(PKG / "collections_index.parquet")
ANALYSIS = str(PKG / "analysis_results_index.parquet")


def truth(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Run SQL where {index}, {collections}, {analysis} name the parquet files."""
    con = duckdb.connect()
    try:
        text = sql.format(
            index=f"read_parquet('{INDEX}')",
            collections=f"read_parquet('{COLLECTIONS}')",
            analysis=f"read_parquet('{ANALYSIS}')",
        )
        return con.execute(text, params).fetchall()
    finally:
        con.close()
