"""A local S3 mirror (moto) holding synthetic DICOM objects, made with pydicom and highdicom, under the
S3 prefixes of real series of the bundled index: one per preview case.

Every object's pixels are known, so tests can assert on the rendered pixels: a CT whose slices carry
stripes of known HU and a block coding their position (object names and InstanceNumbers shuffled, so
only geometry gives the order), MR, PT, an MG in MONOCHROME1, a multi-frame RGB US, slide pyramids
(TILED_FULL and TILED_SPARSE) with JPEG tiles, a SEG over the CT, and one CT slice per codec.
"""

from __future__ import annotations

import io
import logging
import random
import uuid
from dataclasses import dataclass, field

import boto3
import duckdb
import highdicom as hd
import idc_index_data
import numpy as np
import pydicom
from moto.server import ThreadedMotoServer
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sr.codedict import codes
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from tests.s3_fixture import public_bucket

PARQUET = str(idc_index_data.IDC_INDEX_PARQUET_FILEPATH)
CT_SIZE = 256
CT_SLICES = 9
CT_Z0, CT_DZ = -40.0, 5.0  # slice k lies at z = CT_Z0 + k * CT_DZ
# HU of the eight vertical stripes of every CT slice (32 columns each).
STRIPES_HU = [-1024, -800, -600, -160, 40, 150, 240, 1000]
HEVC = UID("1.2.840.10008.1.2.4.107")  # HEVC/H.265: no decoder here
CODECS = {
    "rle": RLELossless,
    "jpeg_baseline": JPEGBaseline8Bit,
    "jpegls": JPEGLSLossless,
    "j2k": JPEG2000Lossless,
    "jpeg_extended": JPEGExtended12Bit,  # 12-bit lossy (SOF1), encoded with imagecodecs
    "jpeg_lossless": JPEGLosslessSV1,  # process 14, first-order prediction (SOF3)
}


@dataclass
class Case:
    name: str
    uid: str
    modality: str
    body_part: str | None
    bucket: str
    crdc_series_uuid: str
    study_uid: str
    objects: dict[str, bytes] = field(default_factory=dict)
    facts: dict = field(default_factory=dict)  # what the test needs to know (UIDs, positions, colours)

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.objects.values())


# moto keeps one store per process: tests/s3_fixture.py's mirror puts objects under series of these
# collections, so the preview cases never use them (a shared prefix would add objects to a case).
S3_FIXTURE_COLLECTIONS = ("4d_lung", "acrin_nsclc_fdg_pet", "breast_cancer_screening_dbt")


def _pick(modality: str, count: int, where: str = "") -> list[tuple]:
    sql = f"""
        SELECT SeriesInstanceUID, Modality, BodyPartExamined, aws_bucket, crdc_series_uuid, StudyInstanceUID
        FROM read_parquet('{PARQUET}')
        WHERE Modality = '{modality}' AND analysis_result_id IS NULL {where}
          AND collection_id NOT IN {S3_FIXTURE_COLLECTIONS!r}
        ORDER BY SeriesInstanceUID LIMIT {count}"""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    return con.execute(sql).fetchall()


def _case(name: str, row: tuple) -> Case:
    return Case(name, row[0], row[1], row[2], row[3], row[4], row[5])


def _save(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _base(case: Case, sop_class: str, syntax: UID = ExplicitVRLittleEndian) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Preview^Test", "P1", "19700101", "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = case.study_uid, case.uid
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID = (
        "20200101", "120000", "A1", "", "1",
    )  # fmt: skip
    ds.Modality, ds.SeriesNumber, ds.Manufacturer = case.modality, 1, "test"
    if case.body_part:
        ds.BodyPartExamined = case.body_part
    return ds


def _grey(ds: Dataset, pixels: np.ndarray, signed: bool = False) -> None:
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = pixels.astype(np.int16 if signed else np.uint16).tobytes()


def ct_slice_hu(k: int) -> np.ndarray:
    """Slice k: eight stripes of known HU, and a block (rows 0-31, columns 0-31) at 100 * k HU."""
    hu = np.repeat(np.array(STRIPES_HU, np.int32), CT_SIZE // len(STRIPES_HU))[np.newaxis].repeat(CT_SIZE, 0)
    hu[:32, :32] = 100 * k
    return hu


def make_ct_datasets(case: Case, frame_uid: str) -> list[Dataset]:
    out = []
    numbers = list(range(1, CT_SLICES + 1))
    random.Random(3).shuffle(numbers)  # InstanceNumber says nothing about position
    for k in range(CT_SLICES):
        ds = _base(case, CTImageStorage)
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_uid, ""
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = numbers[k]
        ds.ImagePositionPatient = [-100.0, -100.0, CT_Z0 + k * CT_DZ]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.8, 0.8], CT_DZ
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.KVP, ds.AcquisitionNumber = 120, 1
        _grey(ds, ct_slice_hu(k) + 1024)
        out.append(ds)
    return out


def _put_series(case: Case, datasets: list[Dataset], rng: random.Random) -> None:
    for ds in datasets:
        case.objects[f"{case.crdc_series_uuid}/{uuid.UUID(int=rng.getrandbits(128))}.dcm"] = _save(ds)


def _stack(case: Case, values: list[np.ndarray], sop_class: str) -> list[Dataset]:
    out = []
    for k, pixels in enumerate(values):
        ds = _base(case, sop_class)
        ds.FrameOfReferenceUID = generate_uid()
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0.0, 0.0, float(k)], [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [1.0, 1.0]
        _grey(ds, pixels)
        out.append(ds)
    return out


def make_sm_level(
    case: Case, total: int, tile: int, colour_of, image_type: str, sparse: bool = False, texture: int = 0
) -> Dataset:
    """One pyramid level: `total` x `total` pixels in JPEG tiles of `tile` px; tile (r, c) is filled with
    colour_of(r, c), plus uniform noise of +-`texture` grey levels (tissue-like JPEG sizes)."""
    ds = _base(case, "1.2.840.10008.5.1.4.1.1.77.1.6", JPEGBaseline8Bit)
    ds.ImageType = ["DERIVED" if image_type != "LABEL" else "ORIGINAL", "PRIMARY", image_type, "NONE"]
    ds.TotalPixelMatrixRows = ds.TotalPixelMatrixColumns = total
    ds.Rows = ds.Columns = tile
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL_422", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.LossyImageCompression = "01"
    per_side = total // tile
    positions = [(r, c) for r in range(per_side) for c in range(per_side)]
    if sparse:
        random.Random(5).shuffle(positions)  # a sparse level may list its tiles in any order
    frames = []
    for r, c in positions:
        buf = io.BytesIO()
        pixels = np.full((tile, tile, 3), colour_of(r, c), np.int16)
        if texture:
            pixels += np.random.default_rng(r * 1000 + c).integers(
                -texture, texture + 1, pixels.shape, np.int16
            )
        tile_image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
        tile_image.save(buf, "JPEG", quality=95 if not texture else 80, subsampling=2)
        frames.append(buf.getvalue())
    ds.NumberOfFrames = len(frames)
    ds.DimensionOrganizationType = "TILED_SPARSE" if sparse else "TILED_FULL"
    if sparse:
        items = []
        for r, c in positions:
            plane = Dataset()
            plane.RowPositionInTotalImagePixelMatrix = r * tile + 1
            plane.ColumnPositionInTotalImagePixelMatrix = c * tile + 1
            plane.XOffsetInSlideCoordinateSystem = plane.YOffsetInSlideCoordinateSystem = 0.0
            item = Dataset()
            item.PlanePositionSlideSequence = [plane]
            items.append(item)
        ds.PerFrameFunctionalGroupsSequence = items
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    return ds


QUADRANTS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]


def _sm_case(case: Case, rng: random.Random, sparse: bool) -> None:
    levels = [
        make_sm_level(case, 2048, 256, lambda r, c: (250, 250, 250), "VOLUME"),  # full resolution: white
        make_sm_level(case, 512, 128, lambda r, c: (128, 128, 128), "VOLUME"),
        make_sm_level(case, 128, 64, lambda r, c: QUADRANTS[2 * r + c], "VOLUME", sparse=sparse),
        make_sm_level(case, 64, 64, lambda r, c: (0, 0, 0), "LABEL"),  # smaller, but a label: not a level
    ]
    for ds in levels:
        key = f"{case.crdc_series_uuid}/{uuid.UUID(int=rng.getrandbits(128))}.dcm"
        case.objects[key] = _save(ds)
        if ds.TotalPixelMatrixRows == 2048:
            case.facts["full_level_key"] = key
        if ds.TotalPixelMatrixRows == 128 and "LABEL" not in ds.ImageType:
            case.facts["smallest_level_key"] = key


def make_seg(case: Case, ct: list[Dataset], kind: str = "BINARY") -> tuple[Dataset, dict]:
    """Two segments: a large square on slice 6 and a small one on slice 2 (slice 6 must be shown).

    `kind`: BINARY (bit-packed frames), FRACTIONAL (8-bit probabilities) or LABELMAP (one frame per
    slice whose values are segment numbers)."""
    mask = np.zeros((len(ct), CT_SIZE, CT_SIZE), np.uint8)
    mask[6, 100:160, 100:160] = 1  # segment 1, 3,600 px
    mask[2, 10:20, 10:20] = 2  # segment 2, 100 px (also segment 2 on slice 6, smaller than segment 1 there)
    mask[6, 200:210, 200:210] = 2
    algorithm = hd.AlgorithmIdentificationSequence(
        name="test", version="1", family=codes.cid7162.ArtificialIntelligence
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=label,
            segmented_property_category=codes.cid7150.Tissue,
            segmented_property_type=codes.cid7166.ConnectiveTissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        )
        for n, label in ((1, "Tumour"), (2, "Node"))
    ]
    pixel_array: np.ndarray = mask
    if kind == "FRACTIONAL":  # one probability plane per segment, 0.9 inside
        pixel_array = np.stack([(mask == n) * np.float32(0.9) for n in (1, 2)], axis=-1)
    seg = hd.seg.Segmentation(
        source_images=ct,
        pixel_array=pixel_array,
        segmentation_type=hd.seg.SegmentationTypeValues[kind],
        segment_descriptions=descriptions,
        series_instance_uid=case.uid,
        series_number=2,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
    )
    return seg, {"largest_source_uid": ct[6].SOPInstanceUID}


def codec_dataset(case: Case, syntax: UID) -> Dataset:
    ds = _base(case, CTImageStorage, ExplicitVRLittleEndian)
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0.0, 0.0, 0.0], [1, 0, 0, 0, 1, 0]
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    hu = ct_slice_hu(3)
    if syntax == JPEGBaseline8Bit:  # 8-bit only: store HU + 1024 scaled into 0-255 (slope 8)
        ds.RescaleSlope = 8
        stored = np.clip((hu + 1024) // 8, 0, 255).astype(np.uint8)
        ds.Rows, ds.Columns = stored.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit, ds.PixelRepresentation = 7, 0
        buf = io.BytesIO()
        Image.fromarray(stored, "L").save(buf, "JPEG", quality=95)
        ds.PixelData = encapsulate([buf.getvalue()])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = syntax
        ds.LossyImageCompression = "01"
        return ds
    _grey(ds, hu + 1024)
    ds.BitsStored, ds.HighBit = 12, 11
    if syntax in (JPEGExtended12Bit, JPEGLosslessSV1):  # no pydicom encoder: libjpeg-turbo via imagecodecs
        import imagecodecs

        stored = (hu + 1024).astype(np.uint16)
        if syntax == JPEGExtended12Bit:
            frame = imagecodecs.jpeg8_encode(stored, level=95, bitspersample=12)
            ds.LossyImageCompression = "01"
        else:
            frame = imagecodecs.jpeg8_encode(stored, lossless=True, bitspersample=12, predictor=1)
        ds.PixelData = encapsulate([frame])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = syntax
        return ds
    if syntax == HEVC:
        ds.PixelData = encapsulate([b"\x00\x00\x01" + bytes(200)])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = syntax
        return ds
    ds.compress(syntax)
    return ds


@dataclass
class PreviewMirror:
    endpoint: str
    server: ThreadedMotoServer
    cases: dict[str, Case]

    def client(self):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip


def start_preview_mirror(seed: int = 11) -> PreviewMirror:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    rng = random.Random(seed)
    ct_rows = _pick("CT", 1 + len(CODECS) + 1, "AND BodyPartExamined = 'CHEST'")
    cases = {"ct": _case("ct", ct_rows[0])}
    for name, row in zip([*CODECS, "hevc"], ct_rows[1:], strict=True):
        cases[f"codec_{name}"] = _case(f"codec_{name}", row)
    for name, modality in (("mr", "MR"), ("pt", "PT"), ("mg", "MG"), ("us", "US")):
        cases[name] = _case(name, _pick(modality, 1)[0])
    seg_kinds = {
        "seg": "BINARY",
        "seg_fractional": "FRACTIONAL",
        "seg_labelmap": "LABELMAP",
        "seg_positions": "BINARY",  # without source image references: matched by plane position
    }
    for name, row in zip(seg_kinds, _pick("SEG", len(seg_kinds)), strict=True):
        cases[name] = _case(name, row)
    sm_rows = _pick("SM", 2)
    cases["sm_full"], cases["sm_sparse"] = _case("sm_full", sm_rows[0]), _case("sm_sparse", sm_rows[1])
    cases["rtstruct"] = _case("rtstruct", _pick("RTSTRUCT", 1)[0])

    ct = cases["ct"]
    ct_sets = make_ct_datasets(ct, generate_uid())
    _put_series(ct, ct_sets, rng)
    by_key = {k: pydicom.dcmread(io.BytesIO(v), stop_before_pixels=True) for k, v in ct.objects.items()}
    ct.facts["z_of_key"] = {k: float(d.ImagePositionPatient[2]) for k, d in by_key.items()}
    ct.facts["uid_of_slice"] = [d.SOPInstanceUID for d in ct_sets]

    for name, syntax in [*CODECS.items(), ("hevc", HEVC)]:
        _put_series(cases[f"codec_{name}"], [codec_dataset(cases[f"codec_{name}"], syntax)], rng)

    grid = np.indices((128, 128)).sum(axis=0)  # 0..254, a ramp
    _put_series(
        cases["mr"],
        _stack(cases["mr"], [grid * 10 + 100 * k for k in range(3)], "1.2.840.10008.5.1.4.1.1.4"),
        rng,
    )
    pet = [np.full((128, 128), 100) for _ in range(3)]
    for p in pet:
        p[40:80, 40:80] = 30000  # a hot lesion
    _put_series(cases["pt"], _stack(cases["pt"], pet, "1.2.840.10008.5.1.4.1.1.128"), rng)

    mg = _base(cases["mg"], "1.2.840.10008.5.1.4.1.1.1.2")
    pixels = np.full((256, 192), 200, np.uint16)
    pixels[100:150, 50:100] = 4000  # dense tissue: high stored value, shown white after MONOCHROME1 inversion
    _grey(mg, pixels)
    mg.PhotometricInterpretation, mg.BitsStored, mg.HighBit = "MONOCHROME1", 12, 11
    mg.ImagerPixelSpacing = [0.1, 0.1]
    _put_series(cases["mg"], [mg], rng)

    us = _base(cases["us"], "1.2.840.10008.5.1.4.1.1.3.1")
    frames = 40
    rgb = np.zeros((frames, 256, 256, 3), np.uint8)
    for k in range(frames):
        rgb[k] = (k * 6, 255 - k * 6, 10)
    us.Rows, us.Columns, us.NumberOfFrames = 256, 256, frames
    us.SamplesPerPixel, us.PhotometricInterpretation, us.PlanarConfiguration = 3, "RGB", 0
    us.BitsAllocated, us.BitsStored, us.HighBit, us.PixelRepresentation = 8, 8, 7, 0
    us.FrameTime, us.FrameIncrementPointer = 33.0, pydicom.tag.Tag("FrameTime")
    us.PixelData = rgb.tobytes()
    _put_series(cases["us"], [us], rng)

    _sm_case(cases["sm_full"], rng, sparse=False)
    _sm_case(cases["sm_sparse"], rng, sparse=True)

    for name, kind in seg_kinds.items():
        seg_case = cases[name]
        seg_ds, facts = make_seg(seg_case, ct_sets, kind)
        if name == "seg_positions":
            for item in seg_ds.PerFrameFunctionalGroupsSequence:
                del item.DerivationImageSequence
        seg_case.facts.update(facts, referenced_series_uid=ct.uid)
        key = f"{seg_case.crdc_series_uuid}/{uuid.UUID(int=rng.getrandbits(128))}.dcm"
        seg_case.objects[key] = _save(seg_ds)

    rt = _base(cases["rtstruct"], "1.2.840.10008.5.1.4.1.1.481.3")
    _put_series(cases["rtstruct"], [rt], rng)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    mirror = PreviewMirror(f"http://{host}:{port}", server, cases)
    s3 = mirror.client()
    for bucket in sorted({c.bucket for c in cases.values()}):
        public_bucket(s3, bucket)
    for case in cases.values():
        for key, data in case.objects.items():
            s3.put_object(Bucket=case.bucket, Key=key, Body=data, ACL="public-read")
    return mirror
