"""Replies that repair the assistant's mistakes: unknown tables and columns, and empty results.

Everything here is computed from the catalog and the bundled schemas, never from a synonym list.
"""

from __future__ import annotations

import re

import duckdb

from idc_mcp import sqlguard
from idc_mcp.catalog import Catalog
from idc_mcp.fuzzy import closest
from idc_mcp.schemas import JOIN_KEYS, all_tables, get_table


def not_installed_message(table: str) -> str:
    info = get_table(table)
    about = f" ({info.description[:160]})" if info and info.description else ""
    return (
        f"Table {table!r} is an IDC index that is not installed{about}. "
        f"Call fetch_index({table!r}) to download it, then run the query again."
    )


def unknown_table_message(catalog: Catalog, table: str, sql: str) -> str:
    names = list(all_tables())
    near = closest(table, names, limit=3)
    if table.startswith("/") or "." in table or "://" in table:
        return (
            f"{table!r} is not a catalog table: files and URLs cannot be read. "
            f"Query the catalog tables by name ({', '.join(catalog.installed_tables())})."
        )
    hint = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""
    return (
        f"Table {table!r} does not exist.{hint} Tables: {', '.join(catalog.installed_tables())} "
        "(list_tables() shows all of them, describe_table(name) their columns)."
    )


_MISSING_COLUMN = [
    re.compile(r'Referenced column "([^"]+)" not found'),
    re.compile(r'does not have a column named "([^"]+)"'),
    re.compile(r'Column "([^"]+)" .*not found', re.S),
    re.compile(r'Could not find key "([^"]+)" in struct'),
]


def missing_column(error: str) -> str | None:
    for pattern in _MISSING_COLUMN:
        match = pattern.search(error)
        if match:
            return match.group(1)
    return None


def explain_error(catalog: Catalog, validated: sqlguard.ValidatedQuery, exc: duckdb.Error) -> str:
    """An actionable message for a DuckDB error on a validated query."""
    text = str(exc)
    first = text.splitlines()[0][:400]
    column = missing_column(text)
    if column:
        return unknown_column_message(catalog, column, validated.tables)
    return f"The query failed: {first}. Fix the SQL and run it again (describe_table shows column types)."


def unknown_column_message(catalog: Catalog, column: str, tables: tuple[str, ...]) -> str:
    parts = [f"Column {column!r} does not exist in {', '.join(tables) or 'the queried tables'}."]
    for table in tables:
        near = closest(column, [c for c, _ in catalog.columns(table)], limit=3, cutoff=70)
        if near:
            parts.append(f"In {table}, close names are: {', '.join(near)}.")
    elsewhere = []
    for name, info in all_tables().items():
        if name in tables:
            continue
        near = closest(column, info.column_names, limit=2, cutoff=85)
        if near:
            keys = [k for k in JOIN_KEYS if k in info.column_names and any(k in [c for c, _ in catalog.columns(t)] for t in tables)]
            join = f" (join on {keys[0]})" if keys else ""
            elsewhere.append(f"{name}.{near[0]}{join}{_install_hint(catalog, name)}")
    if elsewhere:
        parts.append("It exists in: " + "; ".join(elsewhere[:5]) + ".")
    parts.append("describe_table(name) lists every column with its description.")
    return " ".join(parts)


def explain_empty(catalog: Catalog, validated: sqlguard.ValidatedQuery) -> list[str]:
    """Why a query returned no rows (filled in by the zero-row analysis)."""
    return ["The query returned no rows."]


def _install_hint(catalog: Catalog, table: str) -> str:
    """(issue 6) Tell the assistant to fetch a table that holds the column but is not installed yet."""
    if catalog.is_installed(table):
        return ""
    return f' — not installed yet: call fetch_index("{table}") first'
