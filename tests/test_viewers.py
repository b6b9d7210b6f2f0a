"""Viewer links and DICOMweb URLs: formats from the issue, choices from the data, unknown UIDs refused."""

import pytest

from idc_mcp.tools.selection import Selection, SelectionError
from idc_mcp.tools.viewers import DICOMWEB_ROOT, MAX_DICOMWEB_URLS, get_dicomweb_urls, get_viewer_url
from tests.parquet import truth

HOST = "https://viewer.imaging.datacommons.cancer.gov"


@pytest.fixture(scope="module")
def ct():
    return truth(
        "SELECT StudyInstanceUID, SeriesInstanceUID, series_aws_url FROM {index} WHERE collection_id = "
        "'nsclc_radiomics' AND Modality = 'CT' ORDER BY SeriesInstanceUID LIMIT 2"
    )


@pytest.fixture(scope="module")
def sm():
    return truth(
        "SELECT StudyInstanceUID, SeriesInstanceUID FROM {index} WHERE Modality = 'SM' "
        "ORDER BY SeriesInstanceUID LIMIT 1"
    )[0]


def test_auto_picks_ohif_v3_for_radiology(catalog, ct):
    study, series, _ = ct[0]
    (link,) = get_viewer_url(catalog, series).links
    assert link.viewer == "ohif_v3"
    assert link.url == f"{HOST}/v3/viewer/?StudyInstanceUIDs={study}&initialSeriesInstanceUID={series}"
    assert link.study_uid == study


def test_auto_picks_slim_for_slide_microscopy(catalog, sm):
    study, series = sm
    (link,) = get_viewer_url(catalog, series).links
    assert link.url == f"{HOST}/slim/studies/{study}/series/{series}"
    (study_link,) = get_viewer_url(catalog, study_uid=study).links
    assert study_link.url == f"{HOST}/slim/studies/{study}" and study_link.series_uid is None


def test_explicit_viewers_use_their_formats(catalog, ct):
    study, series, aws = ct[0]
    assert get_viewer_url(catalog, series, viewer="ohif_v2").links[0].url == (
        f"{HOST}/viewer/{study}?SeriesInstanceUID={series}"
    )
    assert get_viewer_url(catalog, study_uid=study, viewer="ohif_v2").links[0].url == f"{HOST}/viewer/{study}"
    assert get_viewer_url(catalog, study_uid=study, viewer="ohif_v3").links[0].url == (
        f"{HOST}/v3/viewer/?StudyInstanceUIDs={study}"
    )
    volview = get_viewer_url(catalog, series, viewer="volview").links[0].url
    assert volview == f"https://volview.kitware.app/?urls=[{aws.removesuffix('/*')}]"


def test_slim_on_a_ct_study_comes_with_a_note(catalog, ct):
    result = get_viewer_url(catalog, ct[0][1], viewer="slim")
    assert any("prefer ohif_v3" in n for n in result.notes)


def test_several_series_get_one_link_each(catalog, ct):
    result = get_viewer_url(catalog, [ct[0][1], ct[1][1]])
    assert [link.series_uid for link in result.links] == [ct[0][1], ct[1][1]]
    assert [link.study_uid for link in result.links] == [ct[0][0], ct[1][0]]


def test_too_many_series_are_refused(catalog, ct):
    with pytest.raises(SelectionError, match="at most 50"):
        get_viewer_url(catalog, [ct[0][1]] * 1 + [f"1.2.3.{i}" for i in range(50)])


def test_unknown_series_is_refused(catalog):
    with pytest.raises(SelectionError, match="Unknown series_uid: '1.2.3.4.5'"):
        get_viewer_url(catalog, "1.2.3.4.5")


def test_unknown_study_is_refused(catalog):
    with pytest.raises(SelectionError, match="Unknown study_uid"):
        get_viewer_url(catalog, study_uid="1.2.3.4.5")


def test_malformed_uid_is_refused(catalog):
    with pytest.raises(SelectionError, match="not a DICOM UID"):
        get_viewer_url(catalog, "javascript:alert(1)")
    with pytest.raises(SelectionError, match="not a DICOM UID"):
        get_viewer_url(catalog, study_uid="1.2&x=<script>")


def test_series_outside_the_given_study_is_refused(catalog, ct, sm):
    with pytest.raises(SelectionError, match="not in study_uid"):
        get_viewer_url(catalog, ct[0][1], study_uid=sm[0])


def test_nothing_given_is_refused(catalog):
    with pytest.raises(SelectionError, match="Give series_uid"):
        get_viewer_url(catalog)


def test_bad_viewer_is_refused(catalog, ct):
    with pytest.raises(SelectionError, match="viewer must be"):
        get_viewer_url(catalog, ct[0][1], viewer="weasis")  # type: ignore[arg-type]


def test_dicomweb_urls_cover_the_selection(catalog):
    rows = truth(
        "SELECT StudyInstanceUID, SeriesInstanceUID FROM {index} WHERE collection_id = 'qin_breast' "
        "AND analysis_result_id IS NULL"
    )
    result = get_dicomweb_urls(catalog, Selection(collection_ids=["qin_breast"], analysis_results="exclude"))
    assert result.series_count == len(rows)
    expected = {f"{DICOMWEB_ROOT}/studies/{st}/series/{se}" for st, se in rows}
    assert len(result.urls) == min(len(rows), MAX_DICOMWEB_URLS)
    assert {u.url for u in result.urls} <= expected
    assert result.truncated is (len(rows) > MAX_DICOMWEB_URLS)
    assert "quota" in result.note and "not bulk download" in result.note
    assert result.urls[0].url.startswith(
        "https://proxy.imaging.datacommons.cancer.gov/current/viewer-only-no-downloads-see-tinyurl-dot-com-"
        "slash-3j3d9jyp/dicomWeb/studies/"
    )


def test_dicomweb_list_is_bounded_and_says_so(catalog):
    result = get_dicomweb_urls(catalog, Selection(collection_ids=["4d_lung"]))
    (total,) = truth("SELECT count(*) FROM {index} WHERE collection_id = '4d_lung'")[0]
    assert result.series_count == total > MAX_DICOMWEB_URLS
    assert len(result.urls) == MAX_DICOMWEB_URLS and result.truncated
    assert f"{MAX_DICOMWEB_URLS} of {total:,}" in result.note
