"""What the download tool answers: light (pydantic and the license verdict type only), so that the server
can publish the tool's schema without importing the engine, S3 client and planner (they load on first use)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from idc_mcp.catalog.license_policy import CommercialUse

# The download tool's own arguments (besides the selection); their descriptions are what the assistant reads.
DownloadDir = Annotated[str | None, Field(description="folder in the download root")]
DirTemplate = Annotated[
    str | None,
    Field(
        description="%collection_id %PatientID %StudyInstanceUID %Modality %SeriesInstanceUID "
        "joined by _ - /; '' = one folder"
    ),
]
DryRun = Annotated[bool, Field(description="plan only")]

PLAN_ROWS = 100
MAX_RENAMED_SHOWN = 20


class PlannedSeries(BaseModel):
    SeriesInstanceUID: str
    collection_id: str
    Modality: str | None
    license_short_name: str | None
    folder: str = Field(description="relative to destination")
    files: int
    bytes: int
    s3_url: str
    estimated: bool = Field(False, description="not listed by this dry run: files and bytes from the index")


class LicenseSummary(BaseModel):
    license_short_name: str
    license_url: str | None
    commercial_use: CommercialUse = Field(description="the same verdict check_licenses gives")
    series_count: int
    collections: list[str]


class DownloadResult(BaseModel):
    destination: str
    dry_run: bool
    series_count: int
    files_total: int
    files_downloaded: int
    files_skipped: int = Field(description="already complete on disk, not transferred again")
    bytes_downloaded: int
    bytes_total: int
    bytes_needed: int = Field(description="bytes still to transfer before this call (0 when all complete)")
    free_bytes: int
    manifest_path: str | None = Field(
        description="CSV manifest; LICENSE_<collection>.txt and CITATION_<collection>.txt sit beside it"
    )
    licenses: list[LicenseSummary]
    plan: list[PlannedSeries] | None = Field(None, description=f"dry run only: first {PLAN_ROWS} series")
    plan_truncated: bool = False
    series_estimated: int = Field(
        0,
        description="dry run: series not listed (beyond its listing bound); their files and bytes are the "
        "index's figures",
    )
    renamed_files: list[str] = Field(
        default_factory=list,
        description="objects saved under another name because theirs is kept for the download's own files "
        f"(LICENSE_*, CITATION_*, idc_manifest_*): 'old -> new', at most {MAX_RENAMED_SHOWN}",
    )
    next_step: str
