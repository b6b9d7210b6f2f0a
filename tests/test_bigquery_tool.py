# ruff: noqa: E501  (SQL statements read best one per line)
"""bigquery_query and describe_bigquery_table end to end through an MCP client, against a real BigQuery
API server (bqemulator, tests/bqemulator.py) holding synthetic IDC tables (tests/bigquery_data.py).

Emulator limits, and how they are covered: its dry run reports 0 bytes and it does not enforce
maximum_bytes_billed, so the cap refusal injects the byte figure at the one seam that reads it
(client.scanned_bytes); and it runs a job inside the insert request, so a cancelled call is shown to
return at once and to send jobs.cancel for its job, not to stop the emulator's work.
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
import pytest
from mcp import Client

from idc_mcp.bigquery import client as bq_client
from idc_mcp.config import GB, SettingError, load_settings
from tests.bigquery_data import NEW_SERIES_UID, RELEASE
from tests.servers import server_from_environment

pytestmark = pytest.mark.anyio

T = "`bigquery-public-data.idc_current.dicom_all`"
SEG = "`bigquery-public-data.idc_current.segmentations`"


@pytest.fixture
def inserted_jobs(monkeypatch) -> list[Any]:
    """The jobs as the emulator's jobs.insert answered them (the answer echoes the job's configuration;
    its jobs.get does not keep maximumBytesBilled)."""
    from google.cloud import bigquery

    jobs: list[Any] = []
    original = bigquery.Client.query

    def query(self, *args: Any, **kwargs: Any) -> Any:
        job = original(self, *args, **kwargs)
        jobs.append(job)
        return job

    monkeypatch.setattr(bigquery.Client, "query", query)
    return jobs


def ran(jobs: list[Any], job_id: str) -> Any:
    return next(j for j in jobs if j.job_id == job_id)


async def call(name: str, arguments: dict[str, Any], **kwargs: Any):
    async with Client(server_from_environment()) as client:
        return await client.call_tool(name, arguments, **kwargs)


async def ok(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await call(name, arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def refused(name: str, arguments: dict[str, Any]) -> str:
    result = await call(name, arguments)
    assert result.is_error, result.structured_content
    text = result.content[0].text
    assert "Traceback" not in text
    return text


# ------------------------------------------------------------------------ listed, and the setup steps
async def test_both_tools_are_listed_as_read_only_open_world_tools():
    async with Client(server_from_environment()) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    for name in ("bigquery_query", "describe_bigquery_table"):
        assert tools[name].annotations.read_only_hint and tools[name].annotations.open_world_hint
    schema = tools["bigquery_query"].input_schema["properties"]
    assert set(schema) == {"sql", "max_rows", "max_gb"}


async def test_without_the_bigquery_extra_the_tool_answers_with_the_setup_steps(monkeypatch):
    # A None entry in sys.modules makes the import fail, as when google-cloud-bigquery is not installed.
    monkeypatch.setitem(sys.modules, "google.cloud.bigquery", None)
    monkeypatch.setattr(bq_client, "_BACKENDS", {})
    monkeypatch.setenv("IDC_MCP_BQ_PROJECT", "some-project")
    text = await refused("bigquery_query", {"sql": f"SELECT Modality FROM {T}"})
    for step in (
        "pip install 'idc-mcp[bigquery]'",
        "gcloud auth application-default login",
        "IDC_MCP_BQ_PROJECT",
    ):
        assert step in text
    assert "query()" in text  # the local alternative
    assert "pip install" in await refused("describe_bigquery_table", {"table": "dicom_all"})


async def test_missing_credentials_get_the_login_step_not_a_stack_trace(monkeypatch, tmp_path):
    monkeypatch.delenv("IDC_MCP_BQ_API_ENDPOINT", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    monkeypatch.setattr(bq_client, "_BACKENDS", {})
    text = await refused("bigquery_query", {"sql": f"SELECT Modality FROM {T}"})
    assert "credentials" in text.lower() and "gcloud auth application-default login" in text


# ------------------------------------------------------------------------ queries on the emulator
async def test_a_query_returns_rows_with_nested_and_repeated_values_and_the_job_statistics(
    bq_env, inserted_jobs
):
    sql = f"SELECT SeriesInstanceUID, SOPInstanceUID, ImageType, ReferencedSeriesSequence FROM {T} WHERE Modality = 'SEG' ORDER BY SOPInstanceUID"
    data = await ok("bigquery_query", {"sql": sql, "max_rows": 3})
    assert data["row_count"] == 3 and data["truncated"]
    row = data["rows"][0]
    assert row["ImageType"] == ["DERIVED"]
    reference = row["ReferencedSeriesSequence"][0]
    assert (
        reference["SeriesInstanceUID"].startswith("1.")
        and reference["ReferencedInstanceSequence"][0]["ReferencedSOPInstanceUID"]
    )
    job = data["job"]
    assert job["job_id"].startswith("idc_mcp_") and job["billing_project"] == bq_env.billing_project
    assert job["byte_cap"] == 10 * GB and job["estimated_bytes"] == 0 and job["elapsed_s"] >= 0
    assert data["executed_sql"].endswith("LIMIT 4")
    # The job BigQuery ran carried the byte cap; a dry run came first.
    assert ran(inserted_jobs, job["job_id"]).maximum_bytes_billed == 10 * GB
    assert inserted_jobs[0].dry_run and inserted_jobs[0].query == data["executed_sql"]


async def test_a_fixed_release_and_information_schema_can_be_read(bq_env):
    data = await ok(
        "bigquery_query",
        {
            "sql": f"SELECT COUNT(DISTINCT collection_id) AS n FROM `bigquery-public-data.idc_v{RELEASE}.dicom_all`"
        },
    )
    assert data["rows"][0]["n"] >= 4
    columns = await ok(
        "bigquery_query",
        {
            "sql": "SELECT column_name FROM `bigquery-public-data.idc_current.INFORMATION_SCHEMA.COLUMNS` WHERE table_name = 'segmentations'",
            "max_rows": 50,
        },
    )
    assert {"SegmentedPropertyType", "SegmentNumber"} <= {r["column_name"] for r in columns["rows"]}


async def test_a_query_the_local_catalog_answers_gets_the_local_first_note(bq_env):
    data = await ok(
        "bigquery_query",
        {
            "sql": f"SELECT collection_id, Modality, COUNT(DISTINCT SeriesInstanceUID) AS series FROM {T} GROUP BY 1, 2"
        },
    )
    assert any("query() answers it free and offline" in n and "`index`" in n for n in data["notes"])
    thickness = await ok(
        "bigquery_query",
        {"sql": f"SELECT SeriesInstanceUID, ANY_VALUE(SliceThickness) AS st FROM {T} GROUP BY 1"},
    )
    assert any(
        'fetch_index("ct_index")' in n or 'fetch_index("mr_index")' in n for n in thickness["notes"]
    ), thickness["notes"]
    instance_level = await ok("bigquery_query", {"sql": f"SELECT SOPInstanceUID, gcs_url FROM {T} LIMIT 2"})
    assert not any("Local first" in n for n in instance_level["notes"])


# ------------------------------------------------------------------------ the byte cap
def _inject_scan(monkeypatch, total: int, per_column: dict[str, int] | None = None) -> list[Any]:
    """Make the dry runs report `total` bytes (per_column for the single-column probes); records each job."""
    seen: list[Any] = []

    def scanned(job: Any) -> int:
        seen.append(job)
        for column, size in (per_column or {}).items():
            if job.query.startswith(f"SELECT `{column}` FROM"):
                return size
        return total

    monkeypatch.setattr(bq_client, "scanned_bytes", scanned)
    return seen


async def test_a_query_over_the_cap_is_refused_with_bytes_cost_and_the_columns_to_drop(bq_env, monkeypatch):
    seen = _inject_scan(
        monkeypatch,
        52 * GB,
        {
            "SeriesDescription": 40 * GB,
            "SliceThickness": 2 * GB,
            "SeriesInstanceUID": 10 * GB,
            "Modality": GB,
        },
    )
    jobs_before = len(bq_env.emulator.answered("POST", "/jobs"))
    text = await refused(
        "bigquery_query",
        {
            "sql": f"SELECT SeriesInstanceUID, SeriesDescription, SliceThickness FROM {T} WHERE Modality = 'CT'"
        },
    )
    assert "52.00 GB" in text and "cap of 10.00 GB" in text
    assert "$0.30" in text and "1 TiB" in text  # 52e9 B at $6.25/TiB
    assert "not partitioned nor clustered" in text or "neither partitioned nor clustered" in text
    # Every column read (the WHERE clause's too), largest first.
    assert (
        "Columns read, largest first: dicom_all.SeriesDescription 40.00 GB, dicom_all.SeriesInstanceUID "
        "10.00 GB, dicom_all.SliceThickness 2.00 GB, dicom_all.Modality 1.00 GB." in text
    )
    # Only dry runs went to BigQuery (the query and one per column): no job ran.
    assert all(job.dry_run for job in seen) and len(seen) == 5
    assert len(bq_env.emulator.answered("POST", "/jobs")) == jobs_before + len(seen)


async def test_select_star_over_the_cap_is_told_to_name_columns(bq_env, monkeypatch):
    _inject_scan(monkeypatch, 400 * GB)
    text = await refused("bigquery_query", {"sql": f"SELECT * FROM {T}"})
    assert "SELECT * reads every column" in text and "400.00 GB" in text


async def test_max_gb_lowers_the_cap_but_cannot_raise_it(bq_env, monkeypatch):
    _inject_scan(monkeypatch, 2 * GB)
    sql = f"SELECT Modality FROM {T} LIMIT 1"
    assert (await ok("bigquery_query", {"sql": sql}))["job"]["estimated_bytes"] == 2 * GB
    assert "cap of 1.00 GB" in await refused("bigquery_query", {"sql": sql, "max_gb": 1})
    assert "may only lower" in await refused("bigquery_query", {"sql": sql, "max_gb": 50})


async def test_the_server_cap_comes_from_the_environment_and_the_job_carries_it(
    bq_env, monkeypatch, inserted_jobs
):
    monkeypatch.setenv("IDC_MCP_BQ_MAX_GB", "100")
    _inject_scan(monkeypatch, 60 * GB)
    data = await ok("bigquery_query", {"sql": f"SELECT Modality FROM {T} LIMIT 1"})
    assert data["job"]["byte_cap"] == 100 * GB
    assert data["job"]["estimated_cost_usd"] == pytest.approx(60 * GB / 2**40 * 6.25, abs=1e-3)
    assert ran(inserted_jobs, data["job"]["job_id"]).maximum_bytes_billed == 100 * GB
    # A value that is not a number stops the start, naming the variable (not a failure at every call).
    monkeypatch.setenv("IDC_MCP_BQ_MAX_GB", "lots")
    with pytest.raises(SettingError, match=r"IDC_MCP_BQ_MAX_GB='lots': input should be a valid number"):
        load_settings()


# ------------------------------------------------------------------------ names that do not exist
async def test_an_unknown_column_gets_the_nearest_real_names_before_anything_runs(bq_env):
    jobs_before = len(bq_env.emulator.answered("POST", "/jobs"))
    text = await refused("bigquery_query", {"sql": f"SELECT SeriesInstanceUID, SliceThicknes FROM {T}"})
    assert (
        "'SliceThicknes'" in text and "SliceThickness (FLOAT)" in text and "describe_bigquery_table" in text
    )
    nested = await refused("bigquery_query", {"sql": f"SELECT SegmentedPropertyType.CodeMeanin FROM {SEG}"})
    assert "SegmentedPropertyType.CodeMeaning (STRING)" in nested
    assert len(bq_env.emulator.answered("POST", "/jobs")) == jobs_before


async def test_a_name_bigquery_itself_refuses_also_gets_the_nearest_real_names(bq_env):
    # SliceThickness exists in dicom_all but not in the CTE: only BigQuery can tell; its error is explained.
    sql = f"WITH ct AS (SELECT SeriesInstanceUID AS uid FROM {T}) SELECT SliceThickness FROM ct"
    text = await refused("bigquery_query", {"sql": sql})
    assert "BigQuery refused the query: " in text and "SliceThickness (FLOAT)" in text
    assert "http://" not in text  # BigQuery's words, not the request line


async def test_an_unknown_table_or_release_gets_the_real_ones(bq_env):
    table = await refused(
        "bigquery_query", {"sql": "SELECT SeriesInstanceUID FROM `bigquery-public-data.idc_current.dicom_al`"}
    )
    assert "Nearest: dicom_all" in table and "quantitative_measurements" in table
    release = await refused(
        "bigquery_query", {"sql": "SELECT SeriesInstanceUID FROM `bigquery-public-data.idc_v999.dicom_all`"}
    )
    assert f"idc_v{RELEASE - 1} ... idc_v{RELEASE}" in release


# ------------------------------------------------------------------------ into the selection tools
async def test_series_of_a_result_feed_the_selection_tools_in_one_step(bq_env):
    expected = bq_env.data.by_collection("tcga_luad", "CT")
    data = await ok(
        "bigquery_query",
        {
            "sql": f"SELECT SeriesInstanceUID, SOPInstanceUID FROM {T} WHERE collection_id = 'tcga_luad' AND Modality = 'CT'"
        },
    )
    assert sorted(data["series_instance_uids"]) == sorted(expected)  # distinct series, not instances
    assert data["selection"] == {"series_uids": data["series_instance_uids"]}
    licenses = await ok("check_licenses", data["selection"])
    assert licenses["series_count"] == len(expected)
    assert [g["collections"] for g in licenses["licenses"]] and "tcga_luad" in str(licenses["licenses"])
    size = await ok("estimate_size", data["selection"])
    assert size["series_count"] == len(expected)
    assert any("check_licenses" in n for n in data["notes"])


async def test_series_of_another_release_are_named_and_kept_out_of_the_selection(bq_env):
    data = await ok(
        "bigquery_query",
        {
            "sql": f"SELECT DISTINCT SeriesInstanceUID FROM {T} WHERE Modality = 'CT' AND BodyPartExamined = 'CHEST'",
            "max_rows": 200,
        },
    )
    assert NEW_SERIES_UID in data["series_instance_uids"]
    assert data["series_not_in_catalog"] == [NEW_SERIES_UID]
    assert NEW_SERIES_UID not in data["selection"]["series_uids"]
    assert any("not in the local catalog" in n for n in data["notes"])


# ------------------------------------------------------------------------ describe_bigquery_table
async def test_describe_lists_nested_and_repeated_fields_from_the_live_schema(bq_env):
    data = await ok("describe_bigquery_table", {"table": "dicom_all"})
    fields = {f["path"]: f for f in data["fields"]}
    assert data["table"] == "`bigquery-public-data.idc_current.dicom_all`" and data["num_rows"] > 50
    assert fields["ImageType"]["mode"] == "REPEATED"
    assert (
        fields["ReferencedSeriesSequence"]["type"] == "RECORD"
        and fields["ReferencedSeriesSequence"]["mode"] == "REPEATED"
    )
    assert "ReferencedSeriesSequence.ReferencedInstanceSequence.ReferencedSOPInstanceUID" in fields
    assert any("UNNEST" in n for n in data["notes"]) and any("`index`" in n for n in data["notes"])
    filtered = await ok(
        "describe_bigquery_table",
        {"table": f"bigquery-public-data.idc_v{RELEASE}.segmentations", "column_filter": "propertytype"},
    )
    assert {f["path"] for f in filtered["fields"]} >= {
        "SegmentedPropertyType",
        "SegmentedPropertyType.CodeMeaning",
    }
    assert all("propertytype" in f["path"].lower() for f in filtered["fields"])


async def test_describe_an_unknown_table_or_a_dataset_names_the_real_tables(bq_env):
    assert "Nearest: segmentations" in await refused("describe_bigquery_table", {"table": "segmentation"})
    listing = await refused("describe_bigquery_table", {"table": "idc_current"})
    assert "is a dataset" in listing and "dicom_all" in listing
    assert "not one of IDC's" in await refused("describe_bigquery_table", {"table": "samples.shakespeare"})


# ------------------------------------------------------------------------ cancellation and timeout
SLOW = "SELECT COUNT(*) AS n FROM UNNEST(GENERATE_ARRAY(1, 15000)) AS a CROSS JOIN UNNEST(GENERATE_ARRAY(1, 15000)) AS b WHERE MOD(a * b, 7) = 3"


async def test_a_job_over_the_time_limit_is_cancelled_with_a_clear_message(bq_env, monkeypatch):
    monkeypatch.setenv("IDC_MCP_BQ_TIMEOUT", "0.2")
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    result = await call("bigquery_query", {"sql": SLOW}, progress_callback=on_progress)
    assert result.is_error and "longer than 0.2 s (IDC_MCP_BQ_TIMEOUT)" in result.content[0].text
    job_id = next(m for m in messages if m.startswith("job ")).split()[1]
    await anyio.to_thread.run_sync(bq_env.emulator.wait_for_request, "POST", f"/jobs/{job_id}/cancel")


async def test_cancelling_the_call_returns_at_once_and_sends_jobs_cancel_for_its_job(bq_env):
    # About 2 x 10^8 combinations: a second or two of emulator work for the dry run and again for the job.
    sql = SLOW
    submitted = anyio.Event()
    messages: list[str] = []
    results = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")
        if message and message.startswith("job "):
            submitted.set()

    async with Client(server_from_environment()) as client:

        async def run() -> None:
            results.append(
                await client.call_tool("bigquery_query", {"sql": sql}, progress_callback=on_progress)
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await submitted.wait()
            tg.cancel_scope.cancel()
        job_id = next(m for m in messages if m.startswith("job ")).split()[1]
        # The call ended while the emulator was still running the job (it answers jobs.cancel only after).
        assert not bq_env.emulator.requests("POST", f"/jobs/{job_id}/cancel")
        assert results == []
        # ...and BigQuery was asked to cancel exactly that job.
        await anyio.to_thread.run_sync(bq_env.emulator.wait_for_request, "POST", f"/jobs/{job_id}/cancel")
        # The server still answers.
        after = await client.call_tool("bigquery_query", {"sql": f"SELECT Modality FROM {T} LIMIT 1"})
        assert not after.is_error
