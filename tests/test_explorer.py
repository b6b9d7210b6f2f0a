"""The explorer app's server side through a plain MCP client: `explore` answers in text for hosts
without MCP Apps, the app-only tools narrow, page and render, and forged calls are refused as the
tools refuse them."""

from __future__ import annotations

import base64
import io

import pytest
from mcp import Client
from PIL import Image

from idc_mcp.apps import explorer
from idc_mcp.apps.surface import URI
from idc_mcp.preview.service import clear_caches
from tests.parquet import truth
from tests.servers import server_from_environment

pytestmark = pytest.mark.anyio
COLLECTION = "nlst"  # many series, several modalities and manufacturers


@pytest.fixture(autouse=True)
def download_root(tmp_path, monkeypatch):
    monkeypatch.setenv("IDC_MCP_DOWNLOAD_ROOT", str(tmp_path / "downloads"))
    return tmp_path / "downloads"


def _counts(where: str = "") -> tuple:
    return truth(
        "SELECT count(*), count(DISTINCT PatientID), count(DISTINCT StudyInstanceUID) FROM {index} "
        f"WHERE collection_id = 'lidc_idri' {where}"
    )[0]


async def test_without_apps_the_text_reply_answers_the_question():
    async with Client(server_from_environment()) as client:  # a plain client: it did not negotiate MCP Apps
        reply = await client.call_tool("explore", {"collection_ids": ["lidc_idri"]})
    assert not reply.is_error
    series, patients, studies = _counts()
    text = reply.content[0].text
    assert f"{series:,} series, {patients:,} patients, {studies:,} studies" in text
    modalities = truth(
        "SELECT Modality, count(*) n FROM {index} WHERE collection_id = 'lidc_idri' "
        "GROUP BY 1 ORDER BY n DESC"
    )
    assert f"By modality: {modalities[0][0]} {modalities[0][1]:,}" in text
    assert reply.structured_content["series"] == series


async def test_the_tool_names_its_app_and_the_app_only_tools_say_so():
    async with Client(server_from_environment()) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        resource = await client.read_resource(URI)
    assert tools["explore"].meta["ui"]["resourceUri"] == URI
    assert "visibility" not in tools["explore"].meta["ui"]  # the model sees it
    for name in ("explorer_overview", "explorer_series", "explorer_image"):
        assert tools[name].meta["ui"]["visibility"] == ["app"], name
    content = resource.contents[0]
    assert content.mime_type == "text/html;profile=mcp-app"
    assert content.text.startswith("<!doctype html>")
    csp = content.meta["ui"]["csp"]
    assert csp["connectDomains"] == [] and csp["resourceDomains"] == []  # no remote anything


async def test_a_filter_narrows_the_counts_to_what_a_query_gives():
    async with Client(server_from_environment()) as client:
        reply = await client.call_tool(
            "explorer_overview",
            {"selection": {"collection_ids": ["lidc_idri"]}, "filters": {"modality": ["CT"]}},
        )
    assert not reply.is_error, reply.content
    data = reply.structured_content
    assert (data["series"], data["patients"], data["studies"]) == _counts("AND Modality = 'CT'")
    assert {b["value"] for b in next(f for f in data["facets"] if f["facet"] == "modality")["bars"]} == {"CT"}
    # The selection handed to the actions selects the same series.
    async with Client(server_from_environment()) as client:
        licenses = await client.call_tool("check_licenses", data["selection"])
    assert licenses.structured_content["series_count"] == data["series"]


async def test_a_null_value_is_its_own_bar_and_filter():
    # the smallest collection where some series have no Manufacturer and others have one
    collection, missing = truth(
        "SELECT collection_id, count(*) FILTER (WHERE Manufacturer IS NULL) AS missing FROM {index} "
        "GROUP BY 1 HAVING missing > 0 AND count(Manufacturer) > 0 ORDER BY count(*) LIMIT 1"
    )[0]
    overview = await _overview({"collection_ids": [collection]}, None)
    bars = next(f for f in overview["facets"] if f["facet"] == "manufacturer")["bars"]
    assert any(b["value"] == explorer.NOT_GIVEN and b["series"] == missing for b in bars), bars
    narrowed = await _overview({"collection_ids": [collection]}, {"manufacturer": [explorer.NOT_GIVEN]})
    assert narrowed["series"] == missing


async def _overview(selection: dict, filters: dict | None) -> dict:
    async with Client(server_from_environment()) as client:
        reply = await client.call_tool("explorer_overview", {"selection": selection, "filters": filters})
    assert not reply.is_error, reply.content
    return reply.structured_content


async def test_series_pages_cover_the_selection_in_order():
    async with Client(server_from_environment()) as client:
        first = await client.call_tool(
            "explorer_series", {"selection": {"collection_ids": ["lidc_idri"]}, "page_size": 5}
        )
        second = await client.call_tool(
            "explorer_series", {"selection": {"collection_ids": ["lidc_idri"]}, "page": 2, "page_size": 5}
        )
    expected = [
        r[0]
        for r in truth(
            "SELECT SeriesInstanceUID FROM {index} WHERE collection_id = 'lidc_idri' "
            "ORDER BY collection_id, PatientID, StudyInstanceUID, SeriesInstanceUID LIMIT 10"
        )
    ]
    got = [c["series_uid"] for c in first.structured_content["cards"] + second.structured_content["cards"]]
    assert got == expected
    assert first.structured_content["pages"] == -(-_counts()[0] // 5)


async def test_forged_app_calls_are_refused_like_the_tools_refuse_them():
    async with Client(server_from_environment()) as client:
        huge_page = await client.call_tool(
            "explorer_series", {"selection": {"collection_ids": ["lidc_idri"]}, "page": 9999}
        )
        past_schema = await client.call_tool(
            "explorer_series", {"selection": {"collection_ids": ["lidc_idri"]}, "page": 10**9}
        )
        path_as_series = await client.call_tool("explorer_image", {"series_uid": "../../etc/passwd"})
        tool_path = await client.call_tool("preview_series", {"series_uid": "../../etc/passwd"})
        unknown = await client.call_tool("explorer_image", {"series_uid": "1.2.3.4.5.6.7.8.9.10"})
        tool_unknown = await client.call_tool("preview_series", {"series_uid": "1.2.3.4.5.6.7.8.9.10"})
        bad_facet = await client.call_tool(
            "explorer_overview",
            {"selection": {"collection_ids": ["lidc_idri"]}, "filters": {"PatientID; --": ["x"]}},
        )
        sql_in_value = await client.call_tool(
            "explorer_overview",
            {"selection": {"collection_ids": ["lidc_idri"]}, "filters": {"modality": ["CT') OR 1=1 --"]}},
        )
        forged_field = await client.call_tool(
            "explorer_overview", {"selection": {"collection_ids": ["lidc_idri"], "path": "/etc/passwd"}}
        )
        manifest_escape = await client.call_tool(
            "export_manifest", {"collection_ids": ["lidc_idri"], "path": "../../outside.txt"}
        )
    assert huge_page.is_error and "past the last page" in huge_page.content[0].text
    assert past_schema.is_error and "page" in past_schema.content[0].text
    assert path_as_series.is_error and _refusal(path_as_series) == _refusal(tool_path)
    assert unknown.is_error and _refusal(unknown) == _refusal(tool_unknown)
    assert bad_facet.is_error
    # A quote in a value stays a value: it matches nothing, and the selection says so.
    assert sql_in_value.is_error and "selects no series" in sql_in_value.content[0].text
    assert forged_field.is_error and "path" in forged_field.content[0].text
    assert manifest_escape.is_error and "download root" in manifest_escape.content[0].text


async def test_the_viewer_steps_through_slices_and_the_seg_overlay_is_drawn(
    preview_mirror, catalog, tmp_path, monkeypatch
):
    catalog.installed_tables()
    monkeypatch.setenv("IDC_MCP_S3_ENDPOINT_URL", preview_mirror.endpoint)
    monkeypatch.setenv("IDC_MCP_CACHE_DIR", str(tmp_path / "cache"))
    ct = preview_mirror.cases["ct"]
    clear_caches()  # this test reads the series' headers itself
    async with Client(server_from_environment()) as client:
        first = await client.call_tool(
            "explorer_image", {"series_uid": ct.uid, "kind": "slice", "slice_index": 0}
        )
        last = await client.call_tool(
            "explorer_image", {"series_uid": ct.uid, "kind": "slice", "slice_index": 8}
        )
        beyond = await client.call_tool(
            "explorer_image", {"series_uid": ct.uid, "kind": "slice", "slice_index": 9}
        )
        seg = await client.call_tool("explorer_image", {"series_uid": preview_mirror.cases["seg"].uid})
        under = seg.structured_content["shown"][1]["sop_instance_uid"]
        plain = await client.call_tool(
            "explorer_image",
            {
                "series_uid": seg.structured_content["referenced_series_uid"],
                "kind": "slice",
                "instance": under,
            },
        )
    assert first.structured_content["slice_count"] == 9
    assert (first.structured_content["slice_index"], last.structured_content["slice_index"]) == (0, 8)
    assert (
        first.structured_content["shown"][0]["position_mm"]
        < last.structured_content["shown"][0]["position_mm"]
    )
    assert _pixels(first) != _pixels(last)
    # The next slice reads its one instance and no header: each picture is drawn in a fresh preview
    # worker, and the server hands it the slices an earlier worker sorted (before, every slider move
    # read all the series' headers again: 2.2 MB from S3 per move of a 200-slice CT, 756 ms).
    shown_key = last.structured_content["shown"][0]["object_key"]
    assert last.structured_content["bytes_fetched"] == len(ct.objects[shown_key])  # that instance alone
    assert beyond.is_error and "has 9 slices" in beyond.content[0].text
    assert seg.structured_content["preview"] == "seg_overlay" and seg.structured_content["segments"]
    assert plain.structured_content["shown"][0]["sop_instance_uid"] == under


def _refusal(result) -> str:
    """The error's message without the tool's name ('Error executing tool <name>: ...')."""
    return result.content[0].text.split(": ", 1)[1]


def _pixels(result) -> bytes:
    return Image.open(io.BytesIO(base64.b64decode(result.content[0].data))).tobytes()
