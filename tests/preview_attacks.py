"""Hostile DICOM objects for the preview attack tests, each small on the wire and huge once decoded, put
on a local S3 mirror (moto) under the S3 prefixes of real series of the bundled index.

Every object declares more than it is: a slide level of 6,000 tiles in a 256 x 256 matrix, a deflated CT
slice of 24,000 x 24,000 (1.1 GiB of zeros deflated to ~1 MB), a deflated SEG of 1.1 GiB of pixel data,
an RLE slice of 23,000 x 23,000 at 16 bits, an ultrasound JPEG of 16,000 x 16,000 RGB, a 16 x 16 CT of
2^31 - 1 frames, 40 RLE frames of 4,096 x 4,096, and a SEG of 3,000 segments on one slice. Deflated
streams are assembled from one compressed block of zeros repeated (a full flush makes blocks
independent), so building them costs seconds, not the gigabyte they inflate to.
"""

from __future__ import annotations

import io
import logging
import struct
import uuid
import zlib
from dataclasses import dataclass

import duckdb
import numpy as np
import pydicom
from moto.server import ThreadedMotoServer
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    generate_uid,
)

from tests.preview_fixture import PARQUET, S3_FIXTURE_COLLECTIONS, Case, _base, _case, _grey, _save
from tests.s3_fixture import public_bucket

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
SM_STORAGE = "1.2.840.10008.5.1.4.1.1.77.1.6"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
ZEROS = bytes(16 << 20)


def _pick_last(modality: str, count: int) -> list[tuple]:
    """Series at the far end of the index from tests/preview_fixture.py's picks (moto's store is shared
    by every server of the process: a prefix must not hold another fixture's objects)."""
    sql = f"""
        SELECT SeriesInstanceUID, Modality, BodyPartExamined, aws_bucket, crdc_series_uuid, StudyInstanceUID
        FROM read_parquet('{PARQUET}')
        WHERE Modality = '{modality}' AND analysis_result_id IS NULL
          AND collection_id NOT IN {S3_FIXTURE_COLLECTIONS!r}
        ORDER BY SeriesInstanceUID DESC LIMIT {count}"""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    return con.execute(sql).fetchall()


def _key(case: Case) -> str:
    return f"{case.crdc_series_uuid}/{uuid.uuid4()}.dcm"


def _explicit_body(ds: Dataset) -> tuple[bytes, bytes]:
    """(preamble + file meta, dataset) of `ds` written in Explicit VR Little Endian."""
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    whole = _save(ds)
    f = io.BytesIO(whole)
    read_preamble(f, False)
    _read_file_meta_info(f)
    return whole[: f.tell()], whole[f.tell() :]


def _element_header(tag_group: int, tag_element: int, vr: bytes, length: int) -> bytes:
    return struct.pack("<HH", tag_group, tag_element) + vr + b"\0\0" + struct.pack("<I", length)


def deflated_with_zero_pixels(ds: Dataset, pixel_bytes: int) -> bytes:
    """`ds` (without pixel data) in Deflated Explicit VR Little Endian, followed by `pixel_bytes` zero
    bytes of (7FE0,0010) OW: the object is about pixel_bytes / 1000 bytes."""
    head, body = _explicit_body(ds)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    meta = io.BytesIO()
    pydicom.filewriter.write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    start = c.compress(body + _element_header(0x7FE0, 0x0010, b"OW", pixel_bytes)) + c.flush(
        zlib.Z_FULL_FLUSH
    )
    block = c.compress(ZEROS) + c.flush(zlib.Z_FULL_FLUSH)  # independent of what came before
    whole, rest = divmod(pixel_bytes, len(ZEROS))
    end = c.compress(bytes(rest)) + c.flush()
    return head[:132] + meta.getvalue() + start + block * whole + end


def rle_zero_frame(rows: int, columns: int, bytes_per_sample: int) -> bytes:
    """One RLE frame of zeros: one segment per byte of a sample, each row encoded on its own."""
    runs, tail = divmod(columns, 128)
    row = b"\x81\x00" * runs + (bytes([257 - tail, 0]) if tail else b"")
    segment = row * rows
    offsets = [64 + i * len(segment) for i in range(bytes_per_sample)]
    header = struct.pack("<16I", bytes_per_sample, *offsets, *[0] * (15 - bytes_per_sample))
    return header + segment * bytes_per_sample


def jpeg_declaring(width: int, height: int) -> bytes:
    """A 16 x 16 baseline JPEG whose frame header (SOF0) declares `width` x `height`."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 120, 150)).save(buf, "JPEG", quality=90)
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _image(case: Case, sop_class: str, rows: int, columns: int) -> Dataset:
    ds = _base(case, sop_class)
    ds.FrameOfReferenceUID = generate_uid()
    ds.InstanceNumber = 1
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0.0, 0.0, 0.0], [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    return ds


def slide_of_6000_tiles(case: Case) -> bytes:
    """A pyramid level declaring a 256 x 256 matrix of 256 px tiles, holding 6,000 JPEG tiles."""
    ds = _base(case, SM_STORAGE, JPEGBaseline8Bit)
    ds.ImageType = ["DERIVED", "PRIMARY", "VOLUME", "NONE"]
    ds.TotalPixelMatrixRows = ds.TotalPixelMatrixColumns = 256
    ds.Rows = ds.Columns = 256
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL_422", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.LossyImageCompression = "01"
    buf = io.BytesIO()
    Image.new("RGB", (256, 256), (200, 40, 40)).save(buf, "JPEG", quality=90, subsampling=2)
    ds.NumberOfFrames = 6000
    ds.DimensionOrganizationType = "TILED_FULL"
    ds.PixelData = encapsulate([buf.getvalue()] * 6000)
    ds["PixelData"].VR = "OB"
    return _save(ds)


def deflated_ct_24000(case: Case) -> bytes:
    ds = _image(case, CTImageStorage, 24000, 24000)
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    return deflated_with_zero_pixels(ds, 24000 * 24000 * 2)


def deflated_ct_lying(case: Case) -> bytes:
    """A deflated 256 x 256 CT slice whose pixel data element holds 1.1 GiB (its header does not say)."""
    ds = _image(case, CTImageStorage, 256, 256)
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    return deflated_with_zero_pixels(ds, 1100 << 20)


def _seg_header(case: Case, rows: int, columns: int, frames: int, kind: str) -> Dataset:
    ds = _base(case, SEG_STORAGE)
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.SegmentationType = kind
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, columns, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
    bits = 1 if kind == "BINARY" else 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    if kind == "FRACTIONAL":
        ds.SegmentationFractionalType, ds.MaximumFractionalValue = "PROBABILITY", 255
    return ds


def deflated_seg_1_1_gib(case: Case) -> bytes:
    """A FRACTIONAL SEG of 1,100 frames of 1,024 x 1,024 (1.1 GiB of pixel data), deflated to ~1 MB."""
    ds = _seg_header(case, 1024, 1024, 1100, "FRACTIONAL")
    return deflated_with_zero_pixels(ds, 1100 * 1024 * 1024)


def deflated_seg_lying(case: Case) -> bytes:
    """A deflated SEG declaring one 256 x 256 frame, whose pixel data element holds 900 MiB."""
    ds = _seg_header(case, 256, 256, 1, "FRACTIONAL")
    return deflated_with_zero_pixels(ds, 900 << 20)


def rle_slice_23000(case: Case) -> bytes:
    ds = _image(case, CTImageStorage, 23000, 23000)
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.PixelData = encapsulate([rle_zero_frame(23000, 23000, 2)])
    ds["PixelData"].VR = "OB"
    return _save(ds)


def us_jpeg_16000(case: Case) -> bytes:
    ds = _base(case, US_MULTIFRAME, JPEGBaseline8Bit)
    ds.Rows = ds.Columns = 16000
    ds.NumberOfFrames = 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL_422", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.LossyImageCompression = "01"
    ds.PixelData = encapsulate([jpeg_declaring(16000, 16000)])
    ds["PixelData"].VR = "OB"
    return _save(ds)


def ct_of_2_31_frames(case: Case) -> bytes:
    """A 16 x 16 CT declaring NumberOfFrames = 2^31 - 1 (it holds 4)."""
    ds = _image(case, CTImageStorage, 16, 16)
    _grey(ds, np.zeros((4, 16, 16), np.uint16))
    ds.NumberOfFrames = 2**31 - 1
    return _save(ds)


def rle_40_frames_4096(case: Case) -> bytes:
    ds = _image(case, CTImageStorage, 4096, 4096)
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.NumberOfFrames = 40
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.PixelData = encapsulate([rle_zero_frame(4096, 4096, 2)] * 40)
    ds["PixelData"].VR = "OB"
    return _save(ds)


def seg_of_3000_segments(case: Case, source: Case, source_ds: Dataset) -> bytes:
    """A BINARY SEG of 3,000 segments, all on the one slice `source_ds` (256 x 256, bit-packed):
    segment n covers the first (n % 200) + 1 rows."""
    segments = 3000
    ds = _seg_header(case, 256, 256, segments, "BINARY")
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.ContentLabel, ds.ContentCreatorName = "MANY", "test"
    ref = Dataset()
    ref.SeriesInstanceUID = source.uid
    instance = Dataset()
    instance.ReferencedSOPClassUID, instance.ReferencedSOPInstanceUID = (
        CTImageStorage,
        source_ds.SOPInstanceUID,
    )
    ref.ReferencedInstanceSequence = [instance]
    ds.ReferencedSeriesSequence = [ref]
    items, frames, pixels = [], [], []
    for n in range(1, segments + 1):
        segment = Dataset()
        segment.SegmentNumber, segment.SegmentLabel = n, f"segment {n}"
        segment.SegmentAlgorithmType = "MANUAL"
        items.append(segment)
        ident = Dataset()
        ident.ReferencedSegmentNumber = n
        source_item = Dataset()
        source_item.ReferencedSOPClassUID = CTImageStorage
        source_item.ReferencedSOPInstanceUID = source_ds.SOPInstanceUID
        derivation = Dataset()
        derivation.SourceImageSequence = [source_item]
        frame = Dataset()
        frame.SegmentIdentificationSequence = [ident]
        frame.DerivationImageSequence = [derivation]
        frames.append(frame)
        packed = np.zeros(256 * 256 // 8, np.uint8)
        packed[: (n % 200 + 1) * 32] = 0xFF  # 32 bytes = one row of 256 pixels
        pixels.append(packed.tobytes())
    ds.SegmentSequence = items
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = b"".join(pixels)
    return _save(ds)


def ct_source_slice(case: Case) -> Dataset:
    ds = _image(case, CTImageStorage, 256, 256)
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    _grey(ds, np.full((256, 256), 1024, np.uint16))
    return ds


@dataclass
class AttackMirror:
    endpoint: str
    server: ThreadedMotoServer
    cases: dict[str, Case]


def start_attack_mirror() -> AttackMirror:
    """Every attack object under its own real series (modalities as the index gives them)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    ct = iter(_pick_last("CT", 6))
    cases = {name: _case(name, next(ct)) for name in (
        "deflated_ct_24000", "deflated_ct_lying", "rle_slice_23000", "ct_of_2_31_frames",
        "rle_40_frames_4096", "seg_source_ct",
    )}  # fmt: skip
    seg = iter(_pick_last("SEG", 3))
    for name in ("deflated_seg", "seg_3000", "deflated_seg_lying"):
        cases[name] = _case(name, next(seg))
    cases["slide_6000"] = _case("slide_6000", _pick_last("SM", 1)[0])
    cases["us_16000"] = _case("us_16000", _pick_last("US", 1)[0])
    source = ct_source_slice(cases["seg_source_ct"])
    builders = {
        "deflated_ct_24000": lambda c: deflated_ct_24000(c),
        "deflated_ct_lying": lambda c: deflated_ct_lying(c),
        "rle_slice_23000": lambda c: rle_slice_23000(c),
        "ct_of_2_31_frames": lambda c: ct_of_2_31_frames(c),
        "rle_40_frames_4096": lambda c: rle_40_frames_4096(c),
        "seg_source_ct": lambda c: _save(source),
        "deflated_seg": lambda c: deflated_seg_1_1_gib(c),
        "deflated_seg_lying": lambda c: deflated_seg_lying(c),
        "seg_3000": lambda c: seg_of_3000_segments(c, cases["seg_source_ct"], source),
        "slide_6000": lambda c: slide_of_6000_tiles(c),
        "us_16000": lambda c: us_jpeg_16000(c),
    }
    for name, build in builders.items():
        case = cases[name]
        case.objects[_key(case)] = build(case)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    mirror = AttackMirror(f"http://{host}:{port}", server, cases)
    import boto3

    s3 = boto3.client(
        "s3", endpoint_url=mirror.endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    for bucket in sorted({c.bucket for c in cases.values()}):
        public_bucket(s3, bucket)
    for case in cases.values():
        for key, data in case.objects.items():
            s3.put_object(Bucket=case.bucket, Key=key, Body=data, ACL="public-read")
    return mirror
