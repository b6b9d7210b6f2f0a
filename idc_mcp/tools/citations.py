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
from idc_mcp.tools.selection import Selection, SelectionError, resolve_selection, selection_where

CitationFormat = Literal["text", "apa", "bibtex", "csl-json"]
MAX_COLLECTIONS_PER_ENTRY = 20
MAX_DATASET_ENTRIES = 250  # more than the DOIs in the whole release today; a bound all the same

_INITIALS = r"(?:[^\W\d_]{1,2}\.[\s-]*)+"
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


def clean_citation(raw: str) -> str:
    """Metadata citation HTML -> plain text: entities decoded, tags dropped, whitespace collapsed."""
    text = html.unescape(raw)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"\s+", " ", text).strip()


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
    if not authors:
        return []
    # APA shortens long lists to "A, B., … Z, Y."; the ellipsis is not part of a name.
    tokens = [t.strip(" …") for t in re.split(r",\s*(?:&\s*)?|\s+&\s+", authors) if t.strip(" …")]
    names: list[dict[str, str]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if nxt and re.fullmatch(_INITIALS, nxt):
            names.append({"family": token, "given": nxt})
            i += 2
        else:
            names.append(_full_name(token))
            i += 1
    return names


def _full_name(token: str) -> dict[str, str]:
    """'Andrey Fedorov.' -> given/family; longer strings (organisations) stay literal."""
    words = token.split()
    if len(words) == 2 and re.fullmatch(_INITIALS, words[1]):  # 'Válek V.'
        return {"family": words[0], "given": words[1]}
    words = token.rstrip(".").split()
    if 2 <= len(words) <= 3 and all(w[:1].isupper() for w in words):
        return {"family": words[-1], "given": " ".join(words[:-1])}
    return {"literal": token}


def _bib_escape(text: str) -> str:
    return re.sub(r"([&%$#_{}])", r"\\\1", text).replace("~", r"\~{}").replace("^", r"\^{}")


def _bib_key(names: list[dict[str, str]], year: str | None, doi: str) -> str:
    first = names[0].get("family") or names[0].get("literal", "") if names else "idc"
    ascii_name = unicodedata.normalize("NFKD", first).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]", "", doi.lower().split("/")[-1])[-12:]
    return f"{re.sub(r'[^a-z]', '', ascii_name) or 'idc'}{year or ''}_{slug}"


def _bib_name(name: dict[str, str]) -> str:
    if "literal" in name:
        return "{" + _bib_escape(name["literal"]) + "}"
    return _bib_escape(f"{name['family']}, {name['given']}")


def _dataset_formats(parsed: ParsedCitation, raw: str | None) -> dict[str, Any]:
    url = f"https://doi.org/{parsed.doi}"
    names = split_authors(parsed.authors)
    if raw is None:
        text = f"Data set with DOI {parsed.doi}. {url}"
        apa = text
    else:
        text = clean_citation(raw)
        apa = text.replace(parsed.title, f"*{parsed.title}*", 1) if parsed.title else text
    key = _bib_key(names, parsed.year, parsed.doi)
    fields = [("author", " and ".join(_bib_name(n) for n in names))] if names else []
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
    if parsed.year:
        csl["issued"] = {"date-parts": [[int(parsed.year)]]}
    if parsed.publisher:
        csl["publisher"] = parsed.publisher
    if parsed.version:
        csl["version"] = parsed.version
    return {"text": text, "apa": apa, "bibtex": bib, "csl-json": csl}


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
        WITH sel AS (
            SELECT lower(source_DOI) AS doi, count(*) AS n,
                   list(DISTINCT collection_id ORDER BY collection_id) AS cols
            FROM index WHERE {where} AND source_DOI IS NOT NULL GROUP BY 1
        ),
        cites AS (
            SELECT lower(source_DOI) AS doi, citation, 0 AS pref FROM analysis_results_index
            UNION ALL
            SELECT lower(u.s.source_doi), u.s.citation, 1 FROM collections_index, unnest(sources) AS u(s)
        ),
        best AS (
            SELECT doi, arg_min(citation, pref) AS citation FROM cites WHERE citation IS NOT NULL GROUP BY doi
        )
        SELECT sel.doi, sel.n, sel.cols, best.citation FROM sel LEFT JOIN best USING (doi)
        ORDER BY sel.n DESC, sel.doi
        """,
        params,
    ).rows
    missing_doi = catalog.execute(
        f"SELECT count(*) FROM index WHERE {where} AND source_DOI IS NULL", params
    ).rows[0][0]
    entries: list[CitationEntry] = []
    notes: list[str] = []
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
