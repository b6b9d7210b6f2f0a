"""Synthetic DICOM made in the test for the prepare tests: CT series of known geometry and voxel values,
a SEG and an RTSTRUCT over them (highdicom) and an SR TID 1500 with known measurements.

Each CT voxel holds a value that codes its position in the series (slice, row, column), so a test can
compute, from the DICOM geometry alone, the patient coordinate of any voxel and the value it must hold,
then look it up in the converted NIfTI through its affine.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROWS, COLS = 20, 24
INTERCEPT = -1024


@dataclass
class Geometry:
    """Where the slices lie: a row direction, a column direction (ImageOrientationPatient), pixel
    spacing (row spacing, column spacing) and one ImagePositionPatient per slice, in stored order."""

    row_dir: tuple[float, float, float]
    col_dir: tuple[float, float, float]
    spacing: tuple[float, float]
    positions: list[tuple[float, float, float]]


def axial(n: int = 8, dz: float = 2.5, z0: float = -10.0) -> Geometry:
    return Geometry((1, 0, 0), (0, 1, 0), (0.8, 0.7), [(-8.0, -6.0, z0 + k * dz) for k in range(n)])


def feet_first(n: int = 8) -> Geometry:
    """Slices stored head to feet (z decreasing), as a feet-first acquisition lists them."""
    return Geometry((1, 0, 0), (0, 1, 0), (0.8, 0.7), [(-8.0, -6.0, 20.0 - k * 3.0) for k in range(n)])


def oblique(n: int = 8, degrees: float = 20.0) -> Geometry:
    """The slice plane tilted about the patient's x axis; slices stacked along its normal."""
    t = np.radians(degrees)
    row = (1.0, 0.0, 0.0)
    col = (0.0, float(np.cos(t)), float(-np.sin(t)))
    normal = np.cross(row, col)
    origin = np.array([-5.0, -4.0, 3.0])
    return Geometry(row, col, (0.9, 0.9), [tuple(origin + k * 2.0 * normal) for k in range(n)])


def uneven(z: tuple[float, ...] = (0.0, 2.0, 4.0, 8.0, 10.0, 12.0)) -> Geometry:
    """Axial slices with one gap twice the others (a missing slice)."""
    return Geometry((1, 0, 0), (0, 1, 0), (0.8, 0.8), [(-8.0, -6.0, float(v)) for v in z])


def voxel_value(k: int, r: int, c: int) -> int:
    """The HU stored at slice k, row r, column c: unique per voxel."""
    return k * 1000 + r * 40 + c - 900


def pixel_lps(g: Geometry, k: int, r: int, c: int) -> np.ndarray:
    """The patient (LPS) coordinate of a pixel's centre, by the DICOM standard (C.7.6.2.1.1)."""
    return (
        np.array(g.positions[k])
        + c * g.spacing[1] * np.array(g.row_dir)
        + r * g.spacing[0] * np.array(g.col_dir)
    )


def nifti_value_at(image, lps: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    """The NIfTI voxel holding the patient coordinate `lps` (NIfTI is RAS: x and y change sign)."""
    ras = np.array([-lps[0], -lps[1], lps[2], 1.0])
    ijk = np.linalg.inv(image.affine) @ ras
    index = np.round(ijk[:3]).astype(int)
    assert np.allclose(ijk[:3], index, atol=0.02), f"{lps} falls between voxels: {ijk[:3]}"
    return float(np.asarray(image.dataobj[tuple(index)]))  # dataobj applies scl_slope / scl_inter


def make_ct(
    g: Geometry,
    patient_id: str = "P1",
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_uid: str | None = None,
) -> list[Dataset]:
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_uid = frame_uid or generate_uid()
    out = []
    numbers = list(range(1, len(g.positions) + 1))
    random.Random(5).shuffle(numbers)  # InstanceNumber says nothing about position
    for k, position in enumerate(g.positions):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Prepare", patient_id, "", "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID = (
            "20200101", "120000", "A1", "", "1",
        )  # fmt: skip
        ds.SeriesDate, ds.SeriesTime, ds.AcquisitionTime = "20200101", "120000", "120000"
        ds.Modality, ds.SeriesNumber, ds.Manufacturer, ds.PositionReferenceIndicator = "CT", 1, "test", ""
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = numbers[k]
        ds.ImagePositionPatient = [float(v) for v in position]
        ds.ImageOrientationPatient = [float(v) for v in (*g.row_dir, *g.col_dir)]
        ds.PixelSpacing = [g.spacing[0], g.spacing[1]]
        ds.SliceThickness = 2.0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = INTERCEPT, 1, "HU"
        ds.KVP, ds.AcquisitionNumber = 120, 1
        ds.Rows, ds.Columns = ROWS, COLS
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        r, c = np.indices((ROWS, COLS))
        ds.PixelData = (voxel_value(k, r, c) - INTERCEPT).astype(np.int16).tobytes()
        out.append(ds)
    return out


def save(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def write_series(folder: Path, datasets: list[Dataset], seed: int = 1) -> list[Path]:
    """Write the instances under random names in shuffled order (file order says nothing)."""
    folder.mkdir(parents=True, exist_ok=True)
    order = list(range(len(datasets)))
    random.Random(seed).shuffle(order)
    paths = []
    for i in order:
        path = folder / f"{generate_uid()[-12:]}.dcm"
        path.write_bytes(save(datasets[i]))
        paths.append(path)
    return paths


def _algorithm() -> hd.AlgorithmIdentificationSequence:
    return hd.AlgorithmIdentificationSequence(
        name="test", version="1", family=codes.cid7162.ArtificialIntelligence
    )


def make_seg(
    ct: list[Dataset],
    mask: np.ndarray,
    labels: list[str],
    kind: str = "BINARY",
    series_uid: str | None = None,
) -> Dataset:
    """A SEG over `ct` (slices in the CT's stored order): `mask` holds segment numbers (BINARY), or one
    plane per segment (stacked on the last axis) for overlapping or FRACTIONAL segments."""
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=label,
            segmented_property_category=codes.cid7150.Tissue,
            segmented_property_type=codes.cid7166.ConnectiveTissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=_algorithm(),
        )
        for n, label in enumerate(labels, start=1)
    ]
    return hd.seg.Segmentation(
        source_images=ct,
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues[kind],
        segment_descriptions=descriptions,
        series_instance_uid=series_uid or generate_uid(),
        series_number=2,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
        omit_empty_frames=True,
    )


def make_rtstruct(
    ct: list[Dataset], rois: dict[str, list[np.ndarray]], series_uid: str | None = None
) -> Dataset:
    """An RTSTRUCT over `ct`: per ROI name, closed planar contours given as (n, 3) LPS points."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    first = ct[0]
    ds.PatientID, ds.PatientName, ds.StudyInstanceUID = (
        first.PatientID,
        first.PatientName,
        first.StudyInstanceUID,
    )
    ds.SeriesInstanceUID, ds.Modality, ds.SeriesNumber = series_uid or generate_uid(), "RTSTRUCT", 3
    ds.StructureSetLabel, ds.StructureSetDate, ds.StructureSetTime = "test", "20200101", "120000"
    series_ref = Dataset()
    series_ref.SeriesInstanceUID = first.SeriesInstanceUID
    study_ref = Dataset()
    study_ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study_ref.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study_ref.RTReferencedSeriesSequence = [series_ref]
    frame = Dataset()
    frame.FrameOfReferenceUID = first.FrameOfReferenceUID
    frame.RTReferencedStudySequence = [study_ref]
    ds.ReferencedFrameOfReferenceSequence = [frame]
    ds.StructureSetROISequence, ds.ROIContourSequence = [], []
    for number, (name, contours) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = (
            number,
            name,
            first.FrameOfReferenceUID,
        )
        roi.ROIGenerationAlgorithm = "MANUAL"
        ds.StructureSetROISequence.append(roi)
        item = Dataset()
        item.ReferencedROINumber, item.ROIDisplayColor = number, [255, 0, 0]
        item.ContourSequence = []
        for points in contours:
            contour = Dataset()
            contour.ContourGeometricType = "CLOSED_PLANAR"
            contour.NumberOfContourPoints = len(points)
            contour.ContourData = [f"{v:.4f}" for v in np.asarray(points).ravel()]
            item.ContourSequence.append(contour)
        ds.ROIContourSequence.append(item)
    return ds


def make_sr(
    ct: list[Dataset], measurements: list[tuple[str, float, str]], series_uid: str | None = None
) -> Dataset:
    """A TID 1500 measurement report over `ct`: one image-level measurement group, tracking identifier
    'lesion 1', finding 'Nodule' at 'Lung', holding (name, value, UCUM unit) measurements."""
    from pydicom.sr.coding import Code

    observer = hd.sr.ObserverContext(
        observer_type=codes.cid270.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name="Test^Reader"),
    )
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="lesion 1"),
        finding_type=Code("M-03010", "SRT", "Nodule"),
        finding_sites=[hd.sr.FindingSite(anatomic_location=Code("T-28000", "SRT", "Lung"))],
        measurements=[
            hd.sr.Measurement(
                name=Code(name.replace(" ", ""), "99TEST", name),
                value=value,
                unit=Code(unit, "UCUM", unit),
            )
            for name, value, unit in measurements
        ],
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=observer),
        procedure_reported=Code("P5-0905E", "SRT", "CT of chest"),
        imaging_measurements=[group],
    )
    return hd.sr.Comprehensive3DSR(
        evidence=ct,
        content=report,
        series_instance_uid=series_uid or generate_uid(),
        series_number=4,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="test",
    )
