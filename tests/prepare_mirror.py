"""A local S3 server (moto) holding synthetic DICOM for the prepare_dataset tests, under the prefixes of
real series of the bundled index that share studies, as IDC's derived objects do: two rider_lung_ct
studies each with a CT and a SEG over it (the first also an RTSTRUCT and an SR TID 1500), a third study
whose CT objects are not DICOM (the converter must fail it by name), and a slide microscopy series.

Picks run from the largest UIDs down, so they never share a prefix with the other fixtures' series
(moto keeps one store per process; tests/preview_fixture.py picks the smallest UIDs).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

import boto3
import duckdb
import idc_index_data
import numpy as np
from moto.server import ThreadedMotoServer

from tests import prepare_fixture as f
from tests.s3_fixture import public_bucket

PARQUET = str(idc_index_data.IDC_INDEX_PARQUET_FILEPATH)
MEASUREMENTS = [("Long axis", 12.5, "mm"), ("Volume", 830.25, "mm3")]


@dataclass
class PrepareMirror:
    endpoint: str
    server: ThreadedMotoServer
    series: dict[str, dict] = field(default_factory=dict)  # role -> index row (uid, study, patient, ...)
    facts: dict = field(default_factory=dict)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _pick() -> dict[str, dict]:
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    base = f"""
        SELECT SeriesInstanceUID AS uid, StudyInstanceUID AS study, PatientID AS patient,
               Modality AS modality,
               aws_bucket AS bucket, crdc_series_uuid AS prefix, collection_id
        FROM read_parquet('{PARQUET}')"""
    studies = _rows(
        con,
        f"""SELECT StudyInstanceUID AS study, any_value(PatientID) AS patient FROM read_parquet('{PARQUET}')
            WHERE collection_id = 'rider_lung_ct' GROUP BY 1
            HAVING list_contains(list(Modality), 'SEG') AND list_contains(list(Modality), 'RTSTRUCT')
               AND list_contains(list(Modality), 'SR') AND list_contains(list(Modality), 'CT')
            ORDER BY study DESC""",
    )
    chosen, patients = [], set()
    for s in studies:
        if s["patient"] not in patients:
            chosen.append(s["study"])
            patients.add(s["patient"])
        if len(chosen) == 3:
            break
    picks: dict[str, dict] = {}
    for i, study in enumerate(chosen):
        for modality in ("CT", "SEG", "RTSTRUCT", "SR") if i == 0 else ("CT", "SEG") if i == 1 else ("CT",):
            row = _rows(
                con,
                f"{base} WHERE StudyInstanceUID = '{study}' AND Modality = '{modality}' "
                "ORDER BY SeriesInstanceUID DESC LIMIT 1",
            )[0]
            picks[f"{modality.lower()}{i + 1}"] = row
    picks["sm"] = _rows(
        con,
        f"{base} WHERE Modality = 'SM' AND collection_id NOT IN ('rider_lung_ct') "
        "ORDER BY SeriesInstanceUID DESC LIMIT 1",
    )[0]
    return picks


def square(g: f.Geometry, k: int, x: tuple[float, float], y: tuple[float, float]) -> np.ndarray:
    z = g.positions[k][2]
    return np.array([[x[0], y[0], z], [x[1], y[0], z], [x[1], y[1], z], [x[0], y[1], z]], float)


def start_prepare_mirror() -> PrepareMirror:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    mirror = PrepareMirror(f"http://{host}:{port}", server, _pick())
    s3 = boto3.client(
        "s3", endpoint_url=mirror.endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    for bucket in {row["bucket"] for row in mirror.series.values()}:
        public_bucket(s3, bucket)
    g = f.axial(n=6)
    mirror.facts["geometry"] = g

    def put(role: str, datasets: list) -> None:
        row = mirror.series[role]
        for ds in datasets:
            data = ds if isinstance(ds, bytes) else f.save(ds)
            s3.put_object(
                Bucket=row["bucket"], Key=f"{row['prefix']}/{uuid.uuid4()}.dcm", Body=data, ACL="public-read"
            )

    for i in (1, 2):
        ct_row = mirror.series[f"ct{i}"]
        ct = f.make_ct(g, ct_row["patient"], ct_row["study"], ct_row["uid"])
        put(f"ct{i}", ct)
        mask = np.zeros((len(ct), f.ROWS, f.COLS), np.uint8)
        mask[2, 4:8, 5:11] = 1
        mask[3, 10:12, 3:6] = 2
        mirror.facts[f"mask{i}"] = mask
        put(f"seg{i}", [f.make_seg(ct, mask, ["Tumour", "Node"], series_uid=mirror.series[f"seg{i}"]["uid"])])
        if i == 1:
            contour = square(g, 4, (-6.0, -1.2), (-4.0, 1.6))
            mirror.facts["square"] = contour
            put("rtstruct1", [f.make_rtstruct(ct, {"GTV 1": [contour]}, mirror.series["rtstruct1"]["uid"])])
            put("sr1", [f.make_sr(ct, MEASUREMENTS, mirror.series["sr1"]["uid"])])
    put("ct3", [b"not a DICOM file" * 64])
    put("sm", [b"slide bytes"])
    return mirror
