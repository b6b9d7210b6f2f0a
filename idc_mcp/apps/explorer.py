"""What the IDC explorer app shows, as plain functions: the overview of a selection (totals and counts by
facet), a page of series cards, and the selection narrowed by the facet values the user clicked.

The app never sends SQL: it sends the selection it was opened with plus `filters` (facet -> exact
values), and `narrowed` turns those into a selection every selection tool accepts, so the actions the
app offers (check_licenses, estimate_size, export_manifest, download, save_cohort) run on exactly what
is shown.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import BaseModel, Field

from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.sqltext import quote_identifier, sql_literal
from idc_mcp.tools.selection import Selection, SelectionError, resolve_selection, selection_where

Facet = Literal["collection", "modality", "body_part", "manufacturer", "license"]
# facet -> column of `index`; the only columns a filter can name (the app sends facet names, not SQL).
FACET_COLUMNS: dict[str, str] = {
    "collection": "collection_id",
    "modality": "Modality",
    "body_part": "BodyPartExamined",
    "manufacturer": "Manufacturer",
    "license": "license_short_name",
}
NOT_GIVEN = "(not given)"  # the bar of series whose value is NULL
MAX_BARS = 12
MAX_FILTER_VALUES = 50
PAGE_SIZE = 12
MAX_PAGE_SIZE = 48
MAX_PAGE = 10_000  # 48 x 10,000 > the 100,000 series a selection may hold

Filters = dict[Facet, list[str]]


class Bar(BaseModel):
    value: str
    series: int
    size_MB: float


class FacetCounts(BaseModel):
    facet: Facet
    bars: list[Bar] = Field(description=f"the {MAX_BARS} values with most series")
    others: int = Field(0, description="series under values not shown")
    distinct: int


class Overview(BaseModel):
    selection: dict[str, object] = Field(
        description="the selection shown, as arguments of every selection tool"
    )
    filters: dict[str, list[str]]
    series: int
    patients: int
    studies: int
    size_MB: float
    facets: list[FacetCounts]


class SeriesCard(BaseModel):
    series_uid: str
    collection_id: str
    patient_id: str | None
    modality: str | None
    body_part: str | None
    description: str | None
    instances: int | None
    size_MB: float | None
    license: str | None


class SeriesPage(BaseModel):
    page: int
    pages: int
    series: int
    cards: list[SeriesCard]


def clean_filters(filters: dict[str, list[str]] | None) -> Filters:
    """Refuse unknown facets and bad values; drop empty lists."""
    cleaned: Filters = {}
    for facet, values in (filters or {}).items():
        if facet not in FACET_COLUMNS:
            raise SelectionError(
                f"Unknown filter {facet!r}: filters are keyed by {', '.join(FACET_COLUMNS)}."
            )
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise SelectionError(f"filters[{facet!r}] must be a list of strings.")
        if len(values) > MAX_FILTER_VALUES:
            raise SelectionError(f"filters[{facet!r}] has {len(values)} values; at most {MAX_FILTER_VALUES}.")
        if any(len(v) > 256 or "\x00" in v for v in values):
            raise SelectionError(f"filters[{facet!r}] holds a value longer than 256 characters or with NUL.")
        if values:
            cleaned[facet] = list(dict.fromkeys(values))  # type: ignore[index]
    return cleaned


def _condition(facet: str, values: list[str]) -> str:
    column = quote_identifier(FACET_COLUMNS[facet])
    named = [v for v in values if v != NOT_GIVEN]
    parts = [f"{column} IN ({', '.join(sql_literal(v) for v in named)})"] if named else []
    if NOT_GIVEN in values:
        parts.append(f"{column} IS NULL")
    return "(" + " OR ".join(parts) + ")"


def narrowed(selection: Selection, filters: Filters) -> Selection:
    """The selection with the filters added as `sql` (a SELECT of SeriesInstanceUID over `index`), which
    every selection tool combines with the other arguments by AND."""
    if not filters:
        return selection
    conditions = [_condition(facet, values) for facet, values in sorted(filters.items())]
    if selection.sql:
        conditions.insert(
            0, f"SeriesInstanceUID IN (SELECT SeriesInstanceUID FROM ({selection.sql}) AS _base)"
        )
    sql = "SELECT SeriesInstanceUID FROM index WHERE " + " AND ".join(conditions)
    return replace(selection, sql=sql)


def as_arguments(selection: Selection) -> dict[str, object]:
    """The selection as the arguments a selection tool takes (what the app passes on to the actions)."""
    arguments: dict[str, object] = {}
    for name in ("collection_ids", "patient_ids", "study_uids", "series_uids"):
        if values := getattr(selection, name):
            arguments[name] = list(values)
    if selection.sql:
        arguments["sql"] = selection.sql
    if selection.analysis_results != "include":
        arguments["analysis_results"] = selection.analysis_results
    return arguments


def overview(catalog: Catalog, selection: Selection, filters: Filters | None = None) -> Overview:
    """Totals and the counts by collection, modality, body part, manufacturer and license."""
    filters = clean_filters(filters)  # type: ignore[arg-type]
    effective = narrowed(selection, filters)
    where, params = selection_where(resolve_selection(catalog, effective))
    # One scan: the rows of the selection, grouped by each facet and once in all (GROUPING SETS).
    columns = [quote_identifier(c) for c in FACET_COLUMNS.values()]
    sets = ", ".join(f"({c})" for c in columns)
    rows = catalog.execute(
        f"SELECT grouping({', '.join(columns)}) AS g, {', '.join(columns)}, count(*) AS n, "
        "coalesce(sum(series_size_MB), 0) AS mb, count(DISTINCT PatientID), count(DISTINCT StudyInstanceUID) "
        f"FROM index WHERE {where} GROUP BY GROUPING SETS ({sets}, ()) ORDER BY g, n DESC",
        params,
    ).rows
    everything = len(columns)
    by_facet: dict[int, list[tuple]] = {i: [] for i in range(everything)}
    totals = (0, 0, 0, 0.0)
    for g, *values, n, mb, patients, studies in rows:
        grouped = [i for i in range(everything) if not g >> (everything - 1 - i) & 1]
        if not grouped:
            totals = (n, patients, studies, mb)
        else:
            by_facet[grouped[0]].append((values[grouped[0]], n, mb))
    series, patients, studies, size = totals
    facets = []
    for i, facet in enumerate(FACET_COLUMNS):
        found = sorted(by_facet[i], key=lambda r: (-r[1], r[0] is None, str(r[0])))
        bars = [Bar(value=NOT_GIVEN if v is None else str(v), series=n, size_MB=round(float(mb), 1))
                for v, n, mb in found[:MAX_BARS]]  # fmt: skip
        facets.append(
            FacetCounts(
                facet=facet,  # type: ignore[arg-type]
                bars=bars,
                others=sum(n for _, n, _ in found[MAX_BARS:]),
                distinct=len(found),
            )
        )
    return Overview(
        selection=as_arguments(effective),
        filters={k: list(v) for k, v in filters.items()},
        series=series,
        patients=patients,
        studies=studies,
        size_MB=round(float(size), 1),
        facets=facets,
    )


def series_page(
    catalog: Catalog,
    selection: Selection,
    filters: Filters | None = None,
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> SeriesPage:
    """One page of series cards (1-based pages, in collection, patient, study order)."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise SelectionError(f"page_size={page_size} is out of range: give 1 to {MAX_PAGE_SIZE}.")
    if not 1 <= page <= MAX_PAGE:
        raise SelectionError(f"page={page} is out of range: pages start at 1 and stop at {MAX_PAGE:,}.")
    resolved = resolve_selection(catalog, narrowed(selection, clean_filters(filters)))  # type: ignore[arg-type]
    pages = max(1, -(-resolved.count // page_size))
    if page > pages:
        raise SelectionError(
            f"page={page} is past the last page: the selection has {resolved.count:,} series, "
            f"{pages:,} page(s) of {page_size}."
        )
    where, params = selection_where(resolved)
    rows = catalog.execute(
        "SELECT SeriesInstanceUID, collection_id, PatientID, Modality, BodyPartExamined, SeriesDescription, "
        f"instanceCount, series_size_MB, license_short_name FROM index WHERE {where} "
        "ORDER BY collection_id, PatientID, StudyInstanceUID, SeriesInstanceUID "
        f"LIMIT {page_size} OFFSET {(page - 1) * page_size}",
        params,
    ).rows
    cards = [
        SeriesCard(
            series_uid=r[0],
            collection_id=r[1],
            patient_id=r[2],
            modality=r[3],
            body_part=r[4],
            description=r[5],
            instances=r[6],
            size_MB=None if r[7] is None else round(float(r[7]), 2),
            license=r[8],
        )  # fmt: skip
        for r in rows
    ]
    return SeriesPage(page=page, pages=pages, series=resolved.count, cards=cards)


def summary(view: Overview) -> str:
    """The overview as text: what a host without MCP Apps shows, and what the model reads."""
    lines = [
        f"{view.series:,} series, {view.patients:,} patients, {view.studies:,} studies, "
        f"{view.size_MB / 1000:,.1f} GB."
    ]
    if view.filters:
        lines.append("Filters: " + "; ".join(f"{k} = {', '.join(v)}" for k, v in view.filters.items()) + ".")
    for facets in view.facets:
        shown = ", ".join(f"{b.value} {b.series:,}" for b in facets.bars[:6])
        more = f" (+{facets.distinct - 6} more)" if facets.distinct > 6 else ""
        lines.append(f"By {facets.facet.replace('_', ' ')}: {shown}{more}.")
    return "\n".join(lines)
