"""`list_tables` and `describe_table`: table facts from the bundled schemas plus the live catalog."""

from __future__ import annotations

import textwrap
import threading
from typing import Any

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from idc_mcp.catalog import facts
from idc_mcp.catalog.database import Catalog, QueryFailed, QueryStopped, ResultTooLarge
from idc_mcp.catalog.memo import Memo
from idc_mcp.catalog.schemas import TableInfo, all_tables, get_table
from idc_mcp.catalog.sqltext import quote_identifier, sql_literal
from idc_mcp.diagnostics.fuzzy import closest
from idc_mcp.diagnostics.nested_values import nested_paths
from idc_mcp.diagnostics.text_formats import recognise, spelling_note, spellings
from idc_mcp.errors import AssistantError
from idc_mcp.indices import clinical, common, fetch
from idc_mcp.sql.json_values import json_safe
from idc_mcp.sql.types import is_nested

# A column with at most this many distinct values gets all of them, with counts.
LOW_CARDINALITY = 50
FULL_VALUES = 500  # values listed for one column asked for in full
TEXT_VALUES_UP_TO = 20_000  # text columns with more distinct values get examples instead
EXAMPLES = 5
# The compact view (one call for a whole table): short descriptions and a few values per column.
COMPACT_VALUES = 5
COMPACT_NESTED_VALUES = 3
COMPACT_EXAMPLES = 2
COMPACT_DESCRIPTION = 110
MAX_VALUE_CHARS = 120  # a longer value (a citation, a title) is cut in the reply
FACT_TIMEOUT_S = 2.0  # an exact distinct count computed now (fetched tables), else approximate


class TableNotFound(AssistantError, ValueError):
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


class NestedValues(BaseModel):
    path: str = Field(description="where the values sit: name[] = list elements, a.b = struct field")
    type: str
    distinct_count: int | None = None
    values: list[ValueCount] = Field(description="element values with the rows holding each, most first")
    values_complete: bool = Field(description="true when `values` lists every distinct value")
    filter: str = Field(
        description="a filter that works in the query tool, for the first value (or for <value> to replace "
        "when the values could not be counted in time)"
    )


class ColumnDescription(BaseModel):
    name: str
    type: str = Field(description="type in the catalog (DuckDB), or the schema type when not installed")
    description: str
    format: str | None = Field(None, description="how the values are written, when not what the type says")
    distinct_count: int | None = None
    distinct_count_exact: bool | None = Field(None, description="false: distinct_count is an estimate")
    values: list[ValueCount] | None = Field(None, description="values with row counts, most common first")
    values_complete: bool = Field(False, description="true when `values` lists every distinct value")
    examples: list[Any] | None = Field(None, description="a few example values (high-cardinality columns)")
    nested: list[NestedValues] | None = Field(None, description="values inside a list or struct column")

    @model_serializer(mode="wrap")
    def _without_empty_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Unset facts are left out: a 31-column table would repeat ~60 bytes of nulls per column.
        return {k: v for k, v in handler(self).items() if v is not None}


class TableDescription(BaseModel):
    name: str
    description: str
    installed: bool
    row_count: int | None
    columns: list[ColumnDescription]
    compact: bool = Field(False, description="true: descriptions shortened and value lists cut")
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
    if name.startswith(common.CLINICAL_PREFIX):
        short = name.removeprefix(common.CLINICAL_PREFIX)
        return (
            f"Clinical data table {short!r} (clinical_index rows with short_table_name = {short!r} "
            "describe its columns; join to `index` on PatientID = dicom_patient_id)."
        )
    return ""


def _clinical_labels(catalog: Catalog, table: str) -> dict[str, str]:
    """Column labels of a clinical table, from clinical_index."""
    if not table.startswith(common.CLINICAL_PREFIX) or not catalog.is_installed(common.CLINICAL_INDEX):
        return {}
    short = table.removeprefix(common.CLINICAL_PREFIX)
    labels = catalog.records(
        'SELECT "column", any_value(column_label) AS label FROM clinical_index '
        "WHERE lower(short_table_name) = ? GROUP BY 1",
        [short],
    )
    return {r["column"]: r["label"] for r in labels if r["label"]}


# Installed tables are read-only: a table's value profile is computed once per catalog and table.
_PROFILES: Memo[TableDescription] = Memo(maxsize=64)
_PROFILING = threading.Lock()
# What a call returns (the compact view, or one column in full) is derived from the profile once:
# replies are shared between calls, nothing downstream modifies them.
_VIEWS: Memo[TableDescription] = Memo(maxsize=256)


def describe_table(catalog: Catalog, table: str, column: str | None = None) -> TableDescription:
    """The table's columns. Compact (a few values each) unless `column` asks for one column in full."""
    info = get_table(table)
    installed = catalog.installed_tables()
    if info is None and table not in installed:
        if clinical := fetch.clinical_not_installed(table, installed):
            raise TableNotFound(clinical)
        near = closest(table, list(all_tables()) + installed, limit=3)
        hint = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        raise TableNotFound(f"Unknown table {table!r}.{hint} list_tables() shows every table.")
    name = info.name if info else table
    if name not in installed:
        columns = [
            ColumnDescription(
                name=c.name, type=c.type + ("[]" if c.mode == "REPEATED" else ""), description=c.description
            )
            for c in (info.columns if info else ())
        ]
        described = TableDescription(
            name=name,
            description=info.description if info else "",
            installed=False,
            row_count=None,
            columns=columns,
            notes=[fetch.not_installed_message(catalog.settings, name)],
        )
    else:
        key = _profile_key(catalog, name)
        view = _VIEWS.get((key, column))
        if view is None:
            described = _profile(catalog, name, info, key)
            view = _one_column(described, column) if column is not None else _compact(described)
            _VIEWS.put((key, column), view)
        return view
    if column is not None:
        return _one_column(described, column)
    return _compact(described)


def _one_column(described: TableDescription, column: str) -> TableDescription:
    found = [c for c in described.columns if c.name == column] or [
        c for c in described.columns if c.name.lower() == column.lower()
    ]
    if not found:
        near = closest(column, [c.name for c in described.columns], limit=3)
        hint = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        raise TableNotFound(
            f"{described.name} has no column {column!r}.{hint} "
            f'describe_table(table="{described.name}") lists its columns.'
        )
    return described.model_copy(update={"columns": [c.model_copy() for c in found], "compact": False})


def _short(text: str, width: int) -> str:
    """Cut at a word boundary, marked with an ellipsis."""
    return textwrap.shorten(text, width, placeholder=" …") if len(text) > width else text


def _compact(described: TableDescription) -> TableDescription:
    cut: list[str] = []
    columns = []
    for col in described.columns:
        short = col.model_copy()  # shallow: what is cut gets new lists, nothing shared is changed
        short.description = _short(col.description, COMPACT_DESCRIPTION)
        if col.values is not None and len(col.values) > COMPACT_VALUES:
            short.values = col.values[:COMPACT_VALUES]
            short.values_complete = False
        if col.examples is not None:
            short.examples = col.examples[:COMPACT_EXAMPLES]
        if col.nested:
            short.nested = [
                n.model_copy(
                    update={
                        "values": n.values[:COMPACT_NESTED_VALUES],
                        "values_complete": n.values_complete and len(n.values) <= COMPACT_NESTED_VALUES,
                    }
                )
                for n in col.nested
            ]
        if short != col:
            cut.append(col.name)
        columns.append(short)
    notes = list(described.notes)
    if cut:
        example = next((c for c in cut if c in _VALUE_COLUMNS_FIRST), cut[0])
        notes.append(
            f"Compact view: descriptions shortened and at most {COMPACT_VALUES} values per column. For one "
            f'column in full (description, every value up to {FULL_VALUES}) call describe_table(table="'
            f'{described.name}", column="{example}").'
        )
    return described.model_copy(update={"columns": columns, "compact": True, "notes": notes})


# Columns worth naming first in the compact view's note (when cut): people filter on them.
_VALUE_COLUMNS_FIRST = ("Modality", "BodyPartExamined", "Manufacturer", "license_short_name")


def _distinct_counts(catalog: Catalog, name: str) -> dict[str, int]:
    """Exact distinct counts computed when the catalog was built (bundled tables)."""
    try:
        rows = catalog.execute(
            f"SELECT column_name, distinct_count FROM {facts.DISTINCT_COUNTS} "
            f"WHERE table_name = {sql_literal(name)}"
        ).rows
    except QueryFailed:  # a catalog built before the counts were kept, or the parquet of a first start
        return {}
    return {c: int(n) for c, n in rows}


def _distinct(catalog: Catalog, ref: str, q: str, known: dict[str, int], column: str) -> tuple[int, bool]:
    if column in known:
        return known[column], True
    try:
        (n,) = catalog.execute(f"SELECT count(DISTINCT {q}) FROM {ref}", timeout_s=FACT_TIMEOUT_S).rows[0]
        return int(n or 0), True
    except (QueryStopped, QueryFailed, ResultTooLarge):
        (n,) = catalog.execute(f"SELECT approx_count_distinct({q}) FROM {ref}").rows[0]
        return int(n or 0), False


def _value_counts(rows: list[tuple[Any, ...]]) -> list[ValueCount]:
    out = []
    for value, count in rows:
        safe = json_safe(value)
        if isinstance(safe, str) and len(safe) > MAX_VALUE_CHARS:
            safe = safe[:MAX_VALUE_CHARS] + "…"
        out.append(ValueCount(value=safe, count=int(count)))
    return out


def _profile_key(catalog: Catalog, name: str) -> tuple[object, ...]:
    """What an installed table's profile depends on: what the catalog holds (`Catalog.cache_key`)."""
    return (catalog.cache_key, name)


def _profile(
    catalog: Catalog, name: str, info: TableInfo | None, key: tuple[object, ...]
) -> TableDescription:
    """Every column of an installed table with its values, computed once per catalog and table."""
    with _PROFILING:  # one profile at a time: concurrent callers wait for it, then find it
        cached = _PROFILES.get(key)
        if cached is not None:
            return cached
        described = _profile_now(catalog, name, info)
        _PROFILES.put(key, described)
        return described


def _profile_now(catalog: Catalog, name: str, info: TableInfo | None) -> TableDescription:
    schema_cols = {c.name: c.description for c in info.columns} if info else _clinical_labels(catalog, name)
    known = _distinct_counts(catalog, name)
    facts.load_table(catalog, name)  # every text column's values in one query, not one per column
    ref = quote_identifier(name)
    columns = []
    for column, dtype in catalog.columns(name):
        col = ColumnDescription(name=column, type=dtype, description=schema_cols.get(column, ""))
        if is_nested(dtype):
            col.nested = _nested(catalog, ref, column, dtype)
        else:
            _scalar(catalog, name, col, known)
        columns.append(col)
    described = TableDescription(
        name=name,
        description=info.description if info else _extra_description(name),
        installed=True,
        row_count=catalog.row_count(name),
        columns=columns,
    )
    return described


def _scalar(catalog: Catalog, table: str, col: ColumnDescription, known: dict[str, int]) -> None:
    ref = quote_identifier(table)
    q = quote_identifier(col.name)
    col.distinct_count, col.distinct_count_exact = _distinct(catalog, ref, q, known, col.name)
    text = col.type == "VARCHAR"
    if col.distinct_count <= LOW_CARDINALITY or (text and col.distinct_count <= TEXT_VALUES_UP_TO):
        built = facts.text_values(catalog, table, col.name) if text and col.distinct_count_exact else None
        # The catalog build counted them, most common first as below: all of them, or enough.
        if built is not None and (built.complete or len(built.values) >= FULL_VALUES):
            rows: list[tuple[Any, ...]] = list(built.values[:FULL_VALUES])
        else:
            rows = catalog.execute(
                f"SELECT {q}, count(*) FROM {ref} WHERE {q} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 "
                f"LIMIT {FULL_VALUES}"
            ).rows
        col.values = _value_counts(rows)
        non_null = col.distinct_count  # count(DISTINCT) leaves NULL out, as the listing does
        col.values_complete = len(rows) >= non_null and col.distinct_count_exact is True
        sample = [v.value for v in col.values]
    else:
        rows = catalog.execute(f"SELECT {q} FROM {ref} WHERE {q} IS NOT NULL LIMIT 2000").rows
        # The first distinct values in table order: the same examples every time (DISTINCT's order is not).
        sample = list(dict.fromkeys(r[0] for r in rows))[:200]
        col.examples = [json_safe(v) for v in sample[:EXAMPLES]]
    if text:
        col.format = _format(col.name, sample)


def _format(column: str, values: list[Any]) -> str | None:
    recognised = recognise(values)
    if recognised is not None:
        return recognised.describe(column)
    groups = spellings(values)
    return spelling_note(column, groups) if groups else None


def _nested(catalog: Catalog, ref: str, column: str, dtype: str) -> list[NestedValues]:
    """Each path's element values; a path too slow to count in FACT_TIMEOUT_S is still listed (with its
    filter idiom), so that the assistant sees where values sit."""
    out = []
    for path in nested_paths(column, dtype):
        try:
            rows = catalog.execute(path.counts_sql(ref, FULL_VALUES), timeout_s=FACT_TIMEOUT_S).rows
        except (QueryStopped, QueryFailed, ResultTooLarge):
            rows = None
        distinct: int | None = len(rows) if rows is not None and len(rows) < FULL_VALUES else None
        if rows is not None and distinct is None:
            try:
                distinct = int(catalog.execute(path.distinct_sql(ref), timeout_s=FACT_TIMEOUT_S).rows[0][0])
            except (QueryStopped, QueryFailed, ResultTooLarge):
                distinct = None
        out.append(
            NestedValues(
                path=path.path,
                type=path.leaf_type,
                distinct_count=distinct,
                values=_value_counts(rows or []),
                values_complete=rows is not None and distinct is not None and len(rows) >= distinct,
                filter=path.filter_text(rows[0][0] if rows else "<value>"),
            )
        )
    return out
