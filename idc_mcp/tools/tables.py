"""`list_tables` and `describe_table`: table facts from the bundled schemas plus the live catalog."""

from __future__ import annotations

import threading
from typing import Any

from idc_mcp.catalog import facts
from idc_mcp.catalog.database import Catalog, QueryFailed, QueryStopped, ResultTooLarge
from idc_mcp.catalog.memo import Memo
from idc_mcp.catalog.schemas import TableInfo, all_tables, get_table
from idc_mcp.catalog.sqltext import quote_identifier, sql_literal
from idc_mcp.diagnostics import placeholders
from idc_mcp.diagnostics.fuzzy import closest
from idc_mcp.diagnostics.nested_values import is_nested, nested_paths
from idc_mcp.diagnostics.text_formats import recognise, spelling_brief, spelling_note, spellings
from idc_mcp.errors import AssistantError
from idc_mcp.indices import clinical, common, fetch
from idc_mcp.sql.json_values import MAX_REPLY_BYTES, json_safe
from idc_mcp.tools import table_summary as summary
from idc_mcp.tools.table_models import (
    ColumnDescription,
    NestedValues,
    TableDescription,
    TableProfile,
    TableSummary,
    ValueCount,
)

__all__ = ["ColumnDescription", "TableDescription", "TableNotFound", "TableProfile", "TableSummary"]

# A column with at most this many distinct values gets all of them, with counts.
LOW_CARDINALITY = 50
FULL_VALUES = 500  # values listed for one column asked for in full
# ... whole, up to this much text in all (179 collection descriptions: 150 KB), within a query's bound
FULL_VALUE_CHARS = MAX_REPLY_BYTES * 3 // 4
TEXT_VALUES_UP_TO = 20_000  # text columns with more distinct values get examples instead
EXAMPLES = 5
NULL_COUNT_TIMEOUT_S = 20.0  # every column's NULLs counted now (fetched tables): one scan
FACT_TIMEOUT_S = 2.0  # an exact distinct count computed now (fetched tables), else approximate


class TableNotFound(AssistantError, ValueError):
    pass


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
_PROFILES: Memo[TableProfile] = Memo(maxsize=64)
_PROFILING = threading.Lock()
# What a call returns (the compact view, or one column in full) is derived from the profile once:
# replies are shared between calls, nothing downstream modifies them.
_VIEWS: Memo[TableDescription] = Memo(maxsize=256)


def describe_table(catalog: Catalog, table: str, column: str | None = None) -> TableDescription:
    """The table's columns: one line each (the compact view), or `column` in full."""
    name, info = _resolve(catalog, table)
    if not catalog.is_installed(name):
        described = _schema_profile(catalog, name, info)
        return _one_column(described, column) if column is not None else summary.compact(described)
    key = _profile_key(catalog, name)
    view = _VIEWS.get((key, column))
    if view is None:
        described = _profile(catalog, name, info, key)
        view = _one_column(described, column) if column is not None else summary.compact(described)
        _VIEWS.put((key, column), view)
    return view


def profile(catalog: Catalog, table: str) -> TableProfile:
    """Every column of `table` in full (the facts the compact view is cut from)."""
    name, info = _resolve(catalog, table)
    if not catalog.is_installed(name):
        return _schema_profile(catalog, name, info)
    return _profile(catalog, name, info, _profile_key(catalog, name))


def _resolve(catalog: Catalog, table: str) -> tuple[str, TableInfo | None]:
    info = get_table(table)
    installed = catalog.installed_tables()
    if info is None and table not in installed:
        if clinical := fetch.clinical_not_installed(table, installed):
            raise TableNotFound(clinical)
        near = closest(table, list(all_tables()) + installed, limit=3)
        hint = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        raise TableNotFound(f"Unknown table {table!r}.{hint} list_tables() shows every table.")
    return (info.name if info else table), info


def _schema_profile(catalog: Catalog, name: str, info: TableInfo | None) -> TableProfile:
    """A table that is not installed: its schema's columns, without values."""
    columns = [
        ColumnDescription(
            name=c.name, type=c.type + ("[]" if c.mode == "REPEATED" else ""), description=c.description
        )
        for c in (info.columns if info else ())
    ]
    return TableProfile(
        name=name,
        description=info.description if info else "",
        installed=False,
        row_count=None,
        columns=columns,
        notes=[fetch.not_installed_message(catalog.settings, name)],
    )


def _one_column(described: TableProfile, column: str) -> TableDescription:
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
    return TableDescription(
        name=described.name,
        description=described.description,
        installed=described.installed,
        row_count=described.row_count,
        columns=[c.model_copy() for c in found],
        notes=list(described.notes),
    )


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
    """Values whole, with their counts, up to FULL_VALUE_CHARS of text in all (the rest is left out:
    the caller sees fewer values than distinct_count, and values_complete false)."""
    out = []
    chars = 0
    for value, count in rows:
        safe = json_safe(value)
        chars += len(safe) if isinstance(safe, str) else 8
        if chars > FULL_VALUE_CHARS and out:
            break
        out.append(ValueCount(value=safe, count=int(count)))
    return out


def _profile_key(catalog: Catalog, name: str) -> tuple[object, ...]:
    """What an installed table's profile depends on: what the catalog holds (`Catalog.cache_key`)."""
    return (catalog.cache_key, name)


def _profile(catalog: Catalog, name: str, info: TableInfo | None, key: tuple[object, ...]) -> TableProfile:
    """Every column of an installed table with its values, computed once per catalog and table."""
    with _PROFILING:  # one profile at a time: concurrent callers wait for it, then find it
        cached = _PROFILES.get(key)
        if cached is not None:
            return cached
        described = _profile_now(catalog, name, info)
        _PROFILES.put(key, described)
        return described


def _profile_now(catalog: Catalog, name: str, info: TableInfo | None) -> TableProfile:
    schema_cols = {c.name: c.description for c in info.columns} if info else _clinical_labels(catalog, name)
    known = _distinct_counts(catalog, name)
    facts.load_table(catalog, name)  # every text column's values in one query, not one per column
    ref = quote_identifier(name)
    row_count = catalog.row_count(name)
    nulls = _null_counts(catalog, name)
    columns = []
    for column, dtype in catalog.columns(name):
        col = ColumnDescription(
            name=column, type=dtype, description=schema_cols.get(column, ""), null_count=nulls.get(column)
        )
        if is_nested(dtype):
            col.nested = _nested(catalog, ref, column, dtype)
        else:
            _scalar(catalog, name, col, known)
        _column_notes(catalog, name, col, row_count)
        columns.append(col)
    return TableProfile(
        name=name,
        description=info.description if info else _extra_description(name),
        installed=True,
        row_count=row_count,
        columns=columns,
    )


def _null_counts(catalog: Catalog, name: str) -> dict[str, int]:
    """Rows where each column is NULL: counted at catalog build, else in one scan now (empty when it
    does not finish in time)."""
    names = [c for c, _ in catalog.columns(name)]
    built = facts.null_counts(catalog, name)
    if built and set(names) <= set(built):
        return built
    counts = ", ".join(f"count(*) - count({quote_identifier(c)})" for c in names)
    try:
        (row,) = catalog.execute(
            f"SELECT {counts} FROM {quote_identifier(name)}", timeout_s=NULL_COUNT_TIMEOUT_S
        ).rows
    except (QueryStopped, QueryFailed, ResultTooLarge):
        return {}
    return {c: int(n) for c, n in zip(names, row, strict=True)}


def _column_notes(catalog: Catalog, table: str, col: ColumnDescription, rows: int) -> None:
    """What an assistant must know before it counts, filters or groups by the column (in full, and in a
    few words for the compact view; a mostly-NULL column says so there already)."""
    notes = []
    if col.null_count and rows and col.null_count > summary.MOSTLY_NULL * rows:
        notes.append(
            f"NULL in most rows ({col.null_count:,} of {rows:,}, {col.null_count / rows:.0%}): `values` "
            f"describe the other rows only; count the unknown ones with {col.name} IS NULL."
        )
    dates, brief = placeholders.column_notes(catalog, table, col.name)
    col.notes = (col.notes or []) + notes + dates or None
    col._brief_notes = brief


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
        if len(col.values) < len(rows):
            col.notes = [
                f"Only the {len(col.values):,} most common values fit in a reply (long texts); query "
                f"SELECT {q}, count(*) FROM {ref} GROUP BY 1 ORDER BY 2 DESC with OFFSET for the others."
            ]
        non_null = col.distinct_count  # count(DISTINCT) leaves NULL out, as the listing does
        col.values_complete = len(col.values) >= non_null and col.distinct_count_exact is True
        sample = [v.value for v in col.values]
    else:
        rows = catalog.execute(f"SELECT {q} FROM {ref} WHERE {q} IS NOT NULL LIMIT 2000").rows
        # The first distinct values in table order: the same examples every time (DISTINCT's order is not).
        sample = list(dict.fromkeys(r[0] for r in rows))[:200]
        col.examples = [json_safe(v) for v in sample[:EXAMPLES]]
    if text:
        _format(col, sample)


def _format(col: ColumnDescription, values: list[Any]) -> None:
    """How a text column's values are written, when not as its type suggests (in full, and brief)."""
    recognised = recognise(values)
    if recognised is not None:
        col.format = recognised.describe(col.name)
        brief = recognised.format.brief_with_values if col.values else recognised.format.brief
        col._brief_format = brief(col.name)
    elif groups := spellings(values):
        col.format = spelling_note(col.name, groups)
        col._brief_format = spelling_brief(groups)


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
        values = _value_counts(rows or [])
        out.append(
            NestedValues(
                path=path.path,
                type=path.leaf_type,
                distinct_count=distinct,
                values=values,
                values_complete=rows is not None and distinct is not None and len(values) >= distinct,
                filter=path.filter_text(rows[0][0] if rows else "<value>"),
            )
        )
    return out
