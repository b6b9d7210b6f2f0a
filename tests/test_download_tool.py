"""The `download` tool through a real MCP client: progress, cancellation, errors, dry run, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from mcp import Client

from idc_mcp import cli
from tests.servers import server_from_environment

pytestmark = pytest.mark.anyio


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("IDC_MCP_DOWNLOAD_ROOT", str(tmp_path))
    return tmp_path


def uids(mirror) -> list[str]:
    return [s.uid for s in mirror.series]


async def test_download_tool_is_declared_as_writing_to_the_open_world():
    async with Client(server_from_environment()) as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "download")
    assert tool.annotations.read_only_hint is False and tool.annotations.open_world_hint is True
    assert "dry_run" in tool.input_schema["properties"] and "series_uids" in tool.input_schema["properties"]


async def test_progress_is_monotonic_and_reaches_the_total(s3_mirror, fault_proxy, root, monkeypatch):
    # A slow link (per connection) makes the download span several progress intervals.
    fault_proxy.rate_bytes_per_s = 40_000
    monkeypatch.setenv("IDC_MCP_S3_ENDPOINT_URL", fault_proxy.endpoint)
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    async with Client(server_from_environment()) as client:
        result = await client.call_tool(
            "download", {"series_uids": uids(s3_mirror)}, progress_callback=on_progress
        )
    assert not result.is_error, result.content[0].text
    assert len(seen) >= 2
    values = [p for p, _ in seen]
    assert values == sorted(values)
    assert seen[-1] == (s3_mirror.total_bytes, s3_mirror.total_bytes)
    data = result.structured_content
    assert (
        data["files_downloaded"] == s3_mirror.total_files
        and data["bytes_downloaded"] == s3_mirror.total_bytes
    )


async def test_cancelling_the_call_stops_the_download_and_leaves_no_temporaries(
    s3_mirror, fault_proxy, root, monkeypatch
):
    fault_proxy.rate_bytes_per_s = 20_000
    monkeypatch.setenv("IDC_MCP_S3_ENDPOINT_URL", fault_proxy.endpoint)
    first_report = anyio.Event()
    results = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        first_report.set()

    async def call(client: Client) -> None:
        results.append(
            await client.call_tool(
                "download", {"series_uids": uids(s3_mirror)}, progress_callback=on_progress
            )
        )

    async with Client(server_from_environment()) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, client)
            await first_report.wait()
            tg.cancel_scope.cancel()
    # The server side waits for the engine to clean up before the call ends.
    assert [p for p in root.rglob("*") if p.name.endswith(".idcpart")] == []
    assert len(list(root.rglob("*.dcm"))) < s3_mirror.total_files
    # A cancelled request gets no answer.
    assert results == []


@pytest.mark.parametrize("download_dir", ["../elsewhere", "/tmp", "{root}_evil"])
async def test_path_escapes_reach_the_assistant_as_tool_errors(s3_mirror, root, monkeypatch, download_dir):
    monkeypatch.setenv("IDC_MCP_S3_ENDPOINT_URL", s3_mirror.endpoint)
    async with Client(server_from_environment()) as client:
        result = await client.call_tool(
            "download", {"series_uids": uids(s3_mirror), "download_dir": download_dir.format(root=root)}
        )
    assert result.is_error
    assert "download root" in result.content[0].text


async def test_unknown_uid_and_empty_selection_are_tool_errors(s3_mirror, root, monkeypatch):
    monkeypatch.setenv("IDC_MCP_S3_ENDPOINT_URL", s3_mirror.endpoint)
    async with Client(server_from_environment()) as client:
        unknown = await client.call_tool("download", {"series_uids": ["1.2.3.999"]})
        empty = await client.call_tool("download", {})
    assert unknown.is_error and "1.2.3.999" in unknown.content[0].text
    assert empty.is_error and "Empty selection" in empty.content[0].text
    assert list(root.iterdir()) == []


async def test_dry_run_returns_the_plan_and_license_summary(s3_mirror, root, monkeypatch):
    monkeypatch.setenv("IDC_MCP_S3_ENDPOINT_URL", s3_mirror.endpoint)
    async with Client(server_from_environment()) as client:
        result = await client.call_tool("download", {"series_uids": uids(s3_mirror), "dry_run": True})
    data = result.structured_content
    assert data["dry_run"] is True and data["manifest_path"] is None
    assert {p["SeriesInstanceUID"] for p in data["plan"]} == set(uids(s3_mirror))
    by_uid = {s.uid: s for s in s3_mirror.series}
    for p in data["plan"]:
        s = by_uid[p["SeriesInstanceUID"]]
        assert p["folder"] == f"{s.collection_id}/{s.patient_id}/{s.study_uid}/{s.modality}_{s.uid}"
        assert (p["files"], p["bytes"]) == (len(s.objects), s.size)
    licenses = {lic["license_short_name"]: lic["series_count"] for lic in data["licenses"]}
    expected: dict[str, int] = {}
    for s in s3_mirror.series:
        expected[s.license_short_name] = expected.get(s.license_short_name, 0) + 1
    assert licenses == expected
    assert list(root.iterdir()) == []


def test_cli_download_writes_files_and_reports_on_stderr(s3_mirror, root, capsys):
    code = cli.main(
        [
            "--s3-endpoint-url",
            s3_mirror.endpoint,
            "download",
            "--series-uids",
            *uids(s3_mirror)[:2],
            "--download-dir",
            "c",
        ]
    )
    assert code == 0
    files = list((root / "c").rglob("*.dcm"))
    assert len(files) == sum(len(s.objects) for s in s3_mirror.series[:2])
    result = json.loads(capsys.readouterr().out)
    assert result["files_downloaded"] == len(files) and Path(result["destination"]) == root / "c"


def test_cli_download_help_lists_every_option(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as done:
        cli.main(["download", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--collection-ids",
        "--series-uids",
        "--sql",
        "--download-dir",
        "--dir-template",
        "--dry-run",
    ):
        assert option in text
    assert "%collection_id/%PatientID" in text


def test_cli_download_error_goes_to_stderr_with_exit_code_1(s3_mirror, root, capsys):
    code = cli.main(["--s3-endpoint-url", s3_mirror.endpoint, "download", "--series-uids", "1.2.3.999"])
    assert code == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "Unknown --series-uids" in captured.err


# ---------------------------------------------------------------- offline (issue 22)
@pytest.fixture
def offline(monkeypatch, built_catalog):
    """No way to IDC's storage: HTTPS goes to a proxy on a closed loopback port (nothing leaves the
    machine); IDC_MCP_S3_ENDPOINT_URL is not set, as for a user who never touched it."""
    from idc_mcp.download import s3

    monkeypatch.delenv("IDC_MCP_S3_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    s3.make_client.cache_clear()  # clients read the proxy when they are made
    yield
    s3.make_client.cache_clear()


async def test_offline_a_dry_run_answers_from_the_catalog_and_says_the_file_list_needs_the_network(
    s3_mirror, root, offline
):
    async with Client(server_from_environment()) as client:
        result = await client.call_tool("download", {"series_uids": uids(s3_mirror), "dry_run": True})
    assert not result.is_error, result.content[0].text
    data = result.structured_content
    assert data["series_count"] == len(s3_mirror.series) == data["series_estimated"]
    assert data["files_total"] > 0 and data["bytes_total"] > 0  # the index's figures
    assert all(p["estimated"] for p in data["plan"]) and data["licenses"]
    step = data["next_step"]
    assert step.startswith("Cannot reach IDC's storage (network)")
    assert "the exact file list needs the network" in step and "IDC_MCP_S3_ENDPOINT_URL" not in step
    assert list(root.iterdir()) == []


async def test_offline_a_download_says_the_network_and_what_still_works(s3_mirror, root, offline):
    async with Client(server_from_environment()) as client:
        result = await client.call_tool("download", {"series_uids": uids(s3_mirror)[:1]})
    assert result.is_error
    text = result.content[0].text
    assert "Cannot reach IDC's storage (network)" in text and "Nothing was written" in text
    assert "download(dry_run=true) still answers from the catalog" in text
    assert "IDC_MCP_S3_ENDPOINT_URL" not in text  # a setting this user never touched


def test_offline_the_cli_says_it_in_command_line_terms(s3_mirror, root, offline, capsys):
    assert cli.main(["download", "--series-uids", uids(s3_mirror)[0], "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "Cannot reach IDC's storage (network)" in err
    assert "`idc-mcp download --dry-run` still answers from the catalog" in err and "dry_run" not in err


def test_a_store_the_user_chose_is_named_when_it_does_not_answer(s3_mirror, root, built_catalog, capsys):
    from idc_mcp.download import s3

    s3.make_client.cache_clear()
    code = cli.main(
        ["--s3-endpoint-url", "http://127.0.0.1:9", "download", "--series-uids", uids(s3_mirror)[0]]
    )
    s3.make_client.cache_clear()
    assert code == 1
    err = capsys.readouterr().err
    assert (
        "The S3 endpoint http://127.0.0.1:9 (set by IDC_MCP_S3_ENDPOINT_URL" in err
        and "cannot be reached" in err
    )
