"""What one download call may hold: a bound on the objects it lists, and a dry run that lists a sample
for a bounded time and counts the rest from the index (issue 16).

A listing costs ~0.65 KB per object held (measured: benchmarks/bench_listing_memory.py), so a call lists at
most MAX_OBJECTS_PER_CALL objects: a larger selection is refused before anything is listed, with its
figures and a narrower selection, and a store that lists more than the index says is cut at the bound.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from idc_mcp.download import listing, s3, state
from idc_mcp.download.listing import SeriesFiles
from idc_mcp.download.plan import SeriesPlan
from idc_mcp.units import size_text

# Bounds of one call (see README, Security): what a listing may hold, and what a dry run lists before it
# answers from the index's figures instead.
MAX_OBJECTS_PER_CALL = 100_000
DRY_RUN_MAX_LISTED = 20_000
DRY_RUN_LIST_S = 20.0


def too_many_message(plans: list[SeriesPlan]) -> str:
    """Why a selection is too large for one call, with its figures and a narrower selection to try."""
    files = sum(p.instance_count for p in plans)
    size = size_text(sum(p.index_size_bytes for p in plans), "GB")
    per_patient: dict[str, int] = {}
    for p in plans:  # plans are ordered by collection, patient, study, series
        per_patient[p.patient_id] = per_patient.get(p.patient_id, 0) + p.instance_count
    patients: list[str] = []
    taken = 0
    for patient, count in per_patient.items():
        if taken + count > MAX_OBJECTS_PER_CALL:
            break
        patients.append(patient)
        taken += count
    first = (
        f" For example the first {len(patients):,} patients in order ({patients[0]!r} to "
        f"{patients[-1]!r}) hold {taken:,} files."
        if patients
        else " Even one patient holds more: pass series_uids in batches."
    )
    return (
        f"The selection has {len(plans):,} series with {files:,} files ({size}) by the index; "
        f"one download call fetches at most {MAX_OBJECTS_PER_CALL:,} files. Split it into about "
        f"{-(-files // MAX_OBJECTS_PER_CALL)} calls by patient_ids, study_uids or series_uids (each call "
        f"resumes and skips complete files).{first}"
    )


def list_sample(
    client: listing.LazyClient,
    plans: list[SeriesPlan],
    destination: Path,
    endpoint: str,
    workers: int,
    retry: s3.RetryPolicy,
    cancel: threading.Event,
    records: dict[str, state.SeriesRecord],
) -> list[SeriesFiles]:
    """A dry run's listing: series in plan order, in rounds, until DRY_RUN_MAX_LISTED objects (by the
    index) or DRY_RUN_LIST_S seconds (the round in flight is dropped); every other series is estimated
    from the index's instance count and size. Raises s3.Cancelled when the caller cancels."""
    sample: list[SeriesPlan] = []
    budget = DRY_RUN_MAX_LISTED
    for p in plans:
        if p.instance_count > budget:
            break
        sample.append(p)
        budget -= p.instance_count
    stop, finished = threading.Event(), threading.Event()
    deadline = time.monotonic() + DRY_RUN_LIST_S

    def watch() -> None:
        while not finished.wait(0.1):
            if cancel.is_set() or time.monotonic() >= deadline:
                stop.set()
                return

    threading.Thread(target=watch, name="dry-run-deadline", daemon=True).start()
    done: dict[str, SeriesFiles] = {}
    step = max(1, workers * 2)
    try:
        for start in range(0, len(sample), step):
            if stop.is_set() or time.monotonic() >= deadline:
                break
            part = sample[start : start + step]
            try:
                got = listing.list_all(
                    client,
                    part,
                    destination,
                    endpoint,
                    workers,
                    retry,
                    stop,
                    records,
                    2 * DRY_RUN_MAX_LISTED,
                )
            except s3.Cancelled:
                break
            done.update((sf.series.series_uid, sf) for sf in got)
    finally:
        finished.set()
    if cancel.is_set():
        raise s3.Cancelled()
    return [done.get(p.series_uid) or SeriesFiles(p, [], estimated=True) for p in plans]
