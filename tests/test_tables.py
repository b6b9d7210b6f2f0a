"""list_tables and describe_table: facts from the schema JSON and real values from the data."""

import pytest

from idc_mcp.catalog.database import get_catalog
from idc_mcp.catalog.schemas import all_tables
from idc_mcp.tools.tables import TableNotFound, describe_table, list_tables
from tests.parquet import parquet_sql


def test_list_tables_names_every_index_idc_index_data_knows():
    summaries = {t.name: t for t in list_tables(get_catalog())}
    assert set(all_tables()) <= set(summaries)
    for name in (
        "index",
        "collections_index",
        "analysis_results_index",
        "prior_versions_index",
        "version_metadata_index",
    ):
        assert summaries[name].installed
        assert summaries[name].row_count == parquet_sql(f'SELECT count(*) FROM "{name}"')[0][0]
    assert summaries["sm_index"].installed is False
    assert summaries["sm_index"].how_to_install == 'fetch_index("sm_index")'
    assert summaries["sm_index"].description


def test_describe_table_lists_every_modality_with_its_true_count():
    table = describe_table(get_catalog(), "index")
    modality = next(c for c in table.columns if c.name == "Modality")
    assert modality.values_complete
    expected = dict(parquet_sql('SELECT Modality, count(*) FROM "index" GROUP BY 1'))
    assert {v.value: v.count for v in modality.values} == expected
    assert "modality" in modality.description.lower() or modality.description


def test_describe_table_shows_exact_license_strings():
    table = describe_table(get_catalog(), "index")
    licenses = next(c for c in table.columns if c.name == "license_short_name")
    assert "CC BY 4.0" in [v.value for v in licenses.values]


def test_describe_table_gives_examples_for_high_cardinality_columns():
    table = describe_table(get_catalog(), "index")
    uid = next(c for c in table.columns if c.name == "SeriesInstanceUID")
    assert uid.examples and all(
        parquet_sql('SELECT count(*) FROM "index" WHERE SeriesInstanceUID = ?', [e])[0][0] == 1
        for e in uid.examples
    )


def test_describe_table_of_an_index_that_is_not_installed_lists_its_schema_columns():
    table = describe_table(get_catalog(), "seg_index")
    assert table.installed is False
    assert [c.name for c in table.columns] == all_tables()["seg_index"].column_names
    assert "fetch_index" in table.notes[0]


def test_describe_table_unknown_name_suggests_the_closest_tables():
    with pytest.raises(TableNotFound, match="collections_index"):
        describe_table(get_catalog(), "collections")
