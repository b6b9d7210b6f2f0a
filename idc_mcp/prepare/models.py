"""What prepare_dataset answers: light (pydantic only), so that publishing the tool imports no converter."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from idc_mcp.catalog.license_policy import CommercialUse

Layout = Literal["plain", "nnunet", "monai"]
MAX_LISTED = 50  # failures, skipped series and notes shown in one reply


class SeriesIssue(BaseModel):
    SeriesInstanceUID: str
    Modality: str | None
    collection_id: str
    reason: str = Field(description="the converter's reason, or why the series was skipped")


class PrepareResult(BaseModel):
    output_dir: str
    layout: Layout
    dry_run: bool
    cases: int = Field(description="studies with at least one output")
    split_counts: dict[str, int] = Field(description="cases per split: train / validation / test")
    series_converted: int
    series_reused: int = Field(description="already converted by an earlier call (checksums verified)")
    files_written: list[str] = Field(description="dataset-level files: card, tables, layout files")
    skipped: list[SeriesIssue] = Field(
        description=f"series with no conversion (e.g. SM, ECG), first {MAX_LISTED}"
    )
    failures: list[SeriesIssue] = Field(
        description=f"series that failed, with the reason, first {MAX_LISTED}"
    )
    overlapping_segmentations: list[str] = Field(
        default_factory=list,
        description="SEG series written one file per segment (segments overlap or are FRACTIONAL)",
    )
    measurements: int = Field(0, description="rows of measurements.csv / .parquet (SR TID 1500)")
    license_verdict: CommercialUse
    licenses: list[str]
    bytes_estimated: int = Field(description="download still needed plus converted output, estimated")
    free_bytes: int
    notes: list[str] = Field(default_factory=list)
    next_step: str
