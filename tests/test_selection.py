"""The shared selection: what it resolves to, and how every kind of bad input is refused."""

import pytest

from idc_mcp.tools.query import run_query
from idc_mcp.tools.selection import (
    MAX_SELECTION_SERIES,
    Selection,
    SelectionError,
    resolve_selection,
    selection_where,
)
from tests.parquet import truth

SM_SERIES = "1.2.826.0.1.3680043.8.498.56046203939823473875129608016149951794"


def test_collection_selection_matches_the_parquet(catalog):
    resolved = resolve_selection(catalog, Selection(collection_ids=["qin_breast", "4d_lung"]))
    expected = truth("SELECT SeriesInstanceUID FROM {index} WHERE collection_id IN ('qin_breast', '4d_lung')")
    assert sorted(resolved.series_uids) == sorted(r[0] for r in expected)


@pytest.mark.parametrize(
    ("mode", "predicate"),
    [("exclude", "analysis_result_id IS NULL"), ("only", "analysis_result_id IS NOT NULL")],
)
def test_analysis_results_tells_derived_series_apart(catalog, mode, predicate):
    # qin_breast holds images (CC BY 3.0) and derived series from analysis results (CC BY 4.0).
    resolved = resolve_selection(catalog, Selection(collection_ids=["qin_breast"], analysis_results=mode))
    (expected,) = truth(f"SELECT count(*) FROM {{index}} WHERE collection_id = 'qin_breast' AND {predicate}")[
        0
    ]
    assert resolved.count == expected > 0


def test_filters_combine_with_and(catalog):
    patient = truth("SELECT PatientID FROM {index} WHERE collection_id = 'qin_breast' LIMIT 1")[0][0]
    resolved = resolve_selection(catalog, Selection(collection_ids=["qin_breast"], patient_ids=[patient]))
    (expected,) = truth(
        "SELECT count(*) FROM {index} WHERE PatientID = ? AND collection_id = 'qin_breast'", [patient]
    )[0]
    assert resolved.count == expected


def test_sql_larger_than_the_cap_is_not_silently_cut(catalog):
    # The sql alone returns every series (about a million rows); intersected with one collection it must
    # still give the whole collection, not the part that happened to be in the first 100,001 rows.
    resolved = resolve_selection(
        catalog, Selection(collection_ids=["4d_lung"], sql="SELECT SeriesInstanceUID FROM index")
    )
    (expected,) = truth("SELECT count(*) FROM {index} WHERE collection_id = '4d_lung'")[0]
    assert resolved.count == expected


def test_sql_column_name_is_matched_case_insensitively(catalog):
    resolved = resolve_selection(
        catalog, Selection(sql="SELECT seriesinstanceuid FROM index WHERE collection_id = '4d_lung' LIMIT 3")
    )
    assert resolved.count == 3


def test_empty_selection_is_refused(catalog):
    with pytest.raises(SelectionError, match="Empty selection"):
        resolve_selection(catalog, Selection())


def test_unknown_collection_is_named_with_the_closest_ones(catalog):
    with pytest.raises(SelectionError) as err:
        resolve_selection(catalog, Selection(collection_ids=["TCGA-LUAD", "nlst"]))
    message = str(err.value)
    assert message.startswith("Unknown collection_ids: 'TCGA-LUAD' — did you mean 'tcga_luad'")
    assert "'nlst' —" not in message  # the known one is not reported
    assert "?. " not in message and "? Look values up" in message  # one end mark, not '?.'


def test_unknown_patient_gets_no_far_fetched_suggestion(catalog):
    # Found by a new-user trial: 'nobody' was answered "did you mean 'NoduleLayout_1'".
    assert truth("SELECT count(*) FROM {index} WHERE PatientID = 'nobody'")[0][0] == 0
    assert truth("SELECT count(*) FROM {index} WHERE PatientID LIKE 'NoduleLayout%'")[0][0] > 0
    with pytest.raises(SelectionError) as err:
        resolve_selection(catalog, Selection(patient_ids=["nobody"]))
    assert str(err.value).startswith("Unknown patient_ids: 'nobody'. Look values up with the query tool")


def test_unknown_patient_is_reported_not_dropped(catalog):
    with pytest.raises(SelectionError, match="Unknown patient_ids: 'NO-SUCH-PATIENT'"):
        resolve_selection(catalog, Selection(collection_ids=["4d_lung"], patient_ids=["NO-SUCH-PATIENT"]))


def test_series_removed_from_idc_points_to_prior_versions(catalog):
    removed = truth(
        "SELECT SeriesInstanceUID FROM read_parquet(?) WHERE SeriesInstanceUID NOT IN "
        "(SELECT SeriesInstanceUID FROM {index}) LIMIT 1",
        [str(__import__("idc_index_data").PRIOR_VERSIONS_INDEX_PARQUET_FILEPATH)],
    )[0][0]
    with pytest.raises(SelectionError, match="prior_versions_index"):
        resolve_selection(catalog, Selection(series_uids=[removed]))


@pytest.mark.parametrize(
    "bad",
    ["1.2.abc", "1..2", "1.2.3 ; DROP TABLE index", "1" * 65, ".1.2", "1.2."],
)
def test_malformed_uid_is_refused(catalog, bad):
    with pytest.raises(SelectionError, match="not a DICOM UID"):
        resolve_selection(catalog, Selection(series_uids=[bad]))


def test_malformed_study_uid_is_refused(catalog):
    with pytest.raises(SelectionError, match="study_uids value"):
        resolve_selection(catalog, Selection(study_uids=["study-1"]))


def test_empty_string_id_is_refused(catalog):
    with pytest.raises(SelectionError, match="empty"):
        resolve_selection(catalog, Selection(patient_ids=["  "]))


def test_too_many_ids_in_one_argument_is_refused(catalog):
    with pytest.raises(SelectionError, match="at most 10,000"):
        resolve_selection(catalog, Selection(patient_ids=[f"P{i}" for i in range(10_001)]))


def test_sql_without_series_column_is_refused_saying_so(catalog):
    with pytest.raises(SelectionError, match="SeriesInstanceUID column.*PatientID"):
        resolve_selection(catalog, Selection(sql="SELECT DISTINCT PatientID FROM index"))


def test_sql_is_validated_like_query(catalog):
    with pytest.raises(SelectionError, match="^sql: .*read_csv"):
        resolve_selection(catalog, Selection(sql="SELECT * FROM read_csv('/etc/passwd')"))
    with pytest.raises(SelectionError, match="^sql: .*SELECT"):
        resolve_selection(catalog, Selection(sql="DELETE FROM index"))


def test_sql_with_a_wrong_column_names_the_close_one(catalog):
    with pytest.raises(SelectionError, match="Modality"):
        resolve_selection(catalog, Selection(sql="SELECT SeriesInstanceUID FROM index WHERE Modalty = 'CT'"))


def test_selection_over_the_cap_is_refused_with_its_size(catalog):
    (total,) = truth("SELECT count(*) FROM {index} WHERE collection_id = 'nlst'")[0]
    assert total > MAX_SELECTION_SERIES
    with pytest.raises(SelectionError, match=f"{total:,} series"):
        resolve_selection(catalog, Selection(collection_ids=["nlst"]))


def test_selection_over_the_cap_offers_an_aggregate_query_that_runs(catalog):
    # Found by a new-user trial: "how big is NLST / what license?" was only refused, with no way to answer.
    with pytest.raises(SelectionError) as caught:
        resolve_selection(catalog, Selection(collection_ids=["nlst"]))
    sql = str(caught.value).split("without this cap: ", 1)[1]
    rows = run_query(catalog, sql).rows
    expected = truth(
        "SELECT collection_id, license_short_name, count(*), round(sum(series_size_MB) / 1000, 1) "
        "FROM {index} WHERE collection_id = 'nlst' GROUP BY ALL"
    )
    assert sorted(tuple(r.values()) for r in rows) == sorted(expected)


def test_values_that_exist_but_select_nothing_together_say_so(catalog):
    with pytest.raises(SelectionError, match="matches no series"):
        resolve_selection(catalog, Selection(series_uids=[SM_SERIES], collection_ids=["4d_lung"]))


def test_sql_with_a_wrong_value_names_the_right_one_not_each_value_exists(catalog):
    # Found by a new-user trial: Modality='CTs' got "Each value exists, but together they select nothing".
    assert truth("SELECT count(*) FROM {index} WHERE Modality = 'CTs'")[0][0] == 0
    assert truth("SELECT count(*) FROM {index} WHERE Modality = 'CT'")[0][0] > 0
    with pytest.raises(SelectionError) as caught:
        resolve_selection(
            catalog, Selection(sql="SELECT SeriesInstanceUID FROM index WHERE Modality = 'CTs'")
        )
    message = str(caught.value)
    assert message.startswith("sql selects no series on its own.")
    assert "Use Modality = 'CT' instead." in message
    assert "Each value exists" not in message


def test_sql_that_selects_series_but_not_with_the_ids_says_together(catalog):
    sql = "SELECT SeriesInstanceUID FROM index WHERE Modality = 'SM'"
    with pytest.raises(SelectionError, match="Each value exists, but together"):
        resolve_selection(catalog, Selection(sql=sql, collection_ids=["4d_lung"]))


def test_selection_where_picks_exactly_the_resolved_series(catalog):
    for selection in (
        Selection(collection_ids=["qin_breast"], analysis_results="only"),
        Selection(sql="SELECT SeriesInstanceUID FROM index WHERE collection_id = 'qin_breast'"),
    ):
        resolved = resolve_selection(catalog, selection)
        where, params = selection_where(resolved)
        rows = catalog.execute(f"SELECT SeriesInstanceUID FROM index WHERE {where}", params).rows
        assert sorted(r[0] for r in rows) == sorted(resolved.series_uids)


def test_a_sampling_sql_is_resolved_once(catalog):
    # random() would pick other series if the sql ran again; the tools must see the series resolved here.
    resolved = resolve_selection(
        catalog, Selection(sql="SELECT SeriesInstanceUID FROM index ORDER BY random() LIMIT 5")
    )
    where, params = selection_where(resolved)
    rows = catalog.execute(f"SELECT SeriesInstanceUID FROM index WHERE {where}", params).rows
    assert sorted(r[0] for r in rows) == sorted(resolved.series_uids) and len(rows) == 5
