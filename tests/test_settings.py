"""One settings object per server: made at start-up (from the environment and the command line flags, which
win), given to the factory, handed to every session through the server's lifespan, and never written back
into the environment nor re-read by a tool."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest
from mcp import Client

from idc_mcp import cli
from idc_mcp.app import create_server
from idc_mcp.catalog.database import Catalog
from idc_mcp.config import load_settings
from tests.servers import server_from_environment, server_with

pytestmark = pytest.mark.anyio
MANIFEST = {"collection_ids": ["qin_breast"], "format": "csv", "path": "cohort.csv"}


def test_command_line_flags_become_settings_over_the_environment(tmp_path: Path) -> None:
    args = cli.build_parser().parse_args(
        [
            "--download-root",
            str(tmp_path / "root"),
            "--cache-dir",
            "~/elsewhere",
            "--s3-endpoint-url",
            "http://s3",
        ]
    )
    settings = cli.settings_from(args)
    assert settings.download_root == tmp_path / "root"
    assert settings.cache_dir == Path.home() / "elsewhere"
    assert settings.s3_endpoint_url == "http://s3"


def test_command_line_flags_are_not_written_into_the_environment(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    # The trap: a flag copied into os.environ outlives the command and reaches every later reader.
    before = dict(os.environ)
    code = cli.main(
        ["--download-root", str(tmp_path / "root"), "--s3-endpoint-url", "http://127.0.0.1:9", "download"]
        + ["--series-uids", "1.2.3.999"]
    )
    assert code == 1 and "Unknown --series-uids" in capsys.readouterr().err
    assert dict(os.environ) == before


async def test_tools_use_the_settings_the_server_was_built_with_not_the_environment(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed = tmp_path / "handed_down"
    server = server_with(catalog.settings.model_copy(update={"download_root": handed}), catalog)
    monkeypatch.setenv("IDC_MCP_DOWNLOAD_ROOT", str(tmp_path / "from_environment"))
    async with Client(server) as client:
        reply = await client.call_tool("export_manifest", MANIFEST)
    assert not reply.is_error, reply.content
    assert (handed / "cohort.csv").is_file()
    assert not (tmp_path / "from_environment").exists()


async def test_a_server_keeps_its_settings_when_the_environment_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDC_MCP_DOWNLOAD_ROOT", str(tmp_path / "at_start"))
    server = server_from_environment()
    monkeypatch.setenv("IDC_MCP_DOWNLOAD_ROOT", str(tmp_path / "changed_later"))
    for _ in range(2):  # a second session too
        async with Client(server) as client:
            reply = await client.call_tool("export_manifest", {**MANIFEST, "path": f"cohort{_}.csv"})
        assert not reply.is_error, reply.content
    assert (tmp_path / "at_start" / "cohort1.csv").is_file()
    assert not (tmp_path / "changed_later").exists()


async def test_servers_built_with_different_settings_do_not_share_them(
    catalog: Catalog, tmp_path: Path
) -> None:
    for name in ("first", "second"):
        server = server_with(catalog.settings.model_copy(update={"download_root": tmp_path / name}), catalog)
        async with Client(server) as client:
            assert not (await client.call_tool("export_manifest", MANIFEST)).is_error
        assert (tmp_path / name / "cohort.csv").is_file()


async def test_the_server_stops_its_query_worker_when_its_last_session_ends(tmp_path: Path) -> None:
    # The factory's own catalog belongs to the server: its worker process does not outlive the server.
    server = create_server(load_settings())
    async with Client(server) as client:
        assert not (await client.call_tool("query", {"sql": "SELECT 1 AS one"})).is_error
        worker = server.state.catalog.executor.pid
        assert worker is not None and psutil.pid_exists(worker)
    assert server.state.catalog._executor is None
    assert not psutil.pid_exists(worker) or psutil.Process(worker).status() == psutil.STATUS_ZOMBIE
