"""The download as the tool and the CLI see it: settings in, a pydantic result out.

The tool runs `run_download` through the call runner (`calls.run_call`, waiting for the engine to clean
up when cancelled) and reads progress from the engine's shared counter (`progress_update`).
"""

from __future__ import annotations

import threading
from pathlib import Path

from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.sources import series_license
from idc_mcp.config import Settings
from idc_mcp.download import bounds
from idc_mcp.download.engine import Options, Outcome, Progress, download
from idc_mcp.download.models import (
    MAX_RENAMED_SHOWN,
    PLAN_ROWS,
    DownloadResult,
    LicenseSummary,
    PlannedSeries,
)
from idc_mcp.tools.selection import Selection


def options_from(settings: Settings) -> Options:
    return Options(endpoint_url=settings.s3_endpoint_url)


def to_result(outcome: Outcome) -> DownloadResult:
    summary: dict[str, LicenseSummary] = {}
    for sf in outcome.series:
        s = sf.series
        name = s.license_short_name or "unknown"
        if name not in summary:
            src = outcome.sources.get((s.source_doi or "").lower())
            lic = series_license(s.license_short_name, src)
            summary[name] = LicenseSummary(
                license_short_name=name,
                license_url=lic.url,
                commercial_use=lic.terms.commercial_use,
                series_count=0,
                collections=[],
            )
        entry = summary[name]
        entry.series_count += 1
        if s.collection_id not in entry.collections:
            entry.collections.append(s.collection_id)
    plan = None
    if outcome.dry_run:
        plan = [
            PlannedSeries(
                SeriesInstanceUID=sf.series.series_uid,
                collection_id=sf.series.collection_id,
                Modality=sf.series.modality,
                license_short_name=sf.series.license_short_name,
                folder=sf.series.folder,
                files=sf.count,
                bytes=sf.size,
                s3_url=sf.series.s3_url,
                estimated=sf.estimated,
            )
            for sf in outcome.series[:PLAN_ROWS]
        ]
        step = (
            "Nothing was written. Check the licenses, then call download with the same arguments and "
            "dry_run=false."
        )
        if outcome.unreachable:
            step = (
                f"{outcome.unreachable} Answered offline from the catalog: the series, files and bytes are "
                "the index's figures; the exact file list needs the network (run the dry run again online). "
                + step
            )
        elif outcome.series_estimated:
            step += (
                f" {outcome.series_estimated:,} of {len(outcome.series):,} series were not listed (a dry run "
                f"lists at most {bounds.DRY_RUN_MAX_LISTED:,} files or {bounds.DRY_RUN_LIST_S:g} s): their "
                "files and bytes are the index's figures."
            )
        if outcome.bytes_needed > outcome.free_bytes:
            step += (
                f" It does NOT fit: it needs {outcome.bytes_needed:,} bytes and {outcome.free_bytes:,} are "
                "free there; free space, narrow the selection, or set IDC_MCP_DOWNLOAD_ROOT to a larger disk."
            )
        if outcome.too_many_for_one_call:
            step += " " + bounds.too_many_message([sf.series for sf in outcome.series])
    elif restricted := [k for k, v in summary.items() if v.commercial_use != "allowed"]:
        step = (
            f"Done. Not for commercial use without reading the terms: {', '.join(sorted(restricted))} "
            "(see the LICENSE files, or check_licenses). Cite the sources in the CITATION files."
        )
    else:
        step = (
            "Done. Every license allows commercial use with attribution: cite the sources in the CITATION "
            "files when you publish."
        )
    renamed = [f"{f.renamed_from} -> {f.dest.name}" for f in outcome.renamed[:MAX_RENAMED_SHOWN]]
    if outcome.renamed:
        step += (
            f" {len(outcome.renamed)} object(s) were saved as object_<name> because their names are kept for "
            "the LICENSE, CITATION and manifest files written beside the data (see renamed_files)."
        )
    return DownloadResult(
        destination=str(outcome.destination),
        dry_run=outcome.dry_run,
        series_count=len(outcome.series),
        files_total=outcome.files_total,
        files_downloaded=outcome.files_downloaded,
        files_skipped=outcome.files_skipped,
        bytes_downloaded=outcome.bytes_downloaded,
        bytes_total=outcome.bytes_total,
        bytes_needed=outcome.bytes_needed,
        free_bytes=outcome.free_bytes,
        manifest_path=str(outcome.manifest_path) if outcome.manifest_path else None,
        licenses=[summary[k] for k in sorted(summary)],
        plan=plan,
        plan_truncated=outcome.dry_run and len(outcome.series) > PLAN_ROWS,
        renamed_files=renamed,
        series_estimated=outcome.series_estimated,
        next_step=step,
    )


def run_download(
    catalog: Catalog,
    settings: Settings,
    selection: Selection,
    download_dir: str | None,
    dir_template: str | None,
    dry_run: bool,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    options: Options | None = None,
) -> DownloadResult:
    outcome = download(
        catalog,
        selection,
        Path(settings.download_root),
        options or options_from(settings),
        download_dir=download_dir,
        dir_template=dir_template,
        dry_run=dry_run,
        progress=progress,
        cancel=cancel,
    )
    return to_result(outcome)


def progress_update(progress: Progress) -> tuple[int, int, str] | None:
    """The engine's counter as a progress update: (bytes done, bytes in all, phase and files); nothing
    before the total is known."""
    done, total, message = progress.snapshot()
    return (done, total, message) if total else None
