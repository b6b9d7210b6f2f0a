"""Replies that repair the assistant's mistakes: wrong columns, tables and values.

Every suggestion is checked against the data independently: plain DuckDB over idc-index-data's
parquet files (not our catalog) confirms that a suggested value exists, that a suggested column is
where we say, and that a corrected query returns rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import idc_index_data
import pytest
from mcp import Client

from idc_mcp.catalog import facts
from idc_mcp.catalog.build import CATALOG_FILE
from idc_mcp.catalog.database import Catalog, QueryTimeout, get_catalog
from idc_mcp.catalog.memo import Memo
from idc_mcp.diagnostics import budget as budget_mod
from idc_mcp.diagnostics import (
    column_paths,
    empty_result,
    explain,
    fuzzy,
    related_values,
    value_hints,
    word_overlap,
)
from idc_mcp.diagnostics.budget import Budget
from idc_mcp.sql import guard
from idc_mcp.tools.query import QueryError, QueryResult, run_query
from tests.servers import server_from_environment


# -- independent ground truth: plain DuckDB over the bundled parquet ---------------------------------
def _parquet(key: str) -> str:
    return str(idc_index_data.INDEX_METADATA[key]["parquet_filepath"])


@pytest.fixture(scope="module")
def pq() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW idx AS SELECT * FROM read_parquet('{_parquet('idc_index')}')")
    con.execute(f"CREATE VIEW coll AS SELECT * FROM read_parquet('{_parquet('collections_index')}')")
    con.execute(f"CREATE VIEW ar AS SELECT * FROM read_parquet('{_parquet('analysis_results_index')}')")
    yield con
    con.close()


def count_where(pq: duckdb.DuckDBPyConnection, where: str) -> int:
    """Rows of the main index matching a condition (the condition text comes from our diagnostics)."""
    return int(pq.execute(f"SELECT count(*) FROM idx WHERE {where}").fetchone()[0])  # type: ignore[index]


def parquet_columns(pq: duckdb.DuckDBPyConnection, view: str) -> dict[str, str]:
    return {r[0]: r[1] for r in pq.execute(f"DESCRIBE {view}").fetchall()}


@pytest.fixture(autouse=True)
def roomy_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the diagnostics say must not depend on how loaded the test machine is; the time bound
    itself is pinned by the tests that shrink the budget."""
    monkeypatch.setattr(budget_mod, "BUDGET_S", 30.0)
    monkeypatch.setattr(budget_mod, "PER_QUERY_S", 10.0)


def empty(catalog: Catalog, sql: str) -> QueryResult:
    result = run_query(catalog, sql)
    assert result.rows == [], "the mistake under test should return no rows"
    assert result.diagnostics, "an empty result must come with diagnostics"
    return result


def error_text(catalog: Catalog, sql: str) -> str:
    with pytest.raises(QueryError) as info:
        run_query(catalog, sql)
    return str(info.value)


def replacement(text: str) -> str:
    """The condition in 'Use <condition> instead.'"""
    match = re.search(r"Use (.+?) instead\.", text)
    assert match, text
    return match.group(1)


# -- correct queries say nothing ---------------------------------------------------------------------
def test_correct_query_gets_no_diagnostics(catalog: Catalog) -> None:
    result = run_query(catalog, "SELECT SeriesInstanceUID FROM index WHERE Modality = 'CT' LIMIT 3")
    assert result.row_count == 3
    assert result.diagnostics == []


def test_nonzero_count_gets_no_diagnostics(catalog: Catalog) -> None:
    result = run_query(catalog, "SELECT count(*) AS n FROM index WHERE collection_id = 'tcga_luad'")
    assert result.rows[0]["n"] > 0 and result.diagnostics == []


# -- wrong values: the literal does not occur ---------------------------------------------------------
def test_wrong_modality_value_names_ct(catalog: Catalog, pq: duckdb.DuckDBPyConnection) -> None:
    text = empty(catalog, "SELECT * FROM index WHERE Modality = 'CTs'").diagnostics[0]
    assert replacement(text) == "Modality = 'CT'"
    n = count_where(pq, "Modality = 'CT'")
    assert f"'CT' ({n:,} rows)" in text  # the count we print is the count in the parquet


def test_wrong_value_through_table_alias(catalog: Catalog, pq: duckdb.DuckDBPyConnection) -> None:
    text = empty(catalog, "SELECT i.SeriesInstanceUID FROM index i WHERE i.Modality = 'CTs'").diagnostics[0]
    fixed = replacement(text)
    assert fixed == "i.Modality = 'CT'"
    assert count_where(pq, fixed.removeprefix("i.")) > 0


def test_collection_id_in_the_wrong_case_and_punctuation(
    catalog: Catalog, pq: duckdb.DuckDBPyConnection
) -> None:
    text = empty(catalog, "SELECT * FROM index WHERE collection_id = 'TCGA-LUAD'").diagnostics[0]
    assert replacement(text) == "collection_id = 'tcga_luad'"
    assert count_where(pq, "collection_id = 'tcga_luad'") > 0
    assert count_where(pq, "collection_id = 'TCGA-LUAD'") == 0


def test_patient_sex_spelled_out(catalog: Catalog, pq: duckdb.DuckDBPyConnection) -> None:
    text = empty(catalog, "SELECT * FROM index WHERE PatientSex = 'Male'").diagnostics[0]
    assert replacement(text) == "PatientSex = 'M'"
    assert count_where(pq, "PatientSex = 'M'") > 0


def test_body_part_plural_points_to_lung_and_chest(catalog: Catalog, pq: duckdb.DuckDBPyConnection) -> None:
    text = empty(catalog, "SELECT * FROM index WHERE BodyPartExamined = 'lungs'").diagnostics[0]
    assert replacement(text) == "BodyPartExamined = 'LUNG'"
    # CHEST is offered as the most common value, which is what the parquet says it is.
    top = pq.execute(
        "SELECT BodyPartExamined FROM idx WHERE BodyPartExamined IS NOT NULL "
        "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()[0]  # type: ignore[index]
    assert top == "CHEST"
    assert re.search(r"Most common BodyPartExamined values: 'CHEST'", text)


def test_license_without_version_lists_real_licenses(catalog: Catalog, pq: duckdb.DuckDBPyConnection) -> None:
    text = empty(catalog, "SELECT * FROM index WHERE license_short_name = 'CC-BY'").diagnostics[0]
    assert replacement(text) == "license_short_name = 'CC BY 4.0'"
    near = re.search(r"nearest existing values: (.+?)\. Use", text).group(1)  # type: ignore[union-attr]
    for value in re.findall(r"'([^']+)' \(", near):
        assert count_where(pq, f"license_short_name = '{value}'") > 0


def test_in_list_with_one_wrong_value(catalog: Catalog, pq: duckdb.DuckDBPyConnection) -> None:
    text = empty(catalog, "SELECT * FROM index WHERE Modality IN ('CTs', 'MRI')").diagnostics[0]
    fixed = replacement(text)
    assert fixed == "Modality IN ('CT', 'MR')"
    assert count_where(pq, fixed) > 0


def test_misspelled_substring_search_stays_a_substring_search(
    catalog: Catalog, pq: duckdb.DuckDBPyConnection
) -> None:
    # Found by a new-user trial: '%lungs%' was answered "Use cancer_types = 'Lung Cancer' instead",
    # which drops every 'Non-small Cell Lung Cancer', 'Lung Adenocarcinoma'... collection.
    result = empty(catalog, "SELECT collection_id FROM collections_index WHERE cancer_types ILIKE '%lungs%'")
    fixed = replacement(" ".join(result.diagnostics))
    assert fixed == "cancer_types ILIKE '%Lung%'"
    (wide,) = pq.execute(f"SELECT count(*) FROM coll WHERE {fixed}").fetchone()  # type: ignore[misc]
    (exact,) = pq.execute("SELECT count(*) FROM coll WHERE cancer_types = 'Lung Cancer'").fetchone()  # type: ignore[misc]
    assert wide > exact > 0


def test_case_sensitive_like_suggests_ilike(catalog: Catalog, pq: duckdb.DuckDBPyConnection) -> None:
    text = empty(catalog, "SELECT * FROM index WHERE collection_id LIKE 'TCGA%'").diagnostics[0]
    assert "collection_id ILIKE 'TCGA%'" in text
    assert count_where(pq, "collection_id ILIKE 'TCGA%'") > 0


def test_zero_count_is_explained_like_an_empty_result(catalog: Catalog) -> None:
    result = run_query(catalog, "SELECT count(*) AS n FROM index WHERE collection_id = 'TCGA-LUAD'")
    assert result.rows == [{"n": 0}]
    assert replacement(result.diagnostics[0]) == "collection_id = 'tcga_luad'"


# -- the combination is the culprit --------------------------------------------------------------------
def test_modality_absent_from_collection_names_the_ones_present(
    catalog: Catalog, pq: duckdb.DuckDBPyConnection
) -> None:
    notes = empty(catalog, "SELECT * FROM index WHERE Modality = 'MR' AND collection_id = 'nlst'").diagnostics
    first = notes[0]
    assert first.startswith("Modality = 'MR' matches")
    assert "combination" in first
    shown = re.search(r"among rows matching collection_id = 'nlst': (.+?)\. Use", first).group(1)  # type: ignore[union-attr]
    truth = {
        r[0] for r in pq.execute("SELECT DISTINCT Modality FROM idx WHERE collection_id = 'nlst'").fetchall()
    }
    assert set(re.findall(r"'([^']+)' \(", shown)) == truth
    assert "MR" not in truth


def test_corrected_value_that_still_conflicts_says_what_exists(
    catalog: Catalog, pq: duckdb.DuckDBPyConnection
) -> None:
    # Two mistakes at once: the id spelling, and TCGA-LUAD has no MR. One reply should say both.
    sql = "SELECT SeriesInstanceUID FROM index WHERE Modality = 'MR' AND collection_id = 'TCGA-LUAD'"
    text = empty(catalog, sql).diagnostics[0]
    assert replacement(text) == "collection_id = 'tcga_luad'"
    shown = re.search(r"Modality values among rows matching collection_id = 'tcga_luad': (.+?)\.$", text)
    assert shown, text
    truth = {
        r[0]
        for r in pq.execute("SELECT DISTINCT Modality FROM idx WHERE collection_id = 'tcga_luad'").fetchall()
    }
    assert "MR" not in truth
    assert set(re.findall(r"'([^']+)' \(", shown.group(1))) <= truth


def test_join_and_condition_on_the_joined_table(catalog: Catalog, pq: duckdb.DuckDBPyConnection) -> None:
    sql = (
        "SELECT i.SeriesInstanceUID FROM index i JOIN collections_index c USING (collection_id) "
        "WHERE c.cancer_types = 'lung cancer' AND i.Modality = 'CT'"
    )
    text = empty(catalog, sql).diagnostics[0]
    value = re.search(r"Use c\.cancer_types = '([^']+)' instead", text).group(1)  # type: ignore[union-attr]
    assert pq.execute("SELECT count(*) FROM coll WHERE cancer_types = ?", [value]).fetchone()[0] > 0  # type: ignore[index]


def test_wrong_case_in_a_combination_gets_the_exact_value(
    catalog: Catalog, pq: duckdb.DuckDBPyConnection
) -> None:
    # 'Siemens' exists elsewhere, so only the combination is empty; NLST's CT scanners say 'SIEMENS'.
    sql = "SELECT * FROM index WHERE Modality = 'CT' AND Manufacturer = 'Siemens' AND collection_id = 'nlst'"
    text = empty(catalog, sql).diagnostics[0]
    assert (
        text.startswith("Manufacturer = 'Siemens' matches")
        and replacement(text) == "Manufacturer = 'SIEMENS'"
    )
    assert count_where(pq, "Modality = 'CT' AND Manufacturer = 'SIEMENS' AND collection_id = 'nlst'") > 0


def test_numeric_condition_out_of_range_shows_the_range(
    catalog: Catalog, pq: duckdb.DuckDBPyConnection
) -> None:
    text = empty(catalog, "SELECT * FROM index WHERE Modality = 'CT' AND instanceCount < 0").diagnostics[0]
    low, high = pq.execute(
        "SELECT min(instanceCount), max(instanceCount) FROM idx WHERE Modality = 'CT'"
    ).fetchone()  # type: ignore[misc]
    assert f"instanceCount ranges from {low:,} to {high:,} among rows matching Modality = 'CT'." in text


def test_unknown_identifier_gets_no_made_up_neighbour(catalog: Catalog) -> None:
    # Every UID is distinct: suggesting the 'nearest' UID would send the assistant to the wrong series.
    text = empty(catalog, "SELECT * FROM index WHERE SeriesInstanceUID = '1.2.3'").diagnostics[0]
    assert "no existing value is close to it" in text and "Use " not in text


def test_wrong_value_through_a_derived_table(catalog: Catalog) -> None:
    text = empty(catalog, "SELECT * FROM (SELECT * FROM index) t WHERE t.Modality = 'CTs'").diagnostics[0]
    assert replacement(text) == "t.Modality = 'CT'"


def test_having_that_removes_every_group_is_named(catalog: Catalog, pq: duckdb.DuckDBPyConnection) -> None:
    sql = "SELECT Modality, count(*) AS n FROM index GROUP BY Modality HAVING count(*) > 100000000"
    total = pq.execute("SELECT count(*) FROM idx").fetchone()[0]  # type: ignore[index]
    assert empty(catalog, sql).diagnostics == [
        f"{total:,} rows match the FROM and WHERE; HAVING removes them all. Loosen that part."
    ]


def test_empty_cte_is_analysed(catalog: Catalog) -> None:
    sql = (
        "WITH x AS (SELECT * FROM index WHERE Modality = 'CTs') "
        "SELECT collection_id, count(*) FROM x GROUP BY 1"
    )
    text = empty(catalog, sql).diagnostics[0]
    assert text.startswith("In the CTE x:") and replacement(text) == "Modality = 'CT'"


def test_set_operation_is_skipped_gracefully(catalog: Catalog) -> None:
    sql = (
        "SELECT Modality FROM index WHERE Modality = 'CTs' "
        "UNION SELECT Modality FROM index WHERE Modality = 'X'"
    )
    assert empty(catalog, sql).diagnostics[0].startswith("The query returned no rows.")


def test_conjuncts_split_top_level_and_only() -> None:
    tree = guard.parse_one_statement("SELECT 1 FROM index WHERE (a = 1 AND (b = 2)) AND (c = 3 OR d = 4)")
    parts = [p.sql() for p in empty_result.conjuncts(tree.args["where"])]
    assert parts == ["a = 1", "b = 2", "c = 3 OR d = 4"]


# -- time bounds: a slow diagnostic is skipped ------------------------------------------------------
class SlowDiagnostics:
    """A catalog whose diagnostic queries (those with a timeout) time out, as a slow query would."""

    def __init__(self, inner: Catalog) -> None:
        self.inner = inner

    def execute(self, sql: str, params: Any = None, timeout_s: float | None = None) -> Any:
        if timeout_s is not None:
            raise QueryTimeout(f"the query took longer than {timeout_s:g} s and was stopped")
        return self.inner.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_slow_diagnostic_is_skipped_without_failing_the_query(catalog: Catalog) -> None:
    catalog.results.clear()  # an earlier reply to the same SQL would be served from the result cache
    # Two conditions: counting them together takes a query (one condition alone is a built fact).
    sql = "SELECT * FROM index WHERE Modality = 'CTs' AND collection_id = 'nlst'"
    result = run_query(SlowDiagnostics(catalog), sql)  # type: ignore[arg-type]
    assert result.rows == []
    assert any("skipped" in d for d in result.diagnostics)


def test_exhausted_budget_runs_no_diagnostic_query(catalog: Catalog) -> None:
    validated = guard.validate("SELECT * FROM index WHERE Modality = 'CTs'", catalog.installed_tables(), 10)
    spent = Budget(total_s=0.0)
    notes = explain.explain_empty(catalog, validated, spent)
    assert spent.ran == 0 and spent.skipped >= 1
    assert "skipped" in notes[-1]


# -- unknown columns ---------------------------------------------------------------------------------
def sketch_of(text: str, table: str) -> str:
    match = re.search(rf"join {table} on \w+, e\.g\. `(SELECT .+?)`", text)
    assert match, text
    return match.group(1)


def test_unknown_column_points_to_the_table_that_has_it(
    catalog: Catalog, pq: duckdb.DuckDBPyConnection
) -> None:
    text = error_text(catalog, "SELECT cancer_types FROM index WHERE Modality = 'CT'")
    assert "cancer_types" in parquet_columns(pq, "coll") and "cancer_types" not in parquet_columns(pq, "idx")
    assert "collections_index.cancer_types exists: join collections_index on collection_id" in text
    sketch = sketch_of(text, "collections_index")
    assert "JOIN collections_index AS c USING (collection_id)" in sketch
    rows = run_query(catalog, sketch, max_rows=5)
    assert rows.row_count == 5 and rows.columns == ["cancer_types"]


def test_unknown_column_found_in_nested_structs(catalog: Catalog, pq: duckdb.DuckDBPyConnection) -> None:
    text = error_text(catalog, "SELECT license_url FROM index")
    assert "collections_index.sources[].license.license_url" in text
    assert "analysis_results_index.license_url" in text
    assert "license_url" in parquet_columns(pq, "ar")
    assert "license_url" in parquet_columns(pq, "coll")["sources"]
    for table in ("collections_index", "analysis_results_index"):
        assert run_query(catalog, sketch_of(text, table), max_rows=1).columns == ["license_url"]


def test_unknown_column_inside_a_struct_of_another_table(catalog: Catalog) -> None:
    text = error_text(catalog, "SELECT data_contributor FROM index")
    assert "analysis_results_index.provenance.data_contributor" in text
    assert run_query(catalog, sketch_of(text, "analysis_results_index"), max_rows=1).columns == [
        "data_contributor"
    ]


def test_misspelled_column_gets_the_close_name(catalog: Catalog, pq: duckdb.DuckDBPyConnection) -> None:
    text = error_text(catalog, "SELECT Modalty FROM index")
    assert "Close names in index: Modality" in text
    assert "Modality" in parquet_columns(pq, "idx")


@pytest.mark.parametrize(
    ("wrong", "right"),
    [
        ("SeriesUID", "SeriesInstanceUID"),
        ("series_uid", "SeriesInstanceUID"),
        ("StudyUID", "StudyInstanceUID"),
    ],
)
def test_uid_shorthand_gets_the_full_uid_column(
    catalog: Catalog, pq: duckdb.DuckDBPyConnection, wrong: str, right: str
) -> None:
    # Found by a new-user trial: 'SeriesUID' got "no close name", 'series_uid' got crdc_series_uuid.
    text = error_text(catalog, f"SELECT {wrong} FROM index LIMIT 1")
    assert f"Close names in index: {right}" in text
    assert f"use {right} if" in text
    assert right in parquet_columns(pq, "idx")


def test_unknown_column_in_a_join_names_the_right_alias(catalog: Catalog) -> None:
    text = error_text(
        catalog,
        "SELECT i.SeriesInstanceUID, c.Modality FROM index i JOIN collections_index c USING (collection_id)",
    )
    assert text.startswith("Column 'Modality' does not exist in collections_index.")
    assert "index has it: write i.Modality." in text


def test_column_missing_from_a_cte_says_add_it_there(catalog: Catalog) -> None:
    text = error_text(catalog, "WITH x AS (SELECT Modality FROM index) SELECT collection_id FROM x")
    assert text.startswith("'collection_id' is a column of index, but the CTE or subquery")


def test_undefined_alias_names_the_defined_ones(catalog: Catalog) -> None:
    text = error_text(catalog, "SELECT x.Modality FROM index i")
    assert text.startswith("'x' is not a table or alias in this query.")
    assert text.endswith("an alias defined in FROM/JOIN: i (index).")


def test_text_column_compared_to_a_number_shows_its_values(
    catalog: Catalog, pq: duckdb.DuckDBPyConnection
) -> None:
    text = error_text(catalog, "SELECT * FROM index WHERE PatientAge > 50")
    assert parquet_columns(pq, "idx")["PatientAge"] == "VARCHAR"
    examples = re.search(r"e\.g\. (.+?)\)", text).group(1)  # type: ignore[union-attr]
    for value in re.findall(r"'([^']+)'", examples):
        assert count_where(pq, f"PatientAge = '{value}'") > 0
    fixed = re.search(r"Use (.+?) in place of", text).group(1)  # type: ignore[union-attr]
    assert run_query(catalog, f"SELECT count(*) AS n FROM index WHERE {fixed}").rows[0]["n"] > 0


def test_column_of_a_not_installed_index_says_fetch_first(catalog: Catalog) -> None:
    text = error_text(catalog, "SELECT ImageType FROM index WHERE Modality = 'CT'")
    schema = json.loads(Path(str(idc_index_data.INDEX_METADATA["ct_index"]["schema_path"])).read_text())
    assert "ImageType" in [c["name"] for c in schema["columns"]]
    assert "ct_index.ImageType exists (join on SeriesInstanceUID)" in text
    assert 'fetch_index("ct_index")' in text


def test_one_letter_column_gets_no_far_fetched_names(catalog: Catalog) -> None:
    text = error_text(catalog, "SELECT x FROM index JOIN collections_index USING (collection_id)")
    assert "No table has a column with that name or a close one." in text


@pytest.mark.parametrize(
    ("word", "candidate", "expected"),
    [
        ("Male", "M", True),  # the data abbreviates
        ("lungs", "LUNG", True),
        ("TCGA-LUAD", "tcga_luad", True),
        ("Modalty", "Modality", True),
        ("SeriesUID", "SeriesInstanceUID", True),  # letters left out, ends kept
        ("Series", "SeriesInstanceUID", True),  # a prefix
        ("SerUID", "SeriesInstanceUID", False),  # too little of it left
        ("SeriesUID", "StudyInstanceUID", False),
        ("x", "XRayTubeCurrent_min", False),  # one letter is in everything
        ("1.2.3", "1.3.6.1.4.1.14519.5.2.1.6834.5010.145718279940812352834593372530", False),
    ],
)
def test_resembles_accepts_abbreviations_and_spellings_not_coincidences(
    word: str, candidate: str, expected: bool
) -> None:
    assert fuzzy.resembles(word, candidate) is expected


def test_struct_fields_of_duckdb_types() -> None:
    fields, is_list = column_paths.struct_fields(
        'STRUCT(a VARCHAR, "Access" VARCHAR, b STRUCT(c INTEGER, d VARCHAR))[]'
    )
    assert is_list and [f for f, _ in fields] == ["a", "Access", "b"]
    assert fields[2][1] == "STRUCT(c INTEGER, d VARCHAR)"


# -- unknown and not installed tables --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("wrong", "right"),
    [("collections", "collections_index"), ("idc_index", "index"), ("series", "index")],
)
def test_unknown_table_names_the_closest_table(catalog: Catalog, wrong: str, right: str) -> None:
    text = error_text(catalog, f"SELECT * FROM {wrong} LIMIT 1")
    assert text.startswith(f"Table '{wrong}' does not exist. Did you mean {right}?")
    corrected = re.search(r"Corrected query: `(.+?)`", text).group(1)  # type: ignore[union-attr]
    assert run_query(catalog, corrected).row_count == 1


def test_unknown_table_guessed_from_the_columns_used(catalog: Catalog) -> None:
    text = error_text(catalog, "SELECT cancer_types, tumor_locations FROM cancers")
    assert "Did you mean collections_index? (has every column the query uses" in text


def test_known_but_not_installed_table_says_fetch_index(catalog: Catalog) -> None:
    text = error_text(catalog, "SELECT * FROM sm_index")
    assert "not installed" in text and 'fetch_index("sm_index")' in text


# -- through the MCP client ------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_mcp_query_empty_result_carries_the_fix() -> None:
    async with Client(server_from_environment()) as client:
        result = await client.call_tool("query", {"sql": "SELECT * FROM index WHERE Modality = 'CTs'"})
    assert not result.is_error
    data = result.structured_content
    assert data["rows"] == [] and replacement(data["diagnostics"][0]) == "Modality = 'CT'"


@pytest.mark.anyio
async def test_mcp_query_correct_query_has_empty_diagnostics() -> None:
    async with Client(server_from_environment()) as client:
        result = await client.call_tool(
            "query", {"sql": "SELECT collection_id FROM collections_index LIMIT 2"}
        )
    assert not result.is_error and result.structured_content["diagnostics"] == []


@pytest.mark.anyio
async def test_mcp_unknown_column_is_a_tool_error_with_the_join() -> None:
    async with Client(server_from_environment()) as client:
        result = await client.call_tool("query", {"sql": "SELECT cancer_types FROM index"})
    assert result.is_error
    assert "join collections_index on collection_id" in result.content[0].text


@pytest.mark.anyio
async def test_mcp_zero_budget_skips_diagnostics_but_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget_mod, "BUDGET_S", 0.0)
    get_catalog().results.clear()  # an earlier reply to the same SQL would be served from the cache
    async with Client(server_from_environment()) as client:
        result = await client.call_tool("query", {"sql": "SELECT * FROM index WHERE PatientSex = 'Male'"})
    assert not result.is_error
    data = result.structured_content
    assert data["rows"] == [] and "skipped" in data["diagnostics"][-1]


def test_a_long_in_list_of_unknown_values_gets_a_bounded_diagnosis():
    # Found by the security corpus: 4,000 unknown PatientIDs once cost 100 s of fuzzy search and a
    # note per value. Only the first few are examined; the rest are counted in one note.
    values = ", ".join(f"'nobody-{i}'" for i in range(300))
    result = run_query(get_catalog(), f"SELECT * FROM index WHERE PatientID IN ({values})")
    assert result.row_count == 0
    text = " ".join(result.diagnostics)
    assert "300 of the 300 values given for PatientID do not occur" in text
    assert text.count("is not a value of PatientID") <= 5
    assert len(text) < 5_000


# -- a literal that exists but is a poor match: related values with many more rows -------------------
def quoted_counts(text: str) -> dict[str, int]:
    """'value' (n rows) pairs named in a note."""
    pairs = re.findall(r"'((?:[^']|'')*)' \(([\d,]+) rows\)", text)
    return {v.replace("''", "'"): int(n.replace(",", "")) for v, n in pairs}


def suggested_in(text: str) -> str:
    match = re.search(r"use (\S*Manufacturer IN \(.*?'\))", text)
    assert match, text
    return match.group(1)


@pytest.fixture
def fresh_pools(monkeypatch: pytest.MonkeyPatch) -> None:
    """Column values are kept per catalog; tests that count diagnostic queries start without them."""
    monkeypatch.setattr(related_values, "_POOLS", Memo(maxsize=256))


def test_abbreviated_manufacturer_names_the_values_with_many_more_rows(
    catalog: Catalog, pq: duckdb.DuckDBPyConnection
) -> None:
    # A new user's trial: 'GE' exists (198 series) but GE's series are under 'GE MEDICAL SYSTEMS'.
    result = run_query(catalog, "SELECT count(*) AS n FROM index WHERE Manufacturer = 'GE'")
    own = count_where(pq, "Manufacturer = 'GE'")
    assert result.rows == [{"n": own}]
    (note,) = result.diagnostics
    assert note.startswith(f"Manufacturer = 'GE' matches {own:,} rows of index, but related values")
    named = quoted_counts(note)
    biggest = pq.execute(
        "SELECT Manufacturer, count(*) FROM idx WHERE Manufacturer ILIKE 'GE %' "
        "GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
    ).fetchone()
    assert biggest is not None and named[biggest[0]] == biggest[1]  # 'GE MEDICAL SYSTEMS' (190,643)
    for value, n in named.items():  # every figure printed is the parquet's
        assert count_where(pq, f"Manufacturer = {value!r}") == n
    condition = suggested_in(note)
    assert "'GEMS'" not in condition and "Gevaert" not in condition  # 'GE' as a word, not a prefix
    assert count_where(pq, condition) >= 10 * own
    assert "ILIKE 'GE%' would also match" in note and "Gevaert" in note.split("would also match")[1]


def test_related_values_hint_keeps_the_other_in_values(
    catalog: Catalog, pq: duckdb.DuckDBPyConnection
) -> None:
    sql = "SELECT count(*) AS n FROM index i WHERE i.Manufacturer IN ('GE', 'Philips') AND Modality = 'CT'"
    (note,) = run_query(catalog, sql).diagnostics
    condition = suggested_in(note)
    assert condition.startswith("i.Manufacturer IN ('GE', 'Philips', 'GE MEDICAL SYSTEMS'")
    assert "over the whole table" in note  # the counts ignore Modality = 'CT': say so
    assert count_where(pq, condition.removeprefix("i.")) > count_where(
        pq, "Manufacturer IN ('GE', 'Philips')"
    )


def test_related_values_hint_does_not_repeat_a_long_in_list(catalog: Catalog) -> None:
    others = ", ".join(f"'nobody-{i}'" for i in range(50))
    (note,) = run_query(
        catalog, f"SELECT count(*) FROM index WHERE Manufacturer IN ('GE', {others})"
    ).diagnostics
    assert "add these to the IN list: 'GE MEDICAL SYSTEMS'" in note and "nobody" not in note


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) AS n FROM index WHERE Modality = 'CT'",
        "SELECT count(*) AS n FROM index WHERE collection_id = 'nlst'",
        "SELECT PatientID FROM index WHERE collection_id = 'nlst' AND Modality IN ('CT', 'MR') LIMIT 5",
        "SELECT count(*) AS n FROM index WHERE Manufacturer = 'GE MEDICAL SYSTEMS'",
        "SELECT count(*) AS n FROM collections_index WHERE collection_id = 'tcga_luad'",
    ],
)
def test_values_that_are_the_right_ones_get_no_related_values_hint(
    catalog: Catalog, pq: duckdb.DuckDBPyConnection, sql: str
) -> None:
    result = run_query(catalog, sql)
    assert result.row_count > 0 and result.diagnostics == []


def test_related_values_need_many_more_rows_not_just_some(pq: duckdb.DuckDBPyConnection) -> None:
    # 'Philips' (22,650) has related 'Philips Medical Systems' and others, together fewer than 10x.
    own = count_where(pq, "Manufacturer = 'Philips'")
    related = count_where(pq, "Manufacturer ILIKE 'philips%' AND Manufacturer <> 'Philips'")
    assert 0 < related < 10 * own  # the premise, checked on the parquet
    result = run_query(get_catalog(), "SELECT count(*) FROM index WHERE Manufacturer = 'Philips'")
    assert result.diagnostics == []


def test_words_match_whole_words_in_order() -> None:
    ge = word_overlap.words("GE")
    assert word_overlap.contains_words(word_overlap.words("GE MEDICAL SYSTEMS"), ge)
    assert word_overlap.contains_words(word_overlap.words('"GE Healthcare"'), ge)
    assert not word_overlap.contains_words(word_overlap.words("GEMS"), ge)
    assert not word_overlap.contains_words(word_overlap.words("Gevaert Lab"), ge)
    assert word_overlap.contains_words(word_overlap.words("CHEST_TO_PELVIS"), word_overlap.words("chest"))


def _related(catalog: Catalog, sql: str, budget: Budget) -> list[str]:
    return related_values.related_values_notes(
        catalog, guard.validate(sql, catalog.installed_tables(), 10), budget
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM index WHERE instanceCount > 100",
        "SELECT * FROM index WHERE Modality <> 'CT' AND Manufacturer LIKE 'GE%'",
        "SELECT * FROM index WHERE PatientID = 'LIDC-IDRI-0001'",
        "SELECT * FROM index WHERE SeriesInstanceUID IN ('1.2.3', '1.2.4')",
        "SELECT * FROM index WHERE lower(Manufacturer) = 'ge'",
        "WITH t AS (SELECT * FROM index) SELECT * FROM t WHERE Manufacturer = 'GE'",
        "SELECT Modality FROM index UNION SELECT 'GE'",
    ],
)
def test_related_values_check_runs_no_query_without_a_plain_text_equality(
    catalog: Catalog, fresh_pools: None, sql: str
) -> None:
    budget = Budget()
    assert _related(catalog, sql, budget) == []
    assert budget.ran == 0 and budget.skipped == 0


def test_related_values_skip_columns_with_too_many_values(
    catalog: Catalog, pq: duckdb.DuckDBPyConnection, fresh_pools: None
) -> None:
    distinct = pq.execute("SELECT count(DISTINCT SeriesDescription) FROM idx").fetchone()
    assert distinct is not None and distinct[0] > value_hints.DISTINCT_CAP  # the premise
    budget = Budget()
    assert _related(catalog, "SELECT * FROM index WHERE SeriesDescription = 'CT'", budget) == []
    assert budget.ran <= 2  # the sample probe and at most one capped value count


def test_related_values_scan_no_column_of_a_bundled_table(catalog: Catalog, fresh_pools: None) -> None:
    # The column's values come from the catalog build (catalog.facts), not from a scan per process.
    budget = Budget()
    assert _related(catalog, "SELECT * FROM index WHERE Manufacturer = 'GE'", budget)
    assert budget.ran == 0 and budget.skipped == 0


def test_related_values_computed_for_a_column_are_read_once(
    catalog: Catalog, fresh_pools: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without built facts (a first-ever start's parquet views, a fetched index) the values are
    # computed with diagnostic queries, once: the catalog is read-only.
    monkeypatch.setattr(facts, "text_values", lambda *_: None)
    first, second = Budget(), Budget()
    assert _related(catalog, "SELECT * FROM index WHERE Manufacturer = 'GE'", first)
    assert first.ran > 0
    assert _related(catalog, "SELECT * FROM index WHERE Manufacturer = 'Siemens'", second)
    assert second.ran == 0


def test_related_values_over_budget_are_skipped(
    catalog: Catalog, fresh_pools: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(facts, "text_values", lambda *_: None)  # computed, not read from the build
    budget = Budget(total_s=0.0)
    assert _related(catalog, "SELECT * FROM index WHERE Manufacturer = 'GE'", budget) == []
    assert budget.ran == 0
    # and a skipped check is not remembered as the column having no values
    assert _related(catalog, "SELECT * FROM index WHERE Manufacturer = 'GE'", Budget())


# -- DuckDB messages do not show our internal database names ----------------------------------------
def test_table_read_twice_gets_an_alias_hint_without_internal_names(catalog: Catalog) -> None:
    text = error_text(catalog, "SELECT * FROM index, index")
    assert CATALOG_FILE.removesuffix(".duckdb") not in text and ".main." not in text
    assert 'Ambiguous reference to table "index"' in text
    assert "FROM index a, index b" in text
    # the hinted form runs
    fixed = run_query(
        catalog,
        "SELECT a.SeriesInstanceUID FROM index a, index b WHERE a.SeriesInstanceUID = b.SeriesInstanceUID",
    )
    assert fixed.row_count > 0


def test_internal_database_names_are_removed_from_messages() -> None:
    strip = explain.internal_names_removed
    assert strip('table ""catalog-v1".main."index"" x') == 'table "index" x'
    assert strip('"x_sm_index".main.sm_index') == "sm_index"
    assert (
        strip('x_clinical_index.main."clinical_index" and index.main_col')
        == "clinical_index and index.main_col"
    )


# -- several mistakes in one query (issue 22, items 3 and 4) --------------------------------------------
def test_every_unknown_column_is_named_in_one_reply(catalog: Catalog) -> None:
    # DuckDB's binder stops at the first name: three misspellings took three round trips.
    text = error_text(
        catalog,
        "SELECT Modalty, colection_id, count(*) AS n FROM index WHERE BodyPart = 'CHEST' GROUP BY ALL",
    )
    for wrong, right in (
        ("Modalty", "Modality"),
        ("colection_id", "collection_id"),
        ("BodyPart", "BodyPartExamined"),
    ):
        assert f"Column '{wrong}' does not exist in index" in text and right in text, wrong
    assert text.count("describe_table(") == 1  # the pointer once, at the end


def test_names_the_query_defines_are_not_called_unknown(catalog: Catalog) -> None:
    sql = (
        "WITH t AS (SELECT Modality AS m, collection_id FROM index) "
        "SELECT m, c.cancer_types, nope FROM t JOIN collections_index c USING (collection_id) "
        "WHERE list_contains(list_transform(c.sources, x -> x.source_id), 'a')"
    )
    text = error_text(catalog, sql)
    assert "'nope'" in text
    assert not re.search(r"Column '(m|x|source_id|cancer_types|collection_id)'", text), text


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "SELEC * FROM index",
            "Statements start with SELECT or WITH; this one starts with 'SELEC'. Did you mean SELECT?",
        ),
        ("WTIH a AS (SELECT 1 AS x) SELECT x FROM a", "this one starts with 'WTIH'. Did you mean WITH?"),
        ("SELECT * FORM index", "'FORM' (line 1) is not a SQL keyword: did you mean FROM?"),
        ("SELECT Modality FROM index WHER Modality = 'CT'", "did you mean WHERE?"),
    ],
)
def test_a_misspelled_keyword_is_named_not_the_parsers_internals(
    catalog: Catalog, sql: str, expected: str
) -> None:
    with pytest.raises(QueryError) as caught:
        run_query(catalog, sql)
    assert expected in str(caught.value)
    assert "<class" not in str(caught.value) and "sqlglot" not in str(caught.value)


def test_a_parse_error_never_shows_sqlglot_class_names(catalog: Catalog) -> None:
    with pytest.raises(QueryError) as caught:
        run_query(catalog, "SELECT 2 * FROM index")
    assert "sqlglot" not in str(caught.value) and "<class" not in str(caught.value), str(caught.value)
