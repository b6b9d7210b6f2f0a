"""Settings read from the environment, once per run: the command line overrides some with its flags (see
`cli.settings_from`) and hands the one `Settings` object down (`server.start`); tools never re-read it.

| variable | meaning | default |
| --- | --- | --- |
| IDC_MCP_DOWNLOAD_ROOT | every file the server writes lands inside this folder | ~/idc-mcp-downloads |
| IDC_MCP_S3_ENDPOINT_URL | S3 endpoint for downloads (anonymous, unsigned) | https://s3.amazonaws.com |
| IDC_MCP_CACHE_DIR | catalog database and fetched indices, per idc-index-data version | ~/.cache/idc-mcp |
| IDC_MCP_INDEX_DIR | folder of pre-downloaded index parquet files (air-gapped use) | unset |
| IDC_MCP_INDEX_BASE_URL | where fetch_index downloads indices from | idc-index-data release assets |
| IDC_MCP_FETCH_TIMEOUT | seconds fetch_index waits to connect or for the next bytes | 30 |
| IDC_MCP_FETCH_DEADLINE | seconds one fetch_index call may take in all (a slow link gets cut) | 1800 |
| IDC_MCP_QUERY_TIMEOUT | seconds before a query is interrupted | 20 |
| IDC_MCP_MEMORY_LIMIT | DuckDB memory limit, shared by the queries running at once in the worker | 384MB |
| IDC_MCP_THREADS | DuckDB threads | 2 |
| IDC_MCP_WORKER_MEMORY | MiB of resident memory the query worker may hold before it is killed | 700 |
| IDC_MCP_PREVIEW_TIMEOUT | seconds a preview may take before its worker is killed | 60 |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import idc_index_data

DEFAULT_S3_ENDPOINT = "https://s3.amazonaws.com"


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ValueError(f"{name}={value!r} is not a number; set it to seconds, e.g. {default}") from exc


@dataclass(frozen=True)
class Settings:
    download_root: Path
    s3_endpoint_url: str
    cache_dir: Path
    index_dir: Path | None
    index_base_url: str | None
    query_timeout_s: float
    memory_limit: str
    threads: int
    fetch_timeout_s: float = 30.0
    # Resident memory the query worker may hold (it is killed above it): with the server's own
    # ~100-150 MiB, the whole server stays under 1 GiB whatever a query does.
    worker_memory_bytes: int = 700 * 2**20
    fetch_deadline_s: float = 1800.0
    preview_timeout_s: float = 60.0

    @property
    def data_version(self) -> str:
        """The idc-index-data version: catalog files and fetched indices are cached per version."""
        return idc_index_data.__version__

    @property
    def version_cache_dir(self) -> Path:
        return self.cache_dir / self.data_version


def load_settings() -> Settings:
    """The settings the environment gives now (called at start-up, or as an in-process session starts)."""
    index_dir = os.environ.get("IDC_MCP_INDEX_DIR", "").strip()
    return Settings(
        download_root=_env_path("IDC_MCP_DOWNLOAD_ROOT", Path.home() / "idc-mcp-downloads"),
        s3_endpoint_url=os.environ.get("IDC_MCP_S3_ENDPOINT_URL", "").strip() or DEFAULT_S3_ENDPOINT,
        cache_dir=_env_path("IDC_MCP_CACHE_DIR", Path.home() / ".cache" / "idc-mcp"),
        index_dir=Path(index_dir).expanduser() if index_dir else None,
        index_base_url=os.environ.get("IDC_MCP_INDEX_BASE_URL", "").strip() or None,
        query_timeout_s=_env_float("IDC_MCP_QUERY_TIMEOUT", 20.0),
        # Shared by up to 4 concurrent queries (256MB failed concurrent check_licenses under 50 HTTP
        # clients); the hard bound is the worker's resident-memory limit (worker_memory_bytes).
        memory_limit=os.environ.get("IDC_MCP_MEMORY_LIMIT", "").strip() or "384MB",
        threads=int(_env_float("IDC_MCP_THREADS", 2)),
        fetch_timeout_s=_env_float("IDC_MCP_FETCH_TIMEOUT", 30.0),
        worker_memory_bytes=int(_env_float("IDC_MCP_WORKER_MEMORY", 700) * 2**20),
        fetch_deadline_s=_env_float("IDC_MCP_FETCH_DEADLINE", 1800.0),
        preview_timeout_s=_env_float("IDC_MCP_PREVIEW_TIMEOUT", 60.0),
    )
