"""`list_tables` and `describe_table`: table facts from the bundled schemas plus the live catalog."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from idc_mcp.catalog import Catalog
from idc_mcp.fuzzy import closest
from idc_mcp.results import json_safe
from idc_mcp.schemas import all_tables, get_table

# A column with at most this many distinct values gets all of them, with counts.
LOW_CARDINALITY = 50
TOP_VALUES = 25
EXAMPLES = 5


class TableNotFound(ValueError):
    pass


class TableSummary(BaseModel):
    name: str
    description: str
    installed: bool
    row_count: int | None = Field(None, description="rows, when installed")
    how_to_install: str | None = Field(None, description="the call that installs it, when not installed")


class ValueCount(BaseModel):
    value: Any
    count: int


class ColumnDescription(BaseModel):
    name: str
    type: str = Field(description="type in the catalog (DuckDB), or the schema type when not installed")
    description: str
    distinct_count: int | None = None
    values: list[ValueCount] | None = Field(
        None, description="all distinct values with counts (low-cardinality columns) or the most common ones"
    )
    values_complete: bool = Field(False, description="true when `values` lists every distinct value")
    examples: list[Any] | None = Field(None, description="a few example values (high-cardinality columns)")


class TableDescription(BaseModel):
    name: str
    description: str
    installed: bool
    row_count: int | None
    columns: list[ColumnDescription]
    notes: list[str] = Field(default_factory=list)


def list_tables(catalog: Catalog) -> list[TableSummary]:
    installed = set(catalog.installed_tables())
    out = []
    for name, info in all_tables().items():
        is_installed = name in installed
        out.append(
            TableSummary(
                name=name,
                description=info.description,
                installed=is_installed,
                row_count=catalog.row_count(name) if is_installed else None,
                how_to_install=None if is_installed else f'fetch_index("{name}")',
            )
        )
    for name in sorted(installed - set(all_tables())):
        out.append(TableSummary(name=name, description="", installed=True, row_count=catalog.row_count(name)))
    return out


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _is_simple_type(dtype: str) -> bool:
    return not any(token in dtype for token in ("STRUCT", "[]", "MAP", "LIST", "UNION"))


def describe_table(catalog: Catalog, table: str) -> TableDescription:
    info = get_table(table)
    installed = catalog.installed_tables()
    if info is None and table not in installed:
        near = closest(table, list(all_tables()) + installed, limit=3)
        hint = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        raise TableNotFound(f"Unknown table {table!r}.{hint} list_tables() shows every table.")
    name = info.name if info else table
    schema_cols = {c.name: c for c in info.columns} if info else {}
    if name not in installed:
        return TableDescription(
            name=name,
            description=info.description if info else "",
            installed=False,
            row_count=None,
            columns=[ColumnDescription(name=c.name, type=c.type, description=c.description) for c in info.columns]
            if info
            else [],
            notes=[f'Not installed: call fetch_index("{name}") before querying it.'],
        )
    columns = []
    ref = _quote(name)
    for column, dtype in catalog.columns(name):
        col = ColumnDescription(
            name=column,
            type=dtype,
            description=schema_cols[column].description if column in schema_cols else "",
        )
        if _is_simple_type(dtype):
            q = _quote(column)
            (distinct,) = catalog.execute(f"SELECT approx_count_distinct({q}) FROM {ref}").rows[0]
            col.distinct_count = int(distinct or 0)
            if col.distinct_count <= LOW_CARDINALITY or col.distinct_count <= 2 * TOP_VALUES and dtype == "VARCHAR":
                rows = catalog.execute(
                    f"SELECT {q}, count(*) FROM {ref} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {LOW_CARDINALITY + 1}"
                ).rows
                col.values = [ValueCount(value=json_safe(v), count=n) for v, n in rows[:LOW_CARDINALITY]]
                col.values_complete = len(rows) <= LOW_CARDINALITY
                col.distinct_count = len(rows) if col.values_complete else col.distinct_count
            elif dtype == "VARCHAR" and col.distinct_count < 20_000:
                rows = catalog.execute(
                    f"SELECT {q}, count(*) FROM {ref} WHERE {q} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {TOP_VALUES}"
                ).rows
                col.values = [ValueCount(value=json_safe(v), count=n) for v, n in rows]
            else:
                rows = catalog.execute(
                    f"SELECT DISTINCT {q} FROM (SELECT {q} FROM {ref} WHERE {q} IS NOT NULL LIMIT 1000) LIMIT {EXAMPLES}"
                ).rows
                col.examples = [json_safe(r[0]) for r in rows]
        else:
            rows = catalog.execute(f"SELECT {_quote(column)} FROM {ref} WHERE {_quote(column)} IS NOT NULL LIMIT 1").rows
            col.examples = [json_safe(r[0]) for r in rows]
        columns.append(col)
    return TableDescription(
        name=name,
        description=info.description if info else "",
        installed=True,
        row_count=catalog.row_count(name),
        columns=columns,
    )
