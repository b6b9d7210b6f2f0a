"""`list_tables` and `describe_table`: table facts from the bundled schemas plus the live catalog."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.memo import Memo
from idc_mcp.catalog.schemas import all_tables, get_table
from idc_mcp.catalog.sqltext import quote_identifier
from idc_mcp.diagnostics.fuzzy import closest
from idc_mcp.indices import clinical, fetch
from idc_mcp.sql.json_values import json_safe

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
    size_bytes: int | None = Field(
        None, description="download size of a fetched index (null: bundled, or not known until fetched)"
    )
    size: str | None = Field(None, description="size_bytes, human readable, or 'unknown until fetched'")


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
        size = None if info.bundled else fetch.known_size(catalog.settings, name)
        how = None if is_installed else f'fetch_index("{name}")'
        label = fetch.human_size(size) or (None if is_installed else "unknown until fetched")
        out.append(
            TableSummary(
                name=name,
                description=info.description,
                installed=is_installed,
                row_count=catalog.row_count(name) if is_installed else None,
                how_to_install=how,
                size_bytes=size,
                size=label,
            )
        )
    sizes = clinical.table_sizes(catalog.settings)
    for name in sorted(installed - set(all_tables())):
        out.append(
            TableSummary(
                name=name,
                description=_extra_description(name),
                installed=True,
                row_count=catalog.row_count(name),
                size_bytes=sizes.get(name),
                size=fetch.human_size(sizes.get(name)),
            )
        )
    return out


def _extra_description(name: str) -> str:
    if name.startswith(fetch.CLINICAL_PREFIX):
        short = name.removeprefix(fetch.CLINICAL_PREFIX)
        return (
            f"Clinical data table {short!r} (clinical_index rows with short_table_name = {short!r} "
            "describe its columns; join to `index` on PatientID = dicom_patient_id)."
        )
    return ""


def _clinical_labels(catalog: Catalog, table: str) -> dict[str, str]:
    """Column labels of a clinical table, from clinical_index."""
    if not table.startswith(fetch.CLINICAL_PREFIX) or not catalog.is_installed(fetch.CLINICAL_INDEX):
        return {}
    short = table.removeprefix(fetch.CLINICAL_PREFIX)
    labels = catalog.records(
        'SELECT "column", any_value(column_label) AS label FROM clinical_index '
        "WHERE lower(short_table_name) = ? GROUP BY 1",
        [short],
    )
    return {r["column"]: r["label"] for r in labels if r["label"]}


def _is_simple_type(dtype: str) -> bool:
    return not any(token in dtype for token in ("STRUCT", "[]", "MAP", "LIST", "UNION"))


# Installed tables are read-only: a table's value profile is computed once per catalog and table.
_PROFILES: Memo[TableDescription] = Memo(maxsize=64)


def describe_table(catalog: Catalog, table: str) -> TableDescription:
    info = get_table(table)
    installed = catalog.installed_tables()
    if info is None and table not in installed:
        if clinical := fetch.clinical_not_installed(table, installed):
            raise TableNotFound(clinical)
        near = closest(table, list(all_tables()) + installed, limit=3)
        hint = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        raise TableNotFound(f"Unknown table {table!r}.{hint} list_tables() shows every table.")
    name = info.name if info else table
    schema_cols = {c.name: c.description for c in info.columns} if info else _clinical_labels(catalog, name)
    if name not in installed:
        return TableDescription(
            name=name,
            description=info.description if info else "",
            installed=False,
            row_count=None,
            columns=[
                ColumnDescription(name=c.name, type=c.type, description=c.description) for c in info.columns
            ]
            if info
            else [],
            notes=[fetch.not_installed_message(catalog.settings, name)],
        )
    key = (catalog.key, name, catalog.row_count(name), tuple(catalog.columns(name)))
    cached = _PROFILES.get(key)
    if cached is not None:
        return cached.model_copy(deep=True)
    columns = []
    ref = quote_identifier(name)
    for column, dtype in catalog.columns(name):
        col = ColumnDescription(
            name=column,
            type=dtype,
            description=schema_cols.get(column, ""),
        )
        q = quote_identifier(column)
        if _is_simple_type(dtype):
            (distinct,) = catalog.execute(f"SELECT approx_count_distinct({q}) FROM {ref}").rows[0]
            col.distinct_count = int(distinct or 0)
            if (
                col.distinct_count <= LOW_CARDINALITY
                or col.distinct_count <= 2 * TOP_VALUES
                and dtype == "VARCHAR"
            ):
                rows = catalog.execute(
                    f"SELECT {q}, count(*) FROM {ref} GROUP BY 1 "
                    f"ORDER BY 2 DESC, 1 LIMIT {LOW_CARDINALITY + 1}"
                ).rows
                col.values = [ValueCount(value=json_safe(v), count=n) for v, n in rows[:LOW_CARDINALITY]]
                col.values_complete = len(rows) <= LOW_CARDINALITY
                col.distinct_count = len(rows) if col.values_complete else col.distinct_count
            elif dtype == "VARCHAR" and col.distinct_count < 20_000:
                rows = catalog.execute(
                    f"SELECT {q}, count(*) FROM {ref} WHERE {q} IS NOT NULL GROUP BY 1 "
                    f"ORDER BY 2 DESC, 1 LIMIT {TOP_VALUES}"
                ).rows
                col.values = [ValueCount(value=json_safe(v), count=n) for v, n in rows]
            else:
                rows = catalog.execute(
                    f"SELECT DISTINCT {q} FROM (SELECT {q} FROM {ref} WHERE {q} IS NOT NULL LIMIT 1000) "
                    f"LIMIT {EXAMPLES}"
                ).rows
                col.examples = [json_safe(r[0]) for r in rows]
        else:
            rows = catalog.execute(f"SELECT {q} FROM {ref} WHERE {q} IS NOT NULL LIMIT 1").rows
            col.examples = [json_safe(r[0]) for r in rows]
        columns.append(col)
    described = TableDescription(
        name=name,
        description=info.description if info else _extra_description(name),
        installed=True,
        row_count=catalog.row_count(name),
        columns=columns,
    )
    _PROFILES.put(key, described)
    return described.model_copy(deep=True)
