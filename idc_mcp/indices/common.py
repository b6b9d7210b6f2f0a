"""Shared by fetching an index and installing the clinical tables: names, progress, result, folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from idc_mcp.catalog.database import INDICES_DIR
from idc_mcp.config import Settings

CLINICAL_INDEX = "clinical_index"
CLINICAL_PREFIX = "clinical_"

# progress(done, total_or_None, message)
Progress = Callable[[float, float | None, str], None]


class FetchResult(BaseModel):
    """What fetch_index did; the index is queryable with `query` once this is returned."""

    name: str = Field(description="the index, as named in SQL")
    status: Literal["fetched", "already installed", "bundled"] = Field(
        description="fetched now, found in the cache, or part of idc-index-data (nothing to fetch)"
    )
    tables: list[str] = Field(description="tables this call made queryable (clinical_index adds clinical_*)")
    row_count: int | None = Field(None, description="rows in the index")
    size_bytes: int | None = Field(None, description="size of the index parquet file")
    source: str = Field(description="URL or local file the index came from")
    sha256: str | None = None
    checksum: str = Field(description="how the file was verified")
    notes: list[str] = Field(default_factory=list)


def index_folder(settings: Settings) -> Path:
    return settings.version_cache_dir / INDICES_DIR
