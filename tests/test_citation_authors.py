"""Citations that cite correctly: every author of every bundled citation, once, with family and given right,
in BibTeX (read back by an independent BibTeX parser, bibtexparser) and in CSL-JSON; short, unique keys."""

from __future__ import annotations

import json
import re
import unicodedata

import bibtexparser
import pytest
from bibtexparser.middlewares import SeparateCoAuthors, SplitNameParts

from idc_mcp.tools.citation_authors import apa_form, full_family, parse_authors
from idc_mcp.tools.citations import IDC_PAPER_DOI, get_citations, parse_citation
from idc_mcp.tools.selection import Selection
from tests.parquet import bundled_citation_count, truth

# Every citation of the metadata (one row per collection source or analysis result), with one series
# citing each DOI.
_CITATIONS = """
WITH s AS (
    SELECT collection_id AS owner, lower(u.s.source_doi) AS doi, u.s.citation AS citation
    FROM {collections}, unnest(sources) AS u(s)
    UNION ALL
    SELECT analysis_result_id, lower(source_DOI), citation FROM {analysis}
)
SELECT s.owner, s.doi, s.citation,
       (SELECT min(SeriesInstanceUID) FROM {index} AS i WHERE lower(i.source_DOI) = s.doi) AS uid
FROM s ORDER BY 1, 2
"""


@pytest.fixture(scope="module")
def citations():
    rows = truth(_CITATIONS)
    assert len(rows) == bundled_citation_count()
    return rows


@pytest.fixture(scope="module")
def tool_output(catalog, citations):
    """get_citations for one series of every cited DOI, as BibTeX and as CSL-JSON, keyed by DOI."""
    selection = Selection(series_uids=sorted({uid for *_, uid in citations}))
    bib = get_citations(catalog, selection, "bibtex")
    csl = get_citations(catalog, selection, "csl-json")
    library = bibtexparser.parse_string(
        bib.bibliography, append_middleware=[SeparateCoAuthors(), SplitNameParts()]
    )
    assert not library.failed_blocks
    bib_by_doi = {e["doi"].lower(): e for e in library.entries}
    csl_by_doi = {item["DOI"].lower(): item for item in json.loads(csl.bibliography)}
    return bib_by_doi, csl_by_doi


def _authors_text(raw: str, doi: str) -> str:
    authors = parse_citation(raw, doi).authors
    assert authors, (doi, raw)
    return authors


def _normalized(text: str) -> str:
    """The author list as words, APA's joining marks removed: what the names alone must rebuild (the
    comma between family and given is dropped too: 'Válek V.' is written without it)."""
    text = re.sub(r"\s*(?:…|\.\.\.)\s*", ", ", text)
    text = re.sub(r"(?:\s*[;,]\s*&?\s*)+", " ", text)
    return re.sub(r"\s+", " ", text).strip(" ,.")


def test_every_author_of_every_bundled_citation_is_parsed_once_in_order(citations):
    for owner, doi, raw, _uid in citations:
        text = _authors_text(raw, doi)
        parsed = parse_authors(text)
        rebuilt = ", ".join(apa_form(n, parsed.given_first) for n in parsed.names)
        # Every author once, in the source's order, each split where the source splits it.
        assert _normalized(rebuilt) == _normalized(text), (owner, doi)
        assert parsed.elided == bool(re.search(r"…|\.\.\.", text)), owner
        for name in parsed.names:
            if "literal" in name:
                # an organisation or an unpaired name; never a stray initial or suffix
                assert not re.fullmatch(r"(?:[^\W\d_]{1,2}\.\s*)+|(?:Jr|Sr|III?|IV)\.?", name["literal"]), (
                    owner
                )
                continue
            assert name["family"] and name["given"] and "," not in name["family"] + name["given"], owner
            assert name["family"].split()[-1].rstrip(".").lower() not in {"jr", "sr", "ii", "iii", "iv"}, (
                owner
            )
            assert not re.fullmatch(r"(?:[^\W\d_]{1,2}\.\s*)+", name["family"]), (owner, name)


def test_bibtex_and_csl_json_name_the_same_authors_as_the_source(citations, tool_output):
    bib_by_doi, csl_by_doi = tool_output
    checked = 0
    for owner, doi, raw, _uid in citations:
        parsed = parse_authors(_authors_text(raw, doi))
        entry, item = bib_by_doi[doi], csl_by_doi[doi]
        assert item["author"] == parsed.names, owner
        authors = list(entry["author"])
        if parsed.elided:  # APA's ellipsis: BibTeX's "and others" closes the list
            assert authors.pop().last == ["others"], owner
        assert len(authors) == len(parsed.names), owner
        for bib, name in zip(authors, parsed.names, strict=True):
            last = " ".join(bib.last).strip("{}")
            if "literal" in name:
                assert (last, bib.first, bib.von, bib.jr) == (name["literal"], [], [], []), owner
            else:
                assert last == name["family"], (owner, bib, name)
                assert " ".join(bib.first) == name["given"], (owner, bib, name)
                assert " ".join(bib.von) == name.get("non-dropping-particle", ""), (owner, bib, name)
                assert " ".join(bib.jr) == name.get("suffix", ""), (owner, bib, name)
        checked += 1
    assert checked == bundled_citation_count()


def test_bibtex_keys_are_short_unique_and_start_with_the_first_family_name(citations, tool_output):
    bib_by_doi, csl_by_doi = tool_output
    keys = [e.key for doi, e in bib_by_doi.items() if doi != IDC_PAPER_DOI]
    assert len(set(keys)) == len(keys) == len({doi for _, doi, _, _ in citations})
    for doi, entry in bib_by_doi.items():
        if doi == IDC_PAPER_DOI:
            continue
        assert len(entry.key) < 40 and re.fullmatch(r"[a-z]+\d{4}_[a-z0-9]+", entry.key), entry.key
        assert csl_by_doi[doi]["id"] == entry.key
        first = csl_by_doi[doi]["author"][0]
        if "family" in first:
            folded = unicodedata.normalize("NFKD", full_family(first)).encode("ascii", "ignore").decode()
            assert entry.key.startswith(re.sub(r"[^a-z]", "", folded.lower())[:6]), entry.key


def test_lidc_idri_regression_suffix_full_given_name_and_elided_list(tool_output):
    # Was: author = {III, Armato and Samuel, G. and ...}, key iii2015_...
    bib_by_doi, csl_by_doi = tool_output
    entry = bib_by_doi["10.7937/k9/tcia.2015.lo9ql9sx"]
    assert entry.key == "armato2015_lo9ql9sx"
    first, second = entry["author"][:2]
    assert (first.last, first.jr, first.first) == (["Armato"], ["III"], ["Samuel", "G."])
    assert (second.last, second.first) == (["McLennan"], ["G."])
    assert entry["author"][-1].last == ["others"] and entry["author"][-2].last == ["Clarke"]
    item = csl_by_doi["10.7937/k9/tcia.2015.lo9ql9sx"]
    assert item["author"][0] == {"family": "Armato", "given": "Samuel G.", "suffix": "III"}
    assert {"family": "Van Beek", "given": "E. J. R."} in item["author"] and "note" in item


def test_spie_aapm_lung_ct_challenge_regression_semicolon_list_is_not_shifted(tool_output):
    # Was: every name shifted by one (a given name taken as the next family name).
    _, csl_by_doi = tool_output
    names = csl_by_doi["10.7937/k9/tcia.2015.uzlsu3fl"]["author"]
    assert [(n["family"], n["given"]) for n in names] == [
        ("Armato", "Samuel G."),
        ("Hadjiiski", "Lubomir"),
        ("Tourassi", "Georgia D."),
        ("Drukker", "Karen"),
        ("Giger", "Maryellen L."),
        ("Li", "Feng"),
        ("Redmond", "George"),
        ("Farahani", "Keyvan"),
        ("Kirby", "Justin S."),
        ("Clarke", "Laurence P."),
    ]
    assert names[0]["suffix"] == "III"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mayr, N., Small Jr., W., & Wolfson, A. H.", [("Small", "W.", "Jr.")]),
        ("de Boer, S., & van Ginneken, B.", [("Boer", "S.", None), ("Ginneken", "B.", None)]),
        ("Van Oss, J., & Soni, R.", [("Van Oss", "J.", None)]),
        ("Amirian, M., Jimenez del Toro, O. A., & Aberle, C.", [("Jimenez del Toro", "O. A.", None)]),
        ("Bloch, B. N., Jain, A., & jaffe, conrade carl.", [("jaffe", "conrade carl", None)]),
        ("Chen, L., Feng, S.-ting, Yu, X., Chen, M.-hu, & Chen, J.", [("Feng", "S.-ting", None)]),
        ("Nohel, M., Válek V., Rohan T., Dostál M.", [("Válek", "V.", None), ("Dostál", "M.", None)]),
    ],
)
def test_names_of_many_shapes(text, expected):
    names = parse_authors(text).names
    for family, given, suffix in expected:
        match = [n for n in names if n.get("family") == family and n.get("given") == given]
        assert len(match) == 1, (text, names)
        assert match[0].get("suffix") == suffix


def test_particles_lead_the_family_name_and_stay_with_it():
    names = parse_authors("de Boer, S., Häntze, H., & van Ginneken, B.").names
    assert names[0] == {"family": "Boer", "given": "S.", "non-dropping-particle": "de"}
    assert full_family(names[2]) == "van Ginneken"


def test_organisations_are_one_author_even_with_and_in_their_name():
    apollo = (
        "The Research for Precision Oncology Program and the Applied Proteogenomics Organizational "
        "Learning and Outcomes (APOLLO) Research Network."
    )
    assert parse_authors(apollo).names == [{"literal": apollo.rstrip(".")}]
    mixed = parse_authors("Clunie, D., GTEx Consortium, Clifford, W., & Fedorov, A.").names
    assert mixed[1] == {"literal": "GTEx Consortium"} and len(mixed) == 4


def test_a_name_without_its_pair_stays_one_author_and_does_not_shift_the_rest():
    names = parse_authors("Clunie, D., Yanling, Smith, K., Wagner, U.").names
    assert names == [
        {"family": "Clunie", "given": "D."},
        {"literal": "Yanling"},
        {"family": "Smith", "given": "K."},
        {"family": "Wagner", "given": "U."},
    ]


def test_given_first_lists_and_the_apa_ellipsis():
    names = parse_authors("Deepa Krishnaswamy, Dennis Bontempi, & Andrey Fedorov.")
    assert names.given_first and names.names[2] == {"family": "Fedorov", "given": "Andrey"}
    elided = parse_authors("Bridge, C., Sharma, A., … Fedorov, A.")
    assert elided.elided and [n["family"] for n in elided.names] == ["Bridge", "Sharma", "Fedorov"]
    assert parse_authors("White, B. S., Koc, S., ... Fedorov, A.").elided
