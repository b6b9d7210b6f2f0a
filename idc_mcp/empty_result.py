"""Why a query matched nothing: which WHERE conditions empty it, and which values exist instead.

The WHERE of the root SELECT (or of the CTE that came out empty) is split into its top-level AND
conditions. Each is counted on its own and the others without it (bounded count queries built with
sqlglot from the validated tree). For an equality, IN, LIKE or ILIKE on a string column whose literal
does not occur, the nearest existing values of that column are listed (folded and fuzzy matching over
its distinct values), and the most common values among the rows that match the other conditions.
Every query runs inside the caller's `Budget`; what does not fit is skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot import exp

from idc_mcp import sqlguard
from idc_mcp.budget import Budget
from idc_mcp.catalog import Catalog
from idc_mcp.fuzzy import closest

MAX_CONJUNCTS = 8  # conditions analysed per WHERE
DISTINCT_CAP = 2_000  # most common distinct values pulled per column
FOLDED_CAP = 50  # extra values pulled that contain the literal's words (high-cardinality columns)
TOP_VALUES = 6
MAX_VALUE_CHARS = 80
NO_ROWS = "The query returned no rows."


@dataclass
class Scope:
    """One SELECT: its FROM/JOIN sources and the WITH clause its SQL needs."""

    select: exp.Select
    with_: exp.With | None
    sources: dict[str, exp.Table]  # alias or name (lowercase) -> table node (catalog table or CTE)
    ctes: dict[str, exp.Expression]  # CTE name (lowercase) -> its body


@dataclass
class ValueTest:
    """`column = 'x'`, `column IN ('x', ...)`, `column [I]LIKE 'x%'` (column maybe inside lower/upper)."""

    column: exp.Column
    literals: list[exp.Literal]
    kind: str  # eq | in | like | ilike


def explain_empty_result(catalog: Catalog, validated: sqlguard.ValidatedQuery, budget: Budget) -> list[str]:
    root = validated.tree
    if not isinstance(root, exp.Select) or root.args.get("from_") is None:
        return [NO_ROWS + " (Only a single SELECT ... FROM ... WHERE is analysed for the cause.)"]
    with_ = root.args.get("with_")
    ctes = {c.alias_or_name.lower(): c.this for c in (with_.expressions if with_ else [])}
    notes = _explain_scope(catalog, _scope(root, with_, ctes), budget, depth=0)
    if budget.skipped:
        notes.append(
            f"{budget.skipped} diagnostic check(s) were skipped to stay within {budget.total_s:g} s; "
            "count the conditions one at a time (SELECT count(*) ... WHERE <one condition>)."
        )
    return notes or [NO_ROWS + " Check each WHERE condition on its own with SELECT count(*)."]


def _scope(select: exp.Select, with_: exp.With | None, ctes: dict[str, exp.Expression]) -> Scope:
    sources: dict[str, exp.Table] = {}
    from_ = select.args.get("from_")
    nodes = [from_.this] if from_ is not None else []
    nodes += [j.this for j in select.args.get("joins") or []]
    for node in nodes:
        if isinstance(node, exp.Table):
            sources[node.alias_or_name.lower()] = node
    return Scope(select, with_, sources, ctes)


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


def _fmt(n: int) -> str:
    return f"{n:,}"


def _sql(node: exp.Expression) -> str:
    return node.sql(dialect="duckdb")


def _quote(value: object) -> str:
    text = str(value)
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + "…"
    return _sql(exp.Literal.string(text))


def _values_text(values: list[tuple[object, int]]) -> str:
    return ", ".join(f"{_quote(v)} ({_fmt(n)} rows)" for v, n in values)


def _filtered(scope: Scope, conds: list[exp.Expression], select: list[exp.Expression]) -> exp.Select:
    query = exp.Select(expressions=select)
    query.set("from_", scope.select.args["from_"].copy())
    query.set("joins", [j.copy() for j in scope.select.args.get("joins") or []])
    if conds:
        query.set("where", exp.Where(this=exp.and_(*[c.copy() for c in conds])))
    if scope.with_ is not None:
        query.set("with_", scope.with_.copy())
    return query


def _count(catalog: Catalog, scope: Scope, conds: list[exp.Expression], budget: Budget) -> int | None:
    """Rows of the scope's FROM/JOIN matching `conds` (bounded by the budget's per-query timeout:
    a plain count(*) lets DuckDB scan in parallel and skip row groups, which a LIMIT would prevent)."""
    out = budget.run(catalog, _filtered(scope, conds, [exp.Count(this=exp.Star())]))
    return int(out.rows[0][0]) if out else None


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
    everything = _count(catalog, scope, conds, budget) if len(conds) > 1 else None
    if everything:
        return [_after_where(scope.select, everything)]
    notes: list[str] = []
    alone_counts: list[int | None] = []
    for i, cond in enumerate(conds):
        others = conds[:i] + conds[i + 1 :]
        alone = _count(catalog, scope, [cond], budget) if others else 0
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
            f"{_sql(c)}: {_fmt(a or 0)} rows" for c, a in zip(conds, alone_counts, strict=True)
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
    return f"{_fmt(matched)} rows match the FROM and WHERE; {culprit} removes them all. Loosen that part."


def _explain_empty_sources(catalog: Catalog, scope: Scope, budget: Budget, depth: int) -> list[str]:
    notes: list[str] = []
    for name, node in scope.sources.items():
        body = scope.ctes.get(node.name.lower())
        if isinstance(body, exp.Select) and body.args.get("from_") is not None and depth < 2:
            inner = _scope(body, scope.with_, scope.ctes)
            if _count(catalog, inner, conjuncts(body.args.get("where")), budget) == 0:
                found = _explain_scope(catalog, inner, budget, depth + 1)
                notes.extend(f"In the CTE {node.name}: {note}" for note in found)
                if not found:
                    notes.append(f"The CTE {node.name} (used as {name}) returns no rows.")
    if not notes and scope.select.args.get("joins"):
        joins = "; ".join(_sql(j) for j in scope.select.args["joins"])[:300]
        notes.append(
            f"The joined tables have no matching rows even before the WHERE ({joins}). "
            "Check the join keys: join on the same key column in both tables (collection_id, "
            "SeriesInstanceUID, analysis_result_id...)."
        )
    return notes


def value_test(cond: exp.Expression) -> ValueTest | None:
    def column_of(node: exp.Expression) -> exp.Column | None:
        while isinstance(node, exp.Lower | exp.Upper | exp.Trim | exp.Paren):
            node = node.this
        return node if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star) else None

    def is_text(node: exp.Expression) -> bool:
        return isinstance(node, exp.Literal) and node.is_string

    if isinstance(cond, exp.EQ):
        for side, other in ((cond.this, cond.expression), (cond.expression, cond.this)):
            column = column_of(side)
            if column is not None and is_text(other):
                return ValueTest(column, [other], "eq")
    if isinstance(cond, exp.In) and not cond.args.get("query"):
        column = column_of(cond.this)
        items = cond.expressions
        if column is not None and items and all(is_text(i) for i in items):
            return ValueTest(column, list(items), "in")
    if isinstance(cond, exp.Like | exp.ILike):
        column = column_of(cond.this)
        if column is not None and is_text(cond.expression):
            return ValueTest(column, [cond.expression], "ilike" if isinstance(cond, exp.ILike) else "like")
    return None


def _source_of(catalog: Catalog, scope: Scope, column: exp.Column) -> exp.Table | None:
    if column.table:
        return scope.sources.get(column.table.lower())
    owners = []
    for node in dict.fromkeys(scope.sources.values()):
        body = scope.ctes.get(node.name.lower())
        if body is not None:
            names = {n.lower() for n in getattr(body, "named_selects", [])}
            if column.name.lower() in names or "*" in names or len(scope.sources) == 1:
                owners.append(node)
        elif column.name.lower() in {c.lower() for c, _ in catalog.columns(node.name)}:
            owners.append(node)
    return owners[0] if len(owners) == 1 else None


def _is_text_column(catalog: Catalog, table: exp.Table, column: str) -> bool:
    types = {c.lower(): t for c, t in catalog.columns(table.name)}
    return types.get(column.lower(), "VARCHAR") == "VARCHAR"


def _value_counts(
    catalog: Catalog,
    scope: Scope,
    table: exp.Table,
    column: str,
    where: exp.Expression | None,
    limit: int,
    budget: Budget,
) -> list[tuple[object, int]]:
    col = exp.column(column, table=table.alias_or_name, quoted=True)
    query = exp.select(exp.alias_(col.copy(), "v"), exp.alias_(exp.Count(this=exp.Star()), "n")).from_(
        table.copy()
    )
    query = query.where(exp.Not(this=exp.Is(this=col.copy(), expression=exp.Null())))
    if where is not None:
        query = query.where(where)
    query = query.group_by(col.copy()).order_by(exp.Ordered(this=exp.column("n"), desc=True)).limit(limit)
    if scope.with_ is not None and table.name.lower() in scope.ctes:
        query.set("with_", scope.with_.copy())
    out = budget.run(catalog, query)
    return [(v, int(n)) for v, n in out.rows] if out else []


def nearest_values(
    catalog: Catalog,
    scope: Scope,
    table: exp.Table,
    column: str,
    word: str,
    budget: Budget,
    pool: dict[object, int] | None = None,
) -> tuple[list[tuple[object, int]], dict[object, int]]:
    """Existing values of `column` nearest to `word` (folded-equal, prefix, containing, then fuzzy),
    and the pool of (value -> rows) they were picked from: the column's most common values, plus,
    when the column has more distinct values than we pull, those containing the word's tokens."""
    if pool is None:
        pool = dict(_value_counts(catalog, scope, table, column, None, DISTINCT_CAP, budget))
    candidates = dict(pool)
    tokens = re.findall(r"[^\W_]+", word.lower())
    if tokens and len(pool) >= DISTINCT_CAP:
        candidates.update(
            _value_counts(
                catalog, scope, table, column, _words_like(table, column, tokens), FOLDED_CAP, budget
            )
        )
    texts = {str(v): (v, n) for v, n in candidates.items() if isinstance(v, str)}
    return [texts[name] for name in closest(word, texts, limit=4, cutoff=75)], pool


def _words_like(table: exp.Table, column: str, tokens: list[str]) -> exp.ILike:
    """column ILIKE '%w1%w2%': the literal's words in order (tokens hold no LIKE wildcards)."""
    col = exp.column(column, table=table.alias_or_name, quoted=True)
    return exp.ILike(this=col, expression=exp.Literal.string("%" + "%".join(tokens) + "%"))


def _like_regex(pattern: str) -> re.Pattern[str]:
    parts = [(".*" if ch == "%" else "." if ch == "_" else re.escape(ch)) for ch in pattern]
    return re.compile("^" + "".join(parts) + "$", re.I | re.S)


def _no_match(
    catalog: Catalog, scope: Scope, cond: exp.Expression, others: list[exp.Expression], budget: Budget
) -> list[str]:
    head = f"{_sql(cond)} matches no rows" + (" even on its own." if others else ".")
    test = value_test(cond)
    table = _source_of(catalog, scope, test.column) if test else None
    if test is None or table is None or not _is_text_column(catalog, table, test.column.name):
        return [head + " Check the value with describe_table or SELECT DISTINCT on that column."]
    notes, top, fixed = _literal_notes(catalog, scope, cond, test, table, budget)
    if others or not top:
        notes.append(_common_values(catalog, scope, test.column, others, budget))
    else:  # no other condition: the column's most common values are already known
        notes.append(f"Most common {_sql(test.column)} values: {_values_text(top)}.")
    if fixed is not None and others and _count(catalog, scope, [fixed, *others], budget) == 0:
        notes.append(_still_empty(catalog, scope, fixed, others, budget))
    return [" ".join(n for n in [head, *notes] if n)]


def _still_empty(
    catalog: Catalog, scope: Scope, fixed: exp.Expression, others: list[exp.Expression], budget: Budget
) -> str:
    """The corrected condition still meets nothing with the others: show what the others can be."""
    note = f"Even with {_sql(fixed)}, no row matches {' AND '.join(_sql(c) for c in others)}."
    for i, other in enumerate(others[:2]):
        test = value_test(other)
        if test is None:
            continue
        rest = [fixed, *others[:i], *others[i + 1 :]]
        values = _top_values(catalog, scope, test.column, rest, budget)
        if values:
            note += f" {_common_text(test.column, rest, values)}"
    return note


def _literal_notes(
    catalog: Catalog, scope: Scope, cond: exp.Expression, test: ValueTest, table: exp.Table, budget: Budget
) -> tuple[list[str], list[tuple[object, int]], exp.Expression | None]:
    """For each literal of the test that is not a value of the column: its nearest existing values
    and the corrected condition. Also returns the column's most common values when they were read."""
    notes: list[str] = []
    label = _sql(test.column)
    literals = [lit.name for lit in test.literals]
    if test.kind in ("eq", "in"):
        in_list = exp.In(
            this=exp.column(test.column.name, table=table.alias_or_name, quoted=True),
            expressions=[exp.Literal.string(v) for v in literals],
        )
        found = _value_counts(catalog, scope, table, test.column.name, in_list, len(literals), budget)
        present = {str(v) for v, _ in found}
        missing = [v for v in literals if v not in present]
    else:
        missing = literals
    replacements: dict[str, str] = {}
    pool: dict[object, int] | None = None
    for literal in missing:
        word = (
            literal.replace("%", " ").replace("_", " ").strip() if test.kind in ("like", "ilike") else literal
        )
        near, pool = nearest_values(catalog, scope, table, test.column.name, word, budget, pool)
        seen = [str(v) for v, _ in near] + [str(v) for v in pool]
        if test.kind == "like" and any(_like_regex(literal).match(v) for v in seen):
            fixed = exp.ILike(this=cond.this.copy(), expression=exp.Literal.string(literal))
            notes.append(
                f"LIKE is case-sensitive; the same pattern matches case-insensitively: use {_sql(fixed)}."
            )
            continue
        if near:
            replacements[literal] = str(near[0][0])
            notes.append(
                f"{_quote(literal)} is not a value of {label}; nearest existing values: {_values_text(near)}."
            )
        else:
            notes.append(
                f"{_quote(literal)} is not a value of {label}, and no existing value is close to it."
            )
    if replacements:
        notes.append(f"Use {_sql(_replace_literals(cond, test, replacements))} instead.")
    fixed = _replace_literals(cond, test, replacements) if replacements else None
    free_text = pool is not None and len(pool) >= DISTINCT_CAP
    if free_text and test.kind == "eq" and (tokens := re.findall(r"[^\W_]+", literals[0].lower())):
        words = _words_like(table, test.column.name, tokens)
        words.set("this", test.column.copy())
        notes.append(f"{label} is free text: to match words rather than the exact value, use {_sql(words)}.")
    top = sorted((pool or {}).items(), key=lambda kv: -kv[1])[:TOP_VALUES]
    return notes, top, fixed


def _replace_literals(cond: exp.Expression, test: ValueTest, replacements: dict[str, str]) -> exp.Expression:
    if test.kind in ("like", "ilike"):
        value = next(iter(replacements.values()))
        return exp.EQ(this=test.column.copy(), expression=exp.Literal.string(value))
    fixed = cond.copy()
    for lit in fixed.find_all(exp.Literal):
        if lit.is_string and lit.name in replacements:
            lit.replace(exp.Literal.string(replacements[lit.name]))
    # A wrapped column (lower(col) = 'x') compares against the folded value: compare the column itself.
    if test.kind == "eq" and not isinstance(fixed.this, exp.Column) and isinstance(fixed, exp.EQ):
        value = next(iter(replacements.values()))
        return exp.EQ(this=test.column.copy(), expression=exp.Literal.string(value))
    return fixed


def _top_values(
    catalog: Catalog, scope: Scope, column: exp.Column, others: list[exp.Expression], budget: Budget
) -> list[tuple[object, int]]:
    """The most common values of `column` among rows matching `others`."""
    not_null = exp.Not(this=exp.Is(this=column.copy(), expression=exp.Null()))
    select = [exp.alias_(column.copy(), "v"), exp.alias_(exp.Count(this=exp.Star()), "n")]
    query = _filtered(scope, [*others, not_null], select)
    query = query.group_by(column.copy()).order_by(exp.Ordered(this=exp.column("n"), desc=True))
    out = budget.run(catalog, query.limit(TOP_VALUES))
    return [(v, int(n)) for v, n in out.rows] if out else []


def _common_text(column: exp.Column, others: list[exp.Expression], values: list[tuple[object, int]]) -> str:
    where = " AND ".join(_sql(c) for c in others)
    among = f" among rows matching {where}" if others else ""
    return f"Most common {_sql(column)} values{among}: {_values_text(values)}."


def _common_values(
    catalog: Catalog, scope: Scope, column: exp.Column, others: list[exp.Expression], budget: Budget
) -> str:
    values = _top_values(catalog, scope, column, others, budget)
    return _common_text(column, others, values) if values else ""


def _conflict(
    catalog: Catalog,
    scope: Scope,
    cond: exp.Expression,
    others: list[exp.Expression],
    alone: int,
    without: int,
    budget: Budget,
) -> list[str]:
    where = " AND ".join(_sql(c) for c in others)
    note = (
        f"{_sql(cond)} matches {_fmt(alone)} rows on its own, but none together with {where} "
        f"(which {'alone matches' if len(others) == 1 else 'together match'} {_fmt(without)} rows): "
        "the combination is what empties the result."
    )
    test = value_test(cond)
    if test is not None:
        values = _top_values(catalog, scope, test.column, others, budget)
        if values:
            note += f" {_common_text(test.column, others, values)}"
            near = closest(test.literals[0].name, [str(v) for v, _ in values], limit=1, cutoff=90)
            if test.kind == "eq" and near:
                fixed = exp.EQ(this=test.column.copy(), expression=exp.Literal.string(near[0]))
                note += f" Use {_sql(fixed)} instead."
            else:
                note += f" Use one of these, or drop {_sql(cond)}."
        table = _source_of(catalog, scope, test.column)
        if test.kind == "in" and table is not None and _is_text_column(catalog, table, test.column.name):
            notes, _, _ = _literal_notes(catalog, scope, cond, test, table, budget)
            note = " ".join([note, *notes])
    return [note]
