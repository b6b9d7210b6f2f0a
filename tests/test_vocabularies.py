"""The values inside list and struct columns: describe_table lists them (unnested, struct fields by path)
with the filter that works, and a nested filter that matches nothing gets the nearest element values.

Checked on the bundled tables (collections_index.sources, analysis_results_index.provenance) and on
indices fetched from the loopback server of synthetic files (tests/index_server.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from idc_mcp.catalog.database import Catalog, QueryTimeout, get_catalog
from idc_mcp.tools import tables
from idc_mcp.tools.query import run_query
from idc_mcp.tools.tables import describe_table
from tests.index_server import SyntheticIndices, catalog_with_fetched

FETCHED = ["sm_index", "seg_index", "mr_index"]


@pytest.fixture(scope="module")
def fetched(
    tmp_path_factory: pytest.TempPathFactory, built_catalog: Path, synthetic_files: SyntheticIndices
) -> Iterator[Catalog]:
    cache = tmp_path_factory.mktemp("vocab") / "cache"
    with catalog_with_fetched(cache, built_catalog, synthetic_files, FETCHED) as catalog:
        yield catalog


def element_counts(path: Path, column: str) -> dict[object, int]:
    """Rows holding each element value, read from the parquet file itself (independent of our SQL)."""
    con = duckdb.connect()
    rows = con.execute(
        "SELECT v, count(*) FROM (SELECT DISTINCT rn, v FROM (SELECT row_number() OVER () AS rn, "
        f'unnest("{column}") AS v FROM read_parquet(?))) GROUP BY v',
        [str(path)],
    ).fetchall()
    con.close()
    return dict(rows)


def nested(catalog: Catalog, table: str, column: str):  # type: ignore[no-untyped-def]
    (col,) = describe_table(catalog, table, column=column).columns
    assert col.nested, f"{table}.{column} has no nested values described"
    return col.nested


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("sm_index", "staining_usingSubstance_CodeMeaning"),
        ("seg_index", "SegmentedPropertyType_CodeMeanings"),
        ("mr_index", "DiffusionBValue"),
    ],
)
def test_list_column_values_are_the_unnested_elements_with_the_rows_holding_them(
    fetched, synthetic_files, table, column
):
    (values,) = nested(fetched, table, column)
    assert values.path == f"{column}[]"
    assert values.values_complete
    assert {v.value: v.count for v in values.values} == element_counts(synthetic_files[table], column)


def test_stains_are_listed_by_name_with_a_filter_that_runs(fetched):
    (stains,) = nested(fetched, "sm_index", "staining_usingSubstance_CodeMeaning")
    assert {v.value for v in stains.values} == {"hematoxylin stain", "water soluble eosin stain"}
    assert stains.filter.startswith("list_contains(staining_usingSubstance_CodeMeaning, ")


def test_struct_fields_inside_a_list_are_described_by_path():
    paths = {n.path: n for n in nested(get_catalog(), "collections_index", "sources")}
    licenses = paths["sources[].license.license_short_name"]
    assert "CC BY 4.0" in [v.value for v in licenses.values]
    first = licenses.values[0].value
    assert licenses.filter == (
        f"list_contains(list_transform(sources, x -> x.license.license_short_name), '{first}')"
    )
    assert "provenance.data_contributor" in {
        n.path for n in nested(get_catalog(), "analysis_results_index", "provenance")
    }


def _every_nested(catalog: Catalog, names: list[str]):  # type: ignore[no-untyped-def]
    for table in names:
        for col in tables.profile(catalog, table).columns:
            if col.nested is not None:
                for values in describe_table(catalog, table, column=col.name).columns[0].nested or []:
                    yield table, values


def test_every_shown_filter_runs_and_matches_exactly_the_rows_counted(fetched):
    # The count beside a value is the promise: the filter shown must return exactly that many rows.
    checked = 0
    for table, values in _every_nested(fetched, ["collections_index", "analysis_results_index", *FETCHED]):
        if not values.values:
            continue
        result = run_query(fetched, f"SELECT count(*) AS n FROM {table} WHERE {values.filter}", 1)
        assert result.rows[0]["n"] == values.values[0].count, (table, values.path, values.filter)
        checked += 1
    assert checked >= 20


def test_compact_view_still_names_the_nested_paths(fetched):
    line = (describe_table(fetched, "seg_index").summary or {})["SegmentedPropertyType_CodeMeanings"]
    (col,) = describe_table(fetched, "seg_index", column="SegmentedPropertyType_CodeMeanings").columns or []
    assert col.nested and col.nested[0].values  # in full: the values and the filter that works
    assert col.nested[0].path in line


def test_list_contains_with_a_value_that_is_not_an_element_gets_the_nearest_elements(fetched):
    result = run_query(
        fetched,
        "SELECT SeriesInstanceUID FROM sm_index "
        "WHERE list_contains(staining_usingSubstance_CodeMeaning, 'eosin')",
    )
    assert result.row_count == 0
    (note,) = result.diagnostics
    assert "'water soluble eosin stain'" in note
    assert (
        "Use list_contains(staining_usingSubstance_CodeMeaning, 'water soluble eosin stain') instead" in note
    )


def test_struct_field_equality_that_matches_nothing_gets_the_existing_field_values():
    result = run_query(
        get_catalog(),
        "SELECT analysis_result_id FROM analysis_results_index WHERE provenance.data_contributor = 'idc'",
    )
    (note,) = result.diagnostics
    assert "Use provenance.data_contributor = 'IDC' instead" in note


def test_list_of_struct_filter_with_a_near_value_gets_the_corrected_filter_that_runs():
    sql = (
        "SELECT collection_id FROM collections_index AS c WHERE "
        "list_contains(list_transform(c.sources, x -> x.license.license_short_name), 'CC BY 4')"
    )
    (note,) = run_query(get_catalog(), sql).diagnostics
    fixed = "list_contains(list_transform(c.sources, x -> x.license.license_short_name), 'CC BY 4.0')"
    assert f"Use {fixed} instead" in note
    assert run_query(get_catalog(), sql.replace("'CC BY 4'", "'CC BY 4.0'")).row_count > 0


def test_numeric_list_filter_that_matches_nothing_lists_the_values_that_exist(fetched):
    result = run_query(
        fetched, "SELECT SeriesInstanceUID FROM mr_index WHERE list_contains(DiffusionBValue, 1500)"
    )
    (note,) = result.diagnostics
    assert "1000" in note and "800" in note


class _SlowCatalog:
    """Every query runs out of time, as counting a list column of a very large index can."""

    def execute(self, sql: str, params: object = None, timeout_s: float | None = None) -> object:
        raise QueryTimeout("the query took longer than 2 s and was stopped")


def test_a_path_too_slow_to_count_is_still_listed_with_its_filter_idiom():
    (values,) = tables._nested(_SlowCatalog(), '"sm_index"', "ImageType", "VARCHAR[]")  # type: ignore[arg-type]
    assert values.path == "ImageType[]" and values.values == [] and not values.values_complete
    assert values.distinct_count is None
    assert values.filter == "list_contains(ImageType, '<value>')"
