"""The cohort file and its folder: a documented, versioned format that is refused when tampered with.

Each refusal says what is wrong, and nothing else is read or written: the download root is
fingerprinted before and after (tests/isolation.py's fingerprint).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
from mcp import Client

from idc_mcp.cohorts import store
from idc_mcp.cohorts.format import SCHEMA_FILE, CohortError, json_schema, parse, to_text
from idc_mcp.tools import cohorts
from idc_mcp.tools.selection import Selection, SelectionError, resolve_selection
from tests.isolation import fingerprint
from tests.parquet import parquet_sql
from tests.servers import server_from_environment

UIDS = [
    r[0]
    for r in parquet_sql(
        "SELECT SeriesInstanceUID FROM index WHERE collection_id = 'rider_pilot' ORDER BY 1 LIMIT 6"
    )
]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("IDC_MCP_DOWNLOAD_ROOT", str(tmp_path / "downloads"))
    return tmp_path / "downloads"


@pytest.fixture
def own_catalog(root: Path, make_catalog, built_catalog):
    """A catalog whose settings name this test's download root (where cohorts are looked up)."""
    return make_catalog()


@pytest.fixture
def saved(own_catalog, root: Path) -> Path:
    cohorts.save_cohort(own_catalog, root, "rider", "six RIDER series", Selection(series_uids=UIDS), False)
    return store.path_of(root, "rider")


def test_the_json_schema_in_the_repo_is_the_models_schema():
    # One source of truth: the schema file is generated from the models, and must not drift from them.
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema()


def test_a_saved_file_validates_against_the_schema_and_reads_as_one_member_per_line(saved: Path):
    text = saved.read_text()
    jsonschema.validate(json.loads(text), json.loads(SCHEMA_FILE.read_text()))  # an independent validator
    member_lines = [line for line in text.splitlines() if '"SeriesInstanceUID"' in line]
    assert len(member_lines) == 6 and [
        json.loads(line.strip().rstrip(","))["SeriesInstanceUID"] for line in member_lines
    ] == sorted(UIDS)
    cohort = parse(text, "x")
    assert to_text(cohort) == text  # stable: saving again changes nothing (diff-able)
    rows = parquet_sql(
        "SELECT SeriesInstanceUID, crdc_series_uuid, instanceCount, license_short_name FROM index "
        "WHERE SeriesInstanceUID IN (SELECT unnest(?)) ORDER BY 1",
        [UIDS],
    )
    assert [
        (m.SeriesInstanceUID, m.crdc_series_uuid, m.instanceCount, m.license_short_name)
        for m in cohort.members
    ] == rows
    assert cohort.idc_release == parquet_sql("SELECT max(idc_version) FROM version_metadata_index")[0][0]
    assert cohort.definition.series_uids == UIDS


def test_saving_over_a_cohort_needs_overwrite(own_catalog, root: Path, saved: Path):
    before = saved.read_bytes()
    with pytest.raises(CohortError, match="already exists.*overwrite=true"):
        cohorts.save_cohort(own_catalog, root, "rider", "other", Selection(series_uids=UIDS[:2]), False)
    assert saved.read_bytes() == before
    cohorts.save_cohort(own_catalog, root, "rider", "other", Selection(series_uids=UIDS[:2]), True)
    assert store.load(root, "rider").member_count == 2


def _tamper(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["members"][0].update(crdc_series_uuid="00000000-0000-4000-8000-000000000000"),
         "do not match members_sha256"),
        (lambda d: d["members"].pop(), "member_count is 6 but the file lists 5"),
        (lambda d: d.update(format_version=2), "format_version 2; this idc-mcp reads version 1"),
        (lambda d: d.pop("members_sha256"), "members_sha256: Field required"),
        (lambda d: d["members"][0].pop("crdc_series_uuid"), r"members\.0\.crdc_series_uuid: Field required"),
        (lambda d: d.update(extra_field=1), "extra_field: Extra inputs are not permitted"),
        (lambda d: d.update(format="something-else"), "not a cohort file"),
        (lambda d: d.update(name="other"), "holds the cohort named 'other'"),
    ],
)  # fmt: skip
def test_a_hand_edited_or_corrupted_file_is_refused_with_what_is_wrong(
    own_catalog, root: Path, saved: Path, edit, message
):
    _tamper(saved, edit)
    before = fingerprint(root)
    with pytest.raises(SelectionError, match=message):
        resolve_selection(own_catalog, Selection(cohort="rider"))
    with pytest.raises(CohortError, match=message):
        store.load(root, "rider")
    assert fingerprint(root) == before  # nothing written, not even a repaired file


@pytest.mark.parametrize(
    "name", ["../rider", "rider/../../x", "/etc/passwd", "..", ".hidden", "a" * 65, "c:x", ""]
)
def test_a_name_that_is_a_path_is_refused_before_any_file_is_touched(
    own_catalog, root: Path, saved: Path, name
):
    before = fingerprint(root)
    with pytest.raises(CohortError, match="is not allowed"):
        cohorts.save_cohort(own_catalog, root, name, "", Selection(series_uids=UIDS), True)
    with pytest.raises(SelectionError, match="is not allowed"):
        resolve_selection(own_catalog, Selection(cohort=name))
    assert fingerprint(root) == before


def test_a_cohort_file_that_is_a_link_is_not_followed(own_catalog, root: Path, tmp_path: Path, saved: Path):
    # A link planted in the cohort folder must not make the server read (or write) what it points to.
    outside = tmp_path / "secret.json"
    outside.write_text(saved.read_text())
    os.symlink(outside, store.path_of(root, "planted"))
    with pytest.raises(CohortError, match="not a regular file"):
        store.load(root, "planted")
    with pytest.raises(CohortError, match="not a regular file"):
        cohorts.save_cohort(own_catalog, root, "planted", "", Selection(series_uids=UIDS), True)
    assert outside.read_text() == saved.read_text()


def test_cohort_is_used_alone(own_catalog, saved):
    with pytest.raises(SelectionError, match="cohort is used alone, not with collection_ids"):
        resolve_selection(own_catalog, Selection(cohort="rider", collection_ids=["rider_pilot"]))


def test_an_unknown_cohort_lists_the_saved_ones(own_catalog, saved):
    with pytest.raises(SelectionError, match=r"No cohort named 'ridr'.*saved cohorts: rider"):
        resolve_selection(own_catalog, Selection(cohort="ridr"))


# ---------------------------------------------------------------- through MCP
pytestmark = pytest.mark.anyio


async def test_tools_resources_and_the_cohort_argument_over_mcp(catalog, root: Path):
    # `catalog`: the process's catalog was opened before this test set its download root, as in a long
    # test run; the tools must look for cohorts where this session's settings say, not where it was.
    assert catalog.settings.download_root != root
    async with Client(server_from_environment()) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        for name in (
            "check_licenses",
            "estimate_size",
            "get_citations",
            "export_manifest",
            "download",
            "whats_new",
        ):
            assert "cohort" in tools[name].input_schema["properties"], name
        for name in ("save_cohort", "list_cohorts", "compare_cohort", "import_cohort", "whats_new"):
            assert "Call this" in (tools[name].description or ""), name
        saved = await client.call_tool(
            "save_cohort", {"name": "rider", "description": "d", "series_uids": UIDS}
        )
        assert not saved.is_error and saved.structured_content["member_count"] == 6
        again = await client.call_tool(
            "save_cohort", {"name": "rider", "description": "d", "series_uids": UIDS}
        )
        assert again.is_error and "overwrite=true" in again.content[0].text
        listed = await client.call_tool("list_cohorts", {})
        assert [c["name"] for c in listed.structured_content["cohorts"]] == ["rider"]
        uris = [str(r.uri) for r in (await client.list_resources()).resources]
        assert "idc://cohorts/rider" in uris
        text = (await client.read_resource("idc://cohorts/rider")).contents[0].text
        assert text == store.path_of(root, "rider").read_text()
        by_cohort = await client.call_tool("estimate_size", {"cohort": "rider"})
        by_uids = await client.call_tool("estimate_size", {"series_uids": UIDS})
        assert by_cohort.structured_content == by_uids.structured_content
