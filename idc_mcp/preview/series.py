"""Which series to preview: its row of the index (modality, body part, bucket, S3 prefix)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.memo import Memo
from idc_mcp.preview.errors import PreviewError
from idc_mcp.tools.selection import Selection, SelectionError, clean_ids, report_unknown, resolve_selection

_SQL = """
SELECT SeriesInstanceUID, collection_id, StudyInstanceUID, Modality, BodyPartExamined, SeriesDescription,
       instanceCount, aws_bucket, crdc_series_uuid, series_size_MB, license_short_name
FROM index WHERE SeriesInstanceUID = ?
"""


# Rows found last, per catalog content: a viewer stepping through one series looks it up once.
_ROWS: Memo[SeriesRow] = Memo(maxsize=256)


@dataclass(frozen=True)
class SeriesRow:
    series_uid: str
    collection_id: str
    study_uid: str
    modality: str
    body_part: str | None
    description: str | None
    instance_count: int
    bucket: str
    crdc_series_uuid: str
    size_bytes: int
    license: str | None

    @property
    def prefix(self) -> str:
        return f"{self.crdc_series_uuid}/"

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> SeriesRow:
        return cls(
            series_uid=r["SeriesInstanceUID"],
            collection_id=r["collection_id"],
            study_uid=r["StudyInstanceUID"],
            modality=r["Modality"] or "",
            body_part=r["BodyPartExamined"],
            description=r["SeriesDescription"],
            instance_count=int(r["instanceCount"] or 0),
            bucket=r["aws_bucket"],
            crdc_series_uuid=r["crdc_series_uuid"],
            size_bytes=int(round((r["series_size_MB"] or 0) * 1_000_000)),
            license=r["license_short_name"],
        )


def find_series(catalog: Catalog, series_uid: str) -> SeriesRow:
    """The index row of one SeriesInstanceUID; a malformed or unknown UID is refused with a hint."""
    try:
        uids = clean_ids("series_uid", [series_uid] if isinstance(series_uid, str) else series_uid, uid=True)
        if not uids or len(uids) != 1:
            raise PreviewError("series_uid takes exactly one SeriesInstanceUID.")
        key = (catalog.cache_key, uids[0])
        if (known := _ROWS.get(key)) is not None:
            return known
        rows = catalog.records(_SQL, [uids[0]])
        if not rows:
            report_unknown(catalog, "series_uid", "SeriesInstanceUID", uids)
    except SelectionError as exc:
        raise PreviewError(str(exc)) from exc
    row = SeriesRow.from_record(rows[0])
    _ROWS.put(key, row)
    return row


def forget_rows() -> None:
    _ROWS.clear()


def find_member(catalog: Catalog, series_uid: str, cohort: str, root: Path | None = None) -> SeriesRow:
    """A member of a saved cohort (in `root`'s cohorts folder) at its saved version, which a later
    release may have revised or removed."""
    try:
        resolved = resolve_selection(catalog, Selection(cohort=cohort, cohort_root=root))
    except SelectionError as exc:
        raise PreviewError(str(exc)) from exc
    pin = resolved.pinned.get(series_uid)
    if pin is None and series_uid not in resolved.series_uids:
        raise PreviewError(
            f"Series {series_uid!r} is not a member of cohort {cohort!r}. Pick one of its members "
            "(export_manifest with format='csv' lists them), or leave cohort out."
        )
    if pin is None:
        return find_series(catalog, series_uid)
    rows = catalog.records(_SQL, [series_uid])
    current: dict[str, Any] = rows[0] if rows else {"BodyPartExamined": None, "SeriesDescription": None}
    return SeriesRow.from_record({**current, **{k: v for k, v in pin.items() if k in _PINNED}})


# What a cohort's saved version of a series sets (the rest of the row is the series' current metadata).
_PINNED = (
    "SeriesInstanceUID", "collection_id", "StudyInstanceUID", "Modality", "instanceCount", "aws_bucket",
    "crdc_series_uuid", "series_size_MB", "license_short_name",
)  # fmt: skip


def find_series_quietly(catalog: Catalog, series_uid: str) -> SeriesRow | None:
    """The row of a UID read from a file (e.g. a SEG's referenced series), or None if not in the index."""
    rows = catalog.records(_SQL, [series_uid])
    return SeriesRow.from_record(rows[0]) if rows else None
