"""Unknown column names in a BigQuery query, found before it is sent and in BigQuery's own errors, each
answered with the nearest real names from the live schemas (as the local `query` does)."""

from __future__ import annotations

import re

from sqlglot import exp

from idc_mcp.bigquery.guard import ValidatedBigQuery
from idc_mcp.bigquery.schema import TableSchema, nearest_fields

# Pseudo-columns BigQuery adds (wildcard tables, partitions) that no schema lists.
PSEUDO_COLUMNS = frozenset({"_table_suffix", "_partitiontime", "_partitiondate", "_file_name"})

# Where BigQuery (and the emulator) name an unknown column or field in an error.
_ERROR_NAME_PATTERNS = (
    re.compile(r"Unrecognized name: `?([A-Za-z_][A-Za-z0-9_]*)`?"),
    re.compile(r"Name `?([A-Za-z_][A-Za-z0-9_]*)`? not found inside"),
    re.compile(r"Field name `?([A-Za-z_][A-Za-z0-9_]*)`? does not exist"),
    re.compile(r'Referenced column "([^"]+)" not found'),
    re.compile(r'does not have a field named "?([A-Za-z_][A-Za-z0-9_]*)"?'),
)


def defined_names(tree: exp.Expression) -> set[str]:
    """Names the query itself defines or names outside column references: aliases, CTE, table, UNNEST and
    OFFSET names, struct field names. A column reference may use any of them."""
    names: set[str] = set()
    for ident in tree.find_all(exp.Identifier):
        if not isinstance(ident.parent, exp.Column):
            names.add(ident.name.lower())
    return names


def unknown_column(validated: ValidatedBigQuery, schemas: list[TableSchema]) -> tuple[str, str] | None:
    """The first name in a column reference that neither the tables' schemas nor the query define:
    (the name as written, the whole reference). None when every name is known, or when the tables'
    names cannot be known in advance (JSON columns)."""
    if not schemas or any(s.has_json for s in schemas):
        return None
    known = set(PSEUDO_COLUMNS) | defined_names(validated.tree)
    for schema in schemas:
        known |= schema.names()
    for column in validated.tree.find_all(exp.Column):
        for part in column.parts:
            if isinstance(part, exp.Identifier) and part.name.lower() not in known:
                return part.name, column.sql(dialect="bigquery")
    return None


def unknown_column_message(name: str, reference: str, schemas: list[TableSchema]) -> str:
    tables = ", ".join(f"`{s.ref.full_name}`" for s in schemas)
    near = nearest_fields(name, schemas)
    hint = f" Nearest real names: {'; '.join(near)}." if near else ""
    where = f" (in {reference})" if reference.lower() != name.lower() else ""
    first = schemas[0].ref
    return (
        f"Column {name!r}{where} is not a column or field of {tables}.{hint} "
        f"describe_bigquery_table('{first.dataset}.{first.table}', column_filter=...) lists the real "
        "ones; nested fields are written record.field, REPEATED ones are read with UNNEST."
    )


def name_in_error(api_message: str) -> str | None:
    for pattern in _ERROR_NAME_PATTERNS:
        match = pattern.search(api_message)
        if match:
            return match.group(1)
    return None
