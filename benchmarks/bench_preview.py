"""Bytes moved and time to a preview vs downloading the series with `download`, same local S3 mirror.

A moto S3 server runs in its own process on 127.0.0.1 and holds synthetic objects of realistic size
under the S3 prefixes of real series of the bundled index:
  - a chest CT: 200 slices of 512 x 512 int16 (~105 MB), each header with an 8 KB private block;
  - an ultrasound cine loop: one instance, 120 RGB frames of 480 x 640 (~111 MB);
  - a slide (SM): a pyramid of 8192^2, 2048^2 and 512^2 pixels in 512 px textured JPEG tiles (~60 MB),
    plus a label;
  - a SEG over the CT (two segments on a few slices).
For each case the preview (no cache; a fresh S3 client state) is timed 3 times (median), then the
series is downloaded with the download engine into an empty folder (once). Prints bytes and seconds
of each and the ratios download / preview.

Run: /work/venv/bin/python benchmarks/bench_preview.py
"""

from __future__ import annotations

import io
import logging
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_download import start_moto  # noqa: E402

from idc_mcp.catalog.database import get_catalog  # noqa: E402
from idc_mcp.download import engine  # noqa: E402
from idc_mcp.preview.service import clear_caches, make_preview  # noqa: E402
from idc_mcp.tools.selection import Selection  # noqa: E402
from tests import preview_fixture as fx  # noqa: E402
from tests.s3_fixture import public_bucket  # noqa: E402


def ct_series(case: fx.Case, slices: int = 200) -> list:
    from pydicom.uid import CTImageStorage, generate_uid

    frame_uid, out = generate_uid(), []
    rng = np.random.default_rng(1)
    for k in range(slices):
        ds = fx._base(case, CTImageStorage)
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_uid, ""
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-250.0, -250.0, -300.0 + 1.25 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.98, 0.98], 1.25
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.KVP, ds.AcquisitionNumber = 120, 1
        block = ds.private_block(0x0029, "BENCH PRIVATE", create=True)
        block.add_new(0x10, "OB", bytes(8192))  # like a vendor header block
        fx._grey(ds, rng.integers(0, 2000, (512, 512)).astype(np.uint16))
        out.append(ds)
    return out


def us_cine(case: fx.Case):  # type: ignore[no-untyped-def]
    ds = fx._base(case, "1.2.840.10008.5.1.4.1.1.3.1")
    frames = 120
    ds.Rows, ds.Columns, ds.NumberOfFrames = 480, 640, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.random.default_rng(2).integers(0, 255, (frames, 480, 640, 3), np.uint8).tobytes()
    return ds


def sm_levels(case: fx.Case) -> list:
    rng = random.Random(3)

    def colour(r: int, c: int) -> tuple[int, int, int]:
        return (rng.randint(100, 255), rng.randint(50, 200), rng.randint(100, 255))

    return [
        fx.make_sm_level(case, 8192, 512, colour, "VOLUME", texture=40),
        fx.make_sm_level(case, 2048, 512, colour, "VOLUME", texture=40),
        fx.make_sm_level(case, 512, 512, colour, "VOLUME", texture=40),
        fx.make_sm_level(case, 256, 256, colour, "LABEL", texture=40),
    ]


def make_seg(case: fx.Case, ct_sets: list, mask: np.ndarray):  # type: ignore[no-untyped-def]
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    algorithm = hd.AlgorithmIdentificationSequence(
        name="bench", version="1", family=codes.cid7162.ArtificialIntelligence
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n, segment_label=label,
            segmented_property_category=codes.cid7150.Tissue,
            segmented_property_type=codes.cid7166.ConnectiveTissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        )
        for n, label in ((1, "Tumour"), (2, "Node"))
    ]  # fmt: skip
    seg = hd.seg.Segmentation(
        source_images=ct_sets, pixel_array=mask, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=case.uid, series_number=2,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="bench",
        manufacturer_model_name="bench", software_versions="1", device_serial_number="1",
    )  # fmt: skip
    return seg


def build(endpoint: str) -> dict[str, fx.Case]:
    cases = {
        "CT slice": fx._case("ct", fx._pick("CT", 1, "AND BodyPartExamined = 'CHEST'")[0]),
        "US cine frame": fx._case("us", fx._pick("US", 1)[0]),
        "SM thumbnail": fx._case("sm", fx._pick("SM", 1)[0]),
        "SEG overlay": fx._case("seg", fx._pick("SEG", 1)[0]),
    }
    ct_sets = ct_series(cases["CT slice"])
    for name, datasets in (
        ("CT slice", ct_sets),
        ("US cine frame", [us_cine(cases["US cine frame"])]),
        ("SM thumbnail", sm_levels(cases["SM thumbnail"])),
    ):
        fx._put_series(cases[name], datasets, random.Random(4))
    mask = np.zeros((len(ct_sets), 512, 512), np.uint8)
    mask[100:104, 200:300, 200:300] = 1
    mask[90:95, 50:80, 50:80] = 2
    seg_case = cases["SEG overlay"]
    seg_ds = make_seg(seg_case, ct_sets, mask)
    buf = io.BytesIO()
    seg_ds.save_as(buf, enforce_file_format=True)
    seg_case.objects[f"{seg_case.crdc_series_uuid}/{uuid.uuid4()}.dcm"] = buf.getvalue()
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    for bucket in {c.bucket for c in cases.values()}:
        # Public read, like IDC's buckets: preview and download both send anonymous requests.
        public_bucket(s3, bucket)
    for case in cases.values():
        for key, data in case.objects.items():
            s3.put_object(Bucket=case.bucket, Key=key, Body=data, ACL="public-read")
    return cases


def main() -> None:
    logging.disable(logging.INFO)
    proc, endpoint = start_moto()
    work = Path(tempfile.mkdtemp(prefix="bench_preview_"))
    try:
        print("building the mirror…", file=sys.stderr)
        cases = build(endpoint)
        catalog = get_catalog()
        opts = engine.Options(endpoint_url=endpoint)
        head = (
            "case",
            "series MB",
            "preview MB",
            "preview s",
            "download MB",
            "download s",
            "bytes x",
            "time x",
        )
        print("{:<14} {:>9} {:>10} {:>9} {:>11} {:>10} {:>8} {:>7}".format(*head), flush=True)
        for name, case in cases.items():
            times, fetched = [], []
            for _ in range(3):
                clear_caches()  # each run from scratch: no headers, listing or row kept from the last
                started = time.perf_counter()
                made = make_preview(catalog, endpoint, None, case.uid)
                times.append(time.perf_counter() - started)
                fetched.append(made.info.bytes_fetched)
            preview_s, preview_b = statistics.median(times), fetched[0]
            series_b = made.info.series_bytes  # for SEG: the SEG and its referenced series
            engine.clear_caches()
            uids = [case.uid] + ([made.info.referenced_series_uid] if made.info.referenced_series_uid else [])
            dest = work / name.replace(" ", "_")
            started = time.perf_counter()
            outcome = engine.download(catalog, Selection(series_uids=uids), dest, opts)
            download_s = time.perf_counter() - started
            download_b = outcome.bytes_downloaded
            print(
                f"{name:<14} {series_b / 1e6:>9.1f} {preview_b / 1e6:>10.3f} {preview_s:>9.3f} "
                f"{download_b / 1e6:>11.1f} {download_s:>10.2f} {download_b / max(1, preview_b):>7.0f}x "
                f"{download_s / preview_s:>6.1f}x",
                flush=True,
            )
        print("bytes x / time x: download / preview (higher = the preview moves less, returns sooner).")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
