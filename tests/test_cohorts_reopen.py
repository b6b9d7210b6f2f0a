"""A saved cohort reopened by another server process answers exactly as the selection it was saved from.

The cohort is saved in memory (this process), then a new server (`python -m idc_mcp`, over stdio, as a
client launches it) with the same download root reads the file: check_licenses, estimate_size and
export_manifest must give the same replies for `cohort=` as this process gives for the selection.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.servers import server_from_environment

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # starts a server process

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 120
SELECTION = {
    "collection_ids": ["rider_pilot", "4d_lung"],
    "sql": "SELECT SeriesInstanceUID FROM index WHERE Modality IN ('CT', 'SEG') AND instanceCount < 60",
}
CALLS = [
    ("check_licenses", {}),
    ("estimate_size", {}),  # (without download_dir: free space changes as other files come and go)
    ("export_manifest", {"format": "csv", "path": "manifests/cohort.csv"}),
]


async def _answers(client: Client, selection: dict[str, Any]) -> dict[str, Any]:
    answers = {}
    for tool, extra in CALLS:
        result = await client.call_tool(tool, {**selection, **extra})
        assert not result.is_error, (tool, result.content)
        answers[tool] = result.structured_content
    return answers


async def test_save_then_reopen_in_a_new_server_gives_the_same_answers(tmp_path: Path, monkeypatch):
    root = tmp_path / "downloads"
    monkeypatch.setenv("IDC_MCP_DOWNLOAD_ROOT", str(root))
    async with Client(server_from_environment()) as client:
        saved = await client.call_tool(
            "save_cohort", {"name": "lung", "description": "for a paper", **SELECTION}
        )
        assert not saved.is_error, saved.content
        original = await _answers(client, SELECTION)
        manifest = (root / "manifests" / "cohort.csv").read_bytes()
    (root / "manifests" / "cohort.csv").unlink()
    env = dict(os.environ, IDC_MCP_DOWNLOAD_ROOT=str(root))
    params = StdioServerParameters(command=sys.executable, args=["-m", "idc_mcp"], env=env, cwd=str(ROOT))
    with anyio.fail_after(TIMEOUT_S):
        async with Client(params, mode="legacy", read_timeout_seconds=TIMEOUT_S) as client:
            listed = await client.call_tool("list_cohorts", {})
            assert [c["name"] for c in listed.structured_content["cohorts"]] == ["lung"]
            reopened = await _answers(client, {"cohort": "lung"})
    assert reopened == original
    assert (root / "manifests" / "cohort.csv").read_bytes() == manifest
    assert original["check_licenses"]["series_count"] == saved.structured_content["member_count"] > 0
