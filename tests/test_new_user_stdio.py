"""A new user's conversation, over a real stdio session: right and wrong calls across the tools.

One server process (`python -m idc_mcp`, as Claude Desktop launches it) answers a researcher's session:
find CC BY lung CT from GE scanners, make the usual mistakes (wrong columns, wrong literals, bad
arguments, path escapes), then walk a non-commercial cohort through licenses, size, viewer and
citations. Figures are checked against plain DuckDB over the bundled parquet; every error must say
what to do and never carry a traceback. No network: fetch_index points at a closed loopback port.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.parquet import truth

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # starts a server process

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 120  # bounds the session; the catalog is normally already built

GE_LUNG_CT = (
    "SELECT i.collection_id, count(*) AS n FROM index i JOIN collections_index c "
    "ON i.collection_id = c.collection_id WHERE i.Modality = 'CT' AND i.license_short_name = 'CC BY 4.0' "
    "AND i.Manufacturer = 'GE MEDICAL SYSTEMS' AND c.cancer_types ILIKE '%lung%' "
    "GROUP BY 1 ORDER BY n DESC, 1"
)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


class Session:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def ok(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.call_tool(tool, args)
        assert not result.is_error, (tool, args, result.content)
        assert result.structured_content is not None
        return result.structured_content

    async def error(self, tool: str, args: dict[str, Any]) -> str:
        result = await self.client.call_tool(tool, args)
        assert result.is_error, (tool, args, result.structured_content)
        text = result.content[0].text  # type: ignore[union-attr]
        assert "Traceback" not in text and 'File "' not in text
        prefix = f"Error executing tool {tool}"
        assert text.startswith(prefix) and len(text) > len(prefix) + 20, text  # never only the mask
        return text


async def _conversation(s: Session, root: Path) -> None:
    # 1. "Find me CC BY lung CT from GE scanners": a join through collections_index.
    reply = await s.ok("query", {"sql": GE_LUNG_CT})
    expected = truth(
        GE_LUNG_CT.replace("index i", "{index} i").replace("collections_index c", "{collections} c")
    )
    assert [(r["collection_id"], r["n"]) for r in reply["rows"]] == expected and expected
    assert reply["diagnostics"] == []

    # 2. Wrong literals get the exact stored value.
    for column, wrong, right in [
        ("Modality", "CTs", "CT"),
        ("collection_id", "TCGA-LUAD", "tcga_luad"),
        ("PatientSex", "Male", "M"),
        ("BodyPartExamined", "lungs", "LUNG"),
        ("license_short_name", "CC-BY", "CC BY 4.0"),
    ]:
        reply = await s.ok("query", {"sql": f"SELECT count(*) AS n FROM index WHERE {column} = '{wrong}'"})
        assert reply["rows"] == [{"n": 0}]
        assert f"Use {column} = '{right}' instead." in reply["diagnostics"][0]
        assert truth(f"SELECT count(*) FROM {{index}} WHERE {column} = ?", [right])[0][0] > 0

    # 3. Wrong column names get the real one.
    text = await s.error("query", {"sql": "SELECT SeriesUID FROM index LIMIT 1"})
    assert "Close names in index: SeriesInstanceUID" in text
    text = await s.error("query", {"sql": "SELECT cancer_type FROM collections_index"})
    assert "cancer_types" in text

    # 4. Bad arguments: types, ranges, literals, empty selections, bad UIDs.
    assert "less than or equal to 1000" in await s.error("query", {"sql": "SELECT 1", "max_rows": 10**8})
    assert "valid string" in await s.error("describe_table", {"table": 123})
    assert "'collections_index'" in await s.error("describe_table", {"table": "collection_index"})
    assert "Empty selection" in await s.error("check_licenses", {"collection_ids": []})
    assert "'tcga_luad'" in await s.error("estimate_size", {"collection_ids": ["TCGA-LUAD"]})
    assert "not a DICOM UID" in await s.error("get_viewer_url", {"series_uid": "abc"})
    assert "'ohif_v3'" in await s.error("get_viewer_url", {"series_uid": "1.2.3", "viewer": "osirix"})
    assert "'bibtex'" in await s.error("get_citations", {"collection_ids": ["4d_lung"], "format": "mla"})
    assert "'csv'" in await s.error("export_manifest", {"collection_ids": ["4d_lung"], "format": "xlsx"})
    text = await s.error(
        "check_licenses", {"sql": "SELECT SeriesInstanceUID FROM index WHERE Modality = 'CTs'"}
    )
    assert "Use Modality = 'CT' instead." in text

    # 5. Paths outside the download root, or naming a folder, are refused; nothing is written.
    for tool, args in [
        ("export_manifest", {"collection_ids": ["4d_lung"], "path": "../escape.txt"}),
        ("export_manifest", {"collection_ids": ["4d_lung"], "path": "/tmp/escape.txt"}),
        ("export_manifest", {"collection_ids": ["4d_lung"], "path": "manifests/"}),
        ("estimate_size", {"collection_ids": ["4d_lung"], "download_dir": "../../etc"}),
        ("download", {"collection_ids": ["4d_lung"], "download_dir": "/etc", "dry_run": True}),
    ]:
        text = await s.error(tool, args)
        assert "download root" in text or "is a folder" in text
    assert list(root.iterdir()) == []

    # 6. fetch_index without the network fails at once, saying how to work offline.
    assert "never a path or URL" in await s.error("fetch_index", {"name": "https://example.org/x.parquet"})
    assert "IDC_MCP_INDEX_DIR" in await s.error("fetch_index", {"name": "sm_index"})

    # 7. A non-commercial cohort: licenses -> size -> viewer -> citations.
    cohort = ["nsclc_radiomics_genomics"]
    ((series, files, megabytes, license_name),) = truth(
        "SELECT count(*), sum(instanceCount), round(sum(series_size_MB), 3), any_value(license_short_name) "
        "FROM {index} WHERE collection_id = 'nsclc_radiomics_genomics'"
    )
    licenses = await s.ok("check_licenses", {"collection_ids": cohort})
    assert licenses["commercial_use"] == "not allowed"
    assert licenses["non_commercial_collections"] == cohort
    assert [(x["license"], x["series_count"]) for x in licenses["licenses"]] == [(license_name, series)]
    size = await s.ok("estimate_size", {"collection_ids": cohort, "download_dir": "nc_lung"})
    assert (size["series_count"], size["instance_count"]) == (series, files)
    assert size["total_size_MB"] == pytest.approx(megabytes, abs=0.001)
    ((study, first_series),) = truth(
        "SELECT StudyInstanceUID, SeriesInstanceUID FROM {index} "
        "WHERE collection_id = 'nsclc_radiomics_genomics' ORDER BY SeriesInstanceUID LIMIT 1"
    )
    viewer = await s.ok("get_viewer_url", {"series_uid": first_series})
    assert viewer["links"][0]["viewer"] == "ohif_v3"
    assert f"StudyInstanceUIDs={study}" in viewer["links"][0]["url"]
    cites = await s.ok("get_citations", {"collection_ids": cohort, "format": "bibtex"})
    dois = truth(
        "SELECT DISTINCT upper(source_DOI) FROM {index} WHERE collection_id = 'nsclc_radiomics_genomics'"
    )
    assert {e["doi"] for e in cites["entries"] if e["kind"] == "dataset"} == {d for (d,) in dois}

    # 8. Resources and prompts: the guide, a reference, a table, and a clear not-found.
    skill = await s.client.read_resource("idc://skill")
    assert "check_licenses" in skill.contents[0].text  # type: ignore[union-attr]
    with pytest.raises(Exception, match="Available: idc://references/"):
        await s.client.read_resource("idc://references/nope")
    prompt = await s.client.get_prompt("find_dataset", {"topic": "lung CT from GE scanners"})
    assert "`nsclc_radiomics`" in prompt.messages[0].content.text  # type: ignore[union-attr]


async def test_a_new_users_session_over_stdio(tmp_path: Path) -> None:
    root = tmp_path / "downloads"
    root.mkdir()
    env = dict(
        os.environ,
        IDC_MCP_DOWNLOAD_ROOT=str(root),
        IDC_MCP_INDEX_BASE_URL=f"http://127.0.0.1:{_closed_port()}/",
        IDC_MCP_FETCH_TIMEOUT="5",
    )
    params = StdioServerParameters(command=sys.executable, args=["-m", "idc_mcp"], env=env, cwd=str(ROOT))
    with anyio.fail_after(TIMEOUT_S):
        async with Client(params, mode="legacy", read_timeout_seconds=TIMEOUT_S) as client:
            await _conversation(Session(client), root)
