"""The preparation: plan and refuse early, download what is missing through the download engine, convert
series by series (skipping what an earlier call converted), then the layout and the dataset card.

Plain blocking code that knows nothing of MCP: progress is polled from `PrepareCounter`, cancellation is a
`threading.Event`. Everything lands inside the download root, each file whole.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.sources import series_license
from idc_mcp.download import engine as downloads
from idc_mcp.download import provenance
from idc_mcp.download import state as download_state
from idc_mcp.download.plan import DEFAULT_TEMPLATE, SeriesPlan, folder_path, plan_series
from idc_mcp.files import free_bytes, resolve_inside
from idc_mcp.prepare import card, convert, layouts, outputs
from idc_mcp.prepare import plan as planning
from idc_mcp.prepare import state as prepare_state
from idc_mcp.prepare.errors import PrepareCancelled, PrepareError, require_converters
from idc_mcp.prepare.models import MAX_LISTED, Layout, PrepareResult, SeriesIssue
from idc_mcp.tools.selection import Selection, resolve_selection

MAX_SERIES = 2_000  # series converted by one call; more is split by the caller (the message says how)
MAX_PLANNED = 20_000  # series planned by one call, skipped ones (e.g. presentation states) included
DEFAULT_OUTPUT = "prepared"
DICOM_FOLDER = "dicom"
DOWNLOAD_SHARE = 500  # progress: the download fills 0-500 of 1000, the conversion the rest


@dataclass(frozen=True)
class Request:
    layout: Layout = "plain"
    output_dir: str | None = None
    commercial: bool = False
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0
    dry_run: bool = False


@dataclass
class PrepareCounter:
    """Polled by whoever reports progress: the download's bytes, then series converted."""

    download: downloads.DownloadCounter = field(default_factory=downloads.DownloadCounter)
    series_total: int = 0
    series_done: int = 0
    phase: str = "planning"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def series_finished(self) -> None:
        with self._lock:
            self.series_done += 1

    def snapshot(self) -> tuple[int, int, str]:
        if self.phase == "downloading":
            done, total, message = self.download.snapshot()
            return (DOWNLOAD_SHARE * done // total if total else 0), 1000, message
        if self.phase in ("converting", "writing", "finished"):
            with self._lock:
                done, total = self.series_done, self.series_total
            share = (1000 - DOWNLOAD_SHARE) * done // total if total else 1000 - DOWNLOAD_SHARE
            return DOWNLOAD_SHARE + share, 1000, f"{self.phase}: {done}/{total} series"
        return 0, 1000, self.phase


def _issue(s: SeriesPlan, reason: str) -> SeriesIssue:
    return SeriesIssue(
        SeriesInstanceUID=s.series_uid, Modality=s.modality, collection_id=s.collection_id, reason=reason
    )


def prepare(
    catalog: Catalog,
    selection: Selection,
    root: Path,
    opts: downloads.Options,
    data_version: str,
    request: Request,
    progress: PrepareCounter | None = None,
    cancel: threading.Event | None = None,
) -> PrepareResult:
    progress = progress or PrepareCounter()
    cancel = cancel or threading.Event()
    ratios = planning.check_ratios(request.split)
    if request.layout not in ("plain", "nnunet", "monai"):
        raise PrepareError(f"layout must be 'plain', 'nnunet' or 'monai', not {request.layout!r}.")
    real_root = resolve_inside(root, None)
    output = resolve_inside(real_root, request.output_dir or DEFAULT_OUTPUT)
    if not request.dry_run:
        require_converters()
    resolved = resolve_selection(catalog, selection)
    if resolved.count > MAX_PLANNED:
        raise PrepareError(
            f"The selection has {resolved.count:,} series; one prepare_dataset call plans at most "
            f"{MAX_PLANNED:,}. Split it (e.g. by collection_ids or patient_ids) into calls with different "
            "output_dir values."
        )
    plans = plan_series(catalog, resolved, DEFAULT_TEMPLATE)
    skipped = [_issue(s, reason) for s in plans if (reason := planning.role_of(s.modality)[1])]
    convertible = [s for s in plans if planning.role_of(s.modality)[0] != "skip"]
    if len(convertible) > MAX_SERIES:
        raise PrepareError(
            f"The selection has {len(convertible):,} series to convert; one prepare_dataset call converts at "
            f"most {MAX_SERIES:,}. Split it (e.g. by patient_ids) into calls with different output_dir "
            "values."
        )
    sources = provenance.lookup_sources(catalog, convertible)
    licenses = {
        s.series_uid: series_license(s.license_short_name, sources.get((s.source_doi or "").lower()))
        for s in convertible
    }
    if request.commercial:
        barred = [s for s in convertible if licenses[s.series_uid].terms.commercial_use != "allowed"]
        if barred:
            names = sorted({f"{s.collection_id} ({s.license_short_name or 'no license'})" for s in barred})
            raise PrepareError(
                f"commercial=true, and {len(barred)} of {len(convertible)} series are not licensed for "
                f"commercial use (or their terms must be read first): {', '.join(names[:10])}. Nothing was "
                "downloaded. Drop them from the "
                "selection (check_licenses shows each license), or pass commercial=false for research use."
            )
    if not convertible and skipped:
        raise PrepareError(
            f"Nothing in the selection can be prepared: its {len(skipped)} series are skipped (e.g. "
            f"{skipped[0].Modality}: {skipped[0].reason}). Select image series (CT, MR, PT, ...) with their "
            "SEG, RTSTRUCT or SR, or use download for these files."
        )
    cases = planning.make_cases(convertible)
    planning.check_layout(request.layout, cases)
    planning.assign_splits(cases, ratios, request.seed)
    dicom_root = output / DICOM_FOLDER
    recorded = download_state.load(dicom_root)
    records = prepare_state.load(output)
    download_need = sum(s.index_size_bytes for s in convertible if s.series_uid not in recorded)
    convert_need = sum(s.index_size_bytes for s in convertible if s.series_uid not in records)
    estimated = download_need + convert_need
    free = free_bytes(output)
    verdicts = {lic.terms.commercial_use for lic in licenses.values()}
    verdict = (
        "not allowed"
        if "not allowed" in verdicts
        else "check the terms"
        if "check the terms" in verdicts
        else "allowed"
    )
    license_names = sorted({s.license_short_name or "unknown" for s in convertible})
    if request.dry_run:
        counts = {name: sum(1 for c in cases if c.split == name) for name in planning.SPLITS}
        fits = (
            "" if estimated <= free else f" It does NOT fit: about {estimated:,} bytes needed, {free:,} free."
        )
        return PrepareResult(
            output_dir=str(output),
            layout=request.layout,
            dry_run=True,
            cases=len(cases),
            split_counts=counts,
            series_converted=0,
            series_reused=sum(1 for s in convertible if s.series_uid in records),
            files_written=[],
            skipped=skipped[:MAX_LISTED],
            failures=[],
            license_verdict=verdict,
            licenses=license_names,
            bytes_estimated=estimated,
            free_bytes=free,
            next_step=f"Nothing was written. {len(convertible)} series in {len(cases)} cases would be "
            f"converted; call again with dry_run=false.{fits}",
        )
    if estimated > free:
        raise PrepareError(
            f"Not enough free disk space in {str(output)!r}: about {estimated:,} bytes are needed (download "
            f"and converted files) and {free:,} are free. Free space, narrow the selection, or set "
            "IDC_MCP_DOWNLOAD_ROOT to a larger disk."
        )
    output.mkdir(parents=True, exist_ok=True)
    outputs.clean_stale(output)
    progress.phase = "downloading"
    try:
        fetched = downloads.download(
            catalog,
            Selection(series_uids=tuple(s.series_uid for s in convertible)),
            real_root,
            opts,
            download_dir=str(dicom_root),
            progress=progress.download,
            cancel=cancel,
        )
    except downloads.DownloadCancelled as exc:
        raise PrepareCancelled(
            f"Cancelled while downloading: {exc} Call prepare_dataset again to resume."
        ) from exc
    files_of = {sf.series.series_uid: [f.dest for f in sf.files] for sf in fetched.series}
    folder_of = {sf.series.series_uid: folder_path(fetched.destination, sf.series) for sf in fetched.series}
    progress.series_total = len(convertible)
    progress.phase = "converting"
    run = convert.Run(real_root, output, records, files_of, folder_of, cancel, progress.series_finished)
    try:
        run.convert_all(cases)
    except PrepareCancelled as exc:
        prepare_state.save(real_root, output, run.records)
        raise PrepareCancelled(
            f"Cancelled: {run.converted} series converted and kept, nothing half-written left ({exc}). Call "
            "prepare_dataset again with the same arguments to resume."
        ) from exc
    prepare_state.save(real_root, output, run.records)
    progress.phase = "writing"
    written: list[Path] = []
    written += run.write_measurements()
    layout_failures: list[tuple[planning.Case, str]] = []
    if request.layout == "nnunet":
        made, layout_failures = layouts.write_nnunet(real_root, output, cases, run)
        written += made
    elif request.layout == "monai":
        written += layouts.write_monai(real_root, output, cases, run)
    written += card.write_card(
        catalog, real_root, output, cases, run, plans, licenses, sources, data_version, request, ratios
    )
    progress.phase = "finished"
    failures = [_issue(s, reason) for s, reason in run.failures]
    for c, reason in layout_failures:
        failures.append(
            SeriesIssue(
                SeriesInstanceUID=c.study_uid,
                Modality=None,
                collection_id=c.collection_id,
                reason=f"case {c.case_id} left out of the nnU-Net layout: {reason}",
            )
        )
    done_cases = [c for c in cases if run.has_output(c)]
    counts = {name: sum(1 for c in done_cases if c.split == name) for name in planning.SPLITS}
    notes = run.notes[:MAX_LISTED]
    step = (
        f"Done: {len(done_cases)} cases in {str(output)!r} (README.md is the dataset card; cite with the "
        "texts in it)."
    )
    if failures:
        step += f" {len(failures)} series failed (see failures); the others are complete."
    if verdict != "allowed":
        step += f" License verdict: {verdict} for commercial use (see README.md)."
    return PrepareResult(
        output_dir=str(output),
        layout=request.layout,
        dry_run=False,
        cases=len(done_cases),
        split_counts=counts,
        series_converted=run.converted,
        series_reused=run.reused,
        files_written=[str(p.relative_to(output)) for p in written],
        skipped=skipped[:MAX_LISTED],
        failures=failures[:MAX_LISTED],
        overlapping_segmentations=run.overlapping[:MAX_LISTED],
        measurements=len(run.measurements),
        license_verdict=verdict,
        licenses=license_names,
        bytes_estimated=estimated,
        free_bytes=free,
        notes=notes,
        next_step=step,
    )
