"""A loopback HTTP server that plays the idc-index-data release and the clinical S3 bucket, for tests.

It serves synthetic index files generated from the bundled schema JSON, with real SeriesInstanceUIDs,
collection ids and PatientIDs from the bundled `index`, so joins with `index` return rows. Each route can
misbehave on purpose (status codes, cut-off transfers, a server that never answers). Reusable by any test
that needs fetched indices (e.g. documentation examples): see `serve_indices`.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import idc_index_data

from idc_mcp.schemas import all_tables

INDEX_PARQUET = str(idc_index_data.IDC_INDEX_PARQUET_FILEPATH)
CLINICAL_DATASET = f"idc_v{idc_index_data.__version__.split('.')[0]}_clinical"
# The series each synthetic index describes (preferred first; any series fills up when there are few).
MODALITY = {
    "sm_index": "SM",
    "sm_instance_index": "SM",
    "seg_index": "SEG",
    "ann_index": "ANN",
    "ann_group_index": "ANN",
    "rtstruct_index": "RTSTRUCT",
    "ct_index": "CT",
    "contrast_index": "CT",
    "volume_geometry_index": "CT",
    "mr_index": "MR",
    "pt_index": "PT",
}
# Values a researcher would recognise, for the columns the tests filter on.
REALISTIC = {
    "ObjectiveLensPower": "CASE WHEN rn % 2 = 0 THEN 20 ELSE 40 END",
    "SliceThickness": "CASE WHEN rn % 3 = 0 THEN 1.25 ELSE 2.5 END",
    "staining_usingSubstance_CodeMeaning": "['hematoxylin stain', 'water soluble eosin stain']",
    "SegmentationType": "'BINARY'",
    "AlgorithmType": "CASE WHEN rn % 2 = 0 THEN 'AUTOMATIC' ELSE 'MANUAL' END",
}


def _generic(column: str, bq_type: str, mode: str) -> str:
    scalar = {
        "STRING": f"'{column}-' || rn",
        "INTEGER": "CAST(rn % 97 AS BIGINT)",
        "FLOAT": "CAST(rn AS DOUBLE) / 4",
        "BOOLEAN": "rn % 2 = 0",
        "RECORD": "{'option_code': CAST(rn AS VARCHAR), 'option_description': 'code ' || rn}",
    }.get(bq_type, f"'{column}-' || rn")
    return f"[{scalar}, {scalar}]" if mode == "REPEATED" else scalar


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    return con


@cache
def index_sample() -> str:
    """Up to 40 real series per modality from the bundled `index` (read once per test session)."""
    path = Path(tempfile.mkdtemp(prefix="idc-sample-")) / "sample.parquet"
    con = _connect()
    con.execute(
        f"COPY (SELECT * FROM read_parquet($1) QUALIFY row_number() OVER (PARTITION BY Modality "
        f"ORDER BY SeriesInstanceUID) <= 40) TO '{path}' (FORMAT parquet)",
        [INDEX_PARQUET],
    )
    con.close()
    return str(path)


def synthetic_index(name: str, path: Path, rows: int = 40) -> Path:
    """Write `path`: an index with exactly the bundled schema's columns, for real series of `index`."""
    info = all_tables()[name]
    con = _connect()
    sample = index_sample()
    index_columns = {
        r[0]: r[1] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [sample]).fetchall()
    }
    exprs = []
    for col in info.columns:
        quoted = '"' + col.name + '"'
        if col.name in REALISTIC:
            expr = REALISTIC[col.name]
        elif col.name in index_columns and (col.mode == "REPEATED") == index_columns[col.name].endswith("[]"):
            expr = f"i.{quoted}"
        else:
            expr = _generic(col.name, col.type, col.mode)
        exprs.append(f"{expr} AS {quoted}")
    con.execute(
        f"COPY (SELECT {', '.join(exprs)} FROM (SELECT *, row_number() OVER (ORDER BY Modality = $2 DESC, "
        f"SeriesInstanceUID) AS rn FROM read_parquet($1) QUALIFY rn <= {rows}) i ORDER BY rn) "
        f"TO '{path}' (FORMAT parquet)",
        [sample, MODALITY.get(name, "CT")],
    )
    con.close()
    return path


@dataclass(frozen=True)
class ClinicalFixture:
    collection_id: str
    short_table_name: str
    patients: int


def synthetic_clinical(folder: Path) -> tuple[Path, dict[str, Path], ClinicalFixture]:
    """clinical_index plus one clinical table (real PatientIDs of a real collection) under `folder`."""
    con = _connect()
    (collection,) = con.execute(
        "SELECT collection_id FROM read_parquet(?) GROUP BY 1 HAVING count(DISTINCT PatientID) >= 5 "
        "ORDER BY 1 LIMIT 1",
        [index_sample()],
    ).fetchone()
    short = f"{collection}_clinical"
    table = folder / "clinical" / short / "000000000000.parquet"
    table.parent.mkdir(parents=True)
    con.execute(
        "COPY (SELECT PatientID AS dicom_patient_id, 40 + row_number() OVER (ORDER BY PatientID) AS "
        "age_at_diagnosis, "
        "CASE WHEN row_number() OVER (ORDER BY PatientID) % 2 = 0 THEN 'Alive' ELSE 'Dead' END AS "
        "vital_status "
        f"FROM (SELECT DISTINCT PatientID FROM read_parquet($1) WHERE collection_id = $2)) TO '{table}' "
        "(FORMAT parquet)",
        [INDEX_PARQUET, collection],
    )
    (patients,) = con.execute("SELECT count(*) FROM read_parquet(?)", [str(table)]).fetchone()
    index = folder / "clinical_index.parquet"
    con.execute(
        f"COPY (SELECT $1 AS collection_id, 'bigquery-public-data.{CLINICAL_DATASET}.' || $2 AS table_name, "
        '$2 AS short_table_name, c AS "column", l AS column_label, '
        "[{'option_code': 'Alive', 'option_description': NULL}] AS \"values\" "
        "FROM (VALUES ('dicom_patient_id', 'Patient ID in DICOM'), "
        "('age_at_diagnosis', 'Age at diagnosis (years)'), "
        f"('vital_status', 'Vital status')) t(c, l)) TO '{index}' (FORMAT parquet)",
        [collection, short],
    )
    con.close()
    return (
        index,
        {f"bigquery_export/{CLINICAL_DATASET}/{short}/000000000000.parquet": table},
        ClinicalFixture(collection, short, int(patients)),
    )


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    cut_after: int | None = None  # send the full Content-Length, then only this many bytes
    hang: bool = False  # never answer (until the server stops)
    gate: threading.Event | None = None  # hold the answer until the test opens the gate...
    requested: threading.Event | None = None  # ...after telling it the request arrived


@dataclass
class IndexServer:
    base: str
    routes: dict[str, Route] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    release: threading.Event = field(default_factory=threading.Event)
    buckets: dict[str, tuple[list[tuple[str, bytes]], int, frozenset[str]]] = field(default_factory=dict)

    def add_file(self, name: str, data: bytes, checksum: str | None = "good") -> None:
        """Serve /<name>; its /<name>.sha256 is right ("good"), wrong ("bad") or absent (None)."""
        self.routes[f"/{name}"] = Route(body=data)
        if checksum == "good":
            self.routes[f"/{name}.sha256"] = Route(
                body=f"{hashlib.sha256(data).hexdigest()}  {name}\n".encode()
            )
        elif checksum == "bad":
            self.routes[f"/{name}.sha256"] = Route(body=f"{'0' * 64}  {name}\n".encode())

    def add_bucket(
        self,
        bucket: str,
        objects: dict[str, bytes],
        page_size: int = 1000,
        bad_etag: frozenset[str] = frozenset(),
    ) -> None:
        """An S3 bucket answering ListObjectsV2 (paged by `page_size`) and GET object."""
        for key, data in objects.items():
            self.routes[f"/{bucket}/{key}"] = Route(body=data)
        self.buckets[f"/{bucket}"] = (sorted(objects.items()), page_size, bad_etag)

    def listing(self, path: str, query: dict[str, list[str]]) -> bytes:
        items, page_size, bad_etag = self.buckets[path]
        prefix = query.get("prefix", [""])[0]
        start = int(query.get("continuation-token", ["0"])[0])
        matching = [(k, d) for k, d in items if k.startswith(prefix)]
        page = matching[start : start + page_size]
        more = start + page_size < len(matching)
        contents = "".join(
            f"<Contents><Key>{key}</Key><Size>{len(data)}</Size><ETag>&quot;"
            f"{'0' * 32 if key in bad_etag else hashlib.md5(data).hexdigest()}&quot;</ETag></Contents>"
            for key, data in page
        )
        token = f"<NextContinuationToken>{start + page_size}</NextContinuationToken>" if more else ""
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>{token}{contents}</ListBucketResult>"
        ).encode()

    def release_assets(self, path: str, files: dict[str, bytes]) -> None:
        """A GitHub-style release listing (size and sha256 digest per asset) at `path`."""
        assets = [
            {"name": n, "size": len(d), "digest": "sha256:" + hashlib.sha256(d).hexdigest()}
            for n, d in files.items()
        ]
        self.routes[path] = Route(body=json.dumps({"tag_name": "x", "assets": assets}).encode())


def _handler(state: IndexServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            parts = urllib.parse.urlsplit(self.path)
            path = parts.path
            state.hits[path] += 1
            if path in state.buckets:
                body = state.listing(path, urllib.parse.parse_qs(parts.query))
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            route = state.routes.get(path)
            if route is None:
                self.send_error(404)
                return
            if route.requested is not None:
                route.requested.set()
            if route.gate is not None:
                route.gate.wait(30)
            if route.hang:
                state.release.wait(60)
                return
            if route.status != 200:
                self.send_error(route.status)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            self.wfile.write(route.body if route.cut_after is None else route.body[: route.cut_after])
            if route.cut_after is not None:
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


@contextmanager
def serve_indices() -> Iterator[IndexServer]:
    """A fresh server on 127.0.0.1 (random port); routes are added by the test."""
    state = IndexServer(base="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
