"""Hostile SQL: every case is refused or bounded, writes nothing, leaks nothing, and the server lives on.

The corpus is grouped by attack. Each case runs through `query.run_query` (the `query` tool's logic) on a
catalog whose query timeout is lowered to keep the file fast; a representative subset also runs
through the real MCP `query` tool in memory. After each case: no file appeared in the working
directory, the canary folder or the catalog cache; no content of /etc/passwd is in the reply; the next
query is answered. After the corpus, the server's memory stayed under 1 GiB. A last group feeds raw
hostile SQL straight to the locked DuckDB connection, bypassing the validator.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psutil
import pytest
from mcp import Client

from idc_mcp.catalog.database import Catalog, QueryFailed, get_catalog
from idc_mcp.config import load_settings
from idc_mcp.tools.query import MAX_REPLY_BYTES, QueryError, run_query
from tests.servers import server_from_environment, server_with

QUERY_TIMEOUT_S = 1.0
ONE_GIB = 1 << 30
CANARY = "idc-mcp-canary"  # folder name the corpus tries to write into (relative to the cwd)
PASSWD = "/etc/passwd"
LEAK_MARKERS = ("root:", "/bin/bash", "/usr/sbin/nologin", "nobody:")

# -- the corpus: attack group -> {case id: sql} -------------------------------------------------------
FILE_READS = {
    "from_string_path": "SELECT * FROM '/etc/passwd'",
    "from_quoted_identifier": 'SELECT * FROM "/etc/passwd"',
    "from_https_url": "SELECT * FROM 'https://example.com/data.csv'",
    "from_s3_url": "SELECT * FROM 's3://idc-open-data/x.parquet'",
    "from_relative_file": "SELECT * FROM 'catalog-v1.duckdb'",
    "from_home_file": "SELECT * FROM '~/.ssh/id_rsa'",
    "read_csv": "SELECT * FROM read_csv('/etc/passwd')",
    "read_csv_auto": "SELECT * FROM read_csv_auto('/etc/passwd')",
    "read_csv_uppercase": "SELECT * FROM READ_CSV('/etc/passwd')",
    "read_csv_quoted_name": "SELECT * FROM \"read_csv\"('/etc/passwd')",
    "read_csv_schema_qualified": "SELECT * FROM main.read_csv('/etc/passwd')",
    "read_csv_system_qualified": "SELECT * FROM system.main.read_csv('/etc/passwd')",
    "read_json": "SELECT * FROM read_json('/etc/passwd')",
    "read_json_auto": "SELECT * FROM read_json_auto('/etc/passwd')",
    "read_ndjson_objects": "SELECT * FROM read_ndjson_objects('/etc/passwd')",
    "read_text": "SELECT content FROM read_text('/etc/passwd')",
    "read_blob": "SELECT content FROM read_blob('/etc/passwd')",
    "read_parquet": "SELECT * FROM read_parquet('/etc/passwd')",
    "parquet_scan": "SELECT * FROM parquet_scan('/etc/passwd')",
    "parquet_metadata": "SELECT * FROM parquet_metadata('/etc/passwd')",
    "sniff_csv": "SELECT * FROM sniff_csv('/etc/passwd')",
    "glob": "SELECT * FROM glob('/etc/*')",
    "read_text_method_call": "SELECT '/etc/passwd'.read_text()",
    "in_subquery": "SELECT * FROM index WHERE PatientID IN (SELECT column0 FROM read_csv('/etc/passwd'))",
    "scalar_subquery": "SELECT (SELECT content FROM read_text('/etc/passwd')) AS x",
    "derived_table": "SELECT * FROM (SELECT * FROM read_csv('/etc/passwd')) t",
    "cte": "WITH p AS (SELECT * FROM '/etc/passwd') SELECT * FROM p",
    "cte_shadowed_in_subquery": "SELECT * FROM '/etc/passwd', (WITH \"/etc/passwd\" AS (SELECT 1) "
    'SELECT * FROM "/etc/passwd") x',
    "lateral": "SELECT * FROM index, LATERAL read_csv('/etc/passwd') LIMIT 1",
    "implicit_join": "SELECT * FROM index, '/etc/passwd' LIMIT 1",
    "explicit_join": "SELECT * FROM index i JOIN read_csv('/etc/passwd') p ON true LIMIT 1",
    "union_branch": "SELECT 'a' UNION ALL SELECT content FROM read_text('/etc/passwd')",
    "exists_branch": "SELECT 1 WHERE EXISTS (SELECT * FROM read_text('/etc/passwd'))",
    "order_by_subquery": "SELECT 1 ORDER BY (SELECT content FROM read_text('/etc/passwd'))",
    "schema_qualified_path": 'SELECT * FROM main."/etc/passwd"',
    "information_schema": "SELECT * FROM information_schema.tables",
    "pg_catalog": "SELECT * FROM pg_catalog.pg_class",
    "sqlite_master_view": "SELECT * FROM sqlite_master",
    "sqlite_master_via_cte_scope": "SELECT * FROM sqlite_master, (WITH sqlite_master AS (SELECT 1) "
    "SELECT * FROM sqlite_master) x",
    "duckdb_tables_view": "SELECT * FROM duckdb_tables",
}

DYNAMIC_SQL = {
    "query_function": "SELECT * FROM query('SELECT * FROM read_csv(''/etc/passwd'')')",
    "query_dollar_quoted": "SELECT * FROM query($$SELECT * FROM read_text('/etc/passwd')$$)",
    "query_table": "SELECT * FROM query_table('index')",
    "query_table_list": "SELECT * FROM query_table(['index', 'collections_index'])",
    "json_execute_serialized_sql": "SELECT json_execute_serialized_sql('{}')",
    "json_serialize_sql": "SELECT json_serialize_sql('SELECT 1')",
    "prepare": "PREPARE p AS SELECT * FROM read_csv('/etc/passwd')",
    "execute": "EXECUTE p",
    "deallocate": "DEALLOCATE p",
    "positional_parameter": "SELECT * FROM index WHERE PatientID = $1",
    "question_mark_parameter": "SELECT * FROM index WHERE PatientID = ?",
    "getvariable": "SELECT getvariable('secret')",
    "set_variable": "SET VARIABLE x = 1",
    "sql_auto_complete": "SELECT * FROM sql_auto_complete('SEL')",
}

STATEMENTS = {
    "insert": "INSERT INTO collections_index SELECT * FROM collections_index",
    "insert_or_replace": "INSERT OR REPLACE INTO index SELECT * FROM index",
    "update": "UPDATE index SET Modality = 'x'",
    "delete": "DELETE FROM index",
    "truncate": "TRUNCATE index",
    "merge": "MERGE INTO index USING index AS s ON false WHEN NOT MATCHED THEN INSERT *",
    "create_table": "CREATE TABLE t AS SELECT 1",
    "create_temp_table": "CREATE TEMP TABLE t AS SELECT * FROM index",
    "create_view": "CREATE VIEW v AS SELECT * FROM read_csv('/etc/passwd')",
    "create_macro": "CREATE MACRO m(x) AS x",
    "create_temp_macro": "CREATE TEMP MACRO m(x) AS x",
    "create_secret": "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
    "create_sequence": "CREATE SEQUENCE s",
    "create_schema": "CREATE SCHEMA s",
    "create_type": "CREATE TYPE mood AS ENUM ('a')",
    "create_index": "CREATE INDEX i ON index (Modality)",
    "drop_table": "DROP TABLE index",
    "alter_table": "ALTER TABLE index RENAME TO x",
    "comment_on": "COMMENT ON TABLE index IS 'x'",
    "copy_to": f"COPY (SELECT * FROM index) TO '{CANARY}/out.csv'",
    "copy_from": f"COPY collections_index FROM '{PASSWD}'",
    "export_database": f"EXPORT DATABASE '{CANARY}/export'",
    "import_database": f"IMPORT DATABASE '{CANARY}'",
    "attach": f"ATTACH '{CANARY}/x.duckdb' AS x",
    "attach_memory": "ATTACH ':memory:' AS m",
    "detach": "DETACH DATABASE system",
    "use": "USE system",
    "set_memory_limit": "SET memory_limit = '100GB'",
    "set_external_access": "SET enable_external_access = true",
    "set_global_threads": "SET GLOBAL threads = 64",
    "reset_all": "RESET ALL",
    "pragma": "PRAGMA enable_profiling",
    "pragma_assign": "PRAGMA memory_limit = '100GB'",
    "install": "INSTALL httpfs",
    "force_install": "FORCE INSTALL httpfs",
    "load": "LOAD httpfs",
    "update_extensions": "UPDATE EXTENSIONS",
    "call": "CALL pragma_version()",
    "checkpoint": "CHECKPOINT",
    "vacuum": "VACUUM",
    "analyze": "ANALYZE",
    "explain": "EXPLAIN SELECT * FROM index",
    "explain_analyze": "EXPLAIN ANALYZE SELECT * FROM index",
    "describe": "DESCRIBE index",
    "show_tables": "SHOW TABLES",
    "show_all_tables": "SHOW ALL TABLES",
    "summarize": "SUMMARIZE index",
    "summarize_in_from": "SELECT * FROM (SUMMARIZE index)",
    "begin": "BEGIN TRANSACTION",
    "commit": "COMMIT",
    "rollback": "ROLLBACK",
    "select_into": "SELECT * INTO t FROM index",
}

MULTI_STATEMENT = {
    "two_statements": "SELECT 1; DROP TABLE index",
    "trailing_copy": f"SELECT 1; COPY (SELECT 1) TO '{CANARY}/x.csv'",
    "commit_first": "COMMIT; SELECT 1",
    "begin_select_commit": "BEGIN; SELECT 1; COMMIT",
    "nul_byte_separator": "SELECT 1\x00; DROP TABLE index",
    "nul_byte_inside": "SELECT 'a\x00b'",
    "line_comment_hides_newline": "SELECT 1 --\n; ATTACH ':memory:' AS m",
    "line_comment_carriage_return": "SELECT 1 --\r; INSTALL httpfs",
    "block_comment_semicolon": "SELECT 1 /* ; */ ; INSTALL httpfs",
    "comment_closer_in_line_comment": "SELECT 1 -- */ ; SELECT current_setting('threads'); /*",
    "string_embedded_semicolon": "SELECT 'a;b'; SET memory_limit = '100GB'",
    "dollar_quoted_semicolon": "SELECT $$;$$; DROP TABLE index",
    "unicode_fullwidth_semicolon": "SELECT 1\uff1b DROP TABLE index",
    "empty_statements": ";;; SELECT 1 ;;;",
}

SETTINGS_AND_SECRETS = {
    "current_setting": "SELECT current_setting('memory_limit')",
    "current_setting_in_where": "SELECT * FROM index WHERE current_setting('threads') IS NOT NULL",
    "getenv": "SELECT getenv('HOME')",
    "duckdb_settings": "SELECT * FROM duckdb_settings()",
    "duckdb_secrets": "SELECT * FROM duckdb_secrets()",
    "duckdb_extensions": "SELECT * FROM duckdb_extensions()",
    "duckdb_databases": "SELECT * FROM duckdb_databases()",
    "duckdb_memory": "SELECT * FROM duckdb_memory()",
    "duckdb_temporary_files": "SELECT * FROM duckdb_temporary_files()",
    "pragma_database_list": "SELECT * FROM pragma_database_list()",
    "pragma_table_info": "SELECT * FROM pragma_table_info('index')",
    "pragma_storage_info": "SELECT * FROM pragma_storage_info('index')",
    "pragma_version": "SELECT * FROM pragma_version()",
    "which_secret": "SELECT which_secret('s3://idc-open-data/x', 's3')",
    "version": "SELECT version()",
    "current_query": "SELECT current_query()",
    "current_user": "SELECT current_user",
    "nextval": "SELECT nextval('seq')",
}

# A string_agg just under the validator's cap, doubled by each CTE: 1 MB * 2**12 = 4 GB unless stopped.
CTE_DOUBLING = (
    "WITH d0 AS (SELECT string_agg(SeriesInstanceUID, ',') AS s FROM "
    "(SELECT SeriesInstanceUID FROM index LIMIT 15000) x), "
    + ", ".join(f"d{i} AS (SELECT s || s AS s FROM d{i - 1})" for i in range(1, 13))
    + " "
)
# The same through the `sql` selection argument of the selection tools.
SELECTION_DOUBLING = CTE_DOUBLING + "SELECT i.SeriesInstanceUID FROM index i, d12 WHERE length(d12.s) > 0"

# Cases that run (they are valid SELECTs) but must stay bounded in time, rows, bytes and memory.
RESOURCE_EXHAUSTION = {
    "cross_join_count": "SELECT count(*) FROM index a, index b",
    "cross_join_three_way_rows": "SELECT * FROM index a, index b, index c",
    "cross_join_sorted": "SELECT a.SeriesInstanceUID FROM index a, index b ORDER BY random()",
    "many_to_many_join": "SELECT count(*) FROM index a JOIN index b ON a.collection_id = b.collection_id",
    "recursive_cte": "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t",
    "recursive_cte_strings": "WITH RECURSIVE t(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM t) "
    "SELECT * FROM t",
    "repeat_huge": "SELECT repeat('x', 1000000000)",
    "lpad_huge": "SELECT lpad('a', 900000000, 'x')",
    "rpad_column_width": "SELECT rpad(Modality, PatientAge::INT * 1000000, 'x') FROM index",
    "printf_huge_width": "SELECT printf('%0900000000d', 1)",
    "format_huge_width": "SELECT format('{:>900000000}', 'x')",
    "printf_width_from_argument": "SELECT printf('%*d', 900000000, 1)",
    "printf_precision_from_argument": "SELECT printf('%.*f', 900000000, 1.0)",
    "format_width_from_argument": "SELECT format('{:>{}}', 'x', 900000000)",
    "format_indexed_width_argument": "SELECT format('{0:>{1}}', 'x', 900000000)",
    "list_resize_huge": "SELECT list_resize([1], 1000000000)",
    "range_huge": "SELECT range(1000000000000)",
    "generate_series_table": "SELECT * FROM generate_series(1, 1000000000000)",
    "unnest_range": "SELECT count(*) FROM unnest(range(1000000000))",
    "string_agg_everything": "SELECT string_agg(SeriesInstanceUID || series_aws_url, ',') FROM index",
    "string_agg_cross_join": "SELECT string_agg(a.SeriesInstanceUID, ',') FROM index a, index b",
    "list_agg_cross_join": "SELECT list(a.SeriesInstanceUID) FROM index a, index b",
    "list_of_everything_one_cell": "SELECT list(SeriesInstanceUID) FROM index",
    "list_of_structs_python_blowup": "SELECT list({'a': Modality, 'b': collection_id, 'c': series_size_MB}) "
    "FROM index",
    "string_agg_one_huge_cell": "SELECT string_agg(SeriesInstanceUID, ',') FROM index",
    "cumulative_string_agg_window": "SELECT max(length(s)) FROM (SELECT string_agg(SeriesInstanceUID, ',') "
    "OVER (ORDER BY SeriesInstanceUID) s FROM index)",
    "replace_amplifies_aggregate": "WITH s AS (SELECT string_agg(SeriesInstanceUID, '') x FROM index) "
    "SELECT length(replace(x, '.', '........')) FROM s",
    "replace_long_replacement": "SELECT replace(collection_id, '_', '" + "y" * 1000 + "') "
    "FROM collections_index",
    "regexp_replace_empty_pattern": "WITH s AS (SELECT string_agg(SeriesInstanceUID, '') x FROM index) "
    "SELECT length(regexp_replace(x, '', 'ab', 'g')) FROM s",
    "string_split_aggregate": "WITH s AS (SELECT string_agg(SeriesInstanceUID, '') x FROM index) "
    "SELECT len(string_split(x, '')) FROM s",
    "levenshtein_aggregates": "WITH s AS (SELECT string_agg(SeriesInstanceUID, '') x FROM index "
    "GROUP BY collection_id) SELECT max(levenshtein(x, x)) FROM s",
    "lambda_over_aggregated_list": "SELECT len(list_transform(list(SeriesInstanceUID), "
    "x -> [x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x])) FROM index",
    "lambda_splits_every_element": "SELECT len(flatten(list_transform(list(SeriesInstanceUID), "
    "x -> string_split(x, '')))) FROM index",
    "lambda_captures_outer_list": "SELECT len(list_transform(list(SeriesInstanceUID), "
    "x -> list(SeriesInstanceUID))) FROM index",
    "comprehension_over_aggregate": "SELECT len([x || x FOR x IN list(SeriesInstanceUID)]) FROM index",
    "nested_lambdas": "SELECT list_transform(l, x -> list_transform(l, y -> y)) FROM (SELECT [1, 2] l)",
    "list_reduce_doubling": "SELECT len(list_reduce([[1], [2], [3]], (a, b) -> list_concat(a, a)))",
    "to_json_of_everything": "SELECT length(to_json(list(SeriesInstanceUID))) FROM index",
    "pivot_in_from": "SELECT * FROM (PIVOT index ON SeriesInstanceUID USING count(*))",
    "reservoir_sample_huge": "SELECT count(*) FROM index TABLESAMPLE reservoir(100000000 ROWS)",
    "limit_percent": "SELECT * FROM index LIMIT 100 PERCENT",
    "limit_subquery_huge": "SELECT * FROM index LIMIT (SELECT 100000000)",
    "offset_huge": "SELECT * FROM index OFFSET 100000000000000",
    "wide_rows_byte_cap": "SELECT *, * , * FROM index",
    "deep_parentheses": "SELECT " + "(" * 1000 + "1" + ")" * 1000,
    "deep_subqueries": "SELECT * FROM " + "(SELECT * FROM " * 200 + "index" + ") t" * 200,
    "deep_function_nesting": "SELECT " + "abs(" * 500 + "1" + ")" * 500,
    "megabyte_sql": "SELECT 1 AS a" + ", 1" * 500_000,
    "megabyte_string_literal": "SELECT '" + "x" * 1_000_000 + "'",
    "huge_in_list": "SELECT * FROM index WHERE PatientID IN (" + ",".join(["'p'"] * 4000) + ")",
    "node_cap": "SELECT " + "+".join(["1"] * 6000),
    "many_unions": " UNION ALL ".join(["SELECT * FROM index"] * 2000),
    # Issue 16 section 1: string intermediates outside DuckDB's memory_limit (6.49 GiB, 23 s before).
    "string_agg_doubled_32_times": "SELECT length(" + "||".join(["s"] * 32) + ") FROM (SELECT "
    "string_agg(SeriesInstanceUID, ',') AS s FROM (SELECT SeriesInstanceUID FROM index LIMIT 200000) b) z",
    "string_agg_small_enough_doubled_32_times": "SELECT length(" + "||".join(["s"] * 32) + ") FROM (SELECT "
    "string_agg(SeriesInstanceUID, ',') AS s FROM (SELECT SeriesInstanceUID FROM index LIMIT 15000) b) z",
    "string_agg_cross_join_1000_rows": "SELECT max(length(z.s || b.SeriesInstanceUID)) FROM (SELECT "
    "string_agg(SeriesInstanceUID, ',') AS s FROM (SELECT SeriesInstanceUID FROM index LIMIT 15000) a) z, "
    "(SELECT SeriesInstanceUID FROM index LIMIT 1000) b",
    "cte_doubling": CTE_DOUBLING + "SELECT length(s) FROM d12",
}

CORPUS: dict[str, dict[str, str]] = {
    "file_read": FILE_READS,
    "dynamic_sql": DYNAMIC_SQL,
    "statement": STATEMENTS,
    "multi_statement": MULTI_STATEMENT,
    "settings": SETTINGS_AND_SECRETS,
    "exhaustion": RESOURCE_EXHAUSTION,
}
CASES = [
    pytest.param(sql, id=f"{group}-{name}") for group, cases in CORPUS.items() for name, sql in cases.items()
]

# A representative subset, also sent through the real MCP `query` tool.
MCP_SUBSET = [
    ("file_read", "from_string_path"),
    ("file_read", "read_csv"),
    ("file_read", "lateral"),
    ("file_read", "cte_shadowed_in_subquery"),
    ("file_read", "sqlite_master_via_cte_scope"),
    ("dynamic_sql", "query_function"),
    ("dynamic_sql", "query_table"),
    ("statement", "copy_to"),
    ("statement", "attach"),
    ("statement", "install"),
    ("statement", "set_memory_limit"),
    ("statement", "create_secret"),
    ("statement", "pragma"),
    ("multi_statement", "two_statements"),
    ("multi_statement", "nul_byte_separator"),
    ("multi_statement", "commit_first"),
    ("multi_statement", "comment_closer_in_line_comment"),
    ("settings", "current_setting"),
    ("settings", "duckdb_settings"),
    ("settings", "which_secret"),
    ("exhaustion", "cross_join_count"),
    ("exhaustion", "recursive_cte"),
    ("exhaustion", "lpad_huge"),
    ("exhaustion", "string_agg_one_huge_cell"),
    ("exhaustion", "lambda_over_aggregated_list"),
    ("exhaustion", "limit_percent"),
    ("exhaustion", "wide_rows_byte_cap"),
    ("exhaustion", "megabyte_sql"),
    ("exhaustion", "string_agg_doubled_32_times"),
    ("exhaustion", "cte_doubling"),
]


def test_corpus_has_at_least_100_hostile_inputs_in_every_group() -> None:
    assert len(CASES) >= 100
    assert all(len(cases) >= 10 for cases in CORPUS.values())


# -- fixtures -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def catalog(built_catalog: Path, workdir: Path) -> Iterator[Catalog]:
    """A dedicated catalog with a short query timeout, open, its worker started in the canary's folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IDC_MCP_QUERY_TIMEOUT", str(QUERY_TIMEOUT_S))
        settings = load_settings()
        assert settings.query_timeout_s == QUERY_TIMEOUT_S
        catalog = Catalog(settings)
        # The worker process resolves relative paths from its own working folder: the canary's.
        mp.chdir(workdir)
        catalog.executor  # noqa: B018 - open it before the disk snapshot
    yield catalog
    catalog.close()


class PeakRss:
    """Samples this process's resident memory in the background while the corpus runs."""

    def __init__(self) -> None:
        self.peak = 0
        self.start = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._process = psutil.Process()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        if self._process is not None:
            self.start = self._process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def peak_rss() -> Iterator[PeakRss]:
    with PeakRss() as sampler:
        yield sampler


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cwd during the corpus, holding the canary folder that hostile SQL tries to write into."""
    root = tmp_path_factory.mktemp("hostile-cwd")
    (root / CANARY).mkdir()
    (root / CANARY / "keep.txt").write_text("canary")
    return root


def _snapshot(*folders: Path) -> set[str]:
    return {str(p) for folder in folders for p in folder.rglob("*")}


def _catalog_files(catalog: Catalog) -> set[str]:
    """Files beside the catalog database (spill files, WAL, temp folders would show up here)."""
    folder = catalog.settings.version_cache_dir
    names = ("catalog", ".catalog")
    return {str(p) for p in folder.iterdir() if p.name.startswith(names) or ".tmp" in p.name}


@pytest.fixture
def disk_unchanged(workdir: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(workdir)
    before = _snapshot(workdir) | _catalog_files(catalog)
    yield
    after = _snapshot(workdir) | _catalog_files(catalog)
    assert after <= before, f"hostile SQL left files behind: {sorted(after - before)[:5]}"
    assert (workdir / CANARY / "keep.txt").read_text() == "canary"


def _assert_no_leak(text: str) -> None:
    for marker in LEAK_MARKERS:
        assert marker not in text, f"reply contains file content ({marker!r})"


def _assert_bounded_or_refused(catalog: Catalog, sql: str, max_rows: int = 100) -> str:
    """Run one hostile input; return the text the assistant would read."""
    started = time.monotonic()
    try:
        result = run_query(catalog, sql, max_rows=max_rows)
    except QueryError as exc:
        text = str(exc)
        assert text and "Traceback" not in text
    else:
        text = result.model_dump_json()
        assert result.row_count <= max_rows
        # The whole reply is bounded: rows by the byte cap, plus the SQL echo and the diagnostics.
        assert len(text.encode()) <= MAX_REPLY_BYTES + 64 * 1024
    # Bounded in time: the timeout interrupts DuckDB (a generous margin for a loaded CI machine).
    assert time.monotonic() - started < QUERY_TIMEOUT_S + 20
    _assert_no_leak(text)
    return text


def _assert_still_answers(catalog: Catalog) -> None:
    result = run_query(catalog, "SELECT count(*) AS n FROM collections_index")
    assert result.rows[0]["n"] > 0


# -- the corpus through query.run_query --------------------------------------------------------------
@pytest.mark.parametrize("sql", CASES)
def test_hostile_sql_is_refused_or_bounded(
    catalog: Catalog, sql: str, disk_unchanged: None, peak_rss: PeakRss
) -> None:
    _assert_bounded_or_refused(catalog, sql)
    _assert_still_answers(catalog)


@pytest.mark.parametrize(
    "sql",
    [*FILE_READS.values(), *DYNAMIC_SQL.values(), *STATEMENTS.values(), *SETTINGS_AND_SECRETS.values()],
    ids=[*FILE_READS, *DYNAMIC_SQL, *STATEMENTS, *SETTINGS_AND_SECRETS],
)
def test_file_settings_and_statement_attacks_are_refused_by_the_validator(catalog: Catalog, sql: str) -> None:
    # These never reach DuckDB: the validator (first layer) refuses them outright.
    with pytest.raises(QueryError):
        run_query(catalog, sql)


# -- a representative subset through the real MCP tool -----------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize(("group", "name"), MCP_SUBSET, ids=[f"{g}-{n}" for g, n in MCP_SUBSET])
async def test_hostile_sql_through_the_mcp_query_tool(
    group: str,
    name: str,
    catalog: Catalog,
    disk_unchanged: None,
    peak_rss: PeakRss,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The server this test starts: its own catalog (short timeout), handed to every session.
    async with Client(server_with(catalog.settings, catalog)) as client:
        reply = await client.call_tool("query", {"sql": CORPUS[group][name], "max_rows": 50})
        text = reply.content[0].text if reply.content else ""
        _assert_no_leak(text + json.dumps(reply.structured_content or {}))
        if reply.is_error:
            assert "Traceback" not in text and text
        else:
            assert reply.structured_content["row_count"] <= 50
        after = await client.call_tool("query", {"sql": "SELECT 1 AS ok"})
        assert not after.is_error and after.structured_content["rows"] == [{"ok": 1}]


@pytest.fixture(scope="module")
def slow_to_time_out(built_catalog: Path, workdir: Path) -> Iterator[Catalog]:
    """A catalog whose query timeout (5 min) no doubling reaches before the worker's memory cap, however
    loaded the machine: with the corpus's 1 s, a slow machine hit the timeout first and the memory bound
    went untested (issue 22 item 14)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IDC_MCP_QUERY_TIMEOUT", "300")
        catalog = Catalog(load_settings())
        mp.chdir(workdir)
        catalog.conn  # noqa: B018 - open it before the disk snapshot
    yield catalog
    catalog.close()


@pytest.mark.anyio
@pytest.mark.parametrize("tool", ["check_licenses", "get_dicomweb_urls", "estimate_size", "get_citations"])
async def test_string_doubling_through_the_sql_selection_argument_is_bounded(
    tool: str,
    slow_to_time_out: Catalog,
    disk_unchanged: None,
    peak_rss: PeakRss,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Issue 16: the same CTE doubling through a selection tool's `sql` passed 5 GiB (check_licenses) and
    # 3.6 GiB (get_dicomweb_urls). Now the worker's memory cap stops it with a clear error: the memory
    # cap, not the timeout, whatever the machine's load (the event waited for is the worker's kill).
    async with Client(server_from_environment(slow_to_time_out)) as client:
        reply = await client.call_tool(tool, {"sql": SELECTION_DOUBLING})
        text = reply.content[0].text if reply.content else ""
        assert reply.is_error, text[:300]
        assert "Traceback" not in text and "memory" in text, text[:300]
        after = await client.call_tool("check_licenses", {"collection_ids": ["rider_pilot"]})
        assert not after.is_error


# -- the second layer: the DuckDB lockdown holds when the validator is bypassed -----------------------
def _raw_attacks(target: Path) -> dict[str, str]:
    t = str(target)
    return {
        "copy_to_temp_dir": f"COPY (SELECT * FROM collections_index) TO '{t}/leak.csv'",
        "copy_to_parquet": f"COPY collections_index TO '{t}/leak.parquet' (FORMAT parquet)",
        "export_database": f"EXPORT DATABASE '{t}/export'",
        "read_csv_passwd": "SELECT * FROM read_csv('/etc/passwd')",
        "read_text_passwd": "SELECT content FROM read_text('/etc/passwd')",
        "replacement_scan_passwd": "SELECT * FROM '/etc/passwd'",
        "read_url": "SELECT * FROM read_csv('https://example.com/x.csv')",
        "glob_root": "SELECT * FROM glob('/*')",
        "attach_file": f"ATTACH '{t}/other.duckdb' AS other",
        "attach_memory": "ATTACH ':memory:' AS mem",
        "install_extension": "INSTALL httpfs",
        "load_extension": "LOAD httpfs",
        "set_memory_limit": "SET memory_limit = '100GB'",
        "set_threads": "SET threads = 64",
        "reenable_external_access": "SET enable_external_access = true",
        "unlock_configuration": "SET lock_configuration = false",
        "reset_memory_limit": "RESET memory_limit",
        "set_temp_directory": f"SET temp_directory = '{t}'",
        "allow_paths": "SET allowed_paths = ['/etc/passwd']",
        "create_table": "CREATE TABLE stolen AS SELECT 1",
        "create_persistent_macro": "CREATE MACRO m(x) AS x",
        "insert_into_catalog": "INSERT INTO collections_index SELECT * FROM collections_index",
        "delete_from_catalog": "DELETE FROM collections_index",
        "drop_catalog_table": "DROP TABLE index",
        "create_secret": "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
    }


RAW_ATTACK_IDS = list(_raw_attacks(Path("/x")))


@pytest.mark.parametrize("name", RAW_ATTACK_IDS)
def test_lockdown_holds_without_the_validator(
    name: str, catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sql = _raw_attacks(tmp_path)[name]
    with pytest.raises(QueryFailed) as excinfo:
        catalog.execute(sql)
    _assert_no_leak(str(excinfo.value))
    assert list(tmp_path.iterdir()) == []


def test_nested_result_too_large_to_convert_is_refused_not_converted() -> None:
    # A million structs are 25 MB in DuckDB but ~1.3 GB and 20 s as Python objects; here 450,000 in
    # lists under the 100,000-element cap. (The default timeout, so that the size check stops it.)
    # All 178 groups are asked for: with the default 100 rows, which groups come back depends on the
    # storage order (the sorted catalog file vs the parquet served before the first build finishes).
    sql = (
        "SELECT collection_id, list({'a': Modality, 'b': PatientID, 'c': series_size_MB, "
        "'d': StudyInstanceUID}) FROM index WHERE collection_id <> 'nlst' GROUP BY 1"
    )
    with pytest.raises(QueryError, match="nested values"):
        run_query(get_catalog(), sql, max_rows=1_000)


def test_lockdown_blocks_scans_of_python_objects_in_scope(catalog: Catalog) -> None:
    # DuckDB's Python client can scan a Python object named in SQL from the calling frame; the worker's
    # own variables (the request's `sql`, `params`, the settings) must not be readable that way.
    for name in ("sql", "params", "settings", "start", "self"):
        with pytest.raises(QueryFailed):
            catalog.execute(f"SELECT * FROM {name}")


def test_lockdown_settings_are_in_force(catalog: Catalog) -> None:
    row = catalog.execute(
        "SELECT current_setting('enable_external_access'), current_setting('lock_configuration'), "
        "current_setting('autoinstall_known_extensions'), current_setting('autoload_known_extensions'), "
        "current_setting('max_temp_directory_size')"
    ).rows[0]
    external, locked, autoinstall, autoload, temp_size = row
    assert (external, locked, autoinstall, autoload) == (False, True, False, False)
    assert temp_size.startswith("0")


def test_catalog_tables_are_unchanged_after_the_attacks(catalog: Catalog) -> None:
    import idc_index_data

    expected = (
        duckdb.connect()
        .execute(f"SELECT count(*) FROM read_parquet('{idc_index_data.IDC_INDEX_PARQUET_FILEPATH}')")
        .fetchone()
    )
    assert catalog.execute("SELECT count(*) FROM index").rows[0] == expected


# -- memory, measured over the whole corpus (keep this test last in the file) -------------------------
def test_the_corpus_grew_memory_by_less_than_one_gib(peak_rss: PeakRss) -> None:
    # This process also holds whatever the tests before this file loaded, so what the corpus is charged
    # with is its growth; the server's absolute peak is measured on a real server process in
    # tests/test_server_memory.py.
    current = psutil.Process().memory_info().rss
    assert peak_rss.peak > 0 and peak_rss.start > 0
    grew = peak_rss.peak - peak_rss.start
    assert current - peak_rss.start < ONE_GIB, f"RSS grew by {(current - peak_rss.start) / 2**20:.0f} MiB"
    assert grew < ONE_GIB, f"peak RSS during the corpus grew by {grew / 2**20:.0f} MiB"
