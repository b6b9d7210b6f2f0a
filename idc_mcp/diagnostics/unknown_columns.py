"""Every unknown column of a query, not only the first: DuckDB's binder stops at the first name it cannot
bind, so a query with three misspelled columns would take three round trips. The others are found here
from the tree: names that no table of the query has, that no alias, CTE or subquery defines, and that are
not a lambda's parameter.
"""

from __future__ import annotations

from sqlglot import exp

from idc_mcp.catalog.database import Catalog
from idc_mcp.diagnostics.column_paths import table_columns
from idc_mcp.sql.guard import ValidatedQuery

MAX_UNKNOWN = 5  # unknown columns explained in one reply


def _defined_names(tree: exp.Expression) -> set[str]:
    """Names the query itself defines: aliases, CTE and derived-table columns, lambda parameters."""
    names = {a.alias.lower() for a in tree.find_all(exp.Alias) if a.alias}
    for alias in tree.find_all(exp.TableAlias):
        names |= {c.name.lower() for c in alias.columns}
        names.add(alias.name.lower())
    for source in tree.find_all(exp.CTE, exp.Subquery):  # what a CTE or a derived table outputs
        body = source.this
        if isinstance(body, exp.Query) and (isinstance(source, exp.CTE) or source.alias):
            names |= {s.lower() for s in body.named_selects}
    for function in tree.find_all(exp.Lambda):
        names |= {p.name.lower() for p in function.expressions}
    return names


def other_unknown_columns(
    catalog: Catalog, validated: ValidatedQuery, reported: str
) -> list[tuple[str | None, str]]:
    """(qualifier, name) of the query's columns, other than `reported`, that nothing in the query or its
    tables has."""
    tree = validated.tree
    installed = [t for t in validated.tables if catalog.is_installed(t)]
    known = {c.lower() for t in installed for c in table_columns(catalog, t)}
    defined = _defined_names(tree)
    tables = {t.alias_or_name.lower() for t in tree.find_all(exp.Table)}
    found: list[tuple[str | None, str]] = []
    for column in tree.find_all(exp.Column):
        name = column.name
        if not name or isinstance(column.this, exp.Star) or name.lower() == reported.lower():
            continue
        if column.table and column.table.lower() not in tables:
            continue  # a struct field (`provenance.data_contributor`) or a lambda's parameter
        if name.lower() in known or name.lower() in defined or name in [n for _, n in found]:
            continue
        found.append((column.table or None, name))
    return found[: MAX_UNKNOWN - 1]
