"""check_licenses: which licenses cover a selection, and may it be used commercially.

The verdict is derived from the license text itself (short name, long name, URL in the bundled
metadata): Creative Commons licenses without NC allow commercial use with attribution; NC licenses do
not; anything else (e.g. the NLM terms) is reported as "check the terms" rather than guessed.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from idc_mcp.catalog.database import Catalog
from idc_mcp.tools.selection import Selection, resolve_selection, selection_where

MAX_COLLECTIONS_LISTED = 50

CommercialUse = Literal["allowed", "not allowed", "check the terms"]

# The catalog's license metadata, per source DOI: the license each series' source_DOI points to.
_LICENSE_SOURCES = """
    SELECT lower(u.s.source_doi) AS doi, u.s.license.license_short_name AS short_name,
           u.s.license.license_long_name AS long_name, u.s.license.license_url AS url
    FROM collections_index, unnest(sources) AS u(s)
    UNION ALL
    SELECT lower(source_DOI), license_short_name, license_long_name, license_url FROM analysis_results_index
"""


class LicenseTerms(BaseModel):
    commercial_use: CommercialUse = Field(description="derived from the license text; never guessed")
    attribution_required: bool | None = Field(description="null when the terms must be read")
    conditions: list[str] = Field(description="obligations and restrictions, in plain words")


def license_terms(
    short_name: str | None, long_name: str | None = None, url: str | None = None
) -> LicenseTerms:
    """What a license allows, from its name and URL. Unknown licenses are never assumed permissive."""
    text = " ".join(t for t in (short_name, long_name, url) if t).casefold()
    is_cc = bool(re.search(r"\bcc[ -]?by\b|creative ?commons|creativecommons\.org/licenses/", text))
    non_commercial = bool(re.search(r"\bby-nc\b|\bnc\b|non-?commercial", text))
    if re.search(r"\bcc0\b|publicdomain", text):
        return LicenseTerms(
            commercial_use="allowed", attribution_required=False, conditions=["public domain"]
        )
    if is_cc and non_commercial:
        return LicenseTerms(
            commercial_use="not allowed",
            attribution_required=True,
            conditions=["non-commercial use only", "attribution required (cite the data)"],
        )
    if is_cc:
        conditions = ["attribution required (cite the data)"]
        if re.search(r"\bby-sa\b|sharealike|share-alike", text):
            conditions.append("share adaptations under the same license")
        if re.search(r"\bby-nd\b|noderiv", text):
            conditions.append("no derivatives may be shared")
        return LicenseTerms(commercial_use="allowed", attribution_required=True, conditions=conditions)
    return LicenseTerms(
        commercial_use="check the terms",
        attribution_required=None,
        conditions=["not a Creative Commons license: read the terms at the license URL before any use"],
    )


def creative_commons_url(short_name: str) -> str | None:
    """'CC BY-NC 3.0' -> https://creativecommons.org/licenses/by-nc/3.0/ (None for other licenses)."""
    match = re.fullmatch(r"CC (BY(?:-(?:NC|SA|ND)){0,2}) (\d\.\d)", short_name.strip(), flags=re.IGNORECASE)
    if not match:
        return None
    return f"https://creativecommons.org/licenses/{match.group(1).lower()}/{match.group(2)}/"


class LicenseGroup(BaseModel):
    license: str = Field(description="license_short_name as in the index, e.g. 'CC BY 4.0'")
    license_long_name: str | None
    license_url: str | None = Field(description="from the collection/analysis-result metadata")
    commercial_use: CommercialUse
    attribution_required: bool | None
    conditions: list[str]
    series_count: int
    total_size_MB: float
    collection_count: int
    collections: list[str] = Field(description=f"collection_ids, at most {MAX_COLLECTIONS_LISTED}")
    collections_truncated: bool


class LicenseReport(BaseModel):
    verdict: str = Field(description="one-sentence answer to 'may I use this commercially?'")
    commercial_use: CommercialUse = Field(description="for the whole selection: the most restrictive license")
    series_count: int
    licenses: list[LicenseGroup]
    non_commercial_collections: list[str] = Field(
        description="collections with NC-licensed series in the selection"
    )
    check_terms_collections: list[str] = Field(description="collections under non-CC terms to read")
    notes: list[str] = Field(default_factory=list)
    next_step: str


def _metadata_license(
    catalog: Catalog, where: str, params: list[object]
) -> dict[str, tuple[str | None, str | None]]:
    """(long name, URL) per index license, from the sources the selected series' DOIs point to."""
    rows = catalog.execute(
        f"""
        WITH sel AS (SELECT DISTINCT lower(source_DOI) AS doi, license_short_name FROM index WHERE {where}),
             src AS ({_LICENSE_SOURCES})
        SELECT DISTINCT sel.license_short_name, src.long_name, src.url
        FROM sel JOIN src ON src.doi = sel.doi AND src.short_name = sel.license_short_name
        ORDER BY 1, 3
        """,
        params,
    ).rows
    chosen: dict[str, tuple[str | None, str | None]] = {}
    for short, long_name, url in rows:
        current = chosen.get(short)
        # Prefer an entry whose own terms agree with the short name: the metadata has a few mismatches
        # (e.g. a 'CC BY-NC 3.0' source whose URL is the CC BY page).
        if current is None or (not _agrees(short, current) and _agrees(short, (long_name, url))):
            chosen[short] = (long_name, url)
    return chosen


def _agrees(short: str, entry: tuple[str | None, str | None]) -> bool:
    return license_terms(short).commercial_use == license_terms(None, entry[0], entry[1]).commercial_use


def check_licenses(catalog: Catalog, selection: Selection) -> LicenseReport:
    resolved = resolve_selection(catalog, selection)
    where, params = selection_where(resolved)
    rows = catalog.execute(
        f"""
        SELECT license_short_name, count(*) AS n, coalesce(sum(series_size_MB), 0) AS mb,
               list(DISTINCT collection_id ORDER BY collection_id) AS collections
        FROM index WHERE {where} GROUP BY 1 ORDER BY n DESC
        """,
        params,
    ).rows
    metadata = _metadata_license(catalog, where, params)
    groups: list[LicenseGroup] = []
    notes: list[str] = []
    for short, count, size, collections in rows:
        long_name, url = metadata.get(short, (None, None))
        # The short name on the series governs; the metadata supplies the long name and URL.
        terms = license_terms(short)
        if terms.commercial_use == "check the terms" and (long_name or url):
            terms = license_terms(short, long_name, url)
        if url and not _agrees(short or "", (long_name, url)):
            canonical = creative_commons_url(short or "")
            notes.append(
                f"The metadata gives {url} for {short!r}, which does not match the name; the name governs"
                + (f", and its own URL {canonical} is reported." if canonical else ".")
            )
            if canonical:
                long_name, url = None, canonical
        url = url or creative_commons_url(short or "")  # no metadata entry: the CC license's own page
        groups.append(
            LicenseGroup(
                license=short or "(none)",
                license_long_name=long_name,
                license_url=url,
                commercial_use=terms.commercial_use,
                attribution_required=terms.attribution_required,
                conditions=terms.conditions,
                series_count=count,
                total_size_MB=round(float(size), 3),
                collection_count=len(collections),
                collections=collections[:MAX_COLLECTIONS_LISTED],
                collections_truncated=len(collections) > MAX_COLLECTIONS_LISTED,
            )
        )
    nc = sorted({c for g in groups if g.commercial_use == "not allowed" for c in g.collections})
    check = sorted({c for g in groups if g.commercial_use == "check the terms" for c in g.collections})
    if nc:
        overall: CommercialUse = "not allowed"
    elif check:
        overall = "check the terms"
    else:
        overall = "allowed"
    verdict, next_step = _verdict(groups, nc, check, resolved.count)
    return LicenseReport(
        verdict=verdict,
        commercial_use=overall,
        series_count=resolved.count,
        licenses=groups,
        non_commercial_collections=nc,
        check_terms_collections=check,
        notes=notes,
        next_step=next_step,
    )


def _names(collections: list[str]) -> str:
    shown = ", ".join(collections[:10])
    return shown + (f" and {len(collections) - 10} more" if len(collections) > 10 else "")


def _verdict(groups: list[LicenseGroup], nc: list[str], check: list[str], total: int) -> tuple[str, str]:
    parts: list[str] = []
    if nc:
        n = sum(g.series_count for g in groups if g.commercial_use == "not allowed")
        names = ", ".join(g.license for g in groups if g.commercial_use == "not allowed")
        plural = "collection is" if len(nc) == 1 else "collections are"
        parts.append(f"{len(nc)} {plural} non-commercial: {_names(nc)} ({n:,} of {total:,} series, {names}).")
    if check:
        n = sum(g.series_count for g in groups if g.commercial_use == "check the terms")
        parts.append(
            f"{len(check)} collection(s) are under other terms that must be read before use: {_names(check)} "
            f"({n:,} series)."
        )
    if not parts:
        parts.append(
            f"All {total:,} series allow commercial use (Creative Commons BY: attribution required)."
        )
    elif any(g.commercial_use == "allowed" for g in groups):
        n = sum(g.series_count for g in groups if g.commercial_use == "allowed")
        parts.append(f"{n:,} series allow commercial use with attribution.")
    if (nc or check) and not any(g.commercial_use == "allowed" for g in groups):
        next_step = (
            "No series here may be used commercially without reading the terms. For commercial use, choose "
            'other data: query("SELECT DISTINCT collection_id FROM index WHERE license_short_name LIKE '
            "'CC BY%' AND license_short_name NOT LIKE '%NC%'\"). For non-commercial research, cite with "
            "get_citations."
        )
    elif nc or check:
        next_step = (
            'For commercial use keep only CC BY series: pass sql="SELECT SeriesInstanceUID FROM index '
            "WHERE license_short_name LIKE 'CC BY%' AND license_short_name NOT LIKE '%NC%'\" with the other "
            "arguments (or add that condition to your own sql); cite every source with get_citations."
        )
    else:
        next_step = "Attribution is required: call get_citations with the same selection, then estimate_size."
    return " ".join(parts), next_step
