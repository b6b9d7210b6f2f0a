"""The sources that series cite, as the bundled metadata describes them: one lookup, one citation cleaner.

Each series names its source by `source_DOI`; the DOI's title, license and citation are in
`collections_index.sources[]` or `analysis_results_index` (in this data each DOI has one citation and one
license wherever it appears; where both tables had it, the analysis result's entry would win). The
citation is DataCite's APA text with HTML entities, `<i>` tags and hard line breaks; `clean_citation`
is the one plain-text form, used by get_citations and by the CITATION_<collection>.txt sidecars alike.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields

from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.license_policy import License, resolve_license
from idc_mcp.catalog.sqltext import sql_literal

# Every source DOI's metadata; `pref` orders duplicates (analysis results first).
SOURCES_SQL = """
SELECT lower(source_DOI) AS doi, analysis_result_title AS title, license_short_name,
       license_long_name, license_url, citation AS raw_citation, 0 AS pref
FROM analysis_results_index
UNION ALL
SELECT lower(u.s.source_doi), u.s.source_title, u.s.license.license_short_name,
       u.s.license.license_long_name, u.s.license.license_url, u.s.citation, 1
FROM collections_index, unnest(sources) AS u(s)
"""


@dataclass(frozen=True)
class Source:
    doi: str
    title: str | None
    license_short_name: str | None
    license_long_name: str | None
    license_url: str | None
    raw_citation: str | None = None

    @property
    def citation(self) -> str | None:
        """The citation as plain text (see `clean_citation`)."""
        return clean_citation(self.raw_citation) if self.raw_citation else None


def clean_citation(raw: str) -> str:
    """Metadata citation HTML -> plain text: tags dropped, entities decoded, whitespace collapsed."""
    text = re.sub(r"<[^>]+>", "", raw)
    return re.sub(r"\s+", " ", html.unescape(text)).strip()


def lookup_sources(catalog: Catalog, dois: Iterable[str]) -> dict[str, Source]:
    """The metadata of each DOI that has any, keyed by lower-case DOI."""
    wanted = sorted({d.lower() for d in dois if d})
    if not wanted:
        return {}
    rows = catalog.records(
        f"SELECT * FROM ({SOURCES_SQL}) WHERE doi IN ({', '.join(map(sql_literal, wanted))}) "
        "ORDER BY doi, pref, raw_citation IS NULL"
    )
    found: dict[str, Source] = {}
    for row in rows:
        if row["doi"] not in found:  # the preferred entry of each DOI comes first
            found[row["doi"]] = Source(**{f.name: row[f.name] for f in fields(Source)})
    return found


def series_license(short_name: str | None, source: Source | None) -> License:
    """The license of series whose index says `short_name` and whose DOI has `source` (or none) in the
    metadata: the one policy's verdict, with the long name and URL check_licenses reports."""
    if source is None:
        return resolve_license(short_name)
    return resolve_license(short_name, source.license_long_name, source.license_url)
