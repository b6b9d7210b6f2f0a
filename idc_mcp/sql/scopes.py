"""Name resolution in a query: which CTE, catalog table or derived table a name refers to, per SELECT.

One implementation for the validator and the diagnostics, over sqlglot's own resolver
(`sqlglot.optimizer.scope`): a CTE is visible in the body of the query that defines it and in the
CTEs defined after it in the same WITH, never outside that query. DuckDB compares names without
regard to case, so lookups here do too (sqlglot's own are exact).

Anything sqlglot cannot scope resolves to nothing: a table reference that is not found here is
treated as a catalog table name, which the validator then checks against the catalog.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.scope import Scope, traverse_scope

__all__ = ["Scope", "cte_references", "named_cte", "scopes", "sources", "table_aliases"]


def scopes(root: exp.Expression) -> list[Scope]:
    """Every scope of the query, innermost first; [] when sqlglot cannot scope it."""
    try:
        return traverse_scope(root)
    except OptimizeError:
        return []


def named_cte(scope: Scope, table: exp.Table) -> Scope | None:
    """The scope of the CTE that `table` names where it stands, or None (a catalog table or unknown)."""
    if not isinstance(table.this, exp.Identifier) or table.args.get("db") or table.args.get("catalog"):
        return None
    name = table.name.lower()
    for key, source in scope.cte_sources.items():
        if key.lower() == name and isinstance(source, Scope):
            return source
    return None


def cte_references(found: list[Scope]) -> set[int]:
    """ids of the Table nodes that name a CTE visible where they stand, over the query's scopes."""
    return {id(table) for scope in found for table in scope.tables if named_cte(scope, table)}


def sources(scope: Scope) -> dict[str, tuple[exp.Table | exp.Subquery, Scope | None]]:
    """What the scope's FROM/JOIN read, by alias or name (lower case): the node, and the scope of the
    query behind it (a CTE's or a derived table's; None for a catalog table). Unaliased derived tables
    and the right side of SEMI/ANTI joins (its columns are not visible outside the join) are left out."""
    out: dict[str, tuple[exp.Table | exp.Subquery, Scope | None]] = {}
    derived = {id(node.unnest()): node for node in scope.derived_tables}
    hidden = scope.semi_or_anti_join_tables
    for name, node in scope.references:
        key = name.lower()
        if not key or key in out or name in hidden:
            continue
        if isinstance(node, exp.Table):
            out[key] = (node, named_cte(scope, node))
        elif id(node) in derived:
            inner = scope.sources.get(name)
            out[key] = (derived[id(node)], inner if isinstance(inner, Scope) else None)
    return out


def table_aliases(found: list[Scope], root: exp.Expression) -> dict[str, str]:
    """alias or name (lower case) -> the table or CTE it names, over every FROM/JOIN of the query (its
    scopes `found`, or every table of `root` when sqlglot could not scope it)."""
    out: dict[str, str] = {}
    tables = [table for scope in found for table in scope.tables] if found else list(root.find_all(exp.Table))
    for table in tables:
        out[table.alias_or_name.lower()] = table.name
        out.setdefault(table.name.lower(), table.name)
    return out
