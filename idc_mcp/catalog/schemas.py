"""Table and column facts from idc-index-data's bundled `*_schema.json` files: the one source of truth.

idc-index-data names the main table `idc_index`; we serve it as `index` (the name idc-index uses in SQL).
Every index idc-index-data knows is listed here, also those whose parquet is not bundled (they are fetched
on demand); `parquet_path` is set only for the bundled ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import idc_index_data

# idc-index-data key -> the table name in our SQL.
_RENAMES = {"idc_index": "index"}
# The join keys we suggest between tables, most specific first.
JOIN_KEYS = ("SeriesInstanceUID", "StudyInstanceUID", "analysis_result_id", "collection_id", "PatientID")


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str
    mode: str
    description: str


@dataclass(frozen=True)
class TableInfo:
    name: str
    source_key: str
    description: str
    columns: tuple[ColumnInfo, ...]
    parquet_path: Path | None

    @property
    def bundled(self) -> bool:
        return self.parquet_path is not None

    def column(self, name: str) -> ColumnInfo | None:
        for col in self.columns:
            if col.name == name:
                return col
        lowered = name.lower()
        for col in self.columns:
            if col.name.lower() == lowered:
                return col
        return None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


@cache
def all_tables() -> dict[str, TableInfo]:
    """Every index idc-index-data describes, keyed by our table name, in idc-index-data's order."""
    tables: dict[str, TableInfo] = {}
    for key, meta in idc_index_data.INDEX_METADATA.items():
        schema = meta.get("schema")
        if not isinstance(schema, dict):
            continue
        name = _RENAMES.get(key, key)
        columns = tuple(
            ColumnInfo(
                name=str(c["name"]),
                type=str(c.get("type", "")),
                mode=str(c.get("mode", "")),
                description=str(c.get("description", "")).strip(),
            )
            for c in schema.get("columns", [])  # type: ignore[union-attr]
        )
        path = meta.get("parquet_filepath")
        tables[name] = TableInfo(
            name=name,
            source_key=key,
            description=str(schema.get("table_description", "")).strip(),
            columns=columns,
            parquet_path=Path(path) if isinstance(path, Path) else None,
        )
    return tables


def bundled_tables() -> dict[str, TableInfo]:
    return {n: t for n, t in all_tables().items() if t.bundled}


def get_table(name: str) -> TableInfo | None:
    tables = all_tables()
    if name in tables:
        return tables[name]
    lowered = name.lower()
    for tname, info in tables.items():
        if tname.lower() == lowered or info.source_key == lowered:
            return info
    return None
