"""Hints about values: which literal of a condition does not occur, the nearest values that do, and
the most common values of a column among the rows that match the other conditions.

All SQL is built with sqlglot from the validated tree and runs inside the caller's `Budget`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot import exp

from idc_mcp.catalog import facts
from idc_mcp.catalog.database import Catalog
from idc_mcp.diagnostics.budget import Budget
from idc_mcp.diagnostics.fuzzy import closest, resembles
from idc_mcp.diagnostics.word_overlap import sharing_words
from idc_mcp.sql import scopes

DISTINCT_CAP = facts.TOP_VALUES  # most common distinct values pulled per column
FOLDED_CAP = 50  # extra values pulled that contain the literal's words (high-cardinality columns)
TOP_VALUES = 6
MAX_VALUE_CHARS = 80


@dataclass
class Scope:
    """One SELECT: its FROM/JOIN sources and the WITH clause its SQL needs."""

    select: exp.Select
    with_: exp.With | None
    # alias or name (lowercase) -> what FROM/JOIN reads: a catalog table, a CTE, or a derived table
    sources: dict[str, exp.Table | exp.Subquery]
    # alias or name (lowercase) -> the resolved scope of the CTE or derived table it reads
    inner: dict[str, scopes.Scope]

    def body(self, alias: str) -> exp.Expression | None:
        """The query behind a CTE reference or a derived table; None for a catalog table."""
        inner = self.inner.get(alias)
        return inner.expression if inner is not None else None

    def is_table(self, node: exp.Table | exp.Subquery) -> bool:
        """Whether `node` reads a catalog table (not a CTE nor a derived table)."""
        return isinstance(node, exp.Table) and node.alias_or_name.lower() not in self.inner


def scope_of(select: exp.Select, with_: exp.With | None, resolved: scopes.Scope | None) -> Scope:
    """The scope of `select`, as `resolved` by `sql.scopes` (for the root query: the validated query's
    `scope`; None: nothing resolved), whose generated SQL carries `with_`."""
    found = scopes.sources(resolved) if resolved is not None else {}
    sources = {alias: node for alias, (node, _) in found.items()}
    inner = {alias: body for alias, (_, body) in found.items() if body is not None}
    return Scope(select, with_, sources, inner)


@dataclass
class ValueTest:
    """`column = 'x'`, `column IN ('x', ...)`, `column [I]LIKE 'x%'` (column maybe inside lower/upper)."""

    column: exp.Column
    literals: list[exp.Literal]
    kind: str  # eq | in | like | ilike


MAX_LITERALS_EXAMINED = 5  # values of one IN list given nearest-value hints


def fmt(n: int) -> str:
    return f"{n:,}"


def sql_text(node: exp.Expression) -> str:
    return node.sql(dialect="duckdb")


def not_null(column: exp.Column) -> exp.Expression:
    """`column IS NOT NULL`, on a copy of the column."""
    return exp.Not(this=exp.Is(this=column.copy(), expression=exp.Null()))


def among(others: list[exp.Expression]) -> str:
    """' among rows matching <others>' for a message, or '' when there are no other conditions."""
    return f" among rows matching {' AND '.join(sql_text(c) for c in others)}" if others else ""


def quote(value: object) -> str:
    """A value as SQL would write it: numbers bare, text as a quoted literal (cut when long)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,}" if isinstance(value, int) else f"{value:g}"
    text = str(value)
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + "…"
    return sql_text(exp.Literal.string(text))


def values_text(values: list[tuple[object, int]]) -> str:
    return ", ".join(f"{quote(v)} ({fmt(n)} rows)" for v, n in values)


def filtered(scope: Scope, conds: list[exp.Expression], select: list[exp.Expression]) -> exp.Select:
    query = exp.Select(expressions=select)
    query.set("from_", scope.select.args["from_"].copy())
    query.set("joins", [j.copy() for j in scope.select.args.get("joins") or []])
    if conds:
        query.set("where", exp.Where(this=exp.and_(*[c.copy() for c in conds])))
    if scope.with_ is not None:
        query.set("with_", scope.with_.copy())
    return query


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


def source_of(catalog: Catalog, scope: Scope, column: exp.Column) -> exp.Table | exp.Subquery | None:
    if column.table:
        return scope.sources.get(column.table.lower())
    owners = []
    for alias, node in scope.sources.items():
        body = scope.body(alias)
        if body is not None:
            names = {n.lower() for n in getattr(body, "named_selects", [])}
            if column.name.lower() in names or "*" in names or len(scope.sources) == 1:
                owners.append(node)
        elif column.name.lower() in {c.lower() for c, _ in catalog.columns(node.name)}:
            owners.append(node)
    return owners[0] if len(owners) == 1 else None


def is_text_column(catalog: Catalog, table: exp.Table | exp.Subquery, column: str) -> bool:
    """Text by the catalog's types; a CTE or derived table column counts as text (values are checked)."""
    if not isinstance(table, exp.Table):
        return True
    types = {c.lower(): t for c, t in catalog.columns(table.name)}
    return types.get(column.lower(), "VARCHAR") == "VARCHAR"


def value_counts(
    catalog: Catalog,
    scope: Scope,
    table: exp.Table | exp.Subquery,
    column: str,
    where: exp.Expression | None,
    limit: int,
    budget: Budget,
) -> list[tuple[object, int]]:
    col = exp.column(column, table=table.alias_or_name, quoted=True)
    query = exp.select(exp.alias_(col.copy(), "v"), exp.alias_(exp.Count(this=exp.Star()), "n")).from_(
        table.copy()
    )
    query = query.where(not_null(col))
    if where is not None:
        query = query.where(where)
    # Ties by value: the same order every time, and the order the catalog build keeps (catalog.facts).
    order = [exp.Ordered(this=exp.column("n"), desc=True), exp.Ordered(this=exp.column("v"))]
    query = query.group_by(col.copy()).order_by(*order).limit(limit)
    if scope.with_ is not None:  # harmless when unused; needed when the source is (or reads) a CTE
        query.set("with_", scope.with_.copy())
    out = budget.run(catalog, query)
    return [(v, int(n)) for v, n in out.rows] if out else []


@dataclass
class ValuePool:
    """Values of a column with their row counts: its most common ones, or none for an identifier-like
    column (almost every value distinct: UIDs), where only a word search is worth running."""

    counts: dict[object, int]
    complete: bool  # every distinct value is in `counts`


SAMPLE_ROWS = facts.SAMPLE_ROWS  # rows sampled to tell identifier-like columns from categorical ones


def value_pool(
    catalog: Catalog, scope: Scope, table: exp.Table | exp.Subquery, column: str, budget: Budget
) -> ValuePool:
    name = _catalog_table(scope, table)
    built = _built_pool(catalog, name, column) if name is not None else None
    if built is not None:
        return built
    col = exp.column(column, table=table.alias_or_name, quoted=True)
    sample = exp.select(col.copy()).from_(table.copy()).limit(SAMPLE_ROWS).subquery("s")
    probe = exp.select(
        exp.Count(this=exp.Distinct(expressions=[exp.column(column, table="s", quoted=True)])),
        exp.Count(this=exp.column(column, table="s", quoted=True)),
    ).from_(sample)
    if scope.with_ is not None:
        probe.set("with_", scope.with_.copy())
    out = budget.run(catalog, probe)
    if out and facts.identifier_like(*out.rows[0]):
        return ValuePool({}, complete=False)
    counts = dict(value_counts(catalog, scope, table, column, None, DISTINCT_CAP, budget))
    return ValuePool(counts, complete=len(counts) < DISTINCT_CAP)


def _catalog_table(scope: Scope, table: exp.Table | exp.Subquery) -> str | None:
    """The name of the catalog table `table` reads, unqualified (one the build kept facts for), or None
    for a subquery, a CTE or a qualified name."""
    if isinstance(table, exp.Table) and scope.is_table(table) and not table.db and not table.catalog:
        return table.name
    return None


def _built_values(
    catalog: Catalog, scope: Scope, table: exp.Table | exp.Subquery, column: str
) -> dict[str, int] | None:
    """Every value of a catalog table's text column with its rows, when the catalog build counted them."""
    name = _catalog_table(scope, table)
    if name is None:
        return None
    found = facts.text_values(catalog, name, column)
    return dict(found.values) if found is not None and found.complete else None


def _built_pool(catalog: Catalog, table: str, column: str) -> ValuePool | None:
    """The pool `value_pool` would compute, from the facts of the catalog build (None: it has none)."""
    found = facts.text_values(catalog, table, column)
    if found is None:
        return None
    if found.identifier_like:
        return ValuePool({}, complete=False)
    counts: dict[object, int] = dict(found.values[:DISTINCT_CAP])
    return ValuePool(counts, complete=found.complete and len(counts) < DISTINCT_CAP)


def nearest_values(
    catalog: Catalog,
    scope: Scope,
    table: exp.Table | exp.Subquery,
    column: str,
    word: str,
    budget: Budget,
    pool: ValuePool | None = None,
) -> tuple[list[tuple[object, int]], ValuePool]:
    """Existing values of `column` nearest to `word` (folded-equal, prefix, containing, then fuzzy),
    and the pool of values they were picked from; when the pool is not every distinct value, also
    the values containing the word's tokens."""
    if pool is None:
        pool = value_pool(catalog, scope, table, column, budget)
    candidates = dict(pool.counts)
    tokens = re.findall(r"[^\W_]+", word.lower())
    identifier_like = not pool.complete and not pool.counts
    if tokens and not pool.complete and (not identifier_like or max(map(len, tokens)) >= 4):
        like = words_like(table, column, tokens)
        candidates.update(value_counts(catalog, scope, table, column, like, FOLDED_CAP, budget))
    texts = {str(v): (v, n) for v, n in candidates.items() if isinstance(v, str)}
    near = [texts[name] for name in closest(word, texts, limit=8, cutoff=75) if resembles(word, name)]
    # Values sharing words with the one given ('Siemens Medical' -> 'SIEMENS', 'GE MEDICAL SYSTEMS').
    near += [vn for vn in sharing_words(word, candidates) if vn not in near]
    return near[:4], pool


def words_like(table: exp.Table | exp.Subquery, column: str, tokens: list[str]) -> exp.ILike:
    """column ILIKE '%w1%w2%': the literal's words in order (tokens hold no LIKE wildcards)."""
    col = exp.column(column, table=table.alias_or_name, quoted=True)
    return exp.ILike(this=col, expression=exp.Literal.string("%" + "%".join(tokens) + "%"))


def like_regex(pattern: str) -> re.Pattern[str]:
    parts = [(".*" if ch == "%" else "." if ch == "_" else re.escape(ch)) for ch in pattern]
    return re.compile("^" + "".join(parts) + "$", re.I | re.S)


def literal_notes(
    catalog: Catalog,
    scope: Scope,
    cond: exp.Expression,
    test: ValueTest,
    table: exp.Table | exp.Subquery,
    budget: Budget,
) -> tuple[list[str], list[tuple[object, int]] | None, exp.Expression | None]:
    """For each literal of the test that is not a value of the column: its nearest existing values
    and the corrected condition. Also returns the column's most common values when they were read
    ([] when not, None when the column is identifier-like and they are not worth showing)."""
    notes: list[str] = []
    label = sql_text(test.column)
    literals = [lit.name for lit in test.literals]
    if test.kind in ("eq", "in"):
        in_list = exp.In(
            this=exp.column(test.column.name, table=table.alias_or_name, quoted=True),
            expressions=[exp.Literal.string(v) for v in literals],
        )
        built = _built_values(catalog, scope, table, test.column.name)
        if built is not None:  # every value of the column, counted by the catalog build
            present = {v for v in literals if v in built}
        else:
            found = value_counts(catalog, scope, table, test.column.name, in_list, len(literals), budget)
            present = {str(v) for v, _ in found}
        missing = [v for v in literals if v not in present]
    else:
        missing = literals
    replacements: dict[str, str] = {}
    pool: ValuePool | None = None
    # Bounded: a 4,000-value IN list must not cost 4,000 fuzzy searches nor 4,000 notes.
    examined = missing[:MAX_LITERALS_EXAMINED]
    if len(missing) > len(examined):
        notes.append(
            f"{len(missing):,} of the {len(literals):,} values given for {label} do not occur; "
            f"the first {len(examined)} are looked at below. Check the values with describe_table or a "
            f"SELECT DISTINCT {label} query."
        )
    for literal in examined:
        if budget.remaining_s <= 0:
            budget.skipped += 1
            break
        word = (
            literal.replace("%", " ").replace("_", " ").strip() if test.kind in ("like", "ilike") else literal
        )
        near, pool = nearest_values(catalog, scope, table, test.column.name, word, budget, pool)
        seen = [str(v) for v, _ in near] + [str(v) for v in pool.counts]
        if test.kind == "like" and any(like_regex(literal).match(v) for v in seen):
            fixed = exp.ILike(this=cond.this.copy(), expression=exp.Literal.string(literal))
            notes.append(
                f"LIKE is case-sensitive; the same pattern matches case-insensitively: use {sql_text(fixed)}."
            )
            continue
        if near:
            replacements[literal] = str(near[0][0])
            notes.append(
                f"{quote(literal)} is not a value of {label}; nearest existing values: {values_text(near)}."
            )
        else:
            notes.append(f"{quote(literal)} is not a value of {label}, and no existing value is close to it.")
    fixed = replace_literals(cond, test, replacements) if replacements else None
    if fixed is not None and len(literals) <= MAX_LITERALS_EXAMINED:
        notes.append(f"Use {sql_text(fixed)} instead.")
    free_text = pool is not None and not pool.complete and bool(pool.counts)
    if free_text and test.kind == "eq" and (tokens := re.findall(r"[^\W_]+", literals[0].lower())):
        words = words_like(table, test.column.name, tokens)
        words.set("this", test.column.copy())
        notes.append(
            f"{label} is free text: to match words rather than the exact value, use {sql_text(words)}."
        )
    if pool is not None and not pool.complete and not pool.counts:
        return notes, None, fixed  # identifier-like: its "most common values" say nothing
    top = sorted((pool.counts if pool else {}).items(), key=lambda kv: -kv[1])[:TOP_VALUES]
    return notes, top, fixed


def replace_literals(cond: exp.Expression, test: ValueTest, replacements: dict[str, str]) -> exp.Expression:
    if test.kind in ("like", "ilike"):
        pattern, value = next(iter(replacements.items()))
        word = pattern.strip("%")
        if len(pattern) > 2 and pattern.startswith("%") and pattern.endswith("%") and "%" not in word:
            # A substring search stays one ('%lungs%' -> '%Lung%', not = 'Lung Cancer', which drops
            # 'Non-small Cell Lung Cancer'): the word of the nearest value closest to the one given.
            words = re.findall(r"[^\W_]+", value)
            single = re.fullmatch(r"[^\W_]+", word) is not None
            best = (closest(word, words, limit=1) if single and words else []) or [value]
            return exp.ILike(this=test.column.copy(), expression=exp.Literal.string(f"%{best[0]}%"))
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


def top_values(
    catalog: Catalog, scope: Scope, column: exp.Column, others: list[exp.Expression], budget: Budget
) -> list[tuple[object, int]]:
    """The most common values of `column` among rows matching `others`."""
    select = [exp.alias_(column.copy(), "v"), exp.alias_(exp.Count(this=exp.Star()), "n")]
    query = filtered(scope, [*others, not_null(column)], select)
    query = query.group_by(column.copy()).order_by(exp.Ordered(this=exp.column("n"), desc=True))
    out = budget.run(catalog, query.limit(TOP_VALUES))
    return [(v, int(n)) for v, n in out.rows] if out else []


def common_text(column: exp.Column, others: list[exp.Expression], values: list[tuple[object, int]]) -> str:
    return f"Most common {sql_text(column)} values{among(others)}: {values_text(values)}."


def common_values(
    catalog: Catalog, scope: Scope, column: exp.Column, others: list[exp.Expression], budget: Budget
) -> str:
    values = top_values(catalog, scope, column, others, budget)
    return common_text(column, others, values) if values else ""
