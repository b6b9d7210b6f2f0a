"""list_collections: IDC collections with what they hold, filtered by case-insensitive substrings.

Descriptions come from `collections_index`; counts, sizes, modalities and licenses from the series in
`index` (so they describe what can actually be selected and downloaded).
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field

from idc_mcp.catalog.database import Catalog
from idc_mcp.diagnostics.fuzzy import closest
from idc_mcp.tools.selection import SelectionError

MAX_COLLECTIONS = 200
MAX_FILTER_CHARS = 200

_SUMMARY = """
WITH s AS (
    SELECT collection_id, count(*) AS series_count,
           count(*) FILTER (WHERE analysis_result_id IS NOT NULL) AS analysis_series_count,
           coalesce(sum(series_size_MB), 0) AS size_mb,
           list(DISTINCT Modality ORDER BY Modality) FILTER (WHERE Modality IS NOT NULL) AS modalities,
           list(DISTINCT license_short_name ORDER BY license_short_name)
               FILTER (WHERE license_short_name IS NOT NULL) AS licenses
    FROM index GROUP BY collection_id
),
d AS (
    SELECT collection_id, list(DISTINCT u.s.source_doi ORDER BY u.s.source_doi)
               FILTER (WHERE u.s.source_doi IS NOT NULL) AS dois
    FROM collections_index, unnest(sources) AS u(s) GROUP BY collection_id
)
SELECT c.collection_id, c.collection_name, c.cancer_types, c.tumor_locations, c.subjects,
       coalesce(s.series_count, 0), coalesce(s.analysis_series_count, 0), coalesce(s.size_mb, 0),
       coalesce(s.modalities, []), coalesce(s.licenses, []), coalesce(d.dois, [])
FROM collections_index AS c LEFT JOIN s USING (collection_id) LEFT JOIN d USING (collection_id)
ORDER BY c.collection_id
"""


class CollectionInfo(BaseModel):
    collection_id: str = Field(description="use in collection_ids=[...] of the selection tools")
    collection_name: str | None
    cancer_types: str | None
    tumor_locations: str | None
    modalities: list[str]
    subjects: int | None
    series_count: int = Field(description="series in the current release, derived data included")
    analysis_series_count: int = Field(description="of which derived (analysis result) series")
    total_size_MB: float
    licenses: list[str]
    dois: list[str] = Field(description="DOIs of the collection's sources (cite them: get_citations)")


class CollectionList(BaseModel):
    collections: list[CollectionInfo]
    count: int = Field(description="collections matching the filters")
    truncated: bool
    filters: dict[str, str] = Field(description="the filters applied")
    notes: list[str] = Field(default_factory=list)
    next_step: str


def _matches(value: str | list[str] | None, needle: str) -> bool:
    if value is None:
        return False
    text = ", ".join(value) if isinstance(value, list) else value
    return needle.casefold() in text.casefold()


def list_collections(
    catalog: Catalog,
    cancer_type: str | None = None,
    tumor_location: str | None = None,
    modality: str | None = None,
    license: str | None = None,
) -> CollectionList:
    filters = {
        k: v.strip()
        for k, v in (
            ("cancer_type", cancer_type),
            ("tumor_location", tumor_location),
            ("modality", modality),
            ("license", license),
        )
        if v is not None and v.strip()
    }
    for name, value in filters.items():
        if len(value) > MAX_FILTER_CHARS:
            raise SelectionError(f"{name} is longer than {MAX_FILTER_CHARS} characters; give a short word.")
    infos = [
        CollectionInfo(
            collection_id=r[0],
            collection_name=r[1],
            cancer_types=r[2],
            tumor_locations=r[3],
            subjects=r[4],
            series_count=r[5],
            analysis_series_count=r[6],
            total_size_MB=round(float(r[7]), 3),
            modalities=list(r[8]),
            licenses=list(r[9]),
            dois=list(r[10]),
        )
        for r in catalog.execute(_SUMMARY).rows
    ]
    fields: dict[str, Callable[[CollectionInfo], str | list[str] | None]] = {
        "cancer_type": lambda c: c.cancer_types,
        "tumor_location": lambda c: c.tumor_locations,
        "modality": lambda c: c.modalities,
        "license": lambda c: c.licenses,
    }
    # A filter that matches no collection on its own is a mistake: say so, with the nearest values.
    for name, value in filters.items():
        if not any(_matches(fields[name](c), value) for c in infos):
            raise SelectionError(_no_match_message(infos, name, value, fields[name]))
    matched = [c for c in infos if all(_matches(fields[n](c), v) for n, v in filters.items())]
    notes = []
    if not matched:
        notes.append(
            "Each filter matches some collections, but no collection matches all of them together. Drop one."
        )
    return CollectionList(
        collections=matched[:MAX_COLLECTIONS],
        count=len(matched),
        truncated=len(matched) > MAX_COLLECTIONS,
        filters=filters,
        notes=notes,
        next_step="Pass collection_ids to check_licenses, estimate_size or get_citations; query() narrows "
        "further (e.g. by Modality or BodyPartExamined).",
    )


def _no_match_message(
    infos: list[CollectionInfo],
    name: str,
    value: str,
    get: Callable[[CollectionInfo], str | list[str] | None],
) -> str:
    values: set[str] = set()
    for c in infos:
        field = get(c)
        if isinstance(field, list):
            values.update(field)
        elif field:
            values.update(part.strip() for part in field.split(","))
    near = closest(value, sorted(values), limit=5)
    hint = f" Close values: {', '.join(repr(n) for n in near)}." if near else ""
    return (
        f"No collection has {name} containing {value!r} (case-insensitive substring).{hint} "
        f"Call list_collections() without {name} to see the values in use."
    )
