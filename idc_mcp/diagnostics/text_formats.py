"""Text columns whose values are not what their name suggests: ages written as DICOM AS ('065Y'),
dates written as text ('2001-01-02'), numbers stored as text, one name spelled several ways.

The format is recognised from the values themselves (a pattern most of them follow), never from the
column's name; the conversions it offers are plain DuckDB expressions that never fail at run time
(TRY_CAST), so a corrected comparison keeps the rows whose value cannot be converted out.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlglot import exp

from idc_mcp.catalog import facts
from idc_mcp.catalog.database import Catalog
from idc_mcp.diagnostics.budget import Budget
from idc_mcp.sql.guard import ValidatedQuery

SHARE = 0.8  # the pattern must hold for this share of the distinct values seen


def _try_cast(node: exp.Expression, to: str) -> exp.Expression:
    return exp.TryCast(this=node, to=exp.DataType.build(to))


def _age_years(column: exp.Expression) -> exp.Expression:
    extract = exp.RegexpExtract(
        this=column, expression=exp.Literal.string(r"^(\d+)[Yy]?$"), group=exp.Literal.number(1)
    )
    return _try_cast(extract, "INTEGER")


@dataclass(frozen=True)
class TextFormat:
    name: str
    pattern: re.Pattern[str]
    explanation: str
    # The column converted to what the assistant meant to compare with (a number or a date).
    convert: Callable[[exp.Expression], exp.Expression]
    converted_type: str  # 'number' or 'date'
    example: str  # how one value looks, for the one-line description

    def describe(self, column: str, examples: list[str], others: list[str]) -> str:
        shown = ", ".join(repr(v) for v in examples[:4])
        odd = f"; other values seen: {', '.join(repr(v) for v in others[:4])}" if others else ""
        use = self.convert(exp.column(column)).sql(dialect="duckdb")
        return f"{self.explanation} (e.g. {shown}{odd}). Compare as a {self.converted_type} with {use}."

    def brief(self, column: str) -> str:
        """One line: how a value looks and the expression that converts it."""
        use = self.convert(exp.column(column)).sql(dialect="duckdb")
        return f"text like {self.example}; as a {self.converted_type.split(' (')[0]}: {use}"

    def brief_with_values(self, column: str) -> str:
        """One line, beside values that show how they look: the expression that converts them."""
        use = self.convert(exp.column(column)).sql(dialect="duckdb")
        return f"as a {self.converted_type.split(' (')[0]}: {use}"


FORMATS = (
    TextFormat(
        "DICOM age string",
        re.compile(r"^\d{3}[DWMY]$"),
        "text in DICOM age format (AS): three digits and a unit, Y years, M months, W weeks, D days",
        _age_years,
        "number of years (months, weeks and days give NULL)",
        "'065Y'",
    ),
    TextFormat(
        "ISO date as text",
        re.compile(r"^\d{4}-\d{2}-\d{2}$"),
        "a date written as text 'YYYY-MM-DD'",
        lambda c: _try_cast(c, "DATE"),
        "date",
        "'2001-01-02'",
    ),
    TextFormat(
        "DICOM date as text",
        re.compile(r"^\d{8}$"),
        "a date written as text 'YYYYMMDD'",
        lambda c: exp.Anonymous(this="try_strptime", expressions=[c, exp.Literal.string("%Y%m%d")]),
        "date",
        "'20010102'",
    ),
    TextFormat(
        "number as text",
        re.compile(r"^[+-]?\d+(\.\d+)?$"),
        "a number written as text",
        lambda c: _try_cast(c, "DOUBLE"),
        "number",
        "'501'",
    ),
)


@dataclass(frozen=True)
class Recognised:
    format: TextFormat
    examples: list[str]  # values that follow the format
    others: list[str]  # values that do not (bare numbers, 'N-A', ...)

    def describe(self, column: str) -> str:
        return self.format.describe(column, self.examples, self.others)


def recognise(values: Iterable[object]) -> Recognised | None:
    """The format most distinct values follow, if any (at least 5 values seen)."""
    texts = [v for v in dict.fromkeys(values) if isinstance(v, str) and v.strip()]
    if len(texts) < 5:
        return None
    for fmt in FORMATS:
        hits = [v for v in texts if fmt.pattern.match(v)]
        if len(hits) >= SHARE * len(texts):
            return Recognised(fmt, hits[:4], [v for v in texts if not fmt.pattern.match(v)][:4])
    return None


def spellings(values: Iterable[object]) -> list[list[str]]:
    """Groups of values that are one value written differently (case, spaces, punctuation),
    largest group first: ['GE MEDICAL SYSTEMS', 'GE Medical Systems', 'GE_MEDICAL_SYSTEMS']."""
    groups: dict[str, list[str]] = defaultdict(list)
    for v in values:
        if isinstance(v, str) and (key := " ".join(re.findall(r"[^\W_]+", v.casefold()))):
            groups[key].append(v)
    found = [g for g in groups.values() if len(g) > 1]
    return sorted(found, key=len, reverse=True)


def spelling_brief(groups: list[list[str]]) -> str:
    """One line: how many values are spelled several ways, with the first group."""
    shown = "/".join(repr(v if len(v) <= 24 else v[:24] + "…") for v in groups[0][:2])
    return f"{len(groups)} spelled several ways, e.g. {shown}: match all spellings"


def spelling_note(column: str, groups: list[list[str]]) -> str:
    shown = "; ".join(", ".join(repr(v) for v in g[:3]) for g in groups[:2])
    first = groups[0][0]
    word = re.findall(r"[^\W_]+", first)
    pattern = f"{word[0]}%" if word else first
    return (
        f"Free text as each site recorded it: {len(groups)} value(s) are spelled several ways "
        f"(case, spaces, punctuation), e.g. {shown}. Match all spellings with an IN list of them or "
        f"{column} ILIKE '{pattern}' (check what else that pattern matches)."
    )


# -- the repair of a comparison that met the wrong type -------------------------------------------------
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
SAMPLE_VALUES = 200


def _date_literal(node: exp.Expression) -> bool:
    return isinstance(node, exp.Cast) and node.to.is_type("date") and isinstance(node.this, exp.Literal)


def _number(node: exp.Expression) -> bool:
    return isinstance(node, exp.Literal) and node.is_number


def _as_date(literal: exp.Literal) -> exp.Expression | None:
    """20100101 -> DATE '2010-01-01' (a date written as a number)."""
    text = literal.name
    if re.fullmatch(r"(19|20)\d{6}", text):
        return exp.cast(exp.Literal.string(f"{text[:4]}-{text[4:6]}-{text[6:]}"), "DATE")
    return None


@dataclass(frozen=True)
class Mismatch:
    """A comparison (or a CAST) of a text column that failed, and its repair."""

    node: exp.Expression  # the node of the query to replace
    column: exp.Column
    table: str
    fixed: exp.Expression


def repair(node: exp.Expression, column: exp.Column, table: str, found: Recognised | None) -> Mismatch | None:
    """The corrected comparison for a text column compared with a number or a date, using its format."""
    if isinstance(node, exp.Cast) and not isinstance(node, exp.TryCast):
        fmt = found.format if found else None
        convert = (
            fmt.convert(column.copy()) if fmt else _try_cast(column.copy(), node.to.sql(dialect="duckdb"))
        )
        return Mismatch(node, column, table, convert)
    if isinstance(node, exp.Between | exp.In):  # column BETWEEN / IN numbers (or dates as numbers)
        return _repair_range(node, column, table, found)
    other = node.expression if node.this is column else node.this
    fixed = node.copy()
    swap = fixed.args["this"] if node.this is column else fixed.args["expression"]
    kind = found.format.converted_type if found else "number"
    if _number(other) and kind.startswith("number"):
        converted = found.format.convert(column.copy()) if found else _try_cast(column.copy(), "DOUBLE")
        swap.replace(converted)
        return Mismatch(node, column, table, fixed)
    if kind == "date" and found is not None:
        converted = found.format.convert(column.copy())
        if _date_literal(other):
            swap.replace(converted)
            return Mismatch(node, column, table, fixed)
        if _number(other) and (as_date := _as_date(other)) is not None:
            swap.replace(converted)
            (fixed.args["expression"] if node.this is column else fixed.args["this"]).replace(as_date)
            return Mismatch(node, column, table, fixed)
        if _number(other) and re.fullmatch(r"\d{4}", other.name):  # a year
            swap.replace(exp.Year(this=converted))
            return Mismatch(node, column, table, fixed)
    return None


def _repair_range(
    node: exp.Between | exp.In, column: exp.Column, table: str, found: Recognised | None
) -> Mismatch | None:
    fixed = node.copy()
    literals = (
        [fixed.args["low"], fixed.args["high"]] if isinstance(fixed, exp.Between) else fixed.expressions
    )
    if not literals or not all(_number(v) for v in literals):
        return None
    kind = found.format.converted_type if found else "number"
    if kind == "date":
        dates = [_as_date(v) for v in literals]
        if any(d is None for d in dates):
            return None
        for old, new in zip(literals, dates, strict=True):
            old.replace(new)
    elif not kind.startswith("number"):
        return None
    converted = found.format.convert(column.copy()) if found else _try_cast(column.copy(), "DOUBLE")
    fixed.this.replace(converted)
    return Mismatch(node, column, table, fixed)


def text_operands(tree: exp.Expression) -> list[tuple[exp.Expression, exp.Column]]:
    """(comparison or CAST, the column in it) for every comparison with a literal number or date and
    every CAST of a column: the places where a text column can meet the wrong type."""
    out: list[tuple[exp.Expression, exp.Column]] = []
    for node in tree.find_all(*_COMPARISONS, exp.Cast, exp.Between, exp.In):
        if isinstance(node, exp.Cast):
            if isinstance(node.this, exp.Column) and not isinstance(node, exp.TryCast):
                out.append((node, node.this))
            continue
        if isinstance(node, exp.Between | exp.In):
            if isinstance(node.this, exp.Column) and not node.args.get("query"):
                out.append((node, node.this))
            continue
        for side, other in ((node.this, node.expression), (node.expression, node.this)):
            if isinstance(side, exp.Column) and (_number(other) or _date_literal(other)):
                out.append((node, side))
    return out


def _owner(catalog: Catalog, tree: exp.Expression, tables: tuple[str, ...], column: exp.Column) -> str | None:
    """The catalog table whose text column this is (through its alias when qualified)."""
    aliases = {t.alias_or_name.lower(): t.name for t in tree.find_all(exp.Table)}
    candidates = (
        [aliases[column.table.lower()]] if column.table and column.table.lower() in aliases else tables
    )
    for table in candidates:
        types = {c.lower(): t for c, t in catalog.columns(table)}
        if types.get(column.name.lower()) == "VARCHAR":
            return table
    return None


def sample_values(catalog: Catalog, table: str, column: str, budget: Budget) -> list[object]:
    """Up to SAMPLE_VALUES of a column's values, the most common first (ties by value): the same every
    time, so a reply shows the same examples. From the catalog's facts when it has them; else one query.
    (`SELECT DISTINCT ... LIMIT` without an order gave other values at each run: DuckDB's threads.)"""
    built = facts.text_values(catalog, table, column)
    if built is not None and built.values:
        return [value for value, _ in built.values[:SAMPLE_VALUES]]
    col = exp.column(column, quoted=True)
    not_null = exp.Not(this=exp.Is(this=col.copy(), expression=exp.Null()))
    query = (
        exp.select(col)
        .from_(exp.Table(this=exp.to_identifier(table)))
        .where(not_null)
        .group_by(col.copy())
        .order_by(exp.Ordered(this=exp.Count(this=exp.Star()), desc=True), col.copy())
        .limit(SAMPLE_VALUES)
    )
    out = budget.run(catalog, query)
    return [r[0] for r in out.rows] if out else []


def explain_mismatch(catalog: Catalog, validated: ValidatedQuery, budget: Budget) -> str | None:
    """For a text column compared with a number or a date (or cast to one) that failed: the column's
    real format with example values, and a corrected expression, run once to check it works."""
    tree = validated.tree
    for node, column in text_operands(tree):
        table = _owner(catalog, tree, validated.tables, column)
        if table is None:
            continue
        values = sample_values(catalog, table, column.name, budget)
        found = recognise(values)
        mismatch = repair(node, column, table, found)
        if mismatch is None:
            continue
        described = (
            found.describe(column.name)
            if found
            else (f"text (VARCHAR), e.g. {', '.join(repr(v) for v in values[:4])}")
        )
        fixed_sql = mismatch.fixed.sql(dialect="duckdb")
        checked = _check(catalog, tree, node, mismatch.fixed, budget)
        return (
            f"{column.name} is {described} Use {fixed_sql} in place of {node.sql(dialect='duckdb')}{checked}."
        )
    return None


def _check(
    catalog: Catalog, tree: exp.Expression, node: exp.Expression, fixed: exp.Expression, budget: Budget
) -> str:
    """Run the query with the repair in place: the suggestion is shown only as checked when it ran."""
    copy = tree.copy()
    target = next((n for n, o in zip(copy.walk(), tree.walk(), strict=True) if o is node), None)
    if target is None:
        return ""
    target.replace(fixed.copy())
    out = budget.run(catalog, copy)
    if out is None:
        return " (not checked: it did not run within the time allowed)"
    return f" (checked: the query runs with it and returns {len(out.rows):,} row(s))"


# -- a function or arithmetic applied to a text column ----------------------------------------------------
_COMPUTED = (exp.Func, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Extract)
_NOT_COMPUTED = (exp.Cast, exp.Alias, exp.Paren, *_COMPARISONS, exp.Between, exp.In, exp.Like, exp.ILike)


def computed_columns(tree: exp.Expression) -> dict[str, list[exp.Column]]:
    """Columns (by lower-case name) that a function or arithmetic takes as an argument: year(StudyDate),
    avg(PatientAge), PatientAge + 1, extract(year FROM StudyDate), anywhere in the query."""
    found: dict[str, list[exp.Column]] = {}
    for column in tree.find_all(exp.Column):
        parent = column.parent
        if isinstance(parent, _COMPUTED) and not isinstance(parent, (*_NOT_COMPUTED, exp.AggFunc)):
            found.setdefault(column.name.lower(), []).append(column)
        elif isinstance(parent, exp.AggFunc) and not isinstance(parent, exp.Count | exp.AnyValue):
            found.setdefault(column.name.lower(), []).append(column)  # avg(PatientAge), sum(...)
    return found


def _year_filter(column: exp.Column, found: Recognised) -> str:
    """`StudyDate LIKE '2001-%'` for `year(StudyDate) = 2001`: the text as stored, by its year."""
    year = column.parent
    compared = year.parent if isinstance(year, exp.Year) else None
    if not isinstance(compared, exp.EQ) or found.format.pattern.pattern != r"^\d{4}-\d{2}-\d{2}$":
        return ""
    other = compared.expression if compared.this is year else compared.this
    if not (_number(other) and re.fullmatch(r"\d{4}", other.name)):
        return ""
    like = exp.Like(this=exp.column(column.name), expression=exp.Literal.string(f"{other.name}-%"))
    return f" To filter by year, {like.sql(dialect='duckdb')} works on the text as stored."


def explain_text_function(catalog: Catalog, validated: ValidatedQuery, budget: Budget) -> str | None:
    """For a function or arithmetic that met a text column written as a date, an age or a number
    (year(StudyDate), avg(PatientAge)): the column's format and the query with the column converted
    wherever it is computed on, run once to check it works."""
    tree = validated.tree
    for name, columns in computed_columns(tree).items():
        table = _owner(catalog, tree, validated.tables, columns[0])
        if table is None:
            continue
        found = recognise(sample_values(catalog, table, columns[0].name, budget))
        if found is None:
            continue
        fixed = tree.copy()
        originals = {id(c) for c in columns}
        first: tuple[str, str] | None = None
        for old, new in zip(tree.walk(), fixed.walk(), strict=True):
            if id(old) in originals and isinstance(new, exp.Column):
                computed = new.parent
                before = computed.sql(dialect="duckdb") if computed is not None else name
                new.replace(found.format.convert(new.copy()))
                if first is None and computed is not None:
                    first = (before, computed.sql(dialect="duckdb"))
        if first is None:
            continue
        ran = budget.run(catalog, fixed)
        if ran is None:
            continue
        before, after = first
        checked = f"(checked: the query runs with it and returns {len(ran.rows):,} row(s))."
        return (
            f"{columns[0].name} is {found.describe(columns[0].name)} Use {after} in place of {before} "
            f"{checked}{_year_filter(columns[0], found)}"
        )
    return None
