"""A hint for results that are not empty but probably incomplete: `Manufacturer = 'GE'` matches 198
series while 'GE MEDICAL SYSTEMS' has 190,643.

For each top-level AND condition `<text column> = '<literal>'` or `IN (...)` (first few literals) of
the root SELECT over a catalog table, the column's values are read once per process (`value_pool`,
bounded; identifier-like and high-cardinality columns are skipped) and searched for other values that
contain the literal's words in order (folded: case, spaces and punctuation ignored). When those
related values together have many more rows than the literal, one note names them and the condition
that includes them. Computed from the data, never from a synonym list; every query runs in the
caller's `Budget`.
"""

from __future__ import annotations

import re

from sqlglot import exp

from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.memo import Memo
from idc_mcp.diagnostics.budget import Budget
from idc_mcp.diagnostics.empty_result import MAX_CONJUNCTS, conjuncts
from idc_mcp.diagnostics.value_hints import (
    Scope,
    ValuePool,
    is_text_column,
    like_regex,
    quote,
    scope_of,
    source_of,
    sql_text,
    value_pool,
    value_test,
    values_text,
)
from idc_mcp.diagnostics.word_overlap import bare_names, words
from idc_mcp.diagnostics.word_overlap import related as is_related
from idc_mcp.sql import guard

MAX_LITERALS = 3  # literals of one IN list looked at
MAX_NOTES = 2
MANY_TIMES = 10  # related values must have this many times the literal's rows
SHOWN = 4  # related values named in a note
MAX_GIVEN_REPEATED = 10  # a longer IN list is not repeated in the suggestion
MAX_IN_SUGGESTED = 12  # related values put into a suggested IN list (the largest)
# Identifiers are never abbreviated values of one another: skip them without reading anything.
_IDENTIFIER = re.compile(r"(uid|id|url|doi)$", re.I)

# The catalog is read-only, so a column's values do not change while it is open: keep the pools.
_POOLS: Memo[ValuePool] = Memo(maxsize=256)


def _pool(catalog: Catalog, scope: Scope, table: exp.Table, column: str, budget: Budget) -> ValuePool | None:
    key = (catalog.cache_key, table.name.lower(), column.lower())
    cached = _POOLS.get(key)
    if cached is not None:
        return cached
    skipped = budget.skipped
    pool = value_pool(catalog, scope, table, column, budget)
    if budget.skipped != skipped:  # a query was cut short: the pool is not the column's values
        return None
    _POOLS.put(key, pool)
    return pool


def related_values_notes(catalog: Catalog, validated: guard.ValidatedQuery, budget: Budget) -> list[str]:
    """Notes for equality/IN conditions whose literal is a poor match for what the data holds."""
    root = validated.tree
    if not isinstance(root, exp.Select) or root.args.get("from_") is None:
        return []
    conds = conjuncts(root.args.get("where"))[:MAX_CONJUNCTS]
    tests = [(c, t) for c in conds if (t := value_test(c)) is not None and t.kind in ("eq", "in")]
    if not tests:
        return []
    scope = scope_of(root, root.args.get("with_"), validated.scope)
    notes: list[str] = []
    for cond, test in tests:
        if len(notes) >= MAX_NOTES or budget.remaining_s <= 0:
            break
        if test.column.parent is not cond:
            continue  # lower(col) = 'ge' compares folded values: not this check's business
        if _IDENTIFIER.search(test.column.name):
            continue
        table = source_of(catalog, scope, test.column)
        if (
            not isinstance(table, exp.Table)
            or not scope.is_table(table)
            or not catalog.is_installed(table.name)
            or not is_text_column(catalog, table, test.column.name)
        ):
            continue
        bare = exp.Table(this=exp.to_identifier(table.name))  # the whole table, not the query's alias
        pool = _pool(catalog, Scope(root, None, {}, {}), bare, test.column.name, budget)
        if pool is None or not pool.complete or not pool.counts:
            continue  # identifier-like or too many values to read cheaply
        for literal in [lit.name for lit in test.literals][:MAX_LITERALS]:
            note = _note(test.column, table.name, literal, [lit.name for lit in test.literals], pool)
            if note and len(conds) > 1:
                note += " (Counts are over the whole table, not only the rows matching the other conditions.)"
            if note:
                notes.append(note)
                break
    return notes


def _note(column: exp.Column, table: str, literal: str, given: list[str], pool: ValuePool) -> str:
    own = pool.counts.get(literal)
    listed = set(given)
    if not own or not words(literal):
        return ""
    names = bare_names(pool.counts)
    related = sorted(
        (
            (v, n)
            for v, n in pool.counts.items()
            if isinstance(v, str) and v not in listed and is_related(v, literal, names)
        ),
        key=lambda vn: -vn[1],
    )
    total = sum(n for _, n in related)
    if total < MANY_TIMES * own:
        return ""
    largest = f" (the {MAX_IN_SUGGESTED} largest)" if len(related) > MAX_IN_SUGGESTED else ""
    added = [exp.Literal.string(str(v)) for v, _ in related[:MAX_IN_SUGGESTED]]
    if len(given) > MAX_GIVEN_REPEATED:  # a long IN list is not repeated: name what to add to it
        include = f"add these to the IN list: {', '.join(sql_text(v) for v in added)}{largest}."
        return _head(column, table, literal, own, related) + f" To include them {include}"
    in_list = exp.In(this=column.copy(), expressions=[exp.Literal.string(v) for v in given] + added)
    pattern = f"{literal}%"
    ilike = exp.ILike(this=column.copy(), expression=exp.Literal.string(pattern))
    matching = like_regex(pattern)
    wanted_all = {literal, *(str(v) for v, _ in related)}
    extra = sorted(
        (
            (v, n)
            for v, n in pool.counts.items()
            if isinstance(v, str) and v not in wanted_all and matching.match(v)
        ),
        key=lambda vn: -vn[1],
    )
    caught = sum(1 for v in wanted_all if matching.match(v))
    like = ""
    if len(given) > 1 or re.search(r"[%_\\]", literal):
        like = ""  # a pattern for one value would drop the others of the IN list
    elif extra:
        like = f" ({sql_text(ilike)} would also match {values_text(extra[:2])})"
    elif caught == len(wanted_all):
        like = f" or {sql_text(ilike)}"
    return (
        _head(column, table, literal, own, related)
        + f" To include them use {sql_text(in_list)}{largest}{like}."
    )


def _head(column: exp.Column, table: str, literal: str, own: int, related: list[tuple[object, int]]) -> str:
    more = f" and {len(related) - SHOWN} more" if len(related) > SHOWN else ""
    return (
        f"{sql_text(column)} = {quote(literal)} matches {own:,} rows of {table}, but related values have "
        f"many more: {values_text(related[:SHOWN])}{more}."
    )
