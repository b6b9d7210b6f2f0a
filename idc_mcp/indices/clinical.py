"""Clinical tables: the per-collection tables clinical_index lists, queryable as clinical_<short_table_name>.

Where they come from (read from idc-index 0.13's `fetch_index`): after `clinical_index`, idc-index copies
`s3://idc-open-metadata/bigquery_export/idc_v<major>_clinical/*` (the IDC BigQuery clinical dataset
exported to parquet) with s5cmd, and `get_clinical_table(short_table_name)` reads
`clinical_data/<short_table_name>`. IDC documents its BigQuery exports as one folder of parquet shards per
table; that layout could not be checked against the live bucket here, so single files are accepted too.
We list the same prefix with the one anonymous S3 client (`object_store`, retries with backoff) at
`IDC_MCP_S3_ENDPOINT_URL`, check each object's size and MD5 (its ETag, for single-part uploads), and load
every table into one DuckDB file,
`clinical.duckdb`, attached read-only. With `IDC_MCP_INDEX_DIR`, the tables are read from its
`clinical_data/` folder (the layout s5cmd produces: `clinical_data/<short_table_name>/*.parquet`;
`clinical_data/<short_table_name>.parquet` also works).
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idc_mcp import object_store
from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.schemas import all_tables
from idc_mcp.config import DEFAULT_S3_ENDPOINT, Settings
from idc_mcp.files import atomic_output, file_lock
from idc_mcp.indices import http_fetch
from idc_mcp.indices.common import CLINICAL_PREFIX, FetchResult, Progress, index_folder
from idc_mcp.indices.store import (
    IndexFetchError,
    convert,
    read_json,
    remove_leftovers,
    temp_path,
    write_json_atomic,
)

BUCKET = "idc-open-metadata"
# The column every IDC clinical table has: the DICOM PatientID of the row's patient.
PATIENT_COLUMN = "dicom_patient_id"
STEM = "clinical"  # clinical.duckdb, clinical.json
MAX_BYTES = 1 << 30
MAX_OBJECTS = 10_000
RETRY = object_store.RetryPolicy(attempts=3)  # a failing mirror costs seconds, not a minute
_MD5 = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class RemoteObject:
    key: str
    size: int
    etag: str


def source_prefix(settings: Settings) -> str:
    return source_prefix_for(settings.data_version)


def source_prefix_for(data_version: str) -> str:
    """The bucket folder of IDC's clinical tables for an idc-index-data version."""
    return f"bigquery_export/idc_v{data_version.split('.')[0]}_clinical/"


def bucket_url(settings: Settings) -> str:
    """The bucket's HTTP address: virtual-hosted on AWS (any region), path-style elsewhere."""
    endpoint = settings.s3_endpoint_url.rstrip("/")
    if endpoint == DEFAULT_S3_ENDPOINT:
        return f"https://{BUCKET}.s3.amazonaws.com"
    return f"{endpoint}/{BUCKET}"


def table_name(short_table_name: str) -> str | None:
    """`clinical_<short_table_name>`, lowercased, with anything but [a-z0-9_] made `_`."""
    cleaned = re.sub(r"[^a-z0-9_]", "_", short_table_name.strip().lower()).strip("_")
    name = CLINICAL_PREFIX + cleaned
    if not cleaned or len(name) > 120 or name in all_tables():
        return None
    return name


def _client(settings: Settings) -> Any:
    timeout = settings.fetch_timeout_s
    return object_store.make_client(settings.s3_endpoint_url, 4, timeout, timeout)


def list_objects(settings: Settings, stop: threading.Event) -> list[RemoteObject]:
    """The parquet objects under the clinical prefix (bounded: at most MAX_OBJECTS; stopped by `stop`)."""
    prefix = source_prefix(settings)
    listed = object_store.with_retries(
        lambda: object_store.list_objects(_client(settings), BUCKET, prefix, limit=MAX_OBJECTS),
        RETRY,
        stop,
        f"listing s3://{BUCKET}/{prefix}",
    )
    if len(listed) > MAX_OBJECTS:
        raise IndexFetchError(f"the clinical listing at {bucket_url(settings)}/{prefix} has too many objects")
    return [
        RemoteObject(key=o["Key"], size=int(o["Size"]), etag=str(o.get("ETag", "")).strip('"').lower())
        for o in listed
        if str(o.get("Key", "")).endswith(".parquet")
    ]


def _fetch_object(settings: Settings, obj: RemoteObject, local: Path, stop: threading.Event) -> None:
    """One object into `local`, checked against the listing's size and MD5; retried like downloads.
    Stopped (object_store.Cancelled) as soon as `stop` is set, even inside a read."""

    def attempt() -> None:
        with open(local, "wb") as out:
            client = _client(settings)
            got = object_store.stream_object(client, BUCKET, obj.key, out, stop, close_on_cancel=True)
        size, md5 = got.size, got.md5
        if size != obj.size:
            raise object_store.TransferMismatch(f"received {size} bytes but the listing says {obj.size}")
        if _MD5.match(obj.etag) and md5 != obj.etag:
            raise object_store.TransferMismatch(f"failed its checksum: md5 {md5} != ETag {obj.etag}")

    object_store.with_retries(attempt, RETRY, stop, f"s3://{BUCKET}/{obj.key}")


def _table_for(relative: str) -> str | None:
    parts = relative.split("/")
    short = parts[0] if len(parts) > 1 else parts[0].removesuffix(".parquet")
    return table_name(short)


def _download_all(
    settings: Settings, work: Path, progress: Progress | None, stop: threading.Event
) -> tuple[dict[str, list[Path]], str]:
    bucket = bucket_url(settings)
    prefix = source_prefix(settings)
    objects = list_objects(settings, stop)
    if not objects:
        raise IndexFetchError(f"no clinical parquet files under {bucket}/{prefix}")
    total = sum(o.size for o in objects)
    if total > MAX_BYTES or len(objects) > MAX_OBJECTS:
        raise IndexFetchError(
            f"the clinical data ({total} bytes, {len(objects)} files) exceeds the allowed size"
        )
    tables: dict[str, list[Path]] = {}
    done = 0
    for number, obj in enumerate(objects):
        table = _table_for(obj.key[len(prefix) :])
        if table is None:
            continue
        local = work / f"{number}.parquet"  # never a name taken from the listing
        _fetch_object(settings, obj, local, stop)
        tables.setdefault(table, []).append(local)
        done += obj.size
        if progress:
            progress(done, total, f"clinical tables: {len(tables)} so far")
    return tables, f"{bucket}/{prefix}"


def _local_tables(settings: Settings) -> tuple[dict[str, list[Path]], str]:
    assert settings.index_dir is not None
    folder = settings.index_dir / "clinical_data"
    if not folder.is_dir():
        raise IndexFetchError(
            f"IDC_MCP_INDEX_DIR has no clinical_data folder ({folder}); no network was tried. Copy "
            f"s3://{BUCKET}/{source_prefix(settings)}* there (e.g. with s5cmd --no-sign-request cp)."
        )
    tables: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*.parquet")):
        table = _table_for(path.relative_to(folder).as_posix())
        if table is not None:
            tables.setdefault(table, []).append(path)
    if not tables:
        raise IndexFetchError(f"{folder} holds no parquet files")
    return tables, str(folder)


@contextmanager
def _stop_at(limits: http_fetch.Limits) -> Iterator[threading.Event]:
    """An event set once the whole fetch is cancelled or past its deadline, for the S3 calls to watch."""
    stop = threading.Event()
    with object_store.watching(limits.over, stop.set, "clinical-fetch-deadline", http_fetch.WATCH_INTERVAL_S):
        yield stop


def _stopped_message(settings: Settings, limits: http_fetch.Limits) -> str:
    if limits.cancel is not None and limits.cancel.is_set():
        return "the fetch was cancelled while the clinical tables were downloading"
    return (
        f"they did not finish within IDC_MCP_FETCH_DEADLINE ({settings.fetch_deadline_s:g} s, counted from "
        "the start of fetch_index): raise it if the network is slow"
    )


def _install(
    settings: Settings, folder: Path, target: Path, progress: Progress | None, limits: http_fetch.Limits
) -> None:
    work = temp_path(folder, STEM, "parts")
    work.mkdir(parents=True)
    try:
        try:
            if settings.index_dir is not None:
                tables, source = _local_tables(settings)
            else:
                with _stop_at(limits) as stop:
                    tables, source = _download_all(settings, work, progress, stop)
        except object_store.Cancelled as exc:
            raise IndexFetchError(_stopped_message(settings, limits)) from exc
        except object_store.StoreUnavailable as exc:
            raise IndexFetchError(
                f"{object_store.unreachable(settings.s3_endpoint_url, exc)} The clinical tables are fetched "
                "once; offline, set IDC_MCP_INDEX_DIR to a folder holding them (docs/indices.md)."
            ) from exc
        except object_store.ObjectError as exc:
            raise IndexFetchError(str(exc)) from exc
        if progress:
            progress(1, 1, f"converting {len(tables)} clinical tables")
        with atomic_output(target) as db_tmp:
            counts = convert(tables, db_tmp, settings)
            record: dict[str, Any] = {
                "source": source,
                "tables": {
                    name: {"row_count": counts[name], "size_bytes": sum(f.stat().st_size for f in files)}
                    for name, files in tables.items()
                },
            }
            write_json_atomic(folder / f"{STEM}.json", record)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def table_sizes(settings: Settings) -> dict[str, int]:
    """Source size of each installed clinical table."""
    record = read_json(index_folder(settings) / f"{STEM}.json").get("tables", {})
    return {
        n: t["size_bytes"]
        for n, t in record.items()
        if isinstance(t, dict) and isinstance(t.get("size_bytes"), int)
    }


def install_clinical_tables(
    catalog: Catalog,
    result: FetchResult,
    progress: Progress | None,
    limits: http_fetch.Limits = http_fetch.NO_LIMITS,
) -> None:
    """After clinical_index: install the clinical tables too (as idc-index does), within what is left of
    the fetch's deadline and stopped by its cancel; failures become a note."""
    settings = catalog.settings
    folder = index_folder(settings)
    target = folder / f"{STEM}.duckdb"
    try:
        with file_lock(folder / f".{STEM}.lock"):
            if not target.is_file():
                remove_leftovers(folder, STEM)
                _install(settings, folder, target, progress, limits)
    except IndexFetchError as exc:
        result.notes.append(
            f"clinical_index is installed, but the clinical tables are not: {exc}. Call "
            'fetch_index("clinical_index") again to retry them.'
        )
        return
    names = sorted(read_json(folder / f"{STEM}.json").get("tables", {}))
    if not all(catalog.is_installed(n) for n in names):
        catalog.register_index(STEM, target)
    installed = [n for n in names if catalog.is_installed(n)]
    result.tables.extend(installed)
    result.notes.append(
        f"{len(installed)} clinical tables are queryable as clinical_<short_table_name> (e.g. "
        f"{installed[0] if installed else 'clinical_...'}); clinical_index.short_table_name names their "
        f"table and column_label explains each column. Join them to `index` on PatientID = {PATIENT_COLUMN}."
    )
    known = {
        r["short_table_name"] for r in catalog.records("SELECT DISTINCT short_table_name FROM clinical_index")
    }
    missing = sorted(s for s in known if s and table_name(s) not in installed)
    if missing:
        result.notes.append(
            f"{len(missing)} tables listed in clinical_index were not in the clinical data source: "
            f"{', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}."
        )
