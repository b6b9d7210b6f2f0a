"""The SQL guard accepts the analytical SQL assistants write, and enforces the row cap by rewriting.

Every accepted query is executed on the real catalog: the SQL that runs is regenerated from the
validated tree, so a regeneration that DuckDB cannot run would be a bug even if validation passed.
Expected figures come from plain DuckDB over the bundled parquet files, not from our code.
"""

from __future__ import annotations

import duckdb
import idc_index_data
import pytest

from idc_mcp.catalog.database import Catalog
from idc_mcp.sql import guard
from idc_mcp.tools.query import QueryError, run_query

INDEX_PARQUET = str(idc_index_data.IDC_INDEX_PARQUET_FILEPATH)

# What users write: joins, CTEs, windows, nested structs, lambdas, DuckDB-isms.
LEGIT = {
    "group_by_count": "SELECT collection_id, count(*) AS n FROM index GROUP BY collection_id ORDER BY n DESC",
    "join_using": "SELECT i.collection_id, c.cancer_types FROM index i JOIN collections_index c "
    "USING (collection_id) LIMIT 5",
    "implicit_join": "SELECT i.Modality, c.collection_id FROM index i, collections_index c "
    "WHERE i.collection_id = c.collection_id LIMIT 3",
    "left_join_analysis": "SELECT a.analysis_result_id, a.Modalities FROM analysis_results_index a "
    "LEFT JOIN collections_index c ON c.collection_id = a.analysis_result_id LIMIT 5",
    "cte": "WITH t AS (SELECT collection_id, sum(series_size_MB) AS mb FROM index GROUP BY 1) "
    "SELECT * FROM t ORDER BY mb DESC LIMIT 5",
    "two_ctes_chained": "WITH a AS (SELECT collection_id FROM index WHERE Modality = 'CT'), "
    "b AS (SELECT collection_id, count(*) n FROM a GROUP BY 1) SELECT * FROM b ORDER BY n DESC LIMIT 3",
    "cte_named_like_table": "WITH index AS (SELECT * FROM index WHERE Modality = 'MR') "
    "SELECT count(*) FROM index",
    "window_row_number_qualify": "SELECT collection_id, SeriesInstanceUID, row_number() OVER "
    "(PARTITION BY collection_id ORDER BY series_size_MB DESC) AS rn FROM index QUALIFY rn = 1",
    "window_share_of_total": "SELECT Modality, count(*) AS n, 100.0 * count(*) / sum(count(*)) OVER () "
    "AS pct FROM index GROUP BY 1 ORDER BY n DESC",
    "window_named": "SELECT SeriesInstanceUID, lag(series_size_MB) OVER w FROM index "
    "WINDOW w AS (ORDER BY series_size_MB) LIMIT 3",
    "struct_access": "SELECT collection_id, sources[1].license.license_url FROM collections_index",
    "unnest_sources": "SELECT collection_id, unnest(sources) FROM collections_index LIMIT 10",
    "list_transform_lambda": "SELECT collection_id, "
    "list_transform(sources, s -> s.license.license_short_name) FROM collections_index",
    "list_filter_lambda": "SELECT collection_id FROM collections_index WHERE "
    "len(list_filter(sources, s -> s.license.license_short_name ILIKE '%BY%')) > 0",
    "list_comprehension": "SELECT [s.license.license_short_name FOR s IN sources] FROM collections_index",
    "ilike": "SELECT DISTINCT collection_id FROM index WHERE collection_id ILIKE 'tcga%'",
    "regexp_matches": "SELECT collection_id FROM index WHERE regexp_matches(collection_id, '^tcga_') "
    "GROUP BY 1",
    "date_functions": "SELECT year(TRY_CAST(StudyDate AS DATE)) AS y, count(*) FROM index "
    "GROUP BY ALL ORDER BY y NULLS LAST",
    "date_trunc_and_diff": "SELECT date_trunc('month', TRY_CAST(StudyDate AS DATE)) m, "
    "date_diff('day', DATE '2000-01-01', max(TRY_CAST(StudyDate AS DATE))) FROM index GROUP BY m LIMIT 5",
    "make_date_and_extract": "SELECT make_date(2020, 1, 31), extract(year FROM DATE '2020-01-31')",
    "case_when": "SELECT CASE WHEN series_size_MB > 100 THEN 'big' ELSE 'small' END AS k, count(*) "
    "FROM index GROUP BY 1",
    "from_first": "FROM index SELECT collection_id, Modality LIMIT 3",
    "from_only": "FROM collections_index LIMIT 2",
    "group_by_all": "SELECT collection_id, Modality, count(*) FROM index GROUP BY ALL",
    "columns_regex": "SELECT COLUMNS('.*InstanceUID') FROM index LIMIT 2",
    "columns_lambda": "SELECT COLUMNS(c -> c LIKE '%UID') FROM index LIMIT 2",
    "count_distinct": "SELECT count(DISTINCT PatientID) FROM index",
    "string_agg_distinct": "SELECT collection_id, string_agg(DISTINCT Modality, ', ') FROM index GROUP BY 1",
    "list_distinct_agg": "SELECT collection_id, list(DISTINCT Modality) FROM index GROUP BY 1",
    "union": "SELECT Modality FROM index UNION SELECT 'none'",
    "intersect": "SELECT collection_id FROM index INTERSECT SELECT collection_id FROM collections_index",
    "except": "SELECT collection_id FROM collections_index EXCEPT SELECT 'tcga_luad'",
    "in_subquery": "SELECT * FROM index WHERE SeriesInstanceUID IN (SELECT SeriesInstanceUID FROM index "
    "WHERE Modality = 'SEG' LIMIT 3)",
    "exists_correlated": "SELECT collection_id FROM collections_index c WHERE EXISTS "
    "(SELECT 1 FROM index i WHERE i.collection_id = c.collection_id AND i.Modality = 'MR')",
    "scalar_subquery": "SELECT (SELECT count(*) FROM index) AS n",
    "subquery_order_limit": "SELECT * FROM (SELECT collection_id, series_size_MB FROM index "
    "ORDER BY series_size_MB DESC LIMIT 3)",
    "exclude_replace": "SELECT * EXCLUDE (series_aws_url) REPLACE (lower(Modality) AS Modality) "
    "FROM index LIMIT 2",
    "filter_clause": "SELECT collection_id, count(*) FILTER (WHERE Modality = 'CT') FROM index GROUP BY 1",
    "quantiles": "SELECT Modality, median(series_size_MB), quantile_cont(series_size_MB, 0.9), "
    "approx_count_distinct(PatientID) FROM index GROUP BY 1",
    "distinct_on": "SELECT DISTINCT ON (collection_id) collection_id, Modality FROM index",
    "rollup": "SELECT Modality, count(*) FROM index GROUP BY ROLLUP (Modality)",
    "string_functions": "SELECT upper(Modality), split_part(series_aws_url, '/', 3), "
    "replace(collection_id, '_', ' '), lpad(Modality, 6, '.'), printf('%s-%d', Modality, 3), "
    "concat_ws('/', collection_id, Modality), Modality || '!' FROM index LIMIT 2",
    "regexp_replace_and_extract": "SELECT regexp_replace(collection_id, '_+', ' ', 'g'), "
    "regexp_extract(collection_id, '^([a-z]+)', 1) FROM collections_index",
    "levenshtein_fuzzy": "SELECT collection_id, levenshtein(collection_id, 'tcga_lua') d "
    "FROM collections_index ORDER BY d LIMIT 3",
    "group_by_guarded_expression": "SELECT replace(collection_id, '_', ' ') AS c, count(*) FROM index "
    "GROUP BY replace(collection_id, '_', ' ') HAVING count(*) > 10",
    "split_and_unnest": "SELECT t, count(*) FROM (SELECT unnest(string_split(cancer_types, ',')) AS t "
    "FROM collections_index) GROUP BY t ORDER BY 2 DESC",
    "casts": "SELECT CAST(series_size_MB AS BIGINT), series_size_MB::INTEGER, TRY_CAST(PatientAge AS INT) "
    "FROM index LIMIT 2",
    "values_and_unnest_list": "SELECT sum(x) FROM unnest([1, 2, 3]) t(x)",
    "natural_semi_anti": "SELECT count(*) FROM index SEMI JOIN collections_index USING (collection_id)",
    "using_sample": "SELECT collection_id FROM index USING SAMPLE 5",
    "order_by_nulls_last": "SELECT BodyPartExamined, count(*) c FROM index GROUP BY ALL "
    "ORDER BY c DESC NULLS LAST",
    "comment_and_semicolon": "-- largest collections\nSELECT collection_id /* id */ FROM collections_index;",
    "parenthesised_root": "(SELECT Modality FROM index LIMIT 2) UNION ALL "
    "(SELECT Modality FROM index LIMIT 2)",
}


def _validate(catalog: Catalog, sql: str, max_rows: int = 100) -> guard.ValidatedQuery:
    return guard.validate(sql, catalog.installed_tables(), max_rows)


@pytest.mark.parametrize("sql", LEGIT.values(), ids=LEGIT.keys())
def test_ordinary_analytical_sql_is_accepted_and_runs(catalog: Catalog, sql: str) -> None:
    # The regenerated SQL, not the caller's text, must run in DuckDB and return rows.
    validated = _validate(catalog, sql)
    result = run_query(catalog, sql, max_rows=100)
    assert result.row_count >= 1, validated.sql
    assert result.executed_sql == validated.sql


@pytest.mark.parametrize("sql", LEGIT.values(), ids=LEGIT.keys())
def test_regenerated_sql_round_trips(catalog: Catalog, sql: str) -> None:
    # Parsing the regenerated SQL yields the same tree: DuckDB runs exactly what was checked.
    once = _validate(catalog, sql).sql
    assert guard.parse_one_statement(once).sql(dialect="duckdb", comments=False) == once


def test_legit_corpus_is_large_enough() -> None:
    assert len(LEGIT) >= 30


def _independent(sql: str) -> list[tuple]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW idx AS SELECT * FROM read_parquet('{INDEX_PARQUET}')")
    return con.execute(sql).fetchall()


def test_aggregates_match_plain_duckdb_over_the_bundled_parquet(catalog: Catalog) -> None:
    ours = run_query(catalog, "SELECT count(DISTINCT PatientID) AS n, count(*) AS s FROM index")
    (expected,) = _independent("SELECT count(DISTINCT PatientID), count(*) FROM idx")
    assert (ours.rows[0]["n"], ours.rows[0]["s"]) == expected


def test_offset_and_order_survive_the_rewrite(catalog: Catalog) -> None:
    sql = "SELECT SeriesInstanceUID FROM {t} ORDER BY SeriesInstanceUID LIMIT 4 OFFSET 7"
    ours = run_query(catalog, sql.format(t="index"))
    expected = [r[0] for r in _independent(sql.format(t="idx"))]
    assert [r["SeriesInstanceUID"] for r in ours.rows] == expected


# -- the row cap, enforced by rewriting ---------------------------------------------------------------
# (caller SQL, max_rows, rows the caller should get back)
LIMITS = {
    "no_limit_gets_cap": ("SELECT SeriesInstanceUID FROM index", 10, 10),
    "smaller_limit_kept": ("SELECT SeriesInstanceUID FROM index LIMIT 3", 10, 3),
    "larger_limit_capped": ("SELECT SeriesInstanceUID FROM index LIMIT 5000", 10, 10),
    "limit_all": ("SELECT SeriesInstanceUID FROM index LIMIT ALL", 10, 10),
    "limit_null": ("SELECT SeriesInstanceUID FROM index LIMIT NULL", 10, 10),
    "limit_subquery_kept": ("SELECT SeriesInstanceUID FROM index LIMIT (SELECT 3)", 10, 3),
    "limit_subquery_large": ("SELECT SeriesInstanceUID FROM index LIMIT (SELECT 1000000)", 10, 10),
    "limit_expression": ("SELECT SeriesInstanceUID FROM index LIMIT 2 + 2", 10, 4),
    "limit_percent": ("SELECT SeriesInstanceUID FROM index LIMIT 100 PERCENT", 10, 10),
    "fetch_first": ("SELECT SeriesInstanceUID FROM index FETCH FIRST 4 ROWS ONLY", 10, 4),
    "fetch_first_row_only": ("SELECT SeriesInstanceUID FROM index FETCH FIRST ROW ONLY", 10, 1),
    "fetch_larger_than_cap": ("SELECT SeriesInstanceUID FROM index FETCH FIRST 500 ROWS ONLY", 10, 10),
    "offset_without_limit": ("SELECT SeriesInstanceUID FROM index OFFSET 5", 10, 10),
    "union_with_limit": ("SELECT Modality FROM index UNION ALL SELECT Modality FROM index LIMIT 6", 10, 6),
    "union_without_limit": ("SELECT Modality FROM index UNION ALL SELECT Modality FROM index", 10, 10),
    "union_of_limited_parts": ("(SELECT Modality FROM index LIMIT 50) UNION ALL (SELECT 'x')", 10, 10),
    "inner_limit_is_not_the_cap": ("SELECT * FROM (SELECT SeriesInstanceUID FROM index LIMIT 50)", 10, 10),
    "cte_limit_is_not_the_cap": ("WITH t AS (SELECT * FROM index LIMIT 500) SELECT * FROM t", 10, 10),
}


@pytest.mark.parametrize(("sql", "max_rows", "expected"), LIMITS.values(), ids=LIMITS.keys())
def test_row_cap_is_enforced_by_rewriting(catalog: Catalog, sql: str, max_rows: int, expected: int) -> None:
    validated = _validate(catalog, sql, max_rows)
    # The SQL DuckDB runs can never yield more than max_rows + 1 rows (one extra flags truncation).
    assert len(catalog.execute(validated.sql).rows) <= max_rows + 1
    result = run_query(catalog, sql, max_rows)
    assert result.row_count == expected
    assert result.truncated == (expected == max_rows and "FIRST 4" not in sql)


def test_limit_percent_no_longer_fetches_a_tenth_of_the_index(catalog: Catalog) -> None:
    # Before the fix, LIMIT 10 PERCENT bypassed the cap: 104,419 rows were fetched into the server.
    validated = _validate(catalog, "SELECT SeriesInstanceUID FROM index LIMIT 10 PERCENT", 100)
    assert len(catalog.execute(validated.sql).rows) == 101


# -- scoping, comments and refusals with actionable messages ------------------------------------------
def test_cte_defined_in_a_subquery_does_not_vouch_for_an_outer_table(catalog: Catalog) -> None:
    # `sqlite_master` is a DuckDB system view; a CTE of that name inside a subquery must not let the
    # outer reference (which DuckDB resolves to the real view) through.
    sql = "SELECT * FROM sqlite_master, (WITH sqlite_master AS (SELECT 1) SELECT * FROM sqlite_master) x"
    with pytest.raises(guard.UnknownTable):
        _validate(catalog, sql)


def test_cte_cannot_refer_to_itself_to_reach_a_system_view(catalog: Catalog) -> None:
    with pytest.raises(guard.UnknownTable):
        _validate(catalog, "WITH sqlite_master AS (SELECT * FROM sqlite_master) SELECT * FROM sqlite_master")


def test_later_cte_may_use_an_earlier_one(catalog: Catalog) -> None:
    sql = "WITH a AS (SELECT 1 AS x), b AS (SELECT x FROM a) SELECT * FROM b"
    assert _validate(catalog, sql).tables == ()


def test_comments_never_reach_duckdb(catalog: Catalog) -> None:
    validated = _validate(catalog, "SELECT 1 -- */ ; SELECT getenv('HOME'); /*")
    assert "getenv" not in validated.sql and "--" not in validated.sql and "/*" not in validated.sql


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
        ("DELETE FROM index", "DELETE"),
        ("SELECT 1; SELECT 2", "exactly one statement"),
        ("SELECT * FROM main.index", "FROM index"),
        ("WITH RECURSIVE t AS (SELECT 1) SELECT * FROM t", "WITH RECURSIVE"),
        ("SELECT lpad(Modality, 100000, 'x') FROM index", "lpad"),
        ("SELECT list_transform(l, x -> l) FROM (SELECT [1] AS l)", "parameters"),
    ],
    ids=["file_read", "write", "two_statements", "qualified", "recursive", "pad_width", "lambda_capture"],
)
def test_refusals_say_what_is_wrong(catalog: Catalog, sql: str, says: str) -> None:
    with pytest.raises(QueryError, match="(?i)" + says.replace("(", r"\(")):
        run_query(catalog, sql)


def test_aggregated_list_too_long_for_a_lambda_fails_with_a_clear_error(catalog: Catalog) -> None:
    sql = (
        "SELECT list_transform(list(SeriesInstanceUID), u -> upper(u)) FROM index "
        "WHERE collection_id = 'ispy2'"
    )
    with pytest.raises(QueryError, match="list longer than 2,000 elements"):
        run_query(catalog, sql)


def test_list_aggregate_over_a_million_rows_fails_with_a_clear_error(catalog: Catalog) -> None:
    with pytest.raises(QueryError, match="list longer than 100,000 elements"):
        run_query(catalog, "SELECT len(list(SeriesInstanceUID)) FROM index")


def test_lambdas_over_short_aggregated_lists_still_work(catalog: Catalog) -> None:
    sql = "SELECT collection_id, list_transform(list(DISTINCT Modality), m -> lower(m)) FROM index GROUP BY 1"
    assert run_query(catalog, sql).row_count > 10


# -- the function allowlist ---------------------------------------------------------------------------
def test_every_allowlisted_node_is_a_real_sqlglot_function() -> None:
    # A misspelt name would silently allow nothing; a non-function would be meaningless.
    from sqlglot import exp

    for name in guard.ALLOWED_FUNCTION_NODES:
        node = getattr(exp, name, None)
        assert node is not None and issubclass(node, exp.Func), name


@pytest.mark.parametrize(
    ("node", "sql"),
    [
        ("ReadCSV", "SELECT * FROM read_csv('/etc/passwd')"),
        ("ReadParquet", "SELECT * FROM read_parquet('/x.parquet')"),
        ("GenerateSeries", "SELECT * FROM generate_series(1, 10)"),
        ("GenerateSeries", "SELECT range(10)"),
        ("ExplodingGenerateSeries", "SELECT unnest(generate_series(1, 10))"),
        ("Uuid", "SELECT uuid()"),
        ("ToFile", None),
        ("Repeat", "SELECT repeat('x', 10)"),
        ("CurrentUser", "SELECT current_user"),
        ("CurrentVersion", "SELECT version()"),
        ("Reduce", "SELECT list_reduce([1, 2], (a, b) -> a + b)"),
        ("GenerateDateArray", None),
    ],
)
def test_generators_file_readers_and_settings_nodes_are_refused(
    catalog: Catalog, node: str, sql: str | None
) -> None:
    assert node not in guard.ALLOWED_FUNCTION_NODES
    if sql is not None:
        with pytest.raises(guard.SQLRejected):
            _validate(catalog, sql)


def test_brackets_inside_strings_do_not_count_as_nesting(catalog: Catalog) -> None:
    # The nesting pre-check reads tokens, so a literal full of brackets is fine...
    assert _validate(catalog, "SELECT '" + "(" * 100 + "' AS s").sql.startswith("SELECT '((")
    # ...while real nesting, also of struct braces, is refused before the recursive parser runs.
    with pytest.raises(guard.SQLRejected, match="nests brackets"):
        _validate(catalog, "SELECT " + "{'a': " * 60 + "1" + "}" * 60)


def test_a_parse_error_message_ends_each_sentence_once() -> None:
    # Found by a new-user trial: "... Line 1, Col: 7.. Check the syntax" (sqlglot's message ends in '.').
    with pytest.raises(guard.SQLRejected) as caught:
        guard.validate("SELECT 1 +", {"index"}, 10)
    assert "could not be parsed" in str(caught.value)
    assert ".." not in str(caught.value)
