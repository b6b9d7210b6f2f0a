"""A local S3 mirror of a few real IDC series, and a fault-injecting proxy in front of it.

The mirror is moto's `ThreadedMotoServer` on 127.0.0.1 (a free port) with the three IDC buckets,
a public-read bucket policy and public-read objects: small DICOM files made with pydicom at IDC's
layout `<crdc_series_uuid>/<instance uuid>.dcm`, for real series of the bundled index picked straight
from its parquet file (not through our catalog).
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import boto3
import duckdb
import idc_index_data
import numpy as np
import pydicom
from moto.server import ThreadedMotoServer
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

BUCKETS = ("idc-open-data", "idc-open-data-two", "idc-open-data-cr")
PARQUET = str(idc_index_data.IDC_INDEX_PARQUET_FILEPATH)

# Small real series across buckets and collections: two original series of 4d_lung, a derived SEG
# (analysis result) and a CT of acrin_nsclc_fdg_pet in two buckets, and an MG in idc-open-data-cr.
_PICK_SQL = f"""
SELECT SeriesInstanceUID, collection_id, PatientID, StudyInstanceUID, Modality, aws_bucket,
       crdc_series_uuid, instanceCount, analysis_result_id, license_short_name, source_DOI
FROM read_parquet('{PARQUET}')
WHERE instanceCount BETWEEN 1 AND 3
  AND collection_id IN ('4d_lung', 'acrin_nsclc_fdg_pet', 'breast_cancer_screening_dbt')
QUALIFY row_number() OVER (PARTITION BY aws_bucket, analysis_result_id IS NULL
                           ORDER BY collection_id, SeriesInstanceUID) <= 2
ORDER BY aws_bucket, collection_id, SeriesInstanceUID
"""


@dataclass
class MirroredSeries:
    uid: str
    collection_id: str
    patient_id: str
    study_uid: str
    modality: str
    bucket: str
    crdc_series_uuid: str
    analysis_result_id: str | None
    license_short_name: str
    source_doi: str
    objects: dict[str, bytes] = field(default_factory=dict)  # key -> bytes

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.objects.values())


@dataclass
class S3Mirror:
    endpoint: str
    server: ThreadedMotoServer
    series: list[MirroredSeries]

    def client(self):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    @property
    def total_bytes(self) -> int:
        return sum(s.size for s in self.series)

    @property
    def total_files(self) -> int:
        return sum(len(s.objects) for s in self.series)


def dicom_bytes(series: MirroredSeries, rng: random.Random) -> bytes:
    """A small valid DICOM instance of the series, with random pixels (sizes differ per file)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = series.patient_id
    ds.StudyInstanceUID = series.study_uid
    ds.SeriesInstanceUID = series.uid
    ds.Modality = series.modality
    rows = rng.randint(60, 160)
    ds.Rows, ds.Columns = rows, 128
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = (
        np.random.default_rng(rng.randint(0, 2**31)).integers(0, 4096, (rows, 128), np.uint16).tobytes()
    )
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _pick_rows() -> list[tuple]:
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    return con.execute(_PICK_SQL).fetchall()


def start_mirror(seed: int = 7) -> S3Mirror:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    rows = _pick_rows()
    series = [MirroredSeries(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[8], r[9], r[10]) for r in rows]
    counts = {r[0]: r[7] for r in rows}
    mirror = S3Mirror(f"http://{host}:{port}", server, series)
    s3 = mirror.client()
    for bucket in BUCKETS:
        add_public_bucket(mirror, bucket, {})
    rng = random.Random(seed)
    for s in series:
        for _ in range(counts[s.uid]):
            key = f"{s.crdc_series_uuid}/{uuid.UUID(int=rng.getrandbits(128))}.dcm"
            data = dicom_bytes(s, rng)
            s3.put_object(Bucket=s.bucket, Key=key, Body=data, ACL="public-read")
            s.objects[key] = data
    return mirror


def public_bucket(s3: Any, bucket: str) -> None:
    """Create `bucket` if needed and make it readable and listable anonymously, as IDC's buckets are
    (`s3` is a boto3 client of the local server)."""
    if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=bucket)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PublicRead",
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


def add_public_bucket(mirror: S3Mirror, bucket: str, objects: dict[str, bytes]) -> None:
    """A bucket readable and listable anonymously (as IDC's are), holding `objects` (key -> bytes)."""
    s3 = mirror.client()
    public_bucket(s3, bucket)
    for key, data in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data, ACL="public-read")


class FaultProxy:
    """A loopback HTTP proxy in front of the mirror that can misbehave on request.

    - `fail_next(n)`: the next n requests get HTTP 500 (an S3 'InternalError' reply).
    - `corrupt_next(n)`: the next n object bodies arrive with one byte changed (same length), without
      the store's checksum header (so only the MD5 = ETag can tell); `keep_checksum=True` keeps it.
    - `die_after_bytes(n)`: once n body bytes of object downloads were sent, the response in flight is
      cut mid-body and the proxy stops listening, like a server that died.
    - `rate_bytes_per_s`: object bodies trickle at this rate (a slow network).
    - `body_abandoned`: set once a client closed its connection before the end of a body.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.failures_left = 0
        self.failures_served = 0
        self.corruptions_left = 0
        self.corruptions_served = 0
        self.corruptions_keep_checksum = False
        self.requests = 0
        self.range_requests = 0  # GETs of a byte range (parts of an object)
        self.body_bytes_sent = 0
        self.body_abandoned = threading.Event()  # a client closed its connection before a body's end
        self.die_at: int | None = None
        self.rate_bytes_per_s: float | None = None
        self.dead = threading.Event()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def fail_next(self, n: int) -> None:
        self.failures_left = n

    def corrupt_next(self, n: int, keep_checksum: bool = False) -> None:
        self.corruptions_left = n
        self.corruptions_keep_checksum = keep_checksum

    def die_after_bytes(self, n: int) -> None:
        self.die_at = n

    def _die(self) -> None:
        if not self.dead.is_set():
            self.dead.set()
            threading.Thread(target=self.stop, daemon=True).start()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests += 1
            self.range_requests += 1 if h.headers.get("Range") else 0
            fail = self.failures_left > 0
            if fail:
                self.failures_left -= 1
                self.failures_served += 1
        if self.dead.is_set():
            h.close_connection = True
            h.connection.close()
            return
        if fail:
            body = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
            h.send_response(500)
            h.send_header("Content-Type", "application/xml")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("host", "connection")}
        conn.request("GET", h.path, headers=headers)
        reply = conn.getresponse()
        data = reply.read()
        conn.close()
        is_object = "list-type" not in h.path and reply.status in (200, 206)  # whole or a range
        corrupt = False
        if is_object and data:
            with self._lock:
                corrupt = self.corruptions_left > 0
                if corrupt:
                    self.corruptions_left -= 1
                    self.corruptions_served += 1
            if corrupt:
                middle = len(data) // 2
                data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        h.send_response(reply.status)
        for k, v in reply.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length", "server", "date"):
                # A corrupted body goes without its CRC header (unless asked): only the MD5 (ETag) check
                # can catch it.
                strip = corrupt and not self.corruptions_keep_checksum
                if not (strip and k.lower().startswith("x-amz-checksum")):
                    h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        piece = 4096
        for start in range(0, len(data), piece):
            chunk = data[start : start + piece]
            if is_object:
                with self._lock:
                    if self.die_at is not None and self.body_bytes_sent + len(chunk) > self.die_at:
                        cut = True
                    else:
                        cut = False
                        self.body_bytes_sent += len(chunk)
                if cut or self.dead.is_set():
                    self._die()
                    h.close_connection = True
                    h.connection.shutdown(2)
                    return
                if self.rate_bytes_per_s:
                    time.sleep(len(chunk) / self.rate_bytes_per_s)  # simulated link speed, not a test wait
            try:
                h.wfile.write(chunk)
            except OSError:  # the client closed the connection mid-body
                self.body_abandoned.set()
                h.close_connection = True
                return

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
