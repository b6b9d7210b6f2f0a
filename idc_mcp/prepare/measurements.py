"""SR TID 1500 (Measurement Report) -> rows of one measurements table (CSV and parquet).

highdicom reads the report (`sr.MeasurementReport`) and its measurement groups (planar ROI, volumetric
ROI, image): one row per measurement, with the group's finding, finding sites and tracking identifiers.
An SR that is not a TID 1500 report is reported by name, not guessed at.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from idc_mcp.prepare.errors import ConversionFailed

COLUMNS = (
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "sr_sop_instance_uid",
    "tracking_identifier",
    "tracking_uid",
    "finding_category",
    "finding_type",
    "finding_site",
    "measurement",
    "measurement_code",
    "value",
    "unit",
    "unit_meaning",
    "referenced_segment",
)


def _meaning(code: Any) -> str | None:
    return None if code is None else str(code.meaning)


def _code(code: Any) -> str | None:
    return None if code is None else f"{code.scheme_designator}:{code.value}"


def sr_rows(path: Path) -> list[dict[str, Any]]:
    """The measurements of one TID 1500 SR file, one dict per measurement (keys: COLUMNS)."""
    import highdicom as hd
    import pydicom

    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:
        raise ConversionFailed(f"pydicom could not read the SR: {exc}") from exc
    templates = [str(t.TemplateIdentifier) for t in getattr(ds, "ContentTemplateSequence", [])]
    if "1500" not in templates:
        raise ConversionFailed(
            f"not a TID 1500 measurement report (template {templates[0] if templates else 'none'}); "
            "only TID 1500 measurements are tabulated"
        )
    try:
        report = hd.sr.MeasurementReport.from_sequence([ds], copy=True)
        groups: list[Any] = [
            *report.get_planar_roi_measurement_groups(),
            *report.get_volumetric_roi_measurement_groups(),
            *report.get_image_measurement_groups(),
        ]
    except Exception as exc:
        raise ConversionFailed(f"highdicom could not read the TID 1500 report: {exc}") from exc
    rows = []
    for group in groups:
        sites = "; ".join(str(s.value.meaning) for s in group.finding_sites) or None
        segment = None
        referenced = getattr(group, "referenced_segment", None)
        if referenced is not None:
            segment = str(getattr(referenced, "referenced_segment_numbers", None) or "") or None
        for m in group.get_measurements():
            rows.append(
                {
                    "PatientID": str(getattr(ds, "PatientID", "")),
                    "StudyInstanceUID": str(ds.StudyInstanceUID),
                    "SeriesInstanceUID": str(ds.SeriesInstanceUID),
                    "sr_sop_instance_uid": str(ds.SOPInstanceUID),
                    "tracking_identifier": group.tracking_identifier,
                    "tracking_uid": None if group.tracking_uid is None else str(group.tracking_uid),
                    "finding_category": _meaning(group.finding_category),
                    "finding_type": _meaning(group.finding_type),
                    "finding_site": sites,
                    "measurement": _meaning(m.name),
                    "measurement_code": _code(m.name),
                    "value": float(m.value),
                    "unit": None if m.unit is None else str(m.unit.value),
                    "unit_meaning": _meaning(m.unit),
                    "referenced_segment": segment,
                }
            )
    return rows


def table_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def table_parquet(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {c: pa.string() for c in COLUMNS}
    types["value"] = pa.float64()
    schema = pa.schema([(c, types[c]) for c in COLUMNS])
    table = pa.Table.from_pylist([{c: r.get(c) for c in COLUMNS} for r in rows], schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()
