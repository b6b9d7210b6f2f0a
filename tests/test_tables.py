"""list_tables and describe_table: facts from the schema JSON and real values from the data."""

import pytest

from idc_mcp.catalog.database import get_catalog
from idc_mcp.catalog.schemas import all_tables
from idc_mcp.tools.tables import TableNotFound, describe_table, list_tables, profile
from tests.parquet import parquet_sql


@pytest.fixture(autouse=True)
def _built(catalog):
    """The catalog file, built: before it is, a first start answers from the parquet (no build facts)."""


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
    (modality,) = describe_table(get_catalog(), "index", column="Modality").columns
    assert modality.values_complete
    expected = dict(parquet_sql('SELECT Modality, count(*) FROM "index" GROUP BY 1'))
    assert {v.value: v.count for v in modality.values} == expected
    assert "modality" in modality.description.lower() or modality.description


def test_describe_table_shows_exact_license_strings():
    (licenses,) = describe_table(get_catalog(), "index", column="license_short_name").columns
    assert "CC BY 4.0" in [v.value for v in licenses.values]


def test_describe_table_gives_examples_for_high_cardinality_columns():
    table = profile(get_catalog(), "index")
    uid = next(c for c in table.columns if c.name == "SeriesInstanceUID")
    assert uid.examples and all(
        parquet_sql('SELECT count(*) FROM "index" WHERE SeriesInstanceUID = ?', [e])[0][0] == 1
        for e in uid.examples
    )


def test_describe_table_of_an_index_that_is_not_installed_lists_its_schema_columns():
    table = describe_table(get_catalog(), "seg_index")
    assert table.installed is False
    assert list(table.summary or {}) == all_tables()["seg_index"].column_names
    assert "fetch_index" in table.notes[0]


def test_describe_table_unknown_name_suggests_the_closest_tables():
    with pytest.raises(TableNotFound, match="collections_index"):
        describe_table(get_catalog(), "collections")


def test_distinct_counts_are_exact_and_never_exceed_the_rows():
    # An unlabelled estimate once said 875,559 distinct SeriesInstanceUIDs of 1,044,191 rows (one each).
    for col in profile(get_catalog(), "index").columns:
        if col.distinct_count is None:
            continue
        assert col.distinct_count_exact is True, col.name
        expected = parquet_sql(f'SELECT count(DISTINCT "{col.name}") FROM "index"')[0][0]
        assert col.distinct_count == expected, col.name


def test_describe_table_is_compact_by_default_and_one_column_comes_in_full():
    compact = describe_table(get_catalog(), "index")
    assert compact.compact and compact.columns is None
    lines = compact.summary or {}
    assert list(lines) == [c for c, _ in get_catalog().columns("index")]  # every column, one line each
    assert lines["Modality"].startswith("VARCHAR; acquisition modality; 25 values: 'CT' ")
    note = next(n for n in compact.notes if "gives one column in full" in n)
    assert 'describe_table(table="index", column="' in note
    (full,) = describe_table(get_catalog(), "index", column="Manufacturer").columns or []
    expected = parquet_sql('SELECT count(DISTINCT Manufacturer) FROM "index"')[0][0]
    assert full.values_complete and len(full.values or []) == expected


@pytest.mark.anyio
@pytest.mark.parametrize("table", ["index", "collections_index"])
async def test_the_compact_view_is_at_most_6_kb_as_the_client_receives_it(table):
    # An assistant reads describe_table in every conversation: it once cost 21 KB for `index`.
    from mcp import Client

    from tests.servers import server_from_environment

    async with Client(server_from_environment()) as client:
        result = await client.call_tool("describe_table", {"table": table})
    text = "".join(getattr(block, "text", "") for block in result.content)
    print(f"describe_table({table!r}): {len(text.encode()):,} bytes of text")
    assert not result.is_error and len(text.encode()) <= 6_000


def test_one_column_comes_with_its_values_whole():
    # The compact view cuts a long value; asked for in full, a description is not cut at ~120 characters.
    (col,) = describe_table(get_catalog(), "collections_index", column="description").columns or []
    longest = parquet_sql('SELECT max(length(description)) FROM "collections_index"')[0][0]
    assert longest > 500 and max(len(v.value) for v in col.values or []) == longest
    assert col.values_complete


def test_every_column_counts_its_nulls():
    counts = {c.name: c.null_count for c in profile(get_catalog(), "index").columns}
    for name, count in counts.items():
        assert count == parquet_sql(f'SELECT count(*) - count("{name}") FROM "index"')[0][0], name


def test_values_complete_does_not_hide_that_most_patient_sex_values_are_null():
    # PatientSex listed 6 values with values_complete true and never said that 67 % of rows are NULL.
    (sex,) = describe_table(get_catalog(), "index", column="PatientSex").columns or []
    nulls, rows = parquet_sql('SELECT count(*) - count(PatientSex), count(*) FROM "index"')[0]
    assert nulls > rows / 2  # the premise: NULL dominates
    assert sex.null_count == nulls and sex.values_complete
    assert any("NULL in most rows" in n and f"{nulls:,}" in n for n in sex.notes or [])
    share = f"mostly NULL {nulls / rows:.0%}"
    assert share in (describe_table(get_catalog(), "index").summary or {})["PatientSex"]


def test_compact_descriptions_are_cut_at_a_word_boundary():
    full = {c.name: c.description for c in profile(get_catalog(), "collections_index").columns}
    for name, line in (describe_table(get_catalog(), "collections_index").summary or {}).items():
        described = line.split("; ")[1]
        if described.endswith(" …"):
            kept = described.removesuffix(" …")
            assert full[name].startswith(kept) and full[name][len(kept)] == " ", line


def test_unknown_column_of_describe_table_gets_the_closest_names():
    with pytest.raises(TableNotFound, match="Manufacturer"):
        describe_table(get_catalog(), "index", column="manufactrer")


def test_a_repeated_describe_table_runs_no_query_and_derives_nothing_again(monkeypatch: pytest.MonkeyPatch):
    # Fifty HTTP clients asking for the same table once cost a deep copy of the profile per call.
    catalog = get_catalog()
    first = describe_table(catalog, "index")
    full = describe_table(catalog, "index", column="Modality")

    def no_query(*_: object, **__: object) -> None:
        raise AssertionError("a repeated describe_table ran a query")

    monkeypatch.setattr(catalog, "execute", no_query)
    assert describe_table(catalog, "index") is first
    assert describe_table(catalog, "index", column="Modality") is full
    with pytest.raises(TableNotFound):  # a mistake is still explained, not remembered as a view
        describe_table(catalog, "index", column="Modalty")
