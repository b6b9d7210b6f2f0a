"""The query tool's contract: rows, limits, byte caps, JSON-safe values, clear refusals."""

import json

import pytest

from idc_mcp.catalog.database import Catalog, get_catalog
from idc_mcp.catalog.result_cache import ResultCache, ResultKey, TextKey
from idc_mcp.tools import query as query_mod
from idc_mcp.tools.query import MAX_REPLY_BYTES, QueryError, run_query
from tests.parquet import parquet_sql


def test_rows_are_objects_keyed_by_column():
    result = run_query(
        get_catalog(), "SELECT collection_id, count(*) AS n FROM index GROUP BY 1 ORDER BY n DESC", 5
    )
    expected = parquet_sql(
        'SELECT collection_id, count(*) AS n FROM "index" GROUP BY 1 ORDER BY n DESC LIMIT 5'
    )
    assert [(r["collection_id"], r["n"]) for r in result.rows] == expected
    assert result.columns == ["collection_id", "n"] and result.row_count == 5 and result.truncated


def test_a_complete_result_is_not_marked_truncated():
    result = run_query(get_catalog(), "SELECT * FROM version_metadata_index", 1000)
    assert (
        not result.truncated
        and result.row_count == parquet_sql("SELECT count(*) FROM version_metadata_index")[0][0]
    )
    assert result.diagnostics == []


def test_limit_is_enforced_by_rewriting_even_when_the_query_asks_for_more():
    result = run_query(get_catalog(), "SELECT SeriesInstanceUID FROM index LIMIT 100000", 10)
    assert result.row_count == 10 and result.truncated
    assert "LIMIT 11" in result.executed_sql


def test_max_rows_out_of_range_is_refused():
    with pytest.raises(QueryError, match="max_rows"):
        run_query(get_catalog(), "SELECT 1", 5000)


def test_nested_values_are_json_safe():
    result = run_query(
        get_catalog(), "SELECT collection_id, sources FROM collections_index ORDER BY collection_id", 3
    )
    json.dumps(result.model_dump())
    assert isinstance(result.rows[0]["sources"], list)


def test_reply_is_cut_to_the_byte_cap_and_says_how_to_narrow():
    result = run_query(get_catalog(), "SELECT * FROM collections_index", 1000)
    assert len(json.dumps(result.model_dump()).encode()) < MAX_REPLY_BYTES + 64 * 1024
    assert result.truncated
    assert any("fewer" in d for d in result.diagnostics)


def test_long_cells_are_cut_and_marked():
    sql = "SELECT string_agg(collection_name, ' ') AS names FROM collections_index"
    (longest,) = parquet_sql(
        sql.replace("AS names", "").replace("string_agg", "length(string_agg").replace("' ')", "' '))")
    )[0]
    assert longest > 2000
    result = run_query(get_catalog(), sql, 1)
    text = result.rows[0]["names"]
    assert text.endswith(f"…[cut: {longest:,} chars in all]")
    assert any("cut" in d for d in result.diagnostics)


def test_duplicate_column_names_stay_distinct():
    result = run_query(
        get_catalog(),
        "SELECT i.collection_id, c.collection_id FROM index i "
        "JOIN collections_index c USING (collection_id) LIMIT 1",
        1,
    )
    assert len(set(result.columns)) == 2


def test_refusal_names_the_forbidden_part():
    with pytest.raises(QueryError, match="DELETE|read-only"):
        run_query(get_catalog(), "DELETE FROM index")


def test_repeated_query_is_answered_from_the_result_cache_without_running_again(catalog: Catalog) -> None:
    # The catalog is immutable per data version: a repeat (even spelled differently) is not run again.
    sql = (
        "SELECT Modality, count(*) AS n FROM index WHERE collection_id = 'rider_pilot' GROUP BY 1 ORDER BY 1"
    )
    catalog.results.clear()
    first = run_query(catalog, sql)
    runs: list[str] = []
    execute = catalog.execute
    catalog.execute = lambda *a, **k: runs.append(a[0]) or execute(*a, **k)  # type: ignore[method-assign]
    try:
        assert run_query(catalog, sql) == first
        assert run_query(catalog, sql.replace("GROUP BY", "group   by")) == first  # same regenerated SQL
        assert runs == []
        assert run_query(catalog, sql, max_rows=2).rows == first.rows[:2]  # another key: it runs
        assert len(runs) >= 1
    finally:
        del catalog.execute


def test_a_query_duckdb_refuses_is_refused_again_from_the_cache(catalog: Catalog) -> None:
    # Hostile or broken SQL that fails in DuckDB costs its full run once, not at every repeat.
    sql = "SELECT CAST(collection_id AS INTEGER) FROM index LIMIT 3"
    catalog.results.clear()
    with pytest.raises(QueryError) as first:
        run_query(catalog, sql)
    runs: list[str] = []
    execute = catalog.execute
    catalog.execute = lambda *a, **k: runs.append(a[0]) or execute(*a, **k)  # type: ignore[method-assign]
    try:
        with pytest.raises(QueryError) as again:
            run_query(catalog, sql)
        assert str(again.value) == str(first.value) and runs == []
    finally:
        del catalog.execute


def test_a_text_refused_by_validation_is_refused_again_without_parsing(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hostile and mistaken SQL came back under load at every repeat: parsed and explained each time.
    catalog.results.clear()
    with pytest.raises(QueryError) as first:
        run_query(catalog, "SELECT * FROM idx LIMIT 3")
    assert "idx" in str(first.value)

    def no_parse(*_: object, **__: object) -> None:
        raise AssertionError("the refused text was validated again")

    monkeypatch.setattr(query_mod.guard, "validate", no_parse)
    with pytest.raises(QueryError) as again:
        run_query(catalog, "SELECT * FROM idx LIMIT 3")
    assert str(again.value) == str(first.value)
    with pytest.raises(AssertionError, match="validated again"):  # another text is validated
        run_query(catalog, "SELECT * FROM idx LIMIT 4")


def test_a_refused_text_is_kept_apart_from_the_reply_to_validated_sql_of_the_same_spelling() -> None:
    cache: ResultCache[str] = ResultCache()
    text = TextKey("SELECT 1 AS one LIMIT 100", 100, ("v", 0))
    cache.put_refusal(text, "refused", 7)
    assert cache.get_text(text) == "refused"
    assert cache.get(ResultKey(text.text, 100, ("v", 0))) is None  # validated SQL spelled the same


def test_the_texts_kept_for_repeats_are_bounded_in_characters_not_only_in_number() -> None:
    # 4,096 remembered texts of 20,000 characters each (the longest SQL accepted) were up to 160 MB.
    from idc_mcp.catalog import result_cache

    cache: ResultCache[str] = ResultCache()
    text = "SELECT 1 AS one -- " + "x" * 19_000
    kept = 0
    for i in range(2 * result_cache.MAX_TEXT_CHARS // len(text)):
        key = ResultKey(f"SELECT {i}", 100, ("v", 0))
        cache.put(key, "reply", 10, TextKey(f"{text} {i}", 100, ("v", 0)))
    for i in range(2 * result_cache.MAX_TEXT_CHARS // len(text)):
        kept += cache.get_text(TextKey(f"{text} {i}", 100, ("v", 0))) is not None
    assert 0 < kept * len(text) <= result_cache.MAX_TEXT_CHARS
