"""The `query` tool's logic: validate, run, bound the reply, and explain errors and empty results."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from idc_mcp.catalog.database import Catalog, QueryFailed, QueryStopped, ResultTooLarge
from idc_mcp.catalog.schemas import all_tables
from idc_mcp.diagnostics import explain
from idc_mcp.diagnostics.budget import Budget
from idc_mcp.errors import AssistantError
from idc_mcp.sql import guard
from idc_mcp.sql.json_values import MAX_REPLY_BYTES as MAX_REPLY_BYTES  # the bound tests check
from idc_mcp.sql.json_values import MAX_ROWS_CAP, bounded_records, max_rows_refused
from idc_mcp.sql.statement import MAX_SQL_CHARS


class QueryError(AssistantError, ValueError):
    """A query failed; the message tells the assistant what to change."""


class QueryResult(BaseModel):
    columns: list[str] = Field(description="column names, in order")
    rows: list[dict[str, Any]] = Field(description="one object per row, column -> value (JSON-safe)")
    row_count: int = Field(description="rows returned in this reply")
    truncated: bool = Field(description="true when more rows exist or the reply was cut to fit")
    diagnostics: list[str] = Field(default_factory=list, description="hints when something looks wrong")
    executed_sql: str = Field(description="the validated SQL that ran (with the enforced LIMIT)")


def validate_for(catalog: Catalog, sql: str, max_rows: int) -> guard.ValidatedQuery:
    """Validate caller SQL against this catalog, turning table mistakes into repair hints."""
    installed = catalog.installed_tables()
    known = set(installed)
    not_installed = [name for name in all_tables() if name not in known]
    try:
        return guard.validate(sql, installed, max_rows, not_installed)
    except guard.UnknownTable as exc:
        # Only a reply about a missing table needs the index fetcher (and its S3 and HTTP clients).
        from idc_mcp.indices import fetch

        if clinical := fetch.clinical_not_installed(exc.table, installed):
            raise QueryError(clinical) from exc
        raise QueryError(explain.unknown_table_message(catalog, exc.table, exc.tree)) from exc
    except guard.TableNotInstalled as exc:
        from idc_mcp.indices import fetch

        raise QueryError(fetch.not_installed_message(catalog.settings, exc.table)) from exc
    except guard.SQLRejected as exc:
        raise QueryError(str(exc)) from exc


def run_query(catalog: Catalog, sql: str, max_rows: int = 100) -> QueryResult:
    if refused := max_rows_refused(max_rows):
        raise QueryError(refused)
    text_key = catalog.text_key(sql, max_rows) if isinstance(sql, str) else None
    # Cached replies are shared between calls: nothing downstream modifies a reply.
    if text_key is not None and (cached := catalog.results.get_text(text_key)) is not None:
        return _replay(cached)
    try:
        validated = validate_for(catalog, sql, max_rows)
    except QueryError as exc:
        # The same text is refused the same way by this catalog: the next caller gets it without parsing.
        if text_key is not None and len(sql) <= MAX_SQL_CHARS:  # a longer text is refused at a glance
            catalog.results.put_refusal(text_key, _Failure(str(exc)), len(str(exc)) + len(sql))
        raise
    key = catalog.result_key(validated.sql, max_rows)
    with catalog.results.single_flight(key):
        if (cached := catalog.results.get(key)) is not None:
            catalog.results.put(key, cached, catalog.results.entry_bytes(key), text_key)
            return _replay(cached)
        try:
            result, nbytes, complete = _run_validated(catalog, validated, max_rows)
        except QueryError as exc:
            # DuckDB refused it, or the result is too large: the same SQL fails the same way on this
            # data, so the answer is kept (a timeout or the memory limit depend on the moment: not kept).
            if isinstance(exc.__cause__, QueryFailed | ResultTooLarge):
                catalog.results.put(key, _Failure(str(exc)), len(str(exc)), text_key)
            raise
        if complete:
            catalog.results.put(key, result, nbytes, text_key)
    return result


class _Failure(str):
    """A cached refusal: the message the same query got from DuckDB (with its repair hints)."""


def _replay(cached: QueryResult | _Failure) -> QueryResult:
    if isinstance(cached, _Failure):
        raise QueryError(str(cached))
    return cached


def _run_validated(
    catalog: Catalog, validated: guard.ValidatedQuery, max_rows: int
) -> tuple[QueryResult, int, bool]:
    """The reply, its size in bytes, and whether it is complete enough to cache (no check was skipped)."""
    try:
        output = catalog.execute(validated.sql)
    except QueryStopped as exc:
        raise QueryError(
            f"{exc}. Narrow the query: filter on collection_id or Modality first, avoid cross joins, "
            "and aggregate instead of listing rows."
        ) from exc
    except ResultTooLarge as exc:  # its message says how to return less
        raise QueryError(f"{exc}.") from exc
    except QueryFailed as exc:
        raise QueryError(explain.explain_error(catalog, validated, exc)) from exc

    notes: list[str] = []
    rows = output.rows
    truncated = len(rows) > max_rows
    rows = rows[:max_rows]
    if truncated:
        notes.append(
            f"Only the first {max_rows} rows are shown. Add filters, aggregate (GROUP BY), or raise max_rows "
            f"(up to {MAX_ROWS_CAP})."
        )
    columns = _unique_names(output.columns)
    bounded = bounded_records(columns, rows)
    records = bounded.rows
    truncated |= bounded.cut_at_size
    notes.extend(bounded.notes)
    if bounded.cells_cut:
        notes.append(
            "Some long values were cut (marked '…[cut: …]'). Select substr(column, 1, n) or fewer columns."
        )
    budget = Budget()
    if (not records and not truncated) or explain.counts_nothing(validated, records):
        notes.extend(explain.explain_empty(catalog, validated, budget))
    elif records:
        notes.extend(explain.explain_related(catalog, validated, budget))
    notes.extend(explain.explain_placeholders(catalog, validated, budget))
    result = QueryResult(
        columns=columns,
        rows=records,
        row_count=len(records),
        truncated=truncated,
        diagnostics=notes,
        executed_sql=validated.sql,
    )
    return result, bounded.size + sum(map(len, notes)) + len(validated.sql), budget.skipped == 0


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        if name in seen:
            seen[name] += 1
            unique.append(f"{name}_{seen[name]}")
        else:
            seen[name] = 0
            unique.append(name)
    return unique
