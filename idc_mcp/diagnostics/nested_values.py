"""Values inside list and struct columns: the paths that hold them, their element values with counts,
and the filter that matches one (`list_contains(...)`, `struct.field = ...`).

A nested column has one path per scalar it holds: a list's elements (`ImageType[]`), a struct's fields
(`provenance.data_contributor`), the fields of a list's struct elements
(`sources[].license.license_short_name`). Element values are counted per row (a row holding a value
twice counts once), so a count is the number of rows `filter(value)` matches. Lists inside structs
inside lists are not descended into.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.sqltext import quote_identifier
from idc_mcp.diagnostics.budget import Budget
from idc_mcp.diagnostics.fuzzy import closest, resembles
from idc_mcp.diagnostics.value_hints import Scope, quote, values_text
from idc_mcp.diagnostics.word_overlap import sharing_words
from idc_mcp.sql.types import is_nested, scalar_leaves


@dataclass(frozen=True)
class NestedPath:
    """One scalar inside a nested column: `fields` below the column, inside a list or not."""

    column: str
    fields: tuple[str, ...]
    in_list: bool
    leaf_type: str

    @property
    def path(self) -> str:
        head = self.column + ("[]" if self.in_list else "")
        return ".".join([head, *self.fields])

    @property
    def is_text(self) -> bool:
        return self.leaf_type.upper() == "VARCHAR"

    def reader(self, alias: str | None = None) -> exp.Expression:
        """The SQL expression of this path for one row: a scalar, or (in a list) the list of values."""
        node: exp.Expression = exp.column(self.column, table=alias, quoted=True)
        if not self.in_list:
            for field in self.fields:
                node = exp.Dot(this=node, expression=exp.to_identifier(field))
            return node
        if not self.fields:
            return node
        var = exp.to_identifier("x")
        inner: exp.Expression = exp.column("x")
        for field in self.fields:
            inner = exp.Dot(this=inner, expression=exp.to_identifier(field))
        return exp.Anonymous(
            this="list_transform", expressions=[node, exp.Lambda(this=inner, expressions=[var])]
        )

    def condition(self, value: object, alias: str | None = None) -> exp.Expression:
        """The filter that keeps rows holding `value` at this path."""
        literal = _literal(value)
        if self.in_list:
            return exp.Anonymous(this="list_contains", expressions=[self.reader(alias), literal])
        return exp.EQ(this=self.reader(alias), expression=literal)

    def filter_text(self, value: object, alias: str | None = None) -> str:
        """`condition(value)` as the assistant would write it (lambda arrow syntax, bare names)."""
        column = (f"{_name(alias)}." if alias else "") + _name(self.column)
        fields = "".join("." + _name(f) for f in self.fields)
        literal = _literal(value).sql(dialect="duckdb")
        if not self.in_list:
            return f"{column}{fields} = {literal}"
        reader = f"list_transform({column}, x -> x{fields})" if fields else column
        return f"list_contains({reader}, {literal})"

    def counts_sql(self, table_ref: str, limit: int) -> str:
        """SQL listing (value, rows holding it), most common first, at most `limit` values."""
        reader = self.reader().sql(dialect="duckdb")
        values = f"unnest(list_distinct({reader}))" if self.in_list else reader
        return (
            f"SELECT v, count(*) AS n FROM (SELECT {values} AS v FROM {table_ref}) WHERE v IS NOT NULL "
            f"GROUP BY v ORDER BY n DESC, v LIMIT {int(limit)}"
        )

    def distinct_sql(self, table_ref: str) -> str:
        reader = self.reader().sql(dialect="duckdb")
        values = f"unnest({reader})" if self.in_list else reader
        return f"SELECT count(DISTINCT v) FROM (SELECT {values} AS v FROM {table_ref})"


def _name(name: str) -> str:
    return exp.to_identifier(name).sql(dialect="duckdb")


def _literal(value: object) -> exp.Expression:
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def nested_paths(column: str, dtype: str) -> list[NestedPath]:
    """Every scalar path inside a nested column (none for a scalar column or a MAP)."""
    return [NestedPath(column, leaf.fields, leaf.in_list, leaf.type) for leaf in scalar_leaves(dtype)]


# -- diagnostics: a nested filter that matches nothing -----------------------------------------------
POOL_CAP = 2_000  # element values read per path
SHOWN = 4


@dataclass(frozen=True)
class NestedTest:
    """`list_contains(<path>, 'x')` or `<struct>.<field> = 'x'`, resolved to a path of a catalog table."""

    table: str
    alias: str | None
    path: NestedPath
    literal: exp.Literal


def _chain(node: exp.Expression) -> list[str]:
    """Names of a column reference or a field chain: c.provenance.a.b -> ['c', 'provenance', 'a', 'b']."""
    if isinstance(node, exp.Column):
        return [p.name for p in node.parts]
    if isinstance(node, exp.Dot):
        return _chain(node.this) + [node.expression.name]
    if isinstance(node, exp.Identifier):
        return [node.name]
    return []


def _list_source(node: exp.Expression) -> tuple[list[str], tuple[str, ...]] | None:
    """The column chain a list expression reads and the struct fields a list_transform picks from it."""
    if isinstance(node, exp.Column):
        return _chain(node), ()
    if isinstance(node, exp.Transform | exp.Anonymous):
        lam = node.find(exp.Lambda)
        target = node.this if isinstance(node, exp.Transform) else (node.expressions or [None])[0]
        if lam is None or target is None:
            return None
        if isinstance(target, exp.Case):  # the validator's length guard around the list
            target = target.args.get("default")
        fields = _chain(lam.this)[1:]
        column = target if isinstance(target, exp.Column) else target.find(exp.Column) if target else None
        return (_chain(column), tuple(fields)) if column is not None else None
    return None


def nested_test(
    cond: exp.Expression, sources: dict[str, str], columns: dict[str, dict[str, tuple[str, str]]]
) -> NestedTest | None:
    """Resolve a nested filter. `sources`: alias or name (lowercase) -> catalog table; `columns`:
    table -> {column (lowercase) -> (column, DuckDB type)}."""
    if isinstance(cond, exp.ArrayContains) and isinstance(cond.expression, exp.Literal):
        found = _list_source(cond.this)
        if found is None:
            return None
        chain, fields = found
        in_list, literal = True, cond.expression
    elif isinstance(cond, exp.EQ) and isinstance(cond.expression, exp.Literal):
        chain, fields, in_list, literal = _chain(cond.this), (), False, cond.expression
    else:
        return None
    if not chain:
        return None
    alias = chain[0] if chain[0].lower() in sources and len(chain) > 1 else None
    names = chain[1:] if alias else chain
    owners = [sources[alias.lower()]] if alias else list(dict.fromkeys(sources.values()))
    for table in owners:
        column, dtype = columns.get(table, {}).get(names[0].lower(), ("", ""))
        if not column or not is_nested(dtype):
            continue
        want = tuple(f.lower() for f in (*names[1:], *fields))
        for path in nested_paths(column, dtype):
            if path.in_list == in_list and tuple(f.lower() for f in path.fields) == want:
                return NestedTest(table, alias, path, literal)
    return None


def nested_no_match(
    catalog: Catalog, scope: Scope, cond: exp.Expression, budget: Budget, on_its_own: bool
) -> str | None:
    """For a nested filter matching no rows: the element values nearest to the one given (or sharing
    its words), the corrected filter, and the path's most common values. None: not a nested filter."""
    sources = {
        alias: node.name
        for alias, node in scope.sources.items()
        if scope.is_table(node) and catalog.is_installed(node.name)
    }
    columns = {t: {c.lower(): (c, d) for c, d in catalog.columns(t)} for t in set(sources.values())}
    test = nested_test(cond, sources, columns)
    if test is None:
        return None
    path, literal = test.path, test.literal
    value: object = literal.name if literal.is_string else literal.to_py()
    head = f"{path.filter_text(value, test.alias)} matches no rows{' even on its own' if on_its_own else ''}."
    out = budget.run(
        catalog, sqlglot.parse_one(path.counts_sql(quote_identifier(test.table), POOL_CAP), dialect="duckdb")
    )
    if out is None:
        return head + f' describe_table(table="{test.table}", column="{path.column}") lists its values.'
    counts = {v: int(n) for v, n in out.rows}
    where = f"{path.path} of {test.table}"
    if not counts:
        return head + f" {where} holds no values at all."
    near: list[tuple[object, int]] = []
    if isinstance(value, str):
        texts = {str(v): (v, n) for v, n in counts.items() if isinstance(v, str)}
        fuzzy = [texts[t] for t in closest(value, texts, limit=8, cutoff=75) if resembles(value, t)]
        near = list(dict.fromkeys(fuzzy + sharing_words(value, counts)))[:SHOWN]
    parts = [head, f"{quote(value)} is not a value of {where}."]
    if near:
        parts.append(f"Nearest existing values: {values_text(near)}.")
        parts.append(f"Use {path.filter_text(near[0][0], test.alias)} instead.")
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:SHOWN]
    more = "+" if len(counts) >= POOL_CAP else ""
    parts.append(f"Most common values ({len(counts):,}{more} in all): {values_text(top)}.")
    parts.append(f'describe_table(table="{test.table}", column="{path.column}") lists them with counts.')
    return " ".join(parts)
