"""What a download will fetch and where each series lands: the series plan, with each series' folder
rendered from the template (`tools.layout`, shared with export_manifest).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idc_mcp.catalog.database import Catalog, QueryFailed
from idc_mcp.catalog.sqltext import sql_literal
from idc_mcp.tools.layout import (  # the folder template lives with the tools: export_manifest uses it too
    DEFAULT_TEMPLATE,
    PLACEHOLDERS,
    TemplateError,
    check_template,
    render_folder,
)
from idc_mcp.tools.selection import ResolvedSelection, Selection, clean_ids, selection_where

__all__ = [
    "DEFAULT_TEMPLATE",
    "PLACEHOLDERS",
    "SeriesPlan",
    "TemplateError",
    "check_template",
    "render_folder",
]


@dataclass(frozen=True)
class SeriesPlan:
    series_uid: str
    collection_id: str
    patient_id: str
    study_uid: str
    modality: str
    analysis_result_id: str | None
    license_short_name: str | None
    source_doi: str | None
    bucket: str
    crdc_series_uuid: str
    index_size_bytes: int
    folder: str  # relative to the destination, '/'-separated ('' when the template is flat)
    instance_count: int = 0  # files the index says the series has (bounds what a call lists)

    @property
    def prefix(self) -> str:
        return f"{self.crdc_series_uuid}/"

    @property
    def s3_url(self) -> str:
        return f"s3://{self.bucket}/{self.crdc_series_uuid}/"


MAX_HINTED_UIDS = 10_000  # UIDs one plan query takes (as many as a series_uids argument holds)
_SERIES_SQL = """
SELECT SeriesInstanceUID, collection_id, PatientID, StudyInstanceUID, Modality, analysis_result_id,
       license_short_name, source_DOI, aws_bucket, crdc_series_uuid, series_size_MB, instanceCount
FROM index WHERE {where}
ORDER BY collection_id, PatientID, StudyInstanceUID, SeriesInstanceUID
"""


def plan_series(catalog: Catalog, resolved: ResolvedSelection, template: str) -> list[SeriesPlan]:
    """One SeriesPlan per selected series, with its bucket, prefix and destination folder."""
    where, params = selection_where(resolved)
    return _plans(_rows_where(catalog, where, params), template)


def plan_with_hints(
    catalog: Catalog, selection: Selection, template: str, collection_of: dict[str, str]
) -> list[SeriesPlan] | None:
    """The plan of a selection made only of `series_uids`, in one query and without resolving it first
    (resolving, then planning, scans the index three times): filtered also on the collections a previous
    run recorded (`collection_of`: uid -> collection_id) when every UID has one. None when the selection
    has other filters or a UID does not come back (see `plan_uids_with_hints`)."""
    if selection.sql or selection.collection_ids or selection.patient_ids or selection.study_uids:
        return None
    uids = clean_ids("series_uids", selection.series_uids, uid=True)
    if not uids:
        return None
    if selection.analysis_results == "exclude":
        extra = " AND analysis_result_id IS NULL"
    elif selection.analysis_results == "only":
        extra = " AND analysis_result_id IS NOT NULL"
    elif selection.analysis_results == "include":
        extra = ""
    else:
        return None
    return plan_uids_with_hints(catalog, uids, template, collection_of, extra, hints_required=False)


def plan_uids_with_hints(
    catalog: Catalog,
    uids: list[str],
    template: str,
    collection_of: dict[str, str],
    extra: str = "",
    hints_required: bool = True,
) -> list[SeriesPlan] | None:
    """The plan of these SeriesInstanceUIDs (checked UIDs: digits and dots) in one query, filtered also
    on the collections a previous run recorded for them when every UID has one; without hints for all,
    None, or with `hints_required=False` a query on the UIDs alone.

    The index is sorted by collection_id, so that filter lets DuckDB skip most of the million rows,
    where a filter on SeriesInstanceUID alone reads them all. The hints only narrow the scan: every
    UID must come back (a UID is one row of the index), otherwise — a hint was wrong, a UID is unknown
    or filtered out by `extra` — this returns None and the caller takes the general path with its
    checks and error messages.
    """
    if not uids or len(uids) > MAX_HINTED_UIDS:
        return None
    hinted = all(uid in collection_of for uid in uids)
    if not hinted and hints_required:
        return None
    where = "SeriesInstanceUID IN (SELECT unnest(?))"
    if hinted:
        collections = sorted({collection_of[uid] for uid in uids})
        where = f"collection_id IN ({', '.join(map(sql_literal, collections))}) AND {where}"
    rows = _rows_where(catalog, where + extra, [uids])
    if len(rows) != len(uids) or {r["SeriesInstanceUID"] for r in rows} != set(uids):
        return None
    return _plans(rows, template)


def _rows_where(catalog: Catalog, where: str, params: list[object]) -> list[dict[str, Any]]:
    """The plan's rows of `index` that match `where`, found first by a scan of the filtered columns
    alone, then read by rowid: filtering the whole projection read all twelve columns of the million
    rows (3x slower for a few series, the same for thousands). One statement: one snapshot. While the
    catalog file is being built, `index` is a view over the parquet file, without rowids: then the
    plain filter."""
    try:
        return catalog.records(
            _SERIES_SQL.format(where=f"rowid IN (SELECT rowid FROM index WHERE {where})"), params
        )
    except QueryFailed:
        return catalog.records(_SERIES_SQL.format(where=where), params)


def _plans(rows: list[dict[str, Any]], template: str) -> list[SeriesPlan]:
    plans = []
    for row in rows:
        plans.append(
            SeriesPlan(
                series_uid=row["SeriesInstanceUID"],
                collection_id=row["collection_id"],
                patient_id=row["PatientID"],
                study_uid=row["StudyInstanceUID"],
                modality=row["Modality"],
                analysis_result_id=row["analysis_result_id"],
                license_short_name=row["license_short_name"],
                source_doi=row["source_DOI"],
                bucket=row["aws_bucket"],
                crdc_series_uuid=row["crdc_series_uuid"],
                index_size_bytes=int(round((row["series_size_MB"] or 0) * 1_000_000)),
                folder=render_folder(template, row) if template else "",
                instance_count=int(row["instanceCount"] or 0),
            )
        )
    return plans


def folder_path(destination: Path, series: SeriesPlan) -> Path:
    return destination.joinpath(*series.folder.split("/")) if series.folder else destination
