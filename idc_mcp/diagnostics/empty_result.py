"""Why a query matched nothing: which WHERE conditions empty it, and which values exist instead.

The WHERE of the root SELECT (or of the CTE that came out empty) is split into its top-level AND
conditions. Each is counted on its own and the others without it (bounded count queries built with
sqlglot from the validated tree). For an equality, IN, LIKE or ILIKE on a string column whose literal
does not occur, the nearest existing values of that column are listed (folded and fuzzy matching over
its distinct values), and the most common values among the rows that match the other conditions.
Every query runs inside the caller's `Budget`; what does not fit is skipped.
"""

from __future__ import annotations

from sqlglot import exp

from idc_mcp.catalog import facts
from idc_mcp.catalog.database import Catalog
from idc_mcp.diagnostics.budget import Budget
from idc_mcp.diagnostics.fuzzy import fold
from idc_mcp.diagnostics.nested_values import nested_no_match
from idc_mcp.diagnostics.value_hints import (
    Scope,
    among,
    common_text,
    common_values,
    filtered,
    fmt,
    is_text_column,
    literal_notes,
    not_null,
    quote,
    scope_of,
    source_of,
    sql_text,
    top_values,
    value_test,
    values_text,
)
from idc_mcp.sql import guard

MAX_CONJUNCTS = 8  # conditions analysed per WHERE
NO_ROWS = "The query returned no rows."


def explain_empty_result(catalog: Catalog, validated: guard.ValidatedQuery, budget: Budget) -> list[str]:
    root = validated.tree
    if not isinstance(root, exp.Select) or root.args.get("from_") is None:
        return [NO_ROWS + " (Only a single SELECT ... FROM ... WHERE is analysed for the cause.)"]
    notes = _explain_scope(catalog, scope_of(root, root.args.get("with_"), validated.scope), budget, depth=0)
    if budget.skipped:
        notes.append(
            f"{budget.skipped} diagnostic check(s) were skipped to stay within {budget.total_s:g} s; "
            "count the conditions one at a time (SELECT count(*) ... WHERE <one condition>)."
        )
    return notes or [NO_ROWS + " Check each WHERE condition on its own with SELECT count(*)."]


def conjuncts(where: exp.Expression | None) -> list[exp.Expression]:
    """The top-level AND conditions of a WHERE, with redundant brackets removed."""
    node = where.this if isinstance(where, exp.Where) else where
    if node is None:
        return []
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return conjuncts(node.left) + conjuncts(node.right)
    return [node]


def _count(catalog: Catalog, scope: Scope, conds: list[exp.Expression], budget: Budget) -> int | None:
    """Rows of the scope's FROM/JOIN matching `conds` (bounded by the budget's per-query timeout:
    a plain count(*) lets DuckDB scan in parallel and skip row groups, which a LIMIT would prevent)."""
    known = _known_count(catalog, scope, conds)
    if known is not None:
        return known
    out = budget.run(catalog, filtered(scope, conds, [exp.Count(this=exp.Star())]))
    return int(out.rows[0][0]) if out else None


def _known_count(catalog: Catalog, scope: Scope, conds: list[exp.Expression]) -> int | None:
    """A count the catalog already holds, for a scope reading one catalog table: its rows, or the rows of
    `column = 'value'` (or IN) on a text column whose every value the catalog build counted. None: ask."""
    if scope.with_ is not None or scope.select.args.get("joins") or len(scope.sources) != 1:
        return None
    ((alias, table),) = scope.sources.items()
    if not isinstance(table, exp.Table) or not scope.is_table(table) or table.db or table.catalog:
        return None
    if not catalog.is_installed(table.name):
        return None
    if not conds:
        return catalog.row_count(table.name)
    test = value_test(conds[0]) if len(conds) == 1 else None
    if test is None or test.kind not in ("eq", "in") or test.column.parent is not conds[0]:
        return None  # lower(col) = 'x' and the like compare folded values: counted by a query
    if test.column.table and test.column.table.lower() != alias:
        return None
    built = facts.text_values(catalog, table.name, test.column.name)
    if built is None or not built.complete:
        return None
    counts = dict(built.values)
    return sum(counts.get(value, 0) for value in {lit.name for lit in test.literals})


def _explain_scope(catalog: Catalog, scope: Scope, budget: Budget, depth: int) -> list[str]:
    conds = conjuncts(scope.select.args.get("where"))
    base = _count(catalog, scope, [], budget)
    if base is None:
        return []
    if base == 0:
        return _explain_empty_sources(catalog, scope, budget, depth)
    if not conds:
        return [_after_where(scope.select, base)]
    if len(conds) > MAX_CONJUNCTS:
        return [
            f"{NO_ROWS} The WHERE has {len(conds)} AND conditions; only up to {MAX_CONJUNCTS} are analysed. "
            "Count the conditions one at a time to find the one that matches nothing."
        ]
    everything = _count(catalog, scope, conds, budget)
    if everything:  # the WHERE matches rows: HAVING, QUALIFY, OFFSET or LIMIT 0 removed them
        return [_after_where(scope.select, everything)]
    notes: list[str] = []
    alone_counts: list[int | None] = []
    for i, cond in enumerate(conds):
        others = conds[:i] + conds[i + 1 :]
        alone = _count(catalog, scope, [cond], budget) if others else everything
        alone_counts.append(alone)
        if alone is None:
            continue
        if alone == 0:
            notes.extend(_no_match(catalog, scope, cond, others, budget))
            continue
        without = _count(catalog, scope, others, budget)
        if without:
            notes.extend(_conflict(catalog, scope, cond, others, alone, without, budget))
    if not notes and all(a for a in alone_counts):
        counts = "; ".join(
            f"{sql_text(c)}: {fmt(a or 0)} rows" for c, a in zip(conds, alone_counts, strict=True)
        )
        notes.append(
            f"No single condition empties the result: each matches rows on its own ({counts}), "
            "but no row matches all of them. Relax more than one condition."
        )
    return notes


def _after_where(select: exp.Select, matched: int) -> str:
    parts = [k.upper() for k in ("having", "qualify", "offset") if select.args.get(k) is not None]
    limit = select.args.get("limit")
    if isinstance(limit, exp.Limit) and limit.expression.name == "0":
        parts.append("LIMIT 0")
    culprit = " / ".join(parts) or "the rest of the query"
    return f"{fmt(matched)} rows match the FROM and WHERE; {culprit} removes them all. Loosen that part."


def _explain_empty_sources(catalog: Catalog, scope: Scope, budget: Budget, depth: int) -> list[str]:
    notes: list[str] = []
    for name, node in scope.sources.items():
        body = scope.body(name) if isinstance(node, exp.Table) else None  # CTEs, not derived tables
        if isinstance(body, exp.Select) and body.args.get("from_") is not None and depth < 2:
            inner = scope_of(body, scope.with_, scope.inner[name])
            if _count(catalog, inner, conjuncts(body.args.get("where")), budget) == 0:
                found = _explain_scope(catalog, inner, budget, depth + 1)
                notes.extend(f"In the CTE {node.name}: {note}" for note in found)
                if not found:
                    notes.append(f"The CTE {node.name} (used as {name}) returns no rows.")
    if not notes and scope.select.args.get("joins"):
        joins = "; ".join(sql_text(j) for j in scope.select.args["joins"])[:300]
        notes.append(
            f"The joined tables have no matching rows even before the WHERE ({joins}). "
            "Check the join keys: join on the same key column in both tables (collection_id, "
            "SeriesInstanceUID, analysis_result_id...)."
        )
    return notes


def _no_match(
    catalog: Catalog, scope: Scope, cond: exp.Expression, others: list[exp.Expression], budget: Budget
) -> list[str]:
    nested = nested_no_match(catalog, scope, cond, budget, on_its_own=bool(others))
    if nested is not None:
        return [nested]
    head = f"{sql_text(cond)} matches no rows" + (" even on its own." if others else ".")
    test = value_test(cond)
    table = source_of(catalog, scope, test.column) if test else None
    if test is None or table is None or not is_text_column(catalog, table, test.column.name):
        span = _range(catalog, scope, cond, others, budget)
        named = [n.name for n in scope.sources.values() if scope.is_table(n)]
        look = f'describe_table(table="{named[0]}")' if named else "describe_table"
        return [head + (f" {span}" if span else f" Check the values with {look}.")]
    notes, top, fixed = literal_notes(catalog, scope, cond, test, table, budget)
    if top is not None:  # None: an identifier-like column (UIDs), whose common values say nothing
        if others or not top:
            notes.append(common_values(catalog, scope, test.column, others, budget))
        else:  # no other condition: the column's most common values are already known
            notes.append(f"Most common {sql_text(test.column)} values: {values_text(top)}.")
    if fixed is not None and others and _count(catalog, scope, [fixed, *others], budget) == 0:
        notes.append(_still_empty(catalog, scope, fixed, others, budget))
    return [" ".join(n for n in [head, *notes] if n)]


def _range(
    catalog: Catalog, scope: Scope, cond: exp.Expression, others: list[exp.Expression], budget: Budget
) -> str:
    """For a comparison like `instanceCount < 0`: the smallest and largest values the column has."""
    comparisons = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Between)
    column = cond.this if isinstance(cond, comparisons) else None
    if not isinstance(column, exp.Column) or isinstance(column.this, exp.Star):
        return ""
    span = [exp.Min(this=column.copy()), exp.Max(this=column.copy())]
    out = budget.run(catalog, filtered(scope, [*others, not_null(column)], span))
    if not out or out.rows[0][0] is None:
        return ""
    low, high = out.rows[0]
    return f"{sql_text(column)} ranges from {quote(low)} to {quote(high)}{among(others)}."


def _still_empty(
    catalog: Catalog, scope: Scope, fixed: exp.Expression, others: list[exp.Expression], budget: Budget
) -> str:
    """The corrected condition still meets nothing with the others: show what the others can be."""
    note = f"Even with {sql_text(fixed)}, no row matches {' AND '.join(sql_text(c) for c in others)}."
    for i, other in enumerate(others[:2]):
        test = value_test(other)
        if test is None:
            continue
        rest = [fixed, *others[:i], *others[i + 1 :]]
        values = top_values(catalog, scope, test.column, rest, budget)
        if values:
            note += f" {common_text(test.column, rest, values)}"
    return note


def _conflict(
    catalog: Catalog,
    scope: Scope,
    cond: exp.Expression,
    others: list[exp.Expression],
    alone: int,
    without: int,
    budget: Budget,
) -> list[str]:
    where = " AND ".join(sql_text(c) for c in others)
    note = (
        f"{sql_text(cond)} matches {fmt(alone)} rows on its own, but none together with {where} "
        f"(which {'alone matches' if len(others) == 1 else 'together match'} {fmt(without)} rows): "
        "the combination is what empties the result."
    )
    test = value_test(cond)
    if test is not None:
        values = top_values(catalog, scope, test.column, others, budget)
        if values:
            note += f" {common_text(test.column, others, values)}"
            # The literal exists elsewhere; only a case/punctuation variant of it is a safe swap here.
            near = [str(v) for v, _ in values if fold(str(v)) == fold(test.literals[0].name)]
            if test.kind == "eq" and near:
                fixed = exp.EQ(this=test.column.copy(), expression=exp.Literal.string(near[0]))
                note += f" Use {sql_text(fixed)} instead."
            else:
                note += f" Use one of these, or drop {sql_text(cond)}."
        table = source_of(catalog, scope, test.column)
        if test.kind == "in" and table is not None and is_text_column(catalog, table, test.column.name):
            notes, _, _ = literal_notes(catalog, scope, cond, test, table, budget)
            note = " ".join([note, *notes])
    return [note]
