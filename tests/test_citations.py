"""get_citations: one entry per DOI of the selection (from the parquet), plus the IDC paper, in 4 formats."""

import json
import re

import pytest

from idc_mcp.tools.citations import IDC_PAPER_DOI, get_citations, parse_citation, split_authors
from idc_mcp.tools.selection import Selection, SelectionError
from tests.parquet import truth

SELECTION = Selection(collection_ids=["nsclc_radiomics", "4d_lung"])


@pytest.fixture(scope="module")
def expected_dois():
    rows = truth(
        "SELECT lower(source_DOI), count(*) FROM {index} "
        "WHERE collection_id IN ('nsclc_radiomics', '4d_lung') GROUP BY 1"
    )
    return dict(rows)


def test_one_entry_per_doi_plus_the_idc_paper(catalog, expected_dois):
    result = get_citations(catalog, SELECTION)
    datasets = [e for e in result.entries if e.kind == "dataset"]
    assert {e.doi.lower(): e.series_count for e in datasets} == expected_dois
    assert [e.doi for e in result.entries if e.kind == "platform paper"] == [IDC_PAPER_DOI]
    assert result.entry_count == len(expected_dois) + 1


def test_text_is_the_metadata_citation_without_markup(catalog):
    result = get_citations(catalog, Selection(collection_ids=["4d_lung"]))
    (raw,) = truth(
        "SELECT u.s.citation FROM {collections}, unnest(sources) AS u(s) WHERE collection_id = '4d_lung'"
    )[0]
    text = result.entries[0].citation
    assert "&amp;" in raw and "<i>" in raw
    assert "<" not in text and "&amp;" not in text
    assert (
        text == re.sub(r"\s+", " ", raw.replace("&amp;", "&").replace("<i>", "").replace("</i>", "")).strip()
    )
    assert (
        "Fedorov" in result.bibliography
        and "RadioGraphics" in result.bibliography
        and "10.1148/rg.230180" in result.bibliography
    )


def test_apa_marks_the_title_in_italics(catalog):
    result = get_citations(catalog, Selection(collection_ids=["4d_lung"]), "apa")
    assert "*Data from 4D Lung Imaging of NSCLC Patients*" in result.entries[0].citation


def test_bibtex_has_one_entry_per_doi_with_parsed_fields(catalog, expected_dois):
    result = get_citations(catalog, SELECTION, "bibtex")
    assert result.bibliography.count("\n@") + 1 == len(expected_dois) + 1
    lung = next(e.citation for e in result.entries if e.doi.lower() == "10.7937/k9/tcia.2016.eln8ygle")
    assert lung.startswith("@misc{hugo2016_")
    assert "author = {Hugo, G. D. and Weiss, E. and" in lung
    assert "year = {2016}" in lung and "publisher = {The Cancer Imaging Archive}" in lung
    assert "@article{fedorov2023_idc" in result.bibliography
    assert result.bibliography.count("{") == result.bibliography.count("}")


def test_csl_json_is_valid_json_with_dois(catalog, expected_dois):
    result = get_citations(catalog, SELECTION, "csl-json")
    items = json.loads(result.bibliography)
    assert {i["DOI"].lower() for i in items} == set(expected_dois) | {IDC_PAPER_DOI}
    lung = next(i for i in items if i["DOI"].lower() == "10.7937/k9/tcia.2016.eln8ygle")
    assert lung["type"] == "dataset" and lung["issued"] == {"date-parts": [[2016]]}
    assert lung["author"][0] == {"family": "Hugo", "given": "G. D."}


def test_every_bundled_citation_parses_to_a_title_and_year():
    rows = truth(
        "SELECT u.s.source_doi, u.s.citation FROM {collections}, unnest(sources) AS u(s) "
        "UNION ALL SELECT source_DOI, citation FROM {analysis}"
    )
    for doi, raw in rows:
        parsed = parse_citation(raw, doi)
        assert parsed.title and parsed.year, (doi, raw)
        assert parsed.doi.lower() == doi.lower()


def test_author_lists_of_several_shapes_split_into_names():
    assert split_authors("Nohel, M., Válek V., & Rohan T.") == [
        {"family": "Nohel", "given": "M."},
        {"family": "Válek", "given": "V."},
        {"family": "Rohan", "given": "T."},
    ]
    assert split_authors("Deepa Krishnaswamy, Andrey Fedorov.")[1] == {"family": "Fedorov", "given": "Andrey"}
    assert split_authors("Bridge, C., Sharma, A., … Fedorov, A.")[-1] == {"family": "Fedorov", "given": "A."}


def test_bad_format_is_refused(catalog):
    with pytest.raises(SelectionError, match="format must be"):
        get_citations(catalog, SELECTION, "mla")  # type: ignore[arg-type]
