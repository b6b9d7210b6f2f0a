"""Specialized indices fetched on demand: name check, download or local copy, verification, cache, register.

idc-index-data bundles only the main tables; the others (`sm_index`, `seg_index`, `clinical_index`, ...)
ship as schemas, and idc-index downloads their parquet from the idc-index-data GitHub release of the pinned
version: `https://github.com/ImagingDataCommons/idc-index-data/releases/download/<version>/<name>.parquet`.
We do the same (or read `IDC_MCP_INDEX_DIR`, or a mirror at `IDC_MCP_INDEX_BASE_URL`), verify the file,
and convert it into a DuckDB file of its own in `<cache>/<version>/indices/` that the catalog attaches
read-only. The `.duckdb` file appears (by rename) only once it is complete and verified, so its existence
means "installed"; everything in progress lives in dot-files, and a per-index file lock serializes fetches.
"""

from __future__ import annotations

import json
import logging
import re
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from idc_mcp.cancellation import Report
from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.schemas import JOIN_KEYS, TableInfo, all_tables, get_table
from idc_mcp.config import Settings
from idc_mcp.diagnostics.fuzzy import closest
from idc_mcp.files import atomic_output, shown
from idc_mcp.indices import clinical, http_fetch
from idc_mcp.indices.common import (
    CLINICAL_INDEX,
    CLINICAL_PREFIX,
    FetchResult,
    index_folder,
)
from idc_mcp.indices.store import (
    IndexFetchError,
    LockBusy,
    bounded_lock,
    check_schema,
    convert,
    human_size,
    parse_checksum,
    read_json,
    remove_leftovers,
    sha256_file,
    temp_path,
    write_json_atomic,
)

log = logging.getLogger(__name__)

RELEASE_URL = "https://github.com/ImagingDataCommons/idc-index-data/releases/download/{version}"
# The GitHub release listing publishes each asset's size and sha256 digest.
RELEASE_API_URL = "https://api.github.com/repos/ImagingDataCommons/idc-index-data/releases/tags/{version}"
ASSETS_FILE = "release-assets.json"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


# ---------------------------------------------------------------------------------------------- names
def fetchable() -> dict[str, TableInfo]:
    """The indices idc-index-data describes but does not bundle."""
    return {n: t for n, t in all_tables().items() if not t.bundled}


def resolve_name(name: str) -> TableInfo:
    """The known index `name` refers to; anything else (paths, URLs, unknown names) is refused."""
    known = list(all_tables())
    if not isinstance(name, str) or not _NAME.match(name.strip()):
        raise IndexFetchError(
            f"{shown(name)} is not an index name: fetch_index takes the name of an IDC index, never a path "
            f"or URL. Fetchable indices: {', '.join(fetchable())}."
        )
    info = get_table(name.strip())
    if info is None:
        if name.lower().startswith(CLINICAL_PREFIX):
            raise IndexFetchError(
                f"{shown(name)} is not an index: clinical tables (clinical_<short_table_name>) are installed "
                f'together with clinical_index. Call fetch_index("{CLINICAL_INDEX}"), then list_tables().'
            )
        near = closest(name, known, limit=3)
        hint = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        raise IndexFetchError(
            f"Unknown index {shown(name)}.{hint} Fetchable indices: {', '.join(fetchable())} "
            "(list_tables shows all)."
        )
    return info


# ---------------------------------------------------------------------------------------------- cache


def default_base_url(settings: Settings) -> str:
    return RELEASE_URL.format(version=settings.data_version)


def base_url(settings: Settings) -> str:
    return (settings.index_base_url or default_base_url(settings)).rstrip("/")


def known_size(settings: Settings, name: str) -> int | None:
    """Download size of an index: from its fetch record, or from a release listing seen earlier."""
    folder = index_folder(settings)
    size = read_json(folder / f"{name}.json").get("size_bytes")
    if isinstance(size, int):
        return size
    asset = read_json(folder / ASSETS_FILE).get(f"{name}.parquet", {})
    size = asset.get("size") if isinstance(asset, dict) else None
    return size if isinstance(size, int) else None


# ---------------------------------------------------------------------------------------------- checks


# ---------------------------------------------------------------------------------------------- sources
def published_checksum(
    settings: Settings, file_name: str, limits: http_fetch.Limits = http_fetch.NO_LIMITS
) -> tuple[str | None, int | None, str]:
    """(sha256, size, where from) as published for a release asset; (None, None, why) when not published."""
    timeout = settings.fetch_timeout_s
    if settings.index_base_url:
        url = f"{base_url(settings)}/{file_name}.sha256"
        try:
            sha = parse_checksum(http_fetch.get_small(url, timeout, 4096, limits).decode("utf-8", "replace"))
        except http_fetch.FetchFailed as exc:
            if exc.status == 404:
                return None, None, f"no checksum published at {url}"
            raise
        return (sha, None, url) if sha else (None, None, f"{url} holds no sha256")
    url = RELEASE_API_URL.format(version=settings.data_version)
    try:
        listing = json.loads(http_fetch.get_small(url, timeout, limits=limits))
    except (http_fetch.FetchCancelled, http_fetch.DeadlinePassed):
        raise
    except (http_fetch.FetchFailed, ValueError) as exc:
        log.info("release listing unavailable: %s", exc)
        return None, None, f"the release listing {url} was not available"
    if not isinstance(listing, dict):
        return None, None, f"{url} is not a release listing"
    assets = parse_release_assets(listing)
    folder = index_folder(settings)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / ASSETS_FILE, assets)
    asset = assets.get(file_name, {})
    if not asset.get("sha256"):
        return None, asset.get("size"), f"{url} publishes no sha256 for {file_name}"
    return asset["sha256"], asset.get("size"), url


def parse_release_assets(listing: Any) -> dict[str, dict[str, Any]]:
    """name -> {size, sha256} from a GitHub release JSON (`digest` is "sha256:<hex>" when published)."""
    assets: dict[str, dict[str, Any]] = {}
    for asset in listing.get("assets", []) if isinstance(listing, dict) else []:
        if not isinstance(asset, dict) or not isinstance(asset.get("name"), str):
            continue
        digest = asset.get("digest")
        sha = digest[7:].lower() if isinstance(digest, str) and digest.startswith("sha256:") else None
        size = asset.get("size")
        assets[asset["name"]] = {"size": size if isinstance(size, int) else None, "sha256": sha}
    return assets


def _offline_help(settings: Settings, file_name: str) -> str:
    return (
        f"Without network access: download {file_name} (from {default_base_url(settings)}/{file_name}) "
        "on a connected machine, put it in a folder and set IDC_MCP_INDEX_DIR to that folder; fetch_index "
        "then verifies and uses it without network. IDC_MCP_INDEX_BASE_URL points at a mirror instead."
    )


def _obtain(
    settings: Settings, info: TableInfo, work: Path, progress: Report | None, limits: http_fetch.Limits
) -> dict[str, Any]:
    """A verified parquet file for `info` (downloaded to `work`, or in IDC_MCP_INDEX_DIR): its record."""
    file_name = f"{info.name}.parquet"
    if settings.index_dir is not None:
        path = settings.index_dir / file_name
        if not path.is_file():
            raise IndexFetchError(
                f"{info.name} is not in IDC_MCP_INDEX_DIR ({settings.index_dir}): expected {path}. No "
                f"network was tried. Download it from {default_base_url(settings)}/{file_name} and put it "
                "there."
            )
        sidecar = path.with_name(file_name + ".sha256")
        expected = parse_checksum(sidecar.read_text()) if sidecar.is_file() else None
        sha = sha256_file(path)
        if expected and sha != expected:
            raise IndexFetchError(
                f"{path} does not match its checksum file {sidecar}: sha256 {sha} != {expected}."
            )
        checked = f"sha256 matches {sidecar}" if expected else f"no checksum file beside it ({sidecar.name})"
        record = {"source": str(path), "size_bytes": path.stat().st_size, "sha256": sha}
    else:
        url = f"{base_url(settings)}/{file_name}"
        try:
            expected, expected_size, where = published_checksum(settings, file_name, limits)
            if progress:
                progress(0, expected_size, f"downloading {url}")
            got = http_fetch.download(
                url, work, settings.fetch_timeout_s, _bytes_progress(progress, url), limits
            )
        except http_fetch.DeadlinePassed as exc:
            raise IndexFetchError(
                f"Could not download {info.name}: {exc}. Nothing was cached. The link is too slow for "
                f"IDC_MCP_FETCH_DEADLINE ({settings.fetch_deadline_s:g} s): raise it. "
                f"{_offline_help(settings, file_name)}"
            ) from exc
        except http_fetch.FetchFailed as exc:
            raise IndexFetchError(
                f"Could not download {info.name}: {exc}. Nothing was cached. "
                f"{_offline_help(settings, file_name)}"
            ) from exc
        if expected_size is not None and got.size != expected_size:
            raise IndexFetchError(
                f"{url} sent {got.size} bytes but {where} lists {expected_size}. Nothing was cached; "
                "call fetch_index again."
            )
        if expected and got.sha256 != expected:
            raise IndexFetchError(
                f"{url} failed its checksum: sha256 {got.sha256} != {expected} published at {where}. Nothing "
                "was cached: the download is corrupt or the mirror is stale; call fetch_index again or check "
                "IDC_MCP_INDEX_BASE_URL."
            )
        checked = f"sha256 matches {where}" if expected else f"no checksum ({where})"
        record = {"source": url, "size_bytes": got.size, "sha256": got.sha256}
        path = work
    try:
        check_schema(path, info)
    except IndexFetchError as exc:
        raise IndexFetchError(
            f"{record['source']} was refused: {exc}. It is probably not idc-index-data "
            f"{settings.data_version}'s {file_name}. Nothing was cached."
        ) from exc
    record["checksum"] = f"{checked}; readable parquet with the schema's columns"
    record["path"] = str(path)
    return record


def _bytes_progress(progress: Report | None, url: str) -> http_fetch.BytesReport | None:
    if progress is None:
        return None
    return lambda done, total: progress(done, total, f"downloading {url}")


# ---------------------------------------------------------------------------------------------- fetch
def fetch_index(
    catalog: Catalog, name: str, progress: Report | None = None, cancel: threading.Event | None = None
) -> FetchResult:
    """Install the index `name` (download or IDC_MCP_INDEX_DIR, verify, cache, register). Idempotent.

    The whole call ends within IDC_MCP_FETCH_DEADLINE seconds, stops when `cancel` is set (FetchCancelled,
    nothing cached), and waits at most IDC_MCP_FETCH_TIMEOUT seconds for another fetch of the same index
    before giving up with a message that says to call again."""
    info = resolve_name(name)
    settings = catalog.settings
    if info.bundled:
        return FetchResult(
            name=info.name,
            status="bundled",
            tables=[info.name],
            row_count=catalog.row_count(info.name),
            source="bundled with idc-index-data",
            checksum="part of the installed idc-index-data package",
        )
    folder = index_folder(settings)
    target = folder / f"{info.name}.duckdb"
    status: Literal["fetched", "already installed"] = "already installed"
    limits = http_fetch.Limits.within(settings.fetch_deadline_s, cancel)
    for attempt in range(2):
        with _lock_or_busy(folder, info.name, settings, limits):
            if attempt:
                # The cached file exists but cannot be attached (damaged on disk): replace it.
                log.warning("replacing the damaged cached index %s", target)
                target.unlink(missing_ok=True)
            if not target.is_file():
                remove_leftovers(folder, info.name)
                _install(settings, info, folder, target, progress, limits)
                status = "fetched"
        if not catalog.is_installed(info.name):
            catalog.register_index(info.name, target)
        if catalog.is_installed(info.name):
            break
    else:
        raise IndexFetchError(f"{target} could not be attached even after fetching it again.")
    record_path = folder / f"{info.name}.json"
    record = read_json(record_path)
    if record:
        checksum = str(record.get("checksum", "verified when it was fetched"))
    else:  # the index was verified when fetched, but nothing here can show it any more
        log.warning("the fetch record %s could not be read", record_path)
        checksum = (
            f"unknown: its fetch record ({record_path.name}) could not be read. To verify it again, "
            f"delete {target.name} from {folder} and call fetch_index again."
        )
    result = FetchResult(
        name=info.name,
        status=status,
        tables=[info.name],
        row_count=catalog.row_count(info.name),
        size_bytes=record.get("size_bytes"),
        source=str(record.get("source", target)),
        sha256=record.get("sha256"),
        checksum=checksum,
    )
    if info.name == CLINICAL_INDEX:
        clinical.install_clinical_tables(catalog, result, progress, limits)
    return result


@contextmanager
def _lock_or_busy(folder: Path, name: str, settings: Settings, limits: http_fetch.Limits) -> Iterator[None]:
    """The index's lock; a caller that finds another fetch of it running waits a bounded time, then gets
    a clear error (the other fetch goes on; calling again later finds the index installed)."""
    wait_s = max(0.0, min(settings.fetch_timeout_s, limits.remaining() or 0.0))
    try:
        with bounded_lock(folder / f".{name}.lock", wait_s, limits.cancel):
            yield
    except LockBusy as exc:
        raise IndexFetchError(
            f"Another fetch of {name} (from this server or another process) is still running; this call "
            f"waited {wait_s:g} s for it ({exc}). Nothing is wrong: call fetch_index({name!r}) again in a "
            "minute; once that fetch finishes it answers at once."
        ) from exc


def _install(
    settings: Settings,
    info: TableInfo,
    folder: Path,
    target: Path,
    progress: Report | None,
    limits: http_fetch.Limits = http_fetch.NO_LIMITS,
) -> None:
    work = temp_path(folder, info.name, "part")
    try:
        record = _obtain(settings, info, work, progress, limits)
        if progress:
            progress(1, 1, f"converting {info.name}")
        with atomic_output(target) as db_tmp:
            try:
                counts = convert({info.name: [Path(record.pop("path"))]}, db_tmp, settings)
            except IndexFetchError as exc:
                raise IndexFetchError(f"{record['source']} was refused: {exc}. Nothing was cached.") from exc
            record["row_count"] = counts[info.name]
            write_json_atomic(folder / f"{info.name}.json", record)
    finally:
        work.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- messages
def not_installed_message(settings: Settings, table: str) -> str:
    """The reply to a query on a known index that is not installed yet."""
    info = get_table(table)
    name = info.name if info else table
    # Cut at a word boundary: "...including the n)" reads as a broken reply.
    short = textwrap.shorten(info.description, 160, placeholder=" …") if info and info.description else ""
    about = f" ({short})" if short else ""
    size = human_size(known_size(settings, name))
    download = f" The download is {size}." if size else ""
    key = next((k for k in JOIN_KEYS if info and k in info.column_names), None)
    join = f" It joins to index on {key}." if key and name != "index" else ""
    return (
        f"Table {name!r} is an IDC index that is not installed{about}.{download}{join} "
        f'Call fetch_index("{name}") to install it, then run the query again.'
    )


def clinical_not_installed(table: str, installed: list[str]) -> str | None:
    """The reply for a `clinical_*` name while clinical_index is not installed; None otherwise."""
    if not table.lower().startswith(CLINICAL_PREFIX) or CLINICAL_INDEX in installed:
        return None
    return (
        f"Table {table!r} looks like a clinical table; clinical tables (clinical_<short_table_name>) are "
        "installed together with clinical_index, which is not installed. Call "
        f'fetch_index("{CLINICAL_INDEX}"), then list_tables() to see them.'
    )
