"""What the skill, the references and the served prompts claim about the data, recomputed from the data.

An assistant believes these documents. Every quantitative claim written by hand ("NULL for most series",
"a few hundred series", a list of values) is checked here against the bundled parquet with plain DuckDB,
independently of our catalog, so a data release that changes a fact fails a test instead of leaving the
docs wrong. Claims that are generated from the data (references/metadata_schema.md) are checked by
comparing that file with a fresh generation (tests/test_schema_reference.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import idc_index_data
import pytest

from idc_mcp.catalog.database import get_catalog
from idc_mcp.catalog.license_policy import license_terms
from idc_mcp.docs import prompts, resources
from idc_mcp.tools.query import run_query

LOCATION = resources.locate_docs()
DOCS = {name: resources.read_reference(name, LOCATION) for name in resources.reference_files(LOCATION)}
DOCS["skill"] = resources.read_skill(LOCATION)
PARQUET = Path(idc_index_data.__file__).parent


@pytest.fixture(scope="module")
def data() -> duckdb.DuckDBPyConnection:
    """The bundled parquet, read with plain DuckDB (not through the catalog the tools use)."""
    con = duckdb.connect()
    for table, file in (
        ("index", "idc_index"),
        ("collections_index", "collections_index"),
        ("prior_versions_index", "prior_versions_index"),
    ):
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{PARQUET / file}.parquet')")
    return con


def one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple:
    row = con.execute(sql).fetchone()
    assert row is not None
    return row


def section(doc: str, heading: str) -> str:
    """The text of one cookbook recipe (from its heading to the next)."""
    text = DOCS[doc]
    start = text.index(heading)
    end = text.find("\n### ", start + len(heading))
    return text[start : end if end > 0 else None]


# ---------------------------------------------------------------- PatientSex
def test_patient_sex_is_null_for_most_series_and_most_patients_as_the_skill_says(data):
    series_share, patient_share = one(
        data,
        "SELECT avg((PatientSex IS NULL)::INT), "
        "count(DISTINCT PatientID) FILTER (WHERE PatientSex IS NULL) / count(DISTINCT PatientID) FROM index",
    )
    assert series_share > 0.5 and patient_share > 0.5
    assert "`PatientSex` is\nNULL for most series (and most patients)" in DOCS["skill"]
    assert "NULL for most series and most patients" in section("sql_cookbook", "### 32.")


def test_the_patient_sex_codes_the_docs_list_are_exactly_the_codes_in_the_data(data):
    values = {
        v
        for (v,) in data.execute(
            "SELECT DISTINCT PatientSex FROM index WHERE PatientSex IS NOT NULL"
        ).fetchall()
    }
    rare = {
        v
        for (v,) in data.execute(
            "SELECT PatientSex FROM index WHERE PatientSex IS NOT NULL GROUP BY 1 HAVING count(*) < 1000"
        ).fetchall()
    }
    listed = "rarely `'U'`, `'0000'` or `'6657'`"
    assert values == {"F", "M", "O"} | rare and rare == {"U", "0000", "6657"}
    assert listed in DOCS["skill"]
    assert listed in section("sql_cookbook", "### 32.")


# ---------------------------------------------------------------- BodyPartExamined
def test_body_part_is_mostly_uppercase_with_the_few_hundred_mixed_case_series_the_skill_names(data):
    rows = data.execute(
        "SELECT BodyPartExamined, count(*) FROM index WHERE BodyPartExamined <> upper(BodyPartExamined) "
        "GROUP BY 1"
    ).fetchall()
    assert {v for v, _ in rows} == {"Left Breast", "Right Breast", "Phantom"}
    assert 100 <= sum(n for _, n in rows) < 1000  # "a few hundred"
    assert "few hundred series say `'Left Breast'`, `'Right Breast'` or `'Phantom'`" in DOCS["skill"]
    assert "`BodyPartExamined` is uppercase" not in DOCS["skill"]


def test_the_chest_ct_recipe_asks_for_both_spellings_of_the_chest_that_ct_uses(data):
    chest, lung = one(
        data,
        "SELECT count(*) FILTER (WHERE BodyPartExamined = 'CHEST'), "
        "count(*) FILTER (WHERE BodyPartExamined = 'LUNG') FROM index WHERE Modality = 'CT'",
    )
    assert chest > 0 and lung > 0
    assert "BodyPartExamined IN ('CHEST', 'LUNG')" in section("sql_cookbook", "### 36.")


# ---------------------------------------------------------------- PatientAge
def test_every_age_unit_the_docs_show_exists_and_weeks_are_not_claimed(data):
    units = {
        u
        for (u,) in data.execute(
            "SELECT DISTINCT upper(regexp_extract(PatientAge, '([A-Za-z])$', 1)) FROM index"
        ).fetchall()
    }
    text = "\n".join(DOCS.values())
    shown = set(re.findall(r"'\d{3}([YMWD])'", text))
    assert shown <= units, f"age units shown in the docs but absent from the data: {shown - units}"
    assert "W" not in units and "weeks" not in section("sql_cookbook", "### 33.")


def test_the_age_recipe_runs_on_a_collection_that_has_ages_and_warns_about_nlst_and_phantoms(data):
    recipe = section("sql_cookbook", "### 33.")
    collection = re.search(r"collection_id = '(\w+)'", recipe)
    assert collection is not None
    (null_share,) = one(
        data, f"SELECT avg((PatientAge IS NULL)::INT) FROM index WHERE collection_id = '{collection[1]}'"
    )
    assert null_share < 0.5, "the example collection should have ages for most series"
    (nlst_null,) = one(data, "SELECT avg((PatientAge IS NULL)::INT) FROM index WHERE collection_id = 'nlst'")
    assert nlst_null > 0.99 and "NLST has almost none" in recipe
    (oldest,) = one(
        data,
        "SELECT max(TRY_CAST(regexp_extract(PatientAge, '^(\\d+)[Yy]$', 1) AS INTEGER)) FROM index "
        "WHERE collection_id LIKE '%phantom%'",
    )
    assert f"up to `'{oldest:03d}Y'`" in recipe


# ---------------------------------------------------------------- species, prior versions
def test_the_human_only_recipe_keeps_collections_whose_species_list_includes_humans(data):
    species = {s for (s,) in data.execute("SELECT DISTINCT species FROM collections_index").fetchall()}
    assert any("," in s and "Human" in s for s in species if s)  # e.g. 'Human, Mouse'
    (human_phantoms,) = one(
        data,
        "SELECT count(*) FROM collections_index WHERE collection_id LIKE '%phantom%' AND species = 'Human'",
    )
    recipe = section("sql_cookbook", "### 10.")
    assert "species ILIKE '%human%'" in recipe and "species = 'Human'" not in recipe
    assert human_phantoms > 0 and "phantom collections are mostly labelled `'Human'`" in recipe


def test_the_replaced_series_recipe_counts_series_because_the_index_has_several_rows_per_series(data):
    rows, series = one(data, "SELECT count(*), count(DISTINCT SeriesInstanceUID) FROM prior_versions_index")
    assert rows > series
    assert "count(DISTINCT SeriesInstanceUID) AS replaced_or_removed_series" in section(
        "sql_cookbook", "### 29."
    )


# ---------------------------------------------------------------- one commercial-use recipe
def _in_list(text: str) -> set[str]:
    match = re.search(r"license_short_name IN \(([^)]*)\)", text)
    assert match, "no license_short_name IN (...) filter found"
    return set(re.findall(r"'([^']+)'", match[1]))


def test_the_prompt_the_skill_and_the_cookbook_give_one_commercial_use_filter_from_the_license_policy(data):
    licenses = {
        v
        for (v,) in data.execute(
            "SELECT DISTINCT license_short_name FROM index WHERE license_short_name IS NOT NULL"
        ).fetchall()
    }
    allowed = {v for v in licenses if license_terms(v).commercial_use == "allowed"}
    prompt = prompts.license_aware_download(get_catalog(), "a commercial product")
    skill_recipe = DOCS["skill"][DOCS["skill"].index("So for commercial use") :]
    assert _in_list(prompt) == allowed
    assert _in_list(skill_recipe.replace("\n  ", " ")) == allowed
    assert _in_list(section("sql_cookbook", "### 19.")) == allowed
    assert "NOT LIKE '%NC%'\"" not in prompt and "NOT LIKE '%NC%'\n" not in prompt


def test_the_prompts_commercial_use_sql_runs_and_keeps_only_licenses_that_allow_commercial_use():
    prompt = prompts.license_aware_download(get_catalog(), "a commercial product")
    sql = re.search(r'sql="(.*?)"', prompt, flags=re.DOTALL)
    assert sql is not None
    # The prompt leaves the collections to the assistant; fill them with one collection of each verdict.
    runnable = " ".join(sql[1].split()).replace("IN (...)", "IN ('nsclc_radiomics', 'phantom_fda')")
    checked = runnable.replace("SELECT SeriesInstanceUID", "SELECT DISTINCT license_short_name", 1)
    result = run_query(get_catalog(), checked, max_rows=50)
    kept = {row[0] if isinstance(row, list | tuple) else next(iter(row.values())) for row in result.rows}
    assert kept and all(license_terms(v).commercial_use == "allowed" for v in kept)
