"""One settings object per run: made at start-up (from the environment and the command line flags, which
win), handed to every session through the server's lifespan, and never written back into the
environment nor re-read by a tool in the middle of a session."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from mcp import Client

from idc_mcp import cli, server
from idc_mcp.catalog.database import Catalog

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


async def test_tools_use_the_settings_handed_down_at_start_up_not_the_environment(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed = tmp_path / "handed_down"
    settings = dataclasses.replace(catalog.settings, download_root=handed)
    monkeypatch.setattr(server, "started", server.AppState(settings, catalog))
    monkeypatch.setenv("IDC_MCP_DOWNLOAD_ROOT", str(tmp_path / "from_environment"))
    async with Client(server.mcp) as client:
        reply = await client.call_tool("export_manifest", MANIFEST)
    assert not reply.is_error, reply.content
    assert (handed / "cohort.csv").is_file()
    assert not (tmp_path / "from_environment").exists()


async def test_a_session_keeps_the_settings_it_started_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An in-process server (no start-up state) reads the environment once, as the session starts.
    monkeypatch.setenv("IDC_MCP_DOWNLOAD_ROOT", str(tmp_path / "at_start"))
    async with Client(server.mcp) as client:
        monkeypatch.setenv("IDC_MCP_DOWNLOAD_ROOT", str(tmp_path / "changed_later"))
        reply = await client.call_tool("export_manifest", MANIFEST)
    assert not reply.is_error, reply.content
    assert (tmp_path / "at_start" / "cohort.csv").is_file()
    assert not (tmp_path / "changed_later").exists()


async def test_a_new_session_of_an_in_process_server_sees_the_new_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("first", "second"):
        monkeypatch.setenv("IDC_MCP_DOWNLOAD_ROOT", str(tmp_path / name))
        async with Client(server.mcp) as client:
            assert not (await client.call_tool("export_manifest", MANIFEST)).is_error
        assert (tmp_path / name / "cohort.csv").is_file()
