"""Dates that are placeholders: where a collection's dates nearly all fall on one day of the year (NLST's
StudyDate is January 2 of 1999-2001: de-identified to the year), the assistant is told so where it reads
the column (describe_table) and where it filters or groups by it (a query), so that it does not report
them as real dates. The collections come from the catalog's facts (`catalog.facts.placeholder_dates`),
computed from the data when the catalog is built.
"""

from __future__ import annotations

import calendar

from sqlglot import exp

from idc_mcp.catalog import facts
from idc_mcp.catalog.database import Catalog
from idc_mcp.diagnostics.budget import Budget
from idc_mcp.sql.guard import ValidatedQuery

NAMED = 4  # collections named in a note (most rows first); the rest are counted


def _day(found: facts.PlaceholderDates) -> str:
    month, day = (int(p) for p in found.day.split("-"))
    return f"{calendar.month_abbr[month]} {day}"


def describe(found: facts.PlaceholderDates) -> str:
    """'nlst: Jan 2 of 1999-2001 (99.8% of its dated rows, 26,254 patients)'."""
    share = found.day_rows / found.dated_rows
    if found.dates == 1:
        when = f"always {found.first_year}-{found.day}"
    else:
        when = f"{_day(found)} of {found.first_year}-{found.last_year} (only the year is kept)"
    return f"{found.collection_id}: {when} ({share:.1%} of its dated rows, {found.patients:,} patients)"


def _listing(column: str, found: tuple[facts.PlaceholderDates, ...]) -> str:
    named = "; ".join(describe(f) for f in found[:NAMED])
    more = f"; and {len(found) - NAMED} more collection(s)" if len(found) > NAMED else ""
    return (
        f"{column} holds placeholder dates in {len(found)} collection(s), de-identified (one day of "
        f"the year for every patient): {named}{more}. Do not report them as real dates"
    )


def column_notes(catalog: Catalog, table: str, column: str) -> tuple[list[str], list[str]]:
    """(notes, the same in a few words) for describe_table's view of `column`."""
    found = facts.placeholder_dates(catalog, table, column)
    if not found:
        return [], []
    every = "; ".join(describe(f) for f in found)
    note = (
        f"{column} holds placeholder dates in {len(found)} collection(s) (one day of the year for every "
        f"patient: de-identified, not real dates): {every}."
    )
    brief = f"placeholder dates in {len(found)} collections (e.g. {found[0].collection_id})"
    return [note], [brief]


# -- in a query: the column filtered, grouped, ordered or computed on ------------------------------------
def _used(tree: exp.Expression, column: str) -> bool:
    """`column` in a condition, a grouping, an ordering, or inside a function (year(StudyDate))."""
    for node in tree.find_all(exp.Column):
        if node.name.lower() != column.lower():
            continue
        if isinstance(node.parent, exp.Func):
            return True
        if node.find_ancestor(exp.Where, exp.Group, exp.Having, exp.Order, exp.Join, exp.Qualify):
            return True
    return False


def _collections_named(tree: exp.Expression) -> set[str] | None:
    """The collections a query restricts itself to (`collection_id = 'x'`, `IN (...)`), None if none."""
    named: set[str] = set()
    for node in tree.find_all(exp.EQ, exp.In):
        column = node.this
        if not isinstance(column, exp.Column) or column.name.lower() != "collection_id":
            continue
        values = [node.expression] if isinstance(node, exp.EQ) else node.expressions
        named |= {v.name.lower() for v in values if isinstance(v, exp.Literal) and v.is_string}
    return named or None


def query_notes(catalog: Catalog, validated: ValidatedQuery, budget: Budget) -> list[str]:
    """A note per placeholder-date column the query filters, groups or computes on, naming the
    collections concerned (those the query restricts itself to, when it does)."""
    del budget  # facts only: no query runs
    notes = []
    tree = validated.tree
    # Only the few date columns with placeholder facts can get a note: look at those alone (most
    # queries name none, and then nothing else is walked).
    dated = facts.placeholder_columns(catalog)
    if not dated:
        return notes
    named = {c.name.lower() for c in tree.find_all(exp.Column)}
    named = {c for c in named if any((t.lower(), c) in dated for t in validated.tables)}
    if not named:
        return notes
    restricted = _collections_named(tree)
    seen: set[str] = set()
    for table in validated.tables:
        for node in tree.find_all(exp.Column):
            column = node.name
            if column.lower() not in named or column.lower() in seen or not _used(tree, column):
                continue
            found = facts.placeholder_dates(catalog, table, column)
            if restricted is not None:
                found = tuple(f for f in found if f.collection_id.lower() in restricted)
            if found:
                seen.add(column.lower())
                notes.append(f"{_listing(column, found)}.")
    return notes
