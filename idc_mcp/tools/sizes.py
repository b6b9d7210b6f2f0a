"""estimate_size: how big a selection is, per collection, and whether it fits in a download folder."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from idc_mcp import files
from idc_mcp.catalog.database import Catalog
from idc_mcp.tools.selection import Selection, resolve_selection, selection_where
from idc_mcp.units import size_text

MAX_COLLECTIONS_LISTED = 50
BYTES_PER_MB = 1_000_000  # series_size_MB is in decimal megabytes


class CollectionSize(BaseModel):
    collection_id: str
    series_count: int
    derived_series: int = Field(description="of which analysis results (segmentations, annotations, ...)")
    instance_count: int
    total_size_MB: float


class DiskSpace(BaseModel):
    download_dir: str = Field(description="the resolved folder, inside the download root")
    exists: bool = Field(description="false when the folder will be created by the download")
    free_MB: float = Field(description="free space on the file system holding the folder")
    fits: bool = Field(description="true when total_size_MB <= free_MB")
    shortfall_MB: float = Field(description="how much more space is needed (0 when it fits)")


class SizeEstimate(BaseModel):
    series_count: int
    original_series: int = Field(description="images as acquired (analysis_result_id is NULL)")
    derived_series: int = Field(
        description="analysis results made from them: segmentations, annotations, SR (analysis_results="
        "'exclude' leaves them out)"
    )
    derived_modalities: list[str] = Field(description="modalities of the derived series, e.g. SEG, SR")
    instance_count: int = Field(description="DICOM files (instances) in all")
    total_size_MB: float
    total_size_GB: float = Field(description="total_size_MB / 1000 (decimal units: 1 GB = 1000 MB)")
    per_collection: list[CollectionSize] = Field(description="largest first")
    per_collection_truncated: bool = Field(
        description=f"true when more than {MAX_COLLECTIONS_LISTED} collections"
    )
    disk: DiskSpace | None = Field(description="free space check, when download_dir was given")
    summary: str
    next_step: str


def disk_space(download_root: Path, download_dir: str, needed_mb: float) -> DiskSpace:
    """Free space where `download_dir` (confined to the download root) is or will be."""
    target = files.resolve_inside(download_root, download_dir)
    free_mb = files.free_bytes(target) / BYTES_PER_MB
    return DiskSpace(
        download_dir=str(target),
        exists=target.exists(),
        free_MB=round(free_mb, 3),
        fits=needed_mb <= free_mb,
        shortfall_MB=round(max(0.0, needed_mb - free_mb), 3),
    )


def estimate_size(
    catalog: Catalog, selection: Selection, download_dir: str | None = None, download_root: Path | None = None
) -> SizeEstimate:
    resolved = resolve_selection(catalog, selection)
    where, params = selection_where(resolved)
    rows = catalog.execute(
        f"""
        SELECT collection_id, count(*), coalesce(sum(instanceCount), 0), coalesce(sum(series_size_MB), 0),
               count(*) FILTER (WHERE analysis_result_id IS NOT NULL),
               coalesce(list(DISTINCT Modality) FILTER (WHERE analysis_result_id IS NOT NULL), [])
        FROM index WHERE {where} GROUP BY 1 ORDER BY 4 DESC, 1
        """,
        params,
    ).rows
    per = [
        CollectionSize(
            collection_id=c,
            series_count=n,
            derived_series=d,
            instance_count=int(i),
            total_size_MB=round(float(mb), 3),
        )
        for c, n, i, mb, d, _ in rows
    ]
    series = sum(r[1] for r in rows)
    derived = sum(r[4] for r in rows)
    derived_modalities = sorted({m for r in rows for m in r[5] if m})
    instances = int(sum(r[2] for r in rows))
    total_mb = float(sum(r[3] for r in rows))
    disk = None
    if download_dir is not None:
        if download_root is None:
            raise ValueError("download_root is required with download_dir")
        disk = disk_space(download_root, download_dir, total_mb)
    kinds = (
        f" ({series - derived:,} original, {derived:,} derived: analysis results, "
        f"{', '.join(derived_modalities)})"
        if derived
        else " (all original)"
    )
    summary = (
        f"{series:,} series{kinds}, {instances:,} files, {total_mb / 1000:,.2f} GB ({total_mb:,.1f} MB; "
        f"1 GB = 1000 MB) in {len(per)} collection(s)."
    )
    if derived and series - derived:
        summary += " analysis_results='exclude' sizes the original images alone."
    if disk is not None:
        summary += (
            f" It fits in {disk.download_dir} ({size_text(disk.free_MB * 1e6, 'GB')} free)."
            if disk.fits
            else f" It does NOT fit in {disk.download_dir}: {size_text(disk.free_MB * 1e6, 'GB')} free, "
            f"{size_text(disk.shortfall_MB * 1e6, 'GB')} short."
        )
    if disk is not None and not disk.fits:
        next_step = (
            "Narrow the selection (e.g. one Modality, fewer patients) or free space before downloading."
        )
    else:
        next_step = (
            "check_licenses before downloading; export_manifest writes an s5cmd manifest for this selection."
        )
    return SizeEstimate(
        series_count=series,
        original_series=series - derived,
        derived_series=derived,
        derived_modalities=derived_modalities,
        instance_count=instances,
        total_size_MB=round(total_mb, 3),
        total_size_GB=round(total_mb / 1000, 3),
        per_collection=per[:MAX_COLLECTIONS_LISTED],
        per_collection_truncated=len(per) > MAX_COLLECTIONS_LISTED,
        disk=disk,
        summary=summary,
        next_step=next_step,
    )
