"""The preview through MCP and the command line: image content a client can decode, plus the facts."""

from __future__ import annotations

import base64
import io

import pytest
from mcp import Client
from PIL import Image

from idc_mcp import cli
from tests.servers import server_from_environment


@pytest.fixture
def env(preview_mirror, catalog, tmp_path, monkeypatch):
    # The catalog is opened first, so the cache folder set here only holds previews.
    catalog.installed_tables()
    monkeypatch.setenv("IDC_MCP_S3_ENDPOINT_URL", preview_mirror.endpoint)
    monkeypatch.setenv("IDC_MCP_CACHE_DIR", str(tmp_path / "cache"))
    return preview_mirror


@pytest.mark.anyio
async def test_reply_carries_image_content_the_client_decodes_and_the_facts(env):
    async with Client(server_from_environment()) as client:
        result = await client.call_tool(
            "preview_series", {"series_uid": env.cases["ct"].uid, "kind": "montage", "slices": 4}
        )
    assert not result.is_error
    image_block, text_block = result.content
    assert image_block.type == "image" and image_block.mime_type == "image/png"
    picture = Image.open(io.BytesIO(base64.b64decode(image_block.data)))
    assert picture.format == "PNG" and max(picture.size) <= 1024
    data = result.structured_content
    assert data["preview"] == "montage" and len(data["shown"]) == 4
    assert (data["image_width"], data["image_height"]) == picture.size
    assert 0 < data["bytes_fetched"] <= data["series_bytes"]
    assert "montage of 4 slices in anatomical order" in text_block.text and "bytes" in text_block.text


@pytest.mark.anyio
async def test_bad_input_is_a_tool_error_saying_what_to_do(env):
    async with Client(server_from_environment()) as client:
        unknown = await client.call_tool("preview_series", {"series_uid": "1.2.3.4.5.6.7.8.9.10"})
        no_pixels = await client.call_tool("preview_series", {"series_uid": env.cases["rtstruct"].uid})
        too_many = await client.call_tool("preview_series", {"series_uid": env.cases["ct"].uid, "slices": 99})
    assert unknown.is_error and "Unknown series_uid" in unknown.content[0].text
    assert no_pixels.is_error and "holds no image pixels" in no_pixels.content[0].text
    assert too_many.is_error and "slices" in too_many.content[0].text
    assert "Traceback" not in unknown.content[0].text + no_pixels.content[0].text


def test_cli_writes_the_image_and_prints_the_summary(env, tmp_path, capsys):
    out = tmp_path / "p.png"
    assert cli.main(["preview", env.cases["pt"].uid, "-o", str(out)]) == 0
    assert Image.open(out).format == "PNG"
    printed = capsys.readouterr().out
    assert "PT series" in printed and f"Saved to {out}" in printed
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_cli_reports_errors_without_a_traceback(env, tmp_path, capsys):
    assert cli.main(["preview", "not-a-uid", "-o", str(tmp_path / "x.png")]) == 1
    assert "error: SERIES_UID value 'not-a-uid' is not a DICOM UID" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_cli_error_that_points_to_the_viewer_prints_the_viewer_link(env, tmp_path, capsys):
    # The MCP reply says "open it with get_viewer_url()": a terminal has no such tool, so the link itself.
    assert cli.main(["preview", env.cases["rtstruct"].uid, "-o", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert "holds no image pixels" in err and "get_viewer_url" not in err
    link = next(line for line in err.splitlines() if line.startswith("view it in the browser: "))
    assert link.split(": ", 1)[1].startswith("https://") and env.cases["rtstruct"].study_uid in link
