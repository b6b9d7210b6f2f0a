"""list_collections: filters are case-insensitive substrings; figures come from the parquet."""

import re

import pytest

from idc_mcp.catalog.database import get_catalog
from idc_mcp.tools.collections import list_collections
from idc_mcp.tools.selection import SelectionError
from tests.parquet import truth


def test_all_collections_are_listed_with_parquet_figures(catalog):
    result = list_collections(catalog)
    (n,) = truth("SELECT count(*) FROM {collections}")[0]
    assert result.count == n and not result.truncated
    rows = truth(
        "SELECT collection_id, count(*), sum(series_size_MB), list(DISTINCT Modality ORDER BY Modality), "
        "list(DISTINCT license_short_name ORDER BY license_short_name) FROM {index} GROUP BY 1"
    )
    got = {c.collection_id: c for c in result.collections}
    for cid, series, mb, modalities, licenses in rows:
        assert got[cid].series_count == series
        assert got[cid].total_size_MB == pytest.approx(mb, abs=0.01)
        assert got[cid].modalities == modalities
        assert got[cid].licenses == licenses


def test_filters_are_case_insensitive_substrings_combined_with_and(catalog):
    result = list_collections(catalog, cancer_type="LUNG", modality="sm")
    rows = truth(
        "SELECT collection_id FROM {collections} WHERE cancer_types ILIKE '%lung%' AND collection_id IN "
        "(SELECT collection_id FROM {index} WHERE Modality ILIKE '%sm%')"
    )
    assert sorted(c.collection_id for c in result.collections) == sorted(r[0] for r in rows)
    assert result.count == len(rows) > 0


def test_license_filter_finds_non_commercial_collections(catalog):
    result = list_collections(catalog, license="by-nc")
    rows = truth("SELECT DISTINCT collection_id FROM {index} WHERE license_short_name ILIKE '%by-nc%'")
    assert sorted(c.collection_id for c in result.collections) == sorted(r[0] for r in rows)


def test_dois_come_from_the_collection_sources(catalog):
    (c,) = [
        c
        for c in list_collections(catalog, tumor_location="lung").collections
        if c.collection_id == "4d_lung"
    ]
    (doi,) = truth(
        "SELECT u.s.source_doi FROM {collections}, unnest(sources) AS u(s) WHERE collection_id = '4d_lung'"
    )[0]
    assert c.dois == [doi]
    assert c.subjects == truth("SELECT subjects FROM {collections} WHERE collection_id = '4d_lung'")[0][0]


def test_a_filter_that_matches_nothing_suggests_close_values(catalog):
    with pytest.raises(SelectionError, match="Close values: 'Lung Cancer'"):
        list_collections(catalog, cancer_type="lnug cancr")


def test_a_modality_filter_that_matches_nothing_points_to_the_modalities(catalog):
    # Found by a new-user trial: the hint pointed to cancer_types/tumor_locations for a modality typo.
    with pytest.raises(SelectionError) as caught:
        list_collections(catalog, modality="CTs")
    message = str(caught.value)
    assert "Close values: 'CT'" in message
    assert message.endswith("Call list_collections() without modality to see the values in use.")
    assert "cancer_types" not in message


def test_filters_that_only_conflict_together_return_an_empty_list_with_a_note(catalog):
    result = list_collections(catalog, tumor_location="brain", modality="MG")
    assert result.count == 0 and result.notes


def test_overlong_filter_is_refused(catalog):
    with pytest.raises(SelectionError, match="longer than"):
        list_collections(catalog, modality="x" * 500)


@pytest.mark.parametrize("argument", ["cancer_type", "tumor_location", "modality", "license"])
def test_each_filter_that_matches_nothing_is_refused_by_name(catalog, argument):
    with pytest.raises(SelectionError, match=f"No collection has {argument} containing 'qqqzzz'"):
        list_collections(catalog, **{argument: "qqqzzz"})


def test_derived_series_are_counted_separately(catalog):
    (c,) = [c for c in list_collections(catalog).collections if c.collection_id == "qin_breast"]
    (derived,) = truth(
        "SELECT count(*) FROM {index} WHERE collection_id = 'qin_breast' AND analysis_result_id IS NOT NULL"
    )[0]
    assert c.analysis_series_count == derived > 0


def test_topic_search_finds_a_collection_by_its_tumor_location_and_says_which_field_matched():
    # cptac_ccrcc: cancer type 'Clear Cell Carcinoma', tumor location 'Kidney'.
    result = list_collections(get_catalog(), topic="kidney", modality="CT")
    found = {c.collection_id: c.matched_fields for c in result.collections}
    assert found["cptac_ccrcc"] == ["tumor_locations"]
    assert result.searched_fields == [
        "collection_id",
        "collection_name",
        "cancer_types",
        "tumor_locations",
        "modalities",
        "description",
    ]
    assert all("CT" in c.modalities for c in result.collections)
    assert all(fields for fields in found.values())


def test_cancer_type_filter_says_what_a_topic_search_would_add():
    result = list_collections(get_catalog(), cancer_type="kidney", modality="CT")
    assert "cptac_ccrcc" not in {c.collection_id for c in result.collections}  # the field filter stays
    (note,) = result.notes
    assert "cptac_ccrcc (tumor_locations)" in note
    assert "list_collections(topic='kidney', modality='CT')" in note


def test_topic_matches_words_not_fragments_inside_words():
    ids = {c.collection_id for c in list_collections(get_catalog(), topic="lung").collections}
    assert "nlst" in ids or "lidc_idri" in ids
    with pytest.raises(SelectionError, match="No collection mentions 'ung'"):
        list_collections(get_catalog(), topic="ung")


@pytest.mark.anyio
async def test_topic_search_through_the_mcp_tool():
    from mcp import Client

    from tests.servers import server_from_environment

    async with Client(server_from_environment()) as client:
        result = await client.call_tool("list_collections", {"topic": "kidney"})
    assert not result.is_error
    assert any(c["collection_id"] == "cptac_ccrcc" for c in result.structured_content["collections"])


# -- short and symbolic terms (issue 22, item 5) ----------------------------------------------------------
def test_a_symbolic_term_matches_as_a_whole_term_not_as_its_letters():
    # topic="H&E" once returned 145 of 179 collections (its letters 'h' and 'e' start many words),
    # the first a CT/MR/PT collection.
    result = list_collections(get_catalog(), topic="H&E")
    expected = truth(
        "SELECT collection_id FROM {collections} "
        "WHERE regexp_matches(description, '(^|[^A-Za-z0-9])H ?& ?E([^A-Za-z0-9]|$)', 'i')"
    )
    assert {c.collection_id for c in result.collections} == {r[0] for r in expected}
    assert 0 < result.count < 30
    assert all("SM" in c.modalities for c in result.collections)  # slides, stained
    assert not [n for n in result.notes if "most of the catalog" in n]


def test_a_short_term_is_not_matched_inside_longer_words():
    # 'T2' must not find 'T2w...' nor words starting with 't2'; every collection found holds it whole.
    ids = {c.collection_id for c in list_collections(get_catalog(), topic="T2").collections}
    assert ids
    for cid in ids:
        (row,) = truth(
            "SELECT concat_ws(' ', collection_id, collection_name, cancer_types, tumor_locations, "
            "description) "
            f"FROM {{collections}} WHERE collection_id = '{cid}'"
        )
        assert re.search(r"(?<![^\W_])t2(?![^\W_])", row[0].casefold()), cid


def test_a_topic_matching_most_of_the_catalog_says_so_and_suggests_narrower_terms():
    result = list_collections(get_catalog(), topic="cancer")
    (total,) = truth("SELECT count(*) FROM {collections}")[0]
    assert result.count > total / 2  # the premise
    (note,) = [n for n in result.notes if "most of the catalog" in n]
    assert f"matches {result.count} of {total} collections" in note
    suggested = re.findall(r"'([^']+)'", note.split("e.g.", 1)[1])
    for site in suggested:  # each suggestion narrows: fewer collections, and some
        narrower = list_collections(get_catalog(), topic=f"cancer {site}")
        assert 0 < narrower.count < result.count, site
