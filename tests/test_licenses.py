"""check_licenses: figures against the parquet, and verdicts derived from the license text."""

import pytest

from idc_mcp.tools.licenses import check_licenses, commercial_use_filter, license_terms
from idc_mcp.tools.selection import Selection
from tests.parquet import truth


@pytest.mark.parametrize(
    ("name", "commercial", "attribution"),
    [
        ("CC BY 4.0", "allowed", True),
        ("CC BY 3.0", "allowed", True),
        ("CC BY-NC 4.0", "not allowed", True),
        ("CC BY-NC 3.0", "not allowed", True),
        ("CC0 1.0", "allowed", False),
        ("National Library of Medicine Terms and Conditions; May 21, 2019", "check the terms", None),
        ("Some custom data use agreement", "check the terms", None),
    ],
)
def test_license_terms_are_derived_from_the_text(name, commercial, attribution):
    terms = license_terms(name)
    assert terms.commercial_use == commercial
    assert terms.attribution_required is attribution


def test_unknown_terms_are_never_guessed_permissive():
    assert license_terms(None, None, "https://example.org/terms").commercial_use == "check the terms"


def test_per_license_figures_match_the_parquet(catalog):
    report = check_licenses(catalog, Selection(collection_ids=["nsclc_radiomics", "qin_breast"]))
    expected = truth(
        "SELECT license_short_name, count(*), sum(series_size_MB), "
        "list(DISTINCT collection_id ORDER BY collection_id) FROM {index} "
        "WHERE collection_id IN ('nsclc_radiomics', 'qin_breast') GROUP BY 1"
    )
    got = {g.license: g for g in report.licenses}
    assert set(got) == {r[0] for r in expected}
    for name, count, size, collections in expected:
        assert got[name].series_count == count
        assert got[name].total_size_MB == pytest.approx(size, abs=0.01)
        assert got[name].collections == collections
    assert report.series_count == sum(r[1] for r in expected)


def test_non_commercial_collection_is_named_in_the_verdict(catalog):
    report = check_licenses(catalog, Selection(collection_ids=["duke_breast_cancer_mri", "4d_lung"]))
    (nc_series,) = truth(
        "SELECT count(*) FROM {index} WHERE collection_id IN ('duke_breast_cancer_mri', '4d_lung') "
        "AND license_short_name LIKE '%NC%'"
    )[0]
    assert report.commercial_use == "not allowed"
    assert report.non_commercial_collections == ["duke_breast_cancer_mri"]
    assert "1 collection is non-commercial: duke_breast_cancer_mri" in report.verdict
    assert f"{nc_series:,} of" in report.verdict
    # The one commercial-use recipe (licenses that allow it, by name), as the prompt and the skill give it.
    assert commercial_use_filter(catalog) in report.next_step and "NOT LIKE" not in report.next_step


def test_excluding_derived_data_changes_the_licenses(catalog):
    # Derived series in duke_breast_cancer_mri are CC BY 4.0; the images themselves are CC BY-NC 4.0.
    report = check_licenses(
        catalog, Selection(collection_ids=["duke_breast_cancer_mri"], analysis_results="exclude")
    )
    assert [g.license for g in report.licenses] == ["CC BY-NC 4.0"]


def test_commercially_usable_selection_says_attribution_is_required(catalog):
    report = check_licenses(catalog, Selection(collection_ids=["4d_lung"]))
    assert report.commercial_use == "allowed"
    assert "attribution" in report.verdict
    (group,) = report.licenses
    assert group.license_url == "https://creativecommons.org/licenses/by/3.0/"


def test_nlm_terms_ask_to_read_the_terms(catalog):
    report = check_licenses(catalog, Selection(collection_ids=["nlm_visible_human_project"]))
    assert report.commercial_use == "check the terms"
    assert report.check_terms_collections == ["nlm_visible_human_project"]
    (group,) = report.licenses
    assert group.license_url == "https://www.nlm.nih.gov/databases/download/terms_and_conditions.html"
    assert group.attribution_required is None


def test_license_url_agrees_with_the_license_name(catalog):
    # One source in the metadata lists 'CC BY-NC 3.0' with the CC BY URL; the report must not pass on
    # a URL that contradicts the name when a matching one exists.
    report = check_licenses(
        catalog,
        Selection(sql="SELECT SeriesInstanceUID FROM index WHERE license_short_name = 'CC BY-NC 3.0'"),
    )
    (group,) = report.licenses
    assert group.license_url == "https://creativecommons.org/licenses/by-nc/3.0/"


def test_an_all_non_commercial_selection_points_to_other_data(catalog):
    report = check_licenses(
        catalog, Selection(collection_ids=["duke_breast_cancer_mri"], analysis_results="exclude")
    )
    assert report.licenses and all(g.commercial_use == "not allowed" for g in report.licenses)
    assert "No series here may be used commercially" in report.next_step


def test_a_metadata_url_contradicting_the_license_name_is_not_passed_on(catalog):
    # phantom_fda's source metadata pairs 'CC BY-NC 3.0' with the CC BY 3.0 URL.
    (url,) = truth(
        "SELECT u.s.license.license_url FROM {collections}, unnest(sources) AS u(s) "
        "WHERE collection_id = 'phantom_fda'"
    )[0]
    assert url == "https://creativecommons.org/licenses/by/3.0/"
    report = check_licenses(catalog, Selection(collection_ids=["phantom_fda"]))
    (group,) = report.licenses
    assert group.license == "CC BY-NC 3.0" and group.commercial_use == "not allowed"
    assert group.license_url == "https://creativecommons.org/licenses/by-nc/3.0/"
    assert any(url in note for note in report.notes)


def test_a_repeated_check_runs_no_query(catalog, monkeypatch):
    # The catalog is read-only: one selection by IDs has one report (50 HTTP clients once ran four
    # queries each for the same collection).
    selection = Selection(collection_ids=["rider_pilot", "tcga_luad"], analysis_results="exclude")
    first = check_licenses(catalog, selection)

    def no_query(*_, **__):
        raise AssertionError("a repeated check_licenses ran a query")

    with monkeypatch.context() as patch:
        patch.setattr(catalog, "execute", no_query)
        again = check_licenses(
            catalog, Selection(collection_ids=["rider_pilot", "tcga_luad"], analysis_results="exclude")
        )
        assert again is first
    # Caller SQL may sample (random(), LIMIT without ORDER BY): its report is computed every time.
    by_sql = Selection(sql="SELECT SeriesInstanceUID FROM index WHERE collection_id = 'rider_pilot'")
    check_licenses(catalog, by_sql)
    with monkeypatch.context() as patch:
        patch.setattr(catalog, "execute", no_query)
        with pytest.raises(AssertionError, match="ran a query"):
            check_licenses(catalog, by_sql)


def test_arguments_that_cannot_key_a_report_are_still_refused_clearly(catalog):
    from idc_mcp.tools.selection import SelectionError

    with pytest.raises(SelectionError, match="collection_ids must be a list"):
        check_licenses(catalog, Selection(collection_ids={"tcga_luad": 1}))  # type: ignore[arg-type]
