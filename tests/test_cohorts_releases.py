"""A cohort across IDC releases: saved at this release, compared with and downloaded from the next.

The "next release" is a synthetic catalog (tests/releases.py) in which some of a saved cohort's members
were revised (new crdc_series_uuid, higher series_revised_idc_version), some removed (only in
prior_versions_index) and one series added. The cohort must name each correctly and still fetch every
member at the version it saved, from the local S3 mirror that holds those versions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from idc_mcp.catalog.database import Catalog
from idc_mcp.config import load_settings
from idc_mcp.download import engine
from idc_mcp.download.engine import Options
from idc_mcp.download.plan import DEFAULT_TEMPLATE, plan_series
from idc_mcp.tools import cohorts, manifest
from idc_mcp.tools.selection import Selection, SelectionError, resolve_selection
from tests.parquet import parquet_sql
from tests.releases import NextRelease, build_next_release


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def today(built_catalog: Path, root: Path) -> Catalog:
    """The catalog of this release, with the test's download root (where its cohorts are saved)."""
    catalog = Catalog(load_settings(download_root=root))
    yield catalog
    catalog.close()


@pytest.fixture(scope="module")
def saved(today: Catalog, root: Path, s3_mirror) -> dict[str, str]:
    """Two cohorts saved at this release: the mirror's series, and a query (one collection's series)."""
    uids = [s.uid for s in s3_mirror.series]
    cohorts.save_cohort(today, root, "mirror", "the mirrored series", Selection(series_uids=uids), False)
    collection = next(s for s in s3_mirror.series if s.modality == "CT").collection_id
    sql = f"SELECT SeriesInstanceUID FROM index WHERE collection_id = '{collection}' AND Modality = 'CT'"
    cohorts.save_cohort(today, root, "query", "CT of one collection", Selection(sql=sql), False)
    return {s.uid: s.crdc_series_uuid for s in s3_mirror.series}


@pytest.fixture(scope="module")
def next_release(built_catalog, tmp_path_factory, root, s3_mirror, saved) -> NextRelease:
    series = s3_mirror.series
    ct = next(s for s in series if s.modality == "CT")
    made = build_next_release(
        built_catalog,
        tmp_path_factory.mktemp("next-release-cache"),
        root,
        collections=sorted({s.collection_id for s in series}),
        revised=[series[0].uid, series[4].uid],  # an RTSTRUCT and an MG
        removed=[series[1].uid, series[3].uid],
        added_from=ct.uid,
    )
    yield made
    made.catalog.close()


def test_compare_names_each_member_unchanged_revised_or_removed(next_release, root, s3_mirror, saved):
    series = s3_mirror.series
    report = cohorts.compare_cohort(next_release.catalog, root, "mirror")
    assert (report.saved_release, report.current_release) == (next_release.release - 1, next_release.release)
    assert {r.SeriesInstanceUID: r.current_crdc_series_uuid for r in report.revised} == next_release.revised
    for r in report.revised:
        assert r.saved_crdc_series_uuid == saved[r.SeriesInstanceUID]
        assert r.revised_in_release == next_release.release
    assert {r.SeriesInstanceUID for r in report.removed} == {series[1].uid, series[3].uid}
    assert all(r.available and r.last_release == next_release.release - 1 for r in report.removed)
    assert report.unchanged == len(series) - 4 and report.unavailable == []
    assert report.would_add is None  # a list of series_uids: re-running it adds nothing


def test_compare_of_a_query_cohort_says_what_rerunning_it_adds(next_release, root):
    report = cohorts.compare_cohort(next_release.catalog, root, "query")
    assert report.would_add == next_release.added and report.would_add_count == 1


def test_the_saved_cohort_is_planned_and_downloaded_at_its_saved_versions(
    next_release, root, s3_mirror, saved
):
    catalog = next_release.catalog
    plans = plan_series(catalog, resolve_selection(catalog, Selection(cohort="mirror")), DEFAULT_TEMPLATE)
    assert {p.series_uid: p.crdc_series_uuid for p in plans} == saved  # never the revised versions
    assert {p.series_uid: p.bucket for p in plans} == {s.uid: s.bucket for s in s3_mirror.series}
    # And the bytes: every object of every saved version, from the mirror (which has no other version).
    options = Options(endpoint_url=s3_mirror.endpoint, connect_timeout_s=2, read_timeout_s=5)
    out = engine.download(catalog, Selection(cohort="mirror"), root, options, download_dir="reproduced")
    assert out.files_total == out.files_downloaded == s3_mirror.total_files
    got = {p.name: p.read_bytes() for p in (root / "reproduced").rglob("*.dcm")}
    assert got == {k.split("/")[-1]: d for s in s3_mirror.series for k, d in s.objects.items()}


def test_the_manifest_of_the_saved_cohort_names_its_saved_versions(next_release, root, saved):
    text, count, _ = manifest.render(next_release.catalog, Selection(cohort="mirror"), "s5cmd", "http://x")
    urls = [line.split()[1] for line in text.splitlines() if line.startswith("cp ")]
    assert count == len(saved) and sorted(u.split("/")[3] for u in urls) == sorted(saved.values())


def test_a_member_no_release_serves_is_reported_by_name_never_replaced(built_catalog, tmp_path, s3_mirror):
    root = tmp_path / "downloads"
    today = Catalog(load_settings(download_root=root))
    gone = s3_mirror.series[0]
    try:
        cohorts.save_cohort(
            today, root, "c", "", Selection(series_uids=[s.uid for s in s3_mirror.series]), False
        )
    finally:
        today.close()
    later = build_next_release(
        built_catalog,
        tmp_path / "cache",
        root,
        [s.collection_id for s in s3_mirror.series],
        withdrawn=[gone.uid],
    )
    try:
        with pytest.raises(SelectionError, match=rf"no longer served .*{gone.uid}.*not replaced"):
            resolve_selection(later.catalog, Selection(cohort="c"))
        assert cohorts.compare_cohort(later.catalog, root, "c").unavailable == [gone.uid]
        copy = cohorts.save_cohort(later.catalog, root, "c_available", "", Selection(cohort="c"), False)
        assert copy.member_count == len(s3_mirror.series) - 1 and gone.uid in copy.notes[0]
    finally:
        later.catalog.close()


def test_whats_new_since_a_release_counts_added_and_revised_series(next_release, s3_mirror, catalog):
    collection = sorted({s.collection_id for s in s3_mirror.series})
    new = cohorts.whats_new(
        next_release.catalog, Selection(collection_ids=collection), next_release.release - 1
    )
    assert new.added_count == 1 and new.revised_count == 2
    assert set(new.series_uids) == {*next_release.added, *next_release.revised}
    # On the real catalog: what the bundled index says was added or revised after release 20.
    real = cohorts.whats_new(catalog, Selection(collection_ids=["nlst"]), 20)
    ((added, revised),) = parquet_sql(
        "SELECT count(*) FILTER (series_init_idc_version > 20), "
        "count(*) FILTER (series_init_idc_version <= 20 "
        "AND series_revised_idc_version > 20) FROM index WHERE collection_id = 'nlst'"
    )
    assert (real.added_count, real.revised_count) == (added, revised)


def test_a_member_is_previewed_at_its_saved_version(next_release, s3_mirror):
    from idc_mcp.preview.errors import PreviewError
    from idc_mcp.preview.service import make_preview

    revised = next(s for s in s3_mirror.series if s.uid in next_release.revised and s.modality == "MG")
    shown = make_preview(next_release.catalog, s3_mirror.endpoint, None, revised.uid, cohort="mirror")
    assert shown.info.series_uid == revised.uid and shown.info.bytes_fetched > 0
    # Without the cohort, the current (revised) version is previewed: the mirror does not hold it.
    with pytest.raises(PreviewError):
        make_preview(next_release.catalog, s3_mirror.endpoint, None, revised.uid)
    with pytest.raises(PreviewError, match="is not a member of cohort 'mirror'"):
        make_preview(next_release.catalog, s3_mirror.endpoint, None, next_release.added[0], cohort="mirror")


def test_tools_that_read_the_index_say_which_members_they_leave_out(next_release, s3_mirror):
    from idc_mcp.tools import citations, licenses, sizes

    catalog, cohort = next_release.catalog, Selection(cohort="mirror")
    note = "2 member(s) of cohort 'mirror' are no longer in the current IDC release"
    report = licenses.check_licenses(catalog, cohort)
    assert report.series_count == len(s3_mirror.series) - 2 and any(note in n for n in report.notes)
    assert note in sizes.estimate_size(catalog, cohort, None, next_release.settings.download_root).summary
    assert any(note in n for n in citations.get_citations(catalog, cohort).notes)
