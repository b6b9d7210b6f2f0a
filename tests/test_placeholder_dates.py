"""Dates that are placeholders (NLST's StudyDate is January 2 of 1999-2001 for every patient: de-identified
to the year): found in the data when the catalog is built, and said where the assistant reads, filters or
groups by the column, so that it does not report them as real dates."""

from __future__ import annotations

import inspect

import pytest

from idc_mcp.catalog import facts
from idc_mcp.catalog.database import Catalog
from idc_mcp.diagnostics import placeholders
from idc_mcp.tools.query import run_query
from idc_mcp.tools.tables import describe_table
from tests.parquet import parquet_sql


def _recomputed(column: str) -> dict[str, tuple[str, int, int]]:
    """collection -> (day, first year, last year) by the rule, straight from the parquet."""
    rows = parquet_sql(
        f'WITH dated AS (SELECT collection_id, PatientID, {column} AS d FROM "index" '
        f"WHERE regexp_full_match({column}, '\\d{{4}}-\\d{{2}}-\\d{{2}}')), "
        "c AS (SELECT collection_id, count(*) AS n, count(DISTINCT PatientID) AS p FROM dated GROUP BY 1), "
        "d AS (SELECT collection_id, substr(d, 6) AS day, count(*) AS n, min(left(d, 4)::INT) AS y0, "
        "max(left(d, 4)::INT) AS y1 FROM dated GROUP BY 1, 2) "
        "SELECT collection_id, day, y0, y1 FROM d JOIN c USING (collection_id) "
        f"WHERE d.n >= {facts.PLACEHOLDER_SHARE} * c.n AND c.p >= {facts.PLACEHOLDER_PATIENTS}"
    )
    return {c: (day, y0, y1) for c, day, y0, y1 in rows}


@pytest.mark.parametrize("column", ["StudyDate", "SeriesDate"])
def test_the_built_facts_are_what_the_rule_finds_in_the_data(catalog: Catalog, column: str) -> None:
    found = {
        f.collection_id: (f.day, f.first_year, f.last_year)
        for f in facts.placeholder_dates(catalog, "index", column)
    }
    assert found == _recomputed(column)


def test_nlst_study_dates_are_january_2_of_1999_to_2001(catalog: Catalog) -> None:
    nlst = next(
        f for f in facts.placeholder_dates(catalog, "index", "StudyDate") if f.collection_id == "nlst"
    )
    assert (nlst.day, nlst.first_year, nlst.last_year) == ("01-02", 1999, 2001)
    assert "nlst: Jan 2 of 1999-2001 (only the year is kept)" in placeholders.describe(nlst)


def test_no_collection_is_named_in_the_code() -> None:
    # Computed from the data at build time: a release that de-identifies another collection is found too.
    for module in (placeholders, facts):
        source = inspect.getsource(module).split('"""', 2)[2]  # past the docstring's examples
        assert "'nlst'" not in source and '"nlst"' not in source


def test_grouping_by_the_year_of_study_dates_says_which_are_placeholders(catalog: Catalog) -> None:
    sql = "SELECT substr(StudyDate, 1, 4) AS y, count(*) AS n FROM index GROUP BY 1 ORDER BY 2 DESC"
    notes = run_query(catalog, sql, max_rows=5).diagnostics
    (note,) = [n for n in notes if "placeholder dates" in n]
    assert "nlst: Jan 2 of 1999-2001" in note and "Do not report them as real dates" in note


def test_a_filter_on_one_collection_names_only_that_collection(catalog: Catalog) -> None:
    nlst = run_query(
        catalog, "SELECT count(*) AS n FROM index WHERE collection_id = 'nlst' AND StudyDate > '2000-06-01'"
    )
    (note,) = [n for n in nlst.diagnostics if "placeholder dates" in n]
    assert "in 1 collection(s)" in note and "nlst" in note and "lidc_idri" not in note
    # A collection with real dates, and a query that only lists the column, get no such note.
    real = run_query(
        catalog,
        "SELECT count(*) AS n FROM index WHERE collection_id = 'tcga_luad' AND StudyDate > '2000-06-01'",
    )
    listed = run_query(catalog, "SELECT StudyDate FROM index LIMIT 3")
    assert not [n for n in real.diagnostics + listed.diagnostics if "placeholder" in n]


def test_describe_table_says_it_for_the_column(catalog: Catalog) -> None:
    (col,) = describe_table(catalog, "index", column="StudyDate").columns or []
    assert any("nlst: Jan 2 of 1999-2001" in n for n in col.notes or [])
    assert "placeholder dates in" in (describe_table(catalog, "index").summary or {})["StudyDate"]
