"""Cohorts from IDC portal exports, and "as of" an earlier release, on the real bundled data.

No network: the plans are checked, not fetched. The expected versions come from plain DuckDB over the
bundled parquet (tests/parquet.py), not from our catalog.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from idc_mcp.cohorts import store
from idc_mcp.cohorts.format import CohortError
from idc_mcp.download.plan import DEFAULT_TEMPLATE, plan_series
from idc_mcp.tools import cohorts
from idc_mcp.tools.selection import Selection, resolve_selection
from tests.isolation import fingerprint
from tests.parquet import parquet_sql

RELEASE = 19  # a release whose versions many series have since replaced
# 20 series (two per collection) that prior_versions_index shows served at RELEASE in a version that a
# later release revised: exactly one prior version covers RELEASE, and the index's version is newer.
REVISED = parquet_sql(
    f"""
    SELECT p.SeriesInstanceUID, p.crdc_series_uuid, p.aws_bucket, i.crdc_series_uuid AS now
    FROM prior_versions_index p JOIN index i USING (SeriesInstanceUID)
    WHERE p.min_idc_version <= {RELEASE} AND p.max_idc_version >= {RELEASE}
      AND i.series_revised_idc_version > {RELEASE}
    QUALIFY count(*) OVER (PARTITION BY p.SeriesInstanceUID) = 1
        AND row_number() OVER (PARTITION BY p.collection_id ORDER BY p.SeriesInstanceUID) <= 2
    ORDER BY p.collection_id, p.SeriesInstanceUID LIMIT 20
    """
)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("IDC_MCP_DOWNLOAD_ROOT", str(tmp_path / "downloads"))
    return tmp_path / "downloads"


@pytest.fixture
def own_catalog(root: Path, make_catalog, built_catalog):
    return make_catalog()


def test_a_cohort_as_of_an_earlier_release_resolves_to_the_versions_that_release_served(own_catalog, root):
    assert len(REVISED) == 20 and all(old != now for _, old, _, now in REVISED)
    csv_text = "SeriesInstanceUID,idc_data_version\n" + "".join(f"{uid},v{RELEASE}\n" for uid, *_ in REVISED)
    saved = cohorts.import_cohort(own_catalog, root, "as_of", "", csv_text, "export.csv", False)
    assert saved.idc_release == RELEASE and saved.member_count == 20
    plans = plan_series(
        own_catalog, resolve_selection(own_catalog, Selection(cohort="as_of")), DEFAULT_TEMPLATE
    )
    assert {p.series_uid: (p.crdc_series_uuid, p.bucket) for p in plans} == {
        uid: (old, bucket) for uid, old, bucket, _ in REVISED
    }
    report = cohorts.compare_cohort(own_catalog, root, "as_of")
    assert report.revised_count == 20 and {r.current_crdc_series_uuid for r in report.revised} == {
        now for *_, now in REVISED
    }


def test_a_series_current_at_the_release_keeps_its_current_version(own_catalog, root):
    ((uid, uuid),) = parquet_sql(
        f"SELECT SeriesInstanceUID, crdc_series_uuid FROM index "
        f"WHERE series_revised_idc_version <= {RELEASE} "
        "AND series_init_idc_version <= ? ORDER BY 1 LIMIT 1",
        [RELEASE],
    )
    export = json.dumps({"idc_data_version": f"v{RELEASE}", "series": [uid]})
    cohorts.import_cohort(own_catalog, root, "json", "", export, "export.json", False)
    assert [m.crdc_series_uuid for m in store.load(root, "json").members] == [uuid]


def test_an_s5cmd_manifest_is_imported_at_the_versions_it_names(own_catalog, root):
    current = parquet_sql(
        "SELECT series_aws_url, SeriesInstanceUID FROM index WHERE collection_id = 'rider_pilot' "
        "ORDER BY 2 LIMIT 2"
    )
    old_uid, old_uuid, bucket, _ = REVISED[0]
    manifest = (
        f"# IDC manifest; idc_data_version: v{RELEASE}\n"
        + "".join(f"cp {url} .\n" for url, _ in current)
        + f'cp "s3://{bucket}/{old_uuid}/*" ./old\n'
    )
    saved = cohorts.import_cohort(own_catalog, root, "manifest", "", manifest, "manifest.s5cmd", False)
    members = {m.SeriesInstanceUID: m.crdc_series_uuid for m in store.load(root, "manifest").members}
    assert saved.idc_release == RELEASE
    assert members == {**{uid: url.split("/")[3] for url, uid in current}, old_uid: old_uuid}


def test_unknown_and_unreadable_lines_are_reported_by_line_and_nothing_is_saved(own_catalog, root):
    ((url,),) = parquet_sql("SELECT series_aws_url FROM index ORDER BY SeriesInstanceUID LIMIT 1")
    manifest = (
        "# a manifest\n"
        f"cp {url} .\n"
        "cp s3://idc-open-data/00000000-0000-4000-8000-000000000000/* .\n"
        "rm -rf /\n"
    )
    store.folder(root)
    before = fingerprint(root)
    with pytest.raises(CohortError) as refused:
        cohorts.import_cohort(own_catalog, root, "bad", "", manifest, "manifest.s5cmd", False)
    message = str(refused.value)
    assert "2 of 3 entries cannot be imported; nothing was saved" in message
    assert "line 3: crdc_series_uuid 00000000-0000-4000-8000-000000000000 is unknown" in message
    assert "line 4: not a 'cp s3://" in message
    assert fingerprint(root) == before


def test_a_series_the_release_did_not_serve_is_named(own_catalog, root):
    ((uid,),) = parquet_sql(
        "SELECT SeriesInstanceUID FROM index WHERE series_init_idc_version = 25 ORDER BY 1 LIMIT 1"
    )
    with pytest.raises(
        CohortError, match=rf"line 2: SeriesInstanceUID {uid} is unknown: release 10 did not serve it"
    ):
        cohorts.import_cohort(
            own_catalog, root, "x", "", f"SeriesInstanceUID\n{uid}\n# idc_data_version: v10\n", "e.csv", False
        )


def test_an_export_mixing_releases_is_refused(own_catalog, root):
    uids = [r[0] for r in REVISED[:2]]
    text = f"SeriesInstanceUID,idc_data_version\n{uids[0]},v18\n{uids[1]},v19\n"
    with pytest.raises(CohortError, match=r"mixes IDC data versions \[18, 19\]"):
        cohorts.import_cohort(own_catalog, root, "x", "", text, "e.csv", False)


def test_an_export_file_is_read_only_inside_the_download_root(root, tmp_path):
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("SeriesInstanceUID\n1.2.3\n")
    with pytest.raises(Exception, match="outside the download root"):
        cohorts.read_export(root, str(outside), None)
