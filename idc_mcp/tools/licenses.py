"""check_licenses: which licenses cover a selection, and may it be used commercially.

The verdict comes from the one license policy (`catalog.license_policy`), which the download result and
the LICENSE sidecars use too: Creative Commons licenses without NC allow commercial use with
attribution; NC licenses do not; anything else (e.g. the NLM terms) is "check the terms", never guessed.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.license_policy import CommercialUse, agrees, license_terms, resolve_license
from idc_mcp.catalog.memo import Memo
from idc_mcp.catalog.sources import SOURCES_SQL
from idc_mcp.tools.selection import Selection, resolve_selection, selection_where

__all__ = ["check_licenses", "license_terms"]

MAX_COLLECTIONS_LISTED = 50


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
             src AS ({SOURCES_SQL})
        SELECT DISTINCT sel.license_short_name, src.license_long_name, src.license_url
        FROM sel JOIN src ON src.doi = sel.doi AND src.license_short_name = sel.license_short_name
        ORDER BY 1, 3
        """,
        params,
    ).rows
    chosen: dict[str, tuple[str | None, str | None]] = {}
    for short, long_name, url in rows:
        current = chosen.get(short)
        # Prefer an entry whose own terms agree with the short name: the metadata has a few mismatches
        # (e.g. a 'CC BY-NC 3.0' source whose URL is the CC BY page).
        if current is None or (not agrees(short, *current) and agrees(short, long_name, url)):
            chosen[short] = (long_name, url)
    return chosen


# Reports by (Catalog.cache_key, selection): the catalog is read-only, so a selection by
# IDs has one report. One with caller `sql` is not kept (the SQL may sample: random(), LIMIT).
_REPORTS: Memo[LicenseReport] = Memo(maxsize=256)


def check_licenses(catalog: Catalog, selection: Selection) -> LicenseReport:
    key = (catalog.cache_key, selection)
    keep = selection.sql is None and _hashable(key)  # not: arguments resolve_selection refuses
    if keep and (report := _REPORTS.get(key)) is not None:
        return report
    report = _check_licenses(catalog, selection)
    if keep:
        _REPORTS.put(key, report)
    return report


def _hashable(key: object) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True


def _check_licenses(catalog: Catalog, selection: Selection) -> LicenseReport:
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
        # The short name on the series governs; the metadata supplies the long name and URL.
        lic = resolve_license(short, *metadata.get(short, (None, None)))
        if lic.note:
            notes.append(lic.note)
        terms = lic.terms
        groups.append(
            LicenseGroup(
                license=short or "(none)",
                license_long_name=lic.long_name,
                license_url=lic.url,
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
    verdict, next_step = _verdict(groups, nc, check, resolved.count, commercial_use_filter(catalog))
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


def licenses_by_commercial_use(catalog: Catalog) -> dict[CommercialUse, list[str]]:
    """The license values in the data grouped by what the one license policy says of commercial use."""
    rows = catalog.execute(
        "SELECT DISTINCT license_short_name FROM index WHERE license_short_name IS NOT NULL ORDER BY 1"
    ).rows
    grouped: dict[CommercialUse, list[str]] = {}
    for (name,) in rows:
        grouped.setdefault(license_terms(str(name)).commercial_use, []).append(str(name))
    return grouped


def commercial_use_filter(catalog: Catalog) -> str:
    """The one recipe for a commercial-use selection, used by every reply and prompt: the licenses that
    allow it, by name (`NOT LIKE '%NC%'` would keep terms that must be read first)."""
    allowed = licenses_by_commercial_use(catalog).get("allowed", [])
    return "license_short_name IN (" + ", ".join(f"'{v}'" for v in allowed) + ")"


def _names(collections: list[str]) -> str:
    shown = ", ".join(collections[:10])
    return shown + (f" and {len(collections) - 10} more" if len(collections) > 10 else "")


def _verdict(
    groups: list[LicenseGroup], nc: list[str], check: list[str], total: int, commercial: str
) -> tuple[str, str]:
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
            f'other data: query("SELECT DISTINCT collection_id FROM index WHERE {commercial}"). For '
            "non-commercial research, cite with get_citations."
        )
    elif nc or check:
        next_step = (
            "For commercial use keep only the licenses that allow it: pass "
            f'sql="SELECT SeriesInstanceUID FROM index WHERE {commercial}" with the other arguments (or add '
            "that condition to your own sql); cite every source with get_citations."
        )
    else:
        next_step = "Attribution is required: call get_citations with the same selection, then estimate_size."
    return " ".join(parts), next_step
