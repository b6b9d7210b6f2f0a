"""Synthetic IDC BigQuery tables for the emulator, derived from real series of the bundled index.

`dicom_all` has one row per instance (up to 3 per series) of a few collections, with the series-level
columns copied from `index` and made-up instance-level ones: SOPInstanceUID, SliceThickness,
ContrastBolusAgent, instance_size, URLs, REPEATED ImageType and PixelSpacing, and a two-level
REPEATED RECORD ReferencedSeriesSequence. `segmentations` and `quantitative_measurements` carry RECORD
code fields as IDC's do. `idc_current` also has one series that the local catalog does not (a newer
release); the fixed releases `idc_v<N-1>` and `idc_v<N>` do not.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass, field
from typing import Any

import idc_index_data

from idc_mcp.catalog.database import Catalog

PROJECT = "bigquery-public-data"
COLLECTIONS = {
    "nsclc_radiomics": ("CT", "SEG", "SR", "RTSTRUCT"),
    "qin_prostate_repeatability": ("MR", "SEG", "SR"),
    "tcga_luad": ("CT", "PT"),
    "lidc_idri": ("CT", "SEG", "SR"),
    "4d_lung": ("CT",),
}
SERIES_PER_GROUP = 4
INSTANCES_PER_SERIES = 3
RELEASE = int(idc_index_data.__version__.split(".")[0])
NEW_SERIES_UID = "1.2.826.0.1.3680043.8.498.20991231.1"
NEW_COLLECTION = "new_collection_2099"


def _code(meaning: str, value: str, scheme: str = "SCT") -> dict[str, str]:
    return {"CodeValue": value, "CodingSchemeDesignator": scheme, "CodeMeaning": meaning}


CODE = [("CodeValue", "STRING"), ("CodingSchemeDesignator", "STRING"), ("CodeMeaning", "STRING")]

DICOM_ALL_SCHEMA: list[tuple] = [
    ("collection_id", "STRING"),
    ("analysis_result_id", "STRING"),
    ("PatientID", "STRING"),
    ("PatientSex", "STRING"),
    ("PatientAge", "STRING"),
    ("StudyInstanceUID", "STRING"),
    ("StudyDate", "DATE"),
    ("SeriesInstanceUID", "STRING"),
    ("SOPInstanceUID", "STRING"),
    ("Modality", "STRING"),
    ("BodyPartExamined", "STRING"),
    ("SeriesDescription", "STRING"),
    ("Manufacturer", "STRING"),
    ("ManufacturerModelName", "STRING"),
    ("SliceThickness", "FLOAT"),
    ("ContrastBolusAgent", "STRING"),
    ("InstanceNumber", "INTEGER"),
    ("ImageType", "STRING", "REPEATED"),
    ("PixelSpacing", "FLOAT", "REPEATED"),
    (
        "ReferencedSeriesSequence",
        "RECORD",
        "REPEATED",
        [
            ("SeriesInstanceUID", "STRING"),
            ("ReferencedInstanceSequence", "RECORD", "REPEATED", [("ReferencedSOPInstanceUID", "STRING")]),
        ],
    ),
    ("license_short_name", "STRING"),
    ("source_DOI", "STRING"),
    ("crdc_series_uuid", "STRING"),
    ("instance_size", "INTEGER"),
    ("gcs_url", "STRING"),
    ("aws_url", "STRING"),
]

# The columns of IDC's `segmentations` and `quantitative_measurements` views, by the names and types of
# IDC's published table definitions (bigquery-public-data.idc_current; neither view has `collection_id`:
# a recipe takes it from `dicom_all`). Docs' BigQuery recipes run against these tables, so a recipe that
# names a column IDC does not have fails here as it would on BigQuery.
SEGMENTATIONS_SCHEMA: list[tuple] = [
    ("PatientID", "STRING"),
    ("StudyInstanceUID", "STRING"),
    ("SeriesInstanceUID", "STRING"),
    ("SOPInstanceUID", "STRING"),
    ("FrameOfReferenceUID", "STRING"),
    ("AnatomicRegion", "RECORD", "NULLABLE", CODE),
    ("AnatomicRegionModifier", "RECORD", "NULLABLE", CODE),
    ("SegmentedPropertyCategory", "RECORD", "NULLABLE", CODE),
    (
        "SegmentedPropertyType",
        "RECORD",
        "NULLABLE",
        [
            *CODE,
            ("AnatomicRegionModifierSequence", "RECORD", "NULLABLE", CODE),
            ("SegmentedPropertyTypeModifierCodeSequence", "RECORD", "NULLABLE", CODE),
        ],
    ),
    ("SegmentAlgorithmType", "STRING"),
    ("SegmentAlgorithmName", "STRING"),
    ("SegmentNumber", "INTEGER"),
    ("TrackingUID", "STRING"),
    ("TrackingID", "STRING"),
    ("segmented_SeriesInstanceUID", "STRING"),
    ("viewer_url", "STRING"),
]

CODE_WITH_VERSION = [*CODE[:2], ("CodingSchemeVersion", "STRING"), CODE[2]]
QUANTITATIVE_SCHEMA: list[tuple] = [
    ("PatientID", "STRING"),
    ("SOPInstanceUID", "STRING"),
    ("SeriesDescription", "STRING"),
    ("measurementGroup_number", "INTEGER"),
    ("segmentationInstanceUID", "STRING"),
    ("segmentationSegmentNumber", "INTEGER"),
    ("sourceSegmentedSeriesUID", "STRING"),
    ("trackingIdentifier", "STRING"),
    ("trackingUniqueIdentifier", "STRING"),
    ("Quantity", "RECORD", "NULLABLE", CODE),
    ("derivationModifier", "RECORD", "NULLABLE", CODE),
    ("lateralityModifier", "RECORD", "NULLABLE", CODE),
    ("Value", "NUMERIC"),
    ("Units", "RECORD", "NULLABLE", CODE_WITH_VERSION),
    ("finding", "RECORD", "NULLABLE", CODE_WITH_VERSION),
    ("findingSite", "RECORD", "NULLABLE", CODE_WITH_VERSION),
]

SEGMENTS = {
    "nsclc_radiomics": [_code("Neoplasm, Primary", "86049000"), _code("Lung", "39607008")],
    "qin_prostate_repeatability": [
        _code("Prostate", "41216001"),
        _code("Peripheral zone of the prostate", "279706003"),
    ],
    "lidc_idri": [_code("Nodule", "27925004")],
}


def schema_fields(bigquery: Any, spec: list[tuple]) -> list[Any]:
    fields = []
    for entry in spec:
        name, kind = entry[0], entry[1]
        mode = entry[2] if len(entry) > 2 else "NULLABLE"
        sub = schema_fields(bigquery, entry[3]) if len(entry) > 3 else ()
        fields.append(bigquery.SchemaField(name, kind, mode=mode, fields=sub))
    return fields


def _n(text: str, modulo: int) -> int:
    return zlib.crc32(text.encode()) % modulo


@dataclass
class SyntheticIdc:
    dicom_all: list[dict] = field(default_factory=list)
    segmentations: list[dict] = field(default_factory=list)
    quantitative: list[dict] = field(default_factory=list)
    series: list[str] = field(default_factory=list)  # SeriesInstanceUIDs of the real series used

    def by_collection(self, collection: str, modality: str) -> list[str]:
        return list(
            dict.fromkeys(
                r["SeriesInstanceUID"]
                for r in self.dicom_all
                if r["collection_id"] == collection and r["Modality"] == modality
            )
        )


def synthetic_idc(catalog: Catalog) -> SyntheticIdc:
    data = SyntheticIdc()
    for collection, modalities in COLLECTIONS.items():
        for modality in modalities:
            rows = catalog.records(
                "SELECT * FROM index WHERE collection_id = ? AND Modality = ? "
                "ORDER BY SeriesInstanceUID LIMIT ?",
                [collection, modality, SERIES_PER_GROUP],
            )
            for series in rows:
                _add_series(data, series)
    # The series of the guide's "one series" example.
    for series in catalog.records(
        "SELECT * FROM index WHERE SeriesInstanceUID = ?",
        ["1.3.6.1.4.1.14519.5.2.1.6834.5010.155488857019753544209698582121"],
    ):
        if series["SeriesInstanceUID"] not in data.series:
            _add_series(data, series)
    return data


def _add_series(data: SyntheticIdc, s: dict) -> None:
    uid = s["SeriesInstanceUID"]
    data.series.append(uid)
    collection, modality = s["collection_id"], s["Modality"]
    count = max(1, min(int(s["instanceCount"] or 1), INSTANCES_PER_SERIES))
    study_date = None
    if s.get("StudyDate"):
        try:
            study_date = dt.date.fromisoformat(str(s["StudyDate"])[:10]).isoformat()
        except ValueError:
            study_date = None
    images = data.by_collection(collection, "CT") or data.by_collection(collection, "MR")
    for number in range(1, count + 1):
        sop = f"1.2.826.0.1.3680043.8.498.{_n(uid, 10**9)}.{number}"
        references = []
        if modality in ("SEG", "SR", "RTSTRUCT") and images:
            references = [
                {
                    "SeriesInstanceUID": images[_n(uid, len(images))],
                    "ReferencedInstanceSequence": [{"ReferencedSOPInstanceUID": f"{sop}.9"}],
                }
            ]
        data.dicom_all.append(
            {
                "collection_id": collection,
                "analysis_result_id": s.get("analysis_result_id"),
                "PatientID": s["PatientID"],
                "PatientSex": s.get("PatientSex"),
                "PatientAge": s.get("PatientAge"),
                "StudyInstanceUID": s["StudyInstanceUID"],
                "StudyDate": study_date,
                "SeriesInstanceUID": uid,
                "SOPInstanceUID": sop,
                "Modality": modality,
                "BodyPartExamined": s.get("BodyPartExamined"),
                "SeriesDescription": s.get("SeriesDescription"),
                "Manufacturer": s.get("Manufacturer"),
                "ManufacturerModelName": s.get("ManufacturerModelName"),
                "SliceThickness": [1.0, 1.25, 2.5, 3.0, 5.0][_n(uid, 5)]
                if modality in ("CT", "MR", "PT")
                else None,
                "ContrastBolusAgent": ["Gadavist", "Magnevist", None][_n(uid, 3)]
                if modality == "MR"
                else None,
                "InstanceNumber": number,
                "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"]
                if modality in ("CT", "MR", "PT")
                else ["DERIVED"],
                "PixelSpacing": [0.7, 0.7] if modality in ("CT", "MR", "PT") else [],
                "ReferencedSeriesSequence": references,
                "license_short_name": s.get("license_short_name"),
                "source_DOI": s.get("source_DOI"),
                "crdc_series_uuid": s.get("crdc_series_uuid"),
                "instance_size": 100_000 + _n(sop, 400_000),
                "gcs_url": f"gs://idc-open-data/{s.get('crdc_series_uuid')}/{sop}.dcm",
                "aws_url": f"s3://idc-open-data/{s.get('crdc_series_uuid')}/{sop}.dcm",
            }
        )
    if modality == "SEG" and collection in SEGMENTS:
        for number, code in enumerate(SEGMENTS[collection], start=1):
            data.segmentations.append(
                {
                    "PatientID": s["PatientID"],
                    "StudyInstanceUID": s["StudyInstanceUID"],
                    "SeriesInstanceUID": uid,
                    "SOPInstanceUID": f"1.2.826.0.1.3680043.8.498.{_n(uid, 10**9)}.1",
                    "SegmentNumber": number,
                    "TrackingID": f"segment {number}",
                    "SegmentedPropertyCategory": _code("Morphologically Altered Structure", "49755003"),
                    "SegmentedPropertyType": code,
                    "AnatomicRegion": _code("Thorax", "51185008")
                    if collection != "qin_prostate_repeatability"
                    else None,
                    "SegmentAlgorithmType": ["MANUAL", "AUTOMATIC", "SEMIAUTOMATIC"][_n(uid, 3)],
                    "SegmentAlgorithmName": None if _n(uid, 3) == 0 else "nnU-Net",
                    "segmented_SeriesInstanceUID": images[_n(uid, len(images))] if images else None,
                }
            )
    if modality == "SR" and collection in SEGMENTS:
        finding = SEGMENTS[collection][0]
        for quantity, value, units in (
            (_code("Volume", "118565006"), 1000.0 + _n(uid, 9000), _code("cubic millimeter", "mm3", "UCUM")),
            (
                _code("Maximum 3D diameter", "L0JK", "IBSI"),
                10.0 + _n(uid, 40),
                _code("millimeter", "mm", "UCUM"),
            ),
        ):
            data.quantitative.append(
                {
                    "PatientID": s["PatientID"],
                    "SOPInstanceUID": f"1.2.826.0.1.3680043.8.498.{_n(uid, 10**9)}.1",
                    "SeriesDescription": s.get("SeriesDescription"),
                    "measurementGroup_number": 0,
                    "segmentationInstanceUID": None,
                    "sourceSegmentedSeriesUID": images[_n(uid, len(images))] if images else None,
                    "trackingIdentifier": "finding 1",
                    "finding": finding,
                    "findingSite": _code("Lung", "39607008")
                    if collection != "qin_prostate_repeatability"
                    else None,
                    "Quantity": quantity,
                    "Value": float(value),
                    "Units": units,
                }
            )


def _new_release_series() -> dict:
    return {
        "collection_id": NEW_COLLECTION,
        "analysis_result_id": None,
        "PatientID": "NEW-0001",
        "PatientSex": "F",
        "PatientAge": "061Y",
        "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.20991231",
        "StudyDate": "2099-12-31",
        "SeriesInstanceUID": NEW_SERIES_UID,
        "SOPInstanceUID": NEW_SERIES_UID + ".1",
        "Modality": "CT",
        "BodyPartExamined": "CHEST",
        "SeriesDescription": "a series of a release newer than the bundled index",
        "Manufacturer": "SIEMENS",
        "ManufacturerModelName": None,
        "SliceThickness": 1.0,
        "ContrastBolusAgent": None,
        "InstanceNumber": 1,
        "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
        "PixelSpacing": [0.7, 0.7],
        "ReferencedSeriesSequence": [],
        "license_short_name": "CC BY 4.0",
        "source_DOI": None,
        "crdc_series_uuid": None,
        "instance_size": 123_456,
        "gcs_url": None,
        "aws_url": None,
    }


def seed(client: Any, bigquery: Any, data: SyntheticIdc, more_releases: tuple[str, ...] = ()) -> list[str]:
    """Create the datasets and tables in the emulator (also the releases `more_releases` names, such as
    those the docs' examples pin); returns the dataset names."""
    datasets = list(dict.fromkeys(["idc_current", f"idc_v{RELEASE - 1}", f"idc_v{RELEASE}", *more_releases]))
    tables = {
        "dicom_all": (
            DICOM_ALL_SCHEMA,
            data.dicom_all,
            "One row per DICOM instance: every attribute plus IDC columns.",
        ),
        "segmentations": (SEGMENTATIONS_SCHEMA, data.segmentations, "One row per segment of each DICOM SEG."),
        "quantitative_measurements": (
            QUANTITATIVE_SCHEMA,
            data.quantitative,
            "Measurements of DICOM SR TID 1500.",
        ),
    }
    for dataset in datasets:
        client.create_dataset(f"{PROJECT}.{dataset}", exists_ok=True)
        for name, (spec, rows, description) in tables.items():
            table = bigquery.Table(f"{PROJECT}.{dataset}.{name}", schema=schema_fields(bigquery, spec))
            table.description = description
            client.create_table(table, exists_ok=True)
            if dataset == f"idc_v{RELEASE - 1}" and name == "dicom_all":
                rows = rows[: len(rows) // 2]
            if dataset == "idc_current" and name == "dicom_all":
                rows = [*rows, _new_release_series()]
            if rows:
                errors = client.insert_rows_json(f"{PROJECT}.{dataset}.{name}", rows)
                assert not errors, errors[:3]
    return datasets
