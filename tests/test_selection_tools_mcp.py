"""The selection tools through a real MCP client, as a new user would use them."""

import pytest
from mcp import Client

from tests.parquet import truth
from tests.servers import server_from_environment

pytestmark = pytest.mark.anyio

TOOLS = {
    "list_collections",
    "check_licenses",
    "estimate_size",
    "get_viewer_url",
    "get_citations",
    "get_dicomweb_urls",
    "export_manifest",
}
SELECTION_ARGS = {"collection_ids", "patient_ids", "study_uids", "series_uids", "sql", "analysis_results"}


@pytest.fixture(autouse=True)
def download_root(tmp_path, monkeypatch):
    monkeypatch.setenv("IDC_MCP_DOWNLOAD_ROOT", str(tmp_path / "downloads"))
    return tmp_path / "downloads"


async def test_tools_have_the_contract_names_arguments_and_annotations():
    async with Client(server_from_environment()) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools if t.name in TOOLS}
    assert set(tools) == TOOLS
    for name in ("check_licenses", "estimate_size", "get_citations", "get_dicomweb_urls", "export_manifest"):
        assert SELECTION_ARGS <= set(tools[name].input_schema["properties"]), name
    assert set(tools["list_collections"].input_schema["properties"]) == {
        "topic",
        "cancer_type",
        "tumor_location",
        "modality",
        "license",
    }
    assert set(tools["get_viewer_url"].input_schema["properties"]) == {"series_uid", "study_uid", "viewer"}
    assert "download_dir" in tools["estimate_size"].input_schema["properties"]
    assert {"format", "path"} <= set(tools["export_manifest"].input_schema["properties"])
    for name, tool in tools.items():
        assert tool.output_schema is not None, name
        assert tool.description and "Call this" in tool.description, name
        expected_read_only = name != "export_manifest"
        assert tool.annotations.read_only_hint is expected_read_only, name


async def test_as_a_new_user_find_non_commercial_data_size_it_view_it_and_cite_it(download_root):
    async with Client(server_from_environment()) as client:
        # 1. Which breast collections exist, and which are non-commercial?
        found = await client.call_tool("list_collections", {"tumor_location": "breast", "license": "NC"})
        assert not found.is_error
        nc_ids = [c["collection_id"] for c in found.structured_content["collections"]]
        expected = truth(
            "SELECT collection_id FROM {collections} WHERE tumor_locations ILIKE '%breast%' "
            "AND collection_id IN (SELECT collection_id FROM {index} WHERE license_short_name ILIKE '%NC%')"
        )
        assert sorted(nc_ids) == sorted(r[0] for r in expected) and "duke_breast_cancer_mri" in nc_ids

        # 2. The cohort: Duke MR images (no derived data). May it be used commercially?
        cohort = {"collection_ids": ["duke_breast_cancer_mri"], "analysis_results": "exclude"}
        licenses = await client.call_tool("check_licenses", cohort)
        report = licenses.structured_content
        assert report["commercial_use"] == "not allowed"
        assert "duke_breast_cancer_mri" in report["verdict"]

        # 3. How big is it, and does it fit in a folder of the download root?
        size = await client.call_tool("estimate_size", {**cohort, "download_dir": "duke"})
        (n, mb) = truth(
            "SELECT count(*), sum(series_size_MB) FROM {index} "
            "WHERE collection_id = 'duke_breast_cancer_mri' AND analysis_result_id IS NULL"
        )[0]
        est = size.structured_content
        assert est["series_count"] == n and est["total_size_MB"] == pytest.approx(mb, abs=0.01)
        assert est["disk"]["download_dir"].startswith(str(download_root.resolve()))

        # 4. Open one series in the viewer.
        series_uid, study_uid = truth(
            "SELECT SeriesInstanceUID, StudyInstanceUID FROM {index} "
            "WHERE collection_id = 'duke_breast_cancer_mri' AND analysis_result_id IS NULL "
            "ORDER BY SeriesInstanceUID LIMIT 1"
        )[0]
        view = await client.call_tool("get_viewer_url", {"series_uid": series_uid})
        (link,) = view.structured_content["links"]
        assert link["url"] == (
            "https://viewer.imaging.datacommons.cancer.gov/v3/viewer/"
            f"?StudyInstanceUIDs={study_uid}&initialSeriesInstanceUID={series_uid}"
        )

        # 5. Cite it.
        cite = await client.call_tool("get_citations", {**cohort, "format": "bibtex"})
        dois = {
            d.lower()
            for (d,) in truth(
                "SELECT DISTINCT source_DOI FROM {index} WHERE collection_id = 'duke_breast_cancer_mri' "
                "AND analysis_result_id IS NULL"
            )
        }
        entries = cite.structured_content["entries"]
        assert {e["doi"].lower() for e in entries if e["kind"] == "dataset"} == dois
        assert "10.1148/rg.230180" in cite.structured_content["bibliography"]


async def test_manifest_tool_writes_inside_the_root_only(download_root):
    async with Client(server_from_environment()) as client:
        ok = await client.call_tool(
            "export_manifest", {"collection_ids": ["4d_lung"], "format": "csv", "path": "cohorts/lung.csv"}
        )
        assert not ok.is_error
        assert (download_root / "cohorts" / "lung.csv").is_file()
        refused = await client.call_tool(
            "export_manifest", {"collection_ids": ["4d_lung"], "path": "../../x.txt"}
        )
        assert refused.is_error and "download root" in refused.content[0].text
        inline = await client.call_tool("export_manifest", {"collection_ids": ["4d_lung"]})
        assert inline.is_error and "path=" in inline.content[0].text


@pytest.mark.parametrize(
    ("tool", "args", "message"),
    [
        ("check_licenses", {}, "Empty selection"),
        ("check_licenses", {"collection_ids": ["tcga-luad"]}, "did you mean 'tcga_luad'"),
        ("estimate_size", {"series_uids": ["not-a-uid"]}, "not a DICOM UID"),
        (
            "estimate_size",
            {"collection_ids": ["4d_lung"], "download_dir": "/etc"},
            "outside the download root",
        ),
        ("get_citations", {"sql": "SELECT PatientID FROM index"}, "SeriesInstanceUID column"),
        ("get_dicomweb_urls", {"collection_ids": ["nlst"]}, "at most 100,000"),
        ("get_viewer_url", {"series_uid": "1.2.3.4.5.6"}, "Unknown series_uid"),
        ("get_viewer_url", {}, "Give series_uid"),
        ("list_collections", {"cancer_type": "zzzz qqqq"}, "No collection has cancer_type"),
        ("export_manifest", {"sql": "DROP TABLE index"}, "SELECT"),
    ],
)
async def test_bad_input_reaches_the_assistant_as_an_actionable_error(tool, args, message):
    async with Client(server_from_environment()) as client:
        result = await client.call_tool(tool, args)
    assert result.is_error
    assert message in result.content[0].text
    assert "Traceback" not in result.content[0].text


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("get_citations", {"collection_ids": ["4d_lung"], "format": "mla"}),
        ("get_viewer_url", {"series_uid": "1.2", "viewer": "weasis"}),
        ("check_licenses", {"collection_ids": ["4d_lung"], "analysis_results": "maybe"}),
        ("export_manifest", {"collection_ids": ["4d_lung"], "format": "json"}),
    ],
)
async def test_values_outside_the_allowed_choices_are_refused(tool, args):
    async with Client(server_from_environment()) as client:
        result = await client.call_tool(tool, args)
    assert result.is_error
