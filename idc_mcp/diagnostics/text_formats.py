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

    def describe(self, column: str, examples: list[str], others: list[str]) -> str:
        shown = ", ".join(repr(v) for v in examples[:4])
        odd = f"; other values seen: {', '.join(repr(v) for v in others[:4])}" if others else ""
        use = self.convert(exp.column(column)).sql(dialect="duckdb")
        return f"{self.explanation} (e.g. {shown}{odd}). Compare as a {self.converted_type} with {use}."


FORMATS = (
    TextFormat(
        "DICOM age string",
        re.compile(r"^\d{3}[DWMY]$"),
        "text in DICOM age format (AS): three digits and a unit, Y years, M months, W weeks, D days",
        _age_years,
        "number of years (months, weeks and days give NULL)",
    ),
    TextFormat(
        "ISO date as text",
        re.compile(r"^\d{4}-\d{2}-\d{2}$"),
        "a date written as text 'YYYY-MM-DD'",
        lambda c: _try_cast(c, "DATE"),
        "date",
    ),
    TextFormat(
        "DICOM date as text",
        re.compile(r"^\d{8}$"),
        "a date written as text 'YYYYMMDD'",
        lambda c: exp.Anonymous(this="try_strptime", expressions=[c, exp.Literal.string("%Y%m%d")]),
        "date",
    ),
    TextFormat(
        "number as text",
        re.compile(r"^[+-]?\d+(\.\d+)?$"),
        "a number written as text",
        lambda c: _try_cast(c, "DOUBLE"),
        "number",
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
