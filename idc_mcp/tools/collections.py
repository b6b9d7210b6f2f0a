"""list_collections: IDC collections with what they hold, filtered by case-insensitive substrings.

Descriptions come from `collections_index`; counts, sizes, modalities and licenses from the series in
`index` (so they describe what can actually be selected and downloaded).
"""

from __future__ import annotations

import re
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
       coalesce(s.modalities, []), coalesce(s.licenses, []), coalesce(d.dois, []), c.description
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
    matched_fields: list[str] | None = Field(None, description="with topic: the fields the topic matched")


class CollectionList(BaseModel):
    collections: list[CollectionInfo]
    count: int = Field(description="collections matching the filters")
    truncated: bool
    filters: dict[str, str] = Field(description="the filters applied")
    searched_fields: list[str] | None = Field(None, description="with topic: the fields searched")
    notes: list[str] = Field(default_factory=list)
    next_step: str


def _matches(value: str | list[str] | None, needle: str) -> bool:
    if value is None:
        return False
    text = ", ".join(value) if isinstance(value, list) else value
    return needle.casefold() in text.casefold()


# The fields a topic is looked for in, strongest first (a match in the description alone is weakest).
TOPIC_FIELDS = (
    "collection_id",
    "collection_name",
    "cancer_types",
    "tumor_locations",
    "modalities",
    "description",
)
SHORT_TERM = 3  # a term this short ('CT', 'MR') must match a whole term, not the start of a word
MOST_OF_THE_CATALOG = 0.5  # a topic matching more than this share of the collections says so


def _topic_words(topic: str) -> list[str]:
    """The topic's terms: words, and symbolic terms kept whole ('H&E', 'PET/CT' with its parts)."""
    terms = []
    for chunk in re.split(r"[\s,;]+", topic.casefold()):
        words = re.findall(r"[^\W_]+", chunk)
        if re.search(r"[^\W_][&+][^\W_]", chunk):  # 'h&e', 'r+d': the symbol is the meaning
            terms.append(re.sub(r"^[\W_]+|[\W_]+$", "", chunk))
        else:
            terms.extend(words)
    return terms


def _term_pattern(term: str) -> re.Pattern[str]:
    """A long word matches at the start of a word ('kidney' in 'Kidneys'); a short or symbolic term
    matches only as a whole term ('H&E' not inside 'the', 'CT' not inside 'Colorectal')."""
    whole = len(term) <= SHORT_TERM or not term.isalnum()
    body = r"\s*".join(re.escape(part) for part in re.split(r"\s*(?=[&+])|(?<=[&+])\s*", term))
    return re.compile(r"(?<![^\W_])" + body + (r"(?![^\W_])" if whole else ""))


def _topic_fields(words: list[str], texts: dict[str, str | None]) -> list[str] | None:
    """The fields where the topic's terms occur (each term must occur in one of them), or None."""
    found: list[str] = []
    for word in words:
        pattern = _term_pattern(word)
        where = [f for f in TOPIC_FIELDS if texts.get(f) and pattern.search(str(texts[f]).casefold())]
        if not where:
            return None
        found.extend(f for f in where if f not in found)
    return [f for f in TOPIC_FIELDS if f in found]


def list_collections(
    catalog: Catalog,
    cancer_type: str | None = None,
    tumor_location: str | None = None,
    modality: str | None = None,
    license: str | None = None,
    topic: str | None = None,
) -> CollectionList:
    filters = {
        k: v.strip()
        for k, v in (
            ("topic", topic),
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
    rows = catalog.execute(_SUMMARY).rows
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
        for r in rows
    ]
    if "topic" in filters:
        words = _topic_words(filters["topic"])
        if not words:
            raise SelectionError("topic has no words to search for; give one or more words, e.g. 'kidney'.")
        for info, r in zip(infos, rows, strict=True):
            texts = {"collection_id": r[0], "collection_name": r[1], "cancer_types": r[2]}
            texts |= {"tumor_locations": r[3], "modalities": ", ".join(r[8]), "description": r[11]}
            info.matched_fields = _topic_fields(words, texts)
    fields: dict[str, Callable[[CollectionInfo], str | list[str] | None]] = {
        "topic": lambda c: ", ".join(c.matched_fields or []),
        "cancer_type": lambda c: c.cancer_types,
        "tumor_location": lambda c: c.tumor_locations,
        "modality": lambda c: c.modalities,
        "license": lambda c: c.licenses,
    }

    # A filter that matches no collection on its own is a mistake: say so, with the nearest values.
    def keeps(c: CollectionInfo, name: str, value: str) -> bool:
        return c.matched_fields is not None if name == "topic" else _matches(fields[name](c), value)

    for name, value in filters.items():
        if not any(keeps(c, name, value) for c in infos):
            if name == "topic":
                raise SelectionError(
                    f"No collection mentions {value!r} in {', '.join(TOPIC_FIELDS)}. Try a broader word "
                    "(an organ, a cancer type), or list_collections() to see them all."
                )
            raise SelectionError(_no_match_message(catalog, infos, name, value, fields[name]))
    matched = [c for c in infos if all(keeps(c, n, v) for n, v in filters.items())]
    notes = _wider_topic(catalog, filters, matched)
    if "topic" in filters and len(matched) > MOST_OF_THE_CATALOG * len(infos):
        notes.append(_too_broad(filters["topic"], matched, len(infos)))
    if "topic" in filters:  # matches in the id, name, cancer types or sites before description-only ones
        matched.sort(key=lambda c: TOPIC_FIELDS.index((c.matched_fields or ["description"])[0]))
    if not matched:
        notes.append(
            "Each filter matches some collections, but no collection matches all of them together. Drop one."
        )
    return CollectionList(
        collections=matched[:MAX_COLLECTIONS],
        count=len(matched),
        truncated=len(matched) > MAX_COLLECTIONS,
        filters=filters,
        searched_fields=list(TOPIC_FIELDS) if "topic" in filters else None,
        notes=notes,
        next_step="Pass collection_ids to check_licenses, estimate_size or get_citations; the query tool "
        "narrows further (e.g. by Modality or BodyPartExamined).",
    )


def _too_broad(topic: str, matched: list[CollectionInfo], total: int) -> str:
    """A topic that matches most of the catalog does not narrow it: say so, with narrower terms."""
    sites: dict[str, int] = {}
    for c in matched:
        for site in (c.tumor_locations or "").split(","):
            if site.strip() and site.strip().casefold() not in ("various", "n/a"):
                sites[site.strip()] = sites.get(site.strip(), 0) + 1
    common = sorted(sites, key=lambda s: (-sites[s], s))[:5]
    return (
        f"topic={topic!r} matches {len(matched)} of {total} collections: most of the catalog. Narrow it "
        f"with a site or cancer type (e.g. {', '.join(repr(s) for s in common)}), modality= or another word."
    )


def _wider_topic(catalog: Catalog, filters: dict[str, str], matched: list[CollectionInfo]) -> list[str]:
    """A cancer_type or tumor_location filter sees one field: say what a topic search finds besides."""
    word = filters.get("cancer_type") or filters.get("tumor_location")
    if not word or "topic" in filters:
        return []
    others = {k: v for k, v in filters.items() if k in ("modality", "license")}
    try:
        found = list_collections(catalog, topic=word, **others)  # type: ignore[arg-type]
    except SelectionError:
        return []
    have = {c.collection_id for c in matched}
    extra = [c for c in found.collections if c.collection_id not in have]
    if not extra:
        return []
    shown = ", ".join(f"{c.collection_id} ({', '.join(c.matched_fields or [])})" for c in extra[:5])
    args = ", ".join(f"{k}={v!r}" for k, v in {"topic": word, **others}.items())
    return [
        f"{len(extra)} more collection(s) mention {word!r} in other fields: {shown}"
        f"{', ...' if len(extra) > 5 else ''}. list_collections({args}) searches "
        f"{', '.join(TOPIC_FIELDS)}."
    ]


def _no_match_message(
    catalog: Catalog,
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
    topic = ""
    if name in ("cancer_type", "tumor_location"):
        try:
            found = list_collections(catalog, topic=value)
        except SelectionError:
            found = None
        if found is not None and found.count:
            ids = ", ".join(c.collection_id for c in found.collections[:5])
            topic = (
                f" A topic search finds {found.count} collection(s) mentioning it ({ids}"
                f"{', ...' if found.count > 5 else ''}): call list_collections(topic={value!r})."
            )
    return (
        f"No collection has {name} containing {value!r} (case-insensitive substring).{hint}{topic} "
        f"Call list_collections() without {name} to see the values in use."
    )
