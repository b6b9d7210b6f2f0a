"""get_citations: how to cite a selection, built offline from the bundled metadata.

Each series names its source by `source_DOI`; the citation text for that DOI is in
`collections_index.sources[].citation` or `analysis_results_index.citation` (APA text from DataCite,
with HTML markup). One entry per DOI, plus the IDC platform paper, in text, APA, BibTeX or CSL-JSON.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from typing import Any, Literal

from pydantic import BaseModel, Field

from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.sources import clean_citation, lookup_sources
from idc_mcp.tools.citation_authors import full_family, parse_authors
from idc_mcp.tools.selection import (
    Selection,
    SelectionError,
    outside_index_note,
    resolve_selection,
    selection_where,
)

CitationFormat = Literal["text", "apa", "bibtex", "csl-json"]
MAX_COLLECTIONS_PER_ENTRY = 20
MAX_DATASET_ENTRIES = 250  # more than the DOIs in the whole release today; a bound all the same

IDC_PAPER_DOI = "10.1148/rg.230180"
_IDC_PAPER = {
    "authors": "Fedorov, A., et al.",
    "author_list": [{"family": "Fedorov", "given": "Andrey"}],
    "year": "2023",
    "title": (
        "National Cancer Institute Imaging Data Commons: Toward Transparency, Reproducibility, and "
        "Scalability in Imaging Artificial Intelligence"
    ),
    "journal": "RadioGraphics",
    "volume": "43",
    "issue": "12",
    "article": "e230180",
}


class ParsedCitation(BaseModel):
    authors: str | None
    year: str | None
    title: str | None
    version: str | None
    publisher: str | None
    doi: str


class CitationEntry(BaseModel):
    doi: str
    url: str
    kind: Literal["dataset", "platform paper"]
    series_count: int = Field(description="series of the selection citing this DOI (0 for the IDC paper)")
    collections: list[str] = Field(
        description=f"collection_ids using this source, at most {MAX_COLLECTIONS_PER_ENTRY}"
    )
    citation: str | dict[str, Any] = Field(
        description="this entry in the requested format (CSL-JSON: an object)"
    )


class Citations(BaseModel):
    format: CitationFormat
    entry_count: int
    entries: list[CitationEntry] = Field(description="one per DOI, largest share of the selection first")
    bibliography: str = Field(
        description="all entries ready to paste: text/apa one per paragraph (apa marks titles *italic*), "
        "bibtex as a .bib file, csl-json as a JSON array"
    )
    notes: list[str] = Field(default_factory=list)
    summary: str


def parse_citation(raw: str, doi: str) -> ParsedCitation:
    """Pull authors, year, title, version and publisher out of DataCite's APA text."""
    unescaped = re.sub(r"\s+", " ", html.unescape(raw)).strip()
    plain = clean_citation(raw)
    year_match = re.search(r"\((\d{4})\)\.?", plain)
    authors = plain[: year_match.start()].strip().rstrip(",") if year_match else None
    italic = re.search(r"<i>(.*?)</i>", unescaped)
    if italic:
        title: str | None = re.sub(r"<[^>]+>", "", italic.group(1)).strip()
    elif year_match:
        rest = plain[year_match.end() :]
        title = re.split(r" \(Version | \[Data ?set\]|\. https://doi", rest)[0].strip().rstrip(".") or None
    else:
        title = None
    version = re.search(r"\(Version ([^)]+)\)", plain)
    publisher = re.search(r"\[Data ?set\]\.?\s*(.+?)\.?\s*https://doi\.org/", plain)
    doi_match = re.search(r"https://doi\.org/(\S+)", plain)
    return ParsedCitation(
        authors=authors or None,
        year=year_match.group(1) if year_match else None,
        title=title,
        version=version.group(1).strip() if version else None,
        publisher=publisher.group(1).strip() if publisher else None,
        # The series' DOI is the key; the text may cite another version's DOI (kept in the text only).
        doi=cited
        if (cited := doi_match.group(1).rstrip(".") if doi_match else "").lower() == doi.lower()
        else doi,
    )


def split_authors(authors: str | None) -> list[dict[str, str]]:
    """APA author text -> CSL names: 'Hugo, G. D., Weiss, E., & Lu, J.' -> family/given pairs."""
    return parse_authors(authors).names


def _bib_escape(text: str) -> str:
    return re.sub(r"([&%$#_{}])", r"\\\1", text).replace("~", r"\~{}").replace("^", r"\^{}")


MAX_KEY_NAME = 16
MAX_KEY_SLUG = 16


def _bib_key(names: list[dict[str, str]], year: str | None, doi: str) -> str:
    """`<family><year>_<slug>`, at most 37 characters: the first author's family name (an organisation's
    acronym in brackets, else its first word) and the DOI's last part ('zenodo' kept before digits)."""
    first = names[0] if names else {"literal": "idc"}
    if "literal" in first:
        acronym = re.search(r"\(([^)]+)\)", first["literal"])
        words = [w for w in first["literal"].split() if w.lower() != "the"]
        label = acronym.group(1) if acronym else (words[0] if words else "idc")
    else:
        label = full_family(first)
    ascii_name = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode().lower()
    name = re.sub(r"[^a-z]", "", ascii_name)[:MAX_KEY_NAME] or "idc"
    parts = [re.sub(r"[^a-z0-9]", "", p) for p in doi.lower().split("/")[-1].split(".")]
    slug = parts[-1] if not parts[-1].isdigit() or len(parts) == 1 else parts[-2] + parts[-1]
    return f"{name}{year or ''}_{slug[-MAX_KEY_SLUG:]}"


def _bib_name(name: dict[str, str]) -> str:
    """BibTeX's 'von Last, Jr, First'; a family name with inner lowercase words or an organisation is
    braced, so that BibTeX keeps it whole (never split at 'and' or read as a 'von' part)."""
    if "literal" in name:
        return "{" + _bib_escape(name["literal"]) + "}"
    family = _bib_escape(name["family"])
    if any(w[:1].islower() for w in name["family"].split()):
        family = "{" + family + "}"
    if "non-dropping-particle" in name:
        family = f"{_bib_escape(name['non-dropping-particle'])} {family}"
    parts = [family, _bib_escape(name["suffix"]) if "suffix" in name else None, _bib_escape(name["given"])]
    return ", ".join(p for p in parts if p)


def _dataset_formats(parsed: ParsedCitation, raw: str | None) -> dict[str, Any]:
    url = f"https://doi.org/{parsed.doi}"
    authors = parse_authors(parsed.authors)
    names = authors.names
    if raw is None:
        text = f"Data set with DOI {parsed.doi}. {url}"
        apa = text
    else:
        text = clean_citation(raw)
        apa = text.replace(parsed.title, f"*{parsed.title}*", 1) if parsed.title else text
    key = _bib_key(names, parsed.year, parsed.doi)
    listed = [_bib_name(n) for n in names] + (["others"] if authors.elided else [])
    fields = [("author", " and ".join(listed))] if names else []
    fields += [
        ("title", "{" + _bib_escape(parsed.title or f"Data set {parsed.doi}") + "}"),
        ("year", parsed.year or ""),
        ("publisher", _bib_escape(parsed.publisher or "")),
        ("version", _bib_escape(parsed.version or "")),
        ("doi", parsed.doi),
        ("url", url),
    ]
    bib = (
        f"@misc{{{key},\n"
        + ",\n".join(f"  {k} = {{{v}}}" for k, v in fields if v)
        + ",\n  note = {Data set}\n}"
    )
    csl: dict[str, Any] = {"id": key, "type": "dataset", "DOI": parsed.doi, "URL": url}
    if parsed.title:
        csl["title"] = parsed.title
    if names:
        csl["author"] = names
    if authors.elided:
        csl["note"] = "The source lists only some of the authors (APA ellipsis); the others are not named."
    if parsed.year:
        csl["issued"] = {"date-parts": [[int(parsed.year)]]}
    if parsed.publisher:
        csl["publisher"] = parsed.publisher
    if parsed.version:
        csl["version"] = parsed.version
    return {"text": text, "apa": apa, "bibtex": bib, "csl-json": csl}


def idc_paper_text() -> str:
    """The IDC platform paper as plain text (get_citations' entry; the CITATION sidecars end with it)."""
    return str(_paper_formats()["text"])


def _paper_formats() -> dict[str, Any]:
    p = _IDC_PAPER
    url = f"https://doi.org/{IDC_PAPER_DOI}"
    where = f"{p['volume']}({p['issue']}), {p['article']}"
    text = f"{p['authors']} ({p['year']}). {p['title']}. {p['journal']}, {where}. {url}"
    journal = f"*{p['journal']}*, *{p['volume']}*({p['issue']}), {p['article']}"
    apa = f"{p['authors']} ({p['year']}). {p['title']}. {journal}. {url}"
    bib = (
        "@article{fedorov2023_idc,\n  author = {Fedorov, Andrey and others},\n"
        f"  title = {{{{{p['title']}}}}},\n  journal = {{{p['journal']}}},\n  year = {{{p['year']}}},\n"
        f"  volume = {{{p['volume']}}},\n  number = {{{p['issue']}}},\n  pages = {{{p['article']}}},\n"
        f"  doi = {{{IDC_PAPER_DOI}}},\n  url = {{{url}}}\n}}"
    )
    csl = {
        "id": "fedorov2023_idc",
        "type": "article-journal",
        "title": p["title"],
        "author": p["author_list"],
        "container-title": p["journal"],
        "volume": p["volume"],
        "issue": p["issue"],
        "page": p["article"],
        "issued": {"date-parts": [[int(p["year"])]]},
        "DOI": IDC_PAPER_DOI,
        "URL": url,
    }
    return {"text": text, "apa": apa, "bibtex": bib, "csl-json": csl}


def get_citations(catalog: Catalog, selection: Selection, fmt: CitationFormat = "text") -> Citations:
    if fmt not in ("text", "apa", "bibtex", "csl-json"):
        raise SelectionError(f"format must be text, apa, bibtex or csl-json, not {fmt!r}.")
    resolved = resolve_selection(catalog, selection)
    where, params = selection_where(resolved)
    rows = catalog.execute(
        f"""
        SELECT lower(source_DOI) AS doi, count(*) AS n, list(DISTINCT collection_id ORDER BY collection_id)
        FROM index WHERE {where} AND source_DOI IS NOT NULL GROUP BY 1 ORDER BY n DESC, doi
        """,
        params,
    ).rows
    sources = lookup_sources(catalog, [r[0] for r in rows])
    rows = [(doi, n, cols, getattr(sources.get(doi), "raw_citation", None)) for doi, n, cols in rows]
    missing_doi = catalog.execute(
        f"SELECT count(*) FROM index WHERE {where} AND source_DOI IS NULL", params
    ).rows[0][0]
    entries: list[CitationEntry] = []
    notes: list[str] = [note] if (note := outside_index_note(resolved)) else []
    if len(rows) > MAX_DATASET_ENTRIES:
        notes.append(
            f"The selection cites {len(rows)} DOIs; the {MAX_DATASET_ENTRIES} covering most series are "
            "listed. "
            "Split the selection (e.g. by collection_ids) to get the rest."
        )
    for doi, count, collections, raw in rows[:MAX_DATASET_ENTRIES]:
        parsed = (
            parse_citation(raw, doi)
            if raw
            else ParsedCitation(authors=None, year=None, title=None, version=None, publisher=None, doi=doi)
        )
        if raw is None:
            notes.append(
                f"No citation text is bundled for DOI {doi}; cite it by its DOI (https://doi.org/{doi})."
            )
        cited = re.search(r"https://doi\.org/(\S+)", clean_citation(raw)) if raw else None
        if cited and cited.group(1).rstrip(".").lower() != doi.lower():
            notes.append(
                f"The citation text for {doi} cites DOI {cited.group(1).rstrip('.')} (another version)."
            )
        formats = _dataset_formats(parsed, raw)
        entries.append(
            CitationEntry(
                doi=parsed.doi,
                url=f"https://doi.org/{parsed.doi}",
                kind="dataset",
                series_count=count,
                collections=collections[:MAX_COLLECTIONS_PER_ENTRY],
                citation=formats[fmt],
            )
        )
    paper = _paper_formats()
    entries.append(
        CitationEntry(
            doi=IDC_PAPER_DOI,
            url=f"https://doi.org/{IDC_PAPER_DOI}",
            kind="platform paper",
            series_count=0,
            collections=[],
            citation=paper[fmt],
        )
    )
    if missing_doi:
        notes.append(f"{missing_doi:,} series have no source_DOI; cite their collection page instead.")
    if fmt == "csl-json":
        bibliography = json.dumps([e.citation for e in entries], ensure_ascii=False, indent=1)
    else:
        bibliography = "\n\n".join(str(e.citation) for e in entries)
    datasets = len(entries) - 1
    summary = (
        f"{datasets} data source(s) for {resolved.count:,} series, plus the IDC platform paper "
        f"(Fedorov et al., RadioGraphics 2023). Cite all of them; the licenses require attribution."
    )
    return Citations(
        format=fmt,
        entry_count=len(entries),
        entries=entries,
        bibliography=bibliography,
        notes=notes,
        summary=summary,
    )
