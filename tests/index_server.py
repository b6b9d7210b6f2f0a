"""A loopback HTTP server that plays the idc-index-data release and the clinical S3 bucket, for tests.

It serves synthetic index files generated from the bundled schema JSON, with real SeriesInstanceUIDs,
collection ids and PatientIDs from the bundled `index`, so joins with `index` return rows. Each route can
misbehave on purpose (status codes, cut-off transfers, a server that never answers). Reusable by any test
that needs fetched indices (e.g. documentation examples): see `serve_indices`, `synthetic_indices`,
`IndexServer.publish_all` and `cache_with_catalog`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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

from idc_mcp.catalog.build import CATALOG_FILE
from idc_mcp.catalog.schemas import all_tables

INDEX_PARQUET = str(idc_index_data.IDC_INDEX_PARQUET_FILEPATH)
CLINICAL_DATASET = f"idc_v{idc_index_data.__version__.split('.')[0]}_clinical"
CLINICAL_BUCKET = "idc-open-metadata"
# The synthetic clinical table: named like IDC's NLST participant table, for real NLST patients.
CLINICAL_COLLECTION, CLINICAL_TABLE, CLINICAL_PATIENTS = "nlst", "nlst_prsn", 500
# The series each synthetic index describes (preferred first, taken in turn; any series fills up when few).
MODALITY: dict[str, tuple[str, ...]] = {
    "sm_index": ("SM",),
    "sm_instance_index": ("SM",),
    "seg_index": ("SEG",),
    "ann_index": ("ANN",),
    "ann_group_index": ("ANN",),
    "rtstruct_index": ("RTSTRUCT",),
    "ct_index": ("CT",),
    "contrast_index": ("CT", "MR"),
    "volume_geometry_index": ("CT", "MR", "PT"),
    "mr_index": ("MR",),
    "pt_index": ("PT",),
}
# Derived series point at the images they describe: an image series of the same study (the sample
# carries it as `source_SeriesInstanceUID`, and includes those image series too).
DERIVED = ("SEG", "RTSTRUCT", "ANN")
IMAGES = ("CT", "MR", "PT", "SM", "CR", "DX", "MG", "US", "NM")
# Values a researcher would recognise, for the columns the tests and the documentation examples use.
REALISTIC = {
    "ObjectiveLensPower": "CASE WHEN rn % 2 = 0 THEN 20 ELSE 40 END",
    "SliceThickness": "CASE WHEN rn % 3 = 0 THEN 1.25 ELSE 2.5 END::DOUBLE",
    "staining_usingSubstance_CodeMeaning": "['hematoxylin stain', 'water soluble eosin stain']",
    "SegmentationType": "'BINARY'",
    "AlgorithmType": "CASE WHEN rn % 2 = 0 THEN 'AUTOMATIC' ELSE 'MANUAL' END",
    "segmented_SeriesInstanceUID": "i.source_SeriesInstanceUID",
    "referenced_SeriesInstanceUID": "i.source_SeriesInstanceUID",
    "MagneticFieldStrength": "CASE WHEN rn % 3 = 0 THEN 1.5 ELSE 3.0 END::DOUBLE",
    "Radiopharmaceutical": "CASE WHEN rn % 4 = 0 THEN 'Fluciclovine' ELSE 'Fluorodeoxyglucose' END",
    "ContrastBolusAgent": "CASE WHEN rn % 3 = 0 THEN [] WHEN Modality = 'MR' THEN ['Gadavist'] "
    "ELSE ['Omnipaque 350'] END",
    "AnnotationCoordinateType": "'2D'",
    "GraphicType": "CASE WHEN rn % 2 = 0 THEN 'POLYGON' ELSE 'POINT' END",
    "AnnotationPropertyType_CodeMeaning": "CASE WHEN rn % 2 = 0 THEN 'Nucleus' ELSE 'Tumor' END",
    "NumberOfAnnotations": "CAST(100 * rn AS BIGINT)",
    "SegmentedPropertyCategory_CodeMeanings": "['Anatomical Structure']",
    "SegmentedPropertyType_CodeMeanings": "CASE WHEN rn % 2 = 0 THEN ['Lung', 'Heart'] ELSE ['Liver'] END",
    "AnatomicRegion_CodeMeanings": "CASE WHEN rn % 2 = 0 THEN ['Thorax'] ELSE ['Abdomen'] END",
    "DiffusionBValue": "CASE WHEN rn % 2 = 0 THEN [0.0, 1000.0] ELSE [0.0, 800.0] END::DOUBLE[]",
    "primaryAnatomicStructure_CodeMeaning": "CASE WHEN rn % 2 = 0 THEN 'Lung' ELSE 'Kidney' END",
    "primaryAnatomicStructureModifier_CodeMeaning": "CASE WHEN rn % 2 = 0 THEN 'Neoplasm, Primary' "
    "ELSE 'Normal' END",
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
    """Real series of the bundled `index` (read once per test session): up to 40 per modality, taken from
    one collection after another so that they are varied, plus the image series the derived ones among
    them (SEG, RTSTRUCT, ANN) describe, marked `is_source`."""
    path = Path(tempfile.mkdtemp(prefix="idc-sample-")) / "sample.parquet"
    con = _connect()
    images, derived = ", ".join(f"'{m}'" for m in IMAGES), ", ".join(f"'{m}'" for m in DERIVED)
    # Aggregates, not windows over all of `index` (1M rows): the first 40 series of each collection and
    # modality, then per modality the first of every collection, the second of every collection, ...
    con.execute(
        "CREATE TEMP TABLE i AS SELECT SeriesInstanceUID, StudyInstanceUID, Modality, collection_id "
        "FROM read_parquet(?)",
        [INDEX_PARQUET],
    )
    con.execute(
        f"""COPY (
        WITH firsts AS (
            SELECT Modality, collection_id, min(SeriesInstanceUID, 40) AS uids FROM i GROUP BY ALL),
        turns AS (
            SELECT Modality, collection_id, unnest(uids) AS SeriesInstanceUID,
                   generate_subscripts(uids, 1) AS turn
            FROM firsts),
        picked AS (
            SELECT * FROM turns
            QUALIFY row_number() OVER (PARTITION BY Modality ORDER BY turn, collection_id) <= 40),
        derived AS (
            SELECT SeriesInstanceUID, StudyInstanceUID FROM i SEMI JOIN picked USING (SeriesInstanceUID)
            WHERE Modality IN ({derived})),
        sources AS (
            SELECT d.SeriesInstanceUID, min(i.SeriesInstanceUID) AS source
            FROM derived AS d JOIN i ON i.StudyInstanceUID = d.StudyInstanceUID
            WHERE i.Modality IN ({images})
            GROUP BY d.SeriesInstanceUID),
        wanted AS (
            SELECT SeriesInstanceUID, false AS is_source FROM picked
            UNION ALL SELECT DISTINCT source, true FROM sources
                WHERE source NOT IN (SELECT SeriesInstanceUID FROM picked))
        SELECT x.*, s.source AS source_SeriesInstanceUID, w.is_source
        FROM read_parquet($1) AS x JOIN wanted AS w USING (SeriesInstanceUID)
        LEFT JOIN sources AS s USING (SeriesInstanceUID)
        ) TO '{path}' (FORMAT parquet)""",
        [INDEX_PARQUET],
    )
    con.close()
    return str(path)


def synthetic_index(name: str, path: Path, rows: int = 40) -> Path:
    """Write `path`: an index with exactly the bundled schema's columns, for real series of `index` (of the
    index's modalities, in turn, sample series and the images derived series point at alternating)."""
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
        f"COPY (SELECT {', '.join(exprs)} FROM (SELECT *, row_number() OVER (ORDER BY list_contains($2, "
        "Modality) DESC, turn, is_source DESC, Modality, SeriesInstanceUID) AS rn FROM (SELECT *, "
        "row_number() OVER (PARTITION BY Modality, is_source ORDER BY SeriesInstanceUID) AS turn "
        f"FROM read_parquet($1)) QUALIFY rn <= {rows}) i ORDER BY rn) TO '{path}' (FORMAT parquet)",
        [sample, list(MODALITY.get(name, ("CT",)))],
    )
    con.close()
    return path


@dataclass(frozen=True)
class ClinicalFixture:
    collection_id: str
    short_table_name: str
    patients: int


def synthetic_clinical(folder: Path) -> tuple[Path, dict[str, Path], ClinicalFixture]:
    """clinical_index plus one clinical table under `folder`: IDC's real NLST participant table name
    (`nlst_prsn`) with real NLST PatientIDs, so that the documented clinical joins return rows."""
    con = _connect()
    collection, short = CLINICAL_COLLECTION, CLINICAL_TABLE
    table = folder / "clinical" / short / "000000000000.parquet"
    table.parent.mkdir(parents=True)
    con.execute(
        "COPY (SELECT PatientID AS dicom_patient_id, 40 + row_number() OVER (ORDER BY PatientID) % 45 AS "
        "age_at_diagnosis, "
        "CASE WHEN row_number() OVER (ORDER BY PatientID) % 2 = 0 THEN 'Alive' ELSE 'Dead' END AS "
        "vital_status "
        "FROM (SELECT DISTINCT PatientID FROM read_parquet($1) WHERE collection_id = $2 ORDER BY PatientID "
        f"LIMIT {CLINICAL_PATIENTS})) TO '{table}' (FORMAT parquet)",
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


class SyntheticIndices(dict[str, Path]):
    """Synthetic files by index name (clinical objects under "s3:<key>"), and the clinical facts."""

    clinical: ClinicalFixture

    def clinical_objects(self) -> dict[str, bytes]:
        return {k[3:]: p.read_bytes() for k, p in self.items() if k.startswith("s3:")}


def synthetic_indices(folder: Path) -> SyntheticIndices:
    """Every fetchable index (clinical_index with its clinical table too), generated into `folder`."""
    files = SyntheticIndices({name: synthetic_index(name, folder / f"{name}.parquet") for name in MODALITY})
    clinical_index, clinical_objects, files.clinical = synthetic_clinical(folder)
    files["clinical_index"] = clinical_index
    files.update({f"s3:{key}": path for key, path in clinical_objects.items()})
    return files


def cache_with_catalog(cache: Path, built_catalog: Path) -> Path:
    """`cache` (an IDC_MCP_CACHE_DIR) holding the already-built catalog, hard-linked when possible, so that
    a `Catalog` opened on it starts at once and never touches the real cache."""
    version_dir = cache / idc_index_data.__version__
    version_dir.mkdir(parents=True)
    try:
        os.link(built_catalog, version_dir / CATALOG_FILE)
    except OSError:
        shutil.copy(built_catalog, version_dir / CATALOG_FILE)
    return cache


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    cut_after: int | None = None  # send the full Content-Length, then only this many bytes
    hang: bool = False  # never answer (until the server stops)
    gate: threading.Event | None = None  # hold the answer until the test opens the gate...
    requested: threading.Event | None = None  # ...after telling it the request arrived
    trickle_every_s: float | None = None  # send the body one byte at a time, this far apart (a slow link)
    sent: int = 0  # body bytes sent so far (trickled routes)
    ended: threading.Event = field(default_factory=threading.Event)  # the handler returned (trickled routes)


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

    def publish_all(self, files: SyntheticIndices) -> None:
        """Every synthetic index under /release/ (IDC_MCP_INDEX_BASE_URL = <base>/release), the clinical
        tables in the bucket (IDC_MCP_S3_ENDPOINT_URL = <base>)."""
        for name, path in files.items():
            if not name.startswith("s3:"):
                self.add_file(f"release/{name}.parquet", path.read_bytes())
        self.add_bucket(CLINICAL_BUCKET, files.clinical_objects())

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
            if route.trickle_every_s is not None:
                try:
                    for i in range(len(route.body)):
                        self.wfile.write(route.body[i : i + 1])
                        self.wfile.flush()
                        route.sent += 1
                        if state.release.wait(route.trickle_every_s):  # link speed, not a test wait
                            break
                except OSError:  # the client shut the connection
                    pass
                finally:
                    self.close_connection = True
                    route.ended.set()
                return
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


@contextmanager
def catalog_with_fetched(  # type: ignore[no-untyped-def]
    cache: Path, built_catalog: Path, files: SyntheticIndices, names: list[str], check=None
):
    """A Catalog of its own (cache folder `cache`) that fetched `names` through fetch_index from a
    loopback server of the synthetic files; closed on exit. `check(result)` sees each FetchResult."""
    import pytest

    from idc_mcp.catalog.database import Catalog
    from idc_mcp.config import load_settings
    from idc_mcp.indices import fetch

    cache_with_catalog(cache, built_catalog)
    with serve_indices() as server, pytest.MonkeyPatch.context() as env:
        server.publish_all(files)
        env.setenv("IDC_MCP_CACHE_DIR", str(cache))
        env.setenv("IDC_MCP_INDEX_BASE_URL", server.base + "/release")
        env.setenv("IDC_MCP_S3_ENDPOINT_URL", server.base)
        env.delenv("IDC_MCP_INDEX_DIR", raising=False)
        catalog = Catalog(load_settings())
        try:
            for name in names:
                result = fetch.fetch_index(catalog, name)
                if check is not None:
                    check(result)
        except BaseException:
            catalog.close()
            raise
    try:
        yield catalog
    finally:
        catalog.close()
