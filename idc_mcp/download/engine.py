"""The download engine: plan, list (or reuse what the state file verified), check disk, fetch with a
thread pool, write provenance and record the complete series in the state file.

Plain blocking code that knows nothing of MCP: progress is a shared counter the caller polls, and
cancellation is a `threading.Event` the caller sets. Everything written lands inside the root.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.memo import Memo
from idc_mcp.download import bounds, listing, provenance, ranged, s3, state
from idc_mcp.download.listing import SeriesFiles
from idc_mcp.download.plan import (
    DEFAULT_TEMPLATE,
    SeriesPlan,
    check_template,
    plan_series,
    plan_uids_with_hints,
    plan_with_hints,
)
from idc_mcp.errors import AssistantError
from idc_mcp.files import PathRefused, ensure_inside, free_bytes, resolve_inside
from idc_mcp.tools.selection import Selection, resolve_selection


class DownloadError(AssistantError):
    """The download cannot start or could not finish; the message says what to do."""


class DownloadCancelled(DownloadError):
    """Stopped on request; no temporaries are left and complete files stay."""


@dataclass
class Progress:
    """Bytes done of total, updated by the workers and polled by whoever reports progress."""

    total: int = 0
    done: int = 0
    files_total: int = 0
    files_done: int = 0
    phase: str = "selecting the series"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n

    def file_done(self) -> None:
        with self._lock:
            self.files_done += 1

    def snapshot(self) -> tuple[int, int, str]:
        """Bytes done, bytes in all (0 until the files are listed), and what is happening in words."""
        with self._lock:
            if not self.files_total:  # selecting, listing: no file counts yet
                return self.done, self.total, self.phase
            return self.done, self.total, f"{self.phase}: {self.files_done}/{self.files_total} files"


# What still answers when the store does not: said wherever a download fails on the network.
OFFLINE = (
    "Offline, download(dry_run=true) still answers from the catalog (series, files, bytes, licenses), as do "
    "the search, license, size and citation tools."
)


@dataclass(frozen=True)
class Options:
    endpoint_url: str
    workers: int = 16
    retry: s3.RetryPolicy = field(default_factory=s3.RetryPolicy)
    connect_timeout_s: float = 10
    read_timeout_s: float = 60


@dataclass
class Outcome:
    destination: Path
    series: list[SeriesFiles]
    sources: dict[str, provenance.Source]
    files_total: int
    bytes_total: int
    files_skipped: int
    files_downloaded: int = 0
    bytes_downloaded: int = 0
    bytes_needed: int = 0
    free_bytes: int = 0
    manifest_path: Path | None = None
    dry_run: bool = False
    series_estimated: int = 0  # dry run: series not listed, counted from the index
    too_many_for_one_call: bool = False
    renamed: list[s3.RemoteFile] = field(default_factory=list)
    unreachable: str | None = None  # dry run: the store did not answer, so all of it is the index's figures


def clear_caches() -> None:
    """Forget remembered plans, listings and S3 clients (a new process starts this way)."""
    _PLANS.clear()
    listing.clear_listings()
    s3.make_client.cache_clear()


# Recent plans by (catalog, selection, template), bounded by the series they hold in all.
_PLANS: Memo[list[SeriesPlan]] = Memo(maxsize=40_000, getsizeof=len)


def _plan(
    catalog: Catalog, selection: Selection, template: str, records: dict[str, state.SeriesRecord]
) -> list[SeriesPlan]:
    """Resolve and plan a selection, remembering recent plans: the catalog never changes while it is
    open, and a rerun (resume) should not pay for three scans of the million-row index again. From a
    new process, the collections recorded in the state file let one narrowed query plan the series."""
    key = (catalog.cache_key, selection, template)
    cached = _PLANS.get(key)
    if cached is not None:
        return cached
    hints = {uid: r.collection_id for uid, r in records.items()}
    plans = plan_with_hints(catalog, selection, template, hints)
    if plans is None:
        resolved = resolve_selection(catalog, selection)
        plans = plan_uids_with_hints(catalog, resolved.series_uids, template, hints)
        if plans is None:
            plans = plan_series(catalog, resolved, template)
    _PLANS.put(key, plans)
    return plans


def _clean_temporaries(folders: set[Path]) -> None:
    """Remove temporaries an interrupted run left in the planned folders (and only there); those of a
    download still running (a concurrent call, here or in another process) stay."""
    for folder in folders:
        if folder.is_dir() and not folder.is_symlink():
            for entry in folder.iterdir():
                if s3.is_stale_temp(entry.name) and (entry.is_file() or entry.is_symlink()):
                    entry.unlink(missing_ok=True)


def _recorded_stamps(records: dict[str, state.SeriesRecord]) -> dict[tuple[str, str], str]:
    """(bucket, key) -> the stamp its file had when a previous run verified it."""
    return {
        (r.bucket, key): stamp
        for r in records.values()
        for (key, _size, _etag), stamp in zip(r.objects, r.stamps, strict=True)
    }


def download(
    catalog: Catalog,
    selection: Selection,
    root: Path,
    opts: Options,
    download_dir: str | None = None,
    dir_template: str | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Outcome:
    """Download a selection into `root`/`download_dir`; see the module docstring of `s3` for the rules."""
    progress = progress or Progress()
    cancel = cancel or threading.Event()
    template = check_template(DEFAULT_TEMPLATE if dir_template is None else dir_template)
    real_root = resolve_inside(root, None)
    destination = resolve_inside(real_root, download_dir)
    records = state.load(destination)
    plans = _plan(catalog, selection, template, records)
    expected = sum(p.instance_count for p in plans)
    if not dry_run and expected > bounds.MAX_OBJECTS_PER_CALL:
        raise DownloadError(bounds.too_many_message(plans))
    client = listing.LazyClient(
        lambda: s3.make_client(
            opts.endpoint_url, 2 * opts.workers + 4, opts.connect_timeout_s, opts.read_timeout_s
        )
    )
    progress.phase = f"listing the files of {len(plans):,} series"
    # The licenses and citations (a catalog query) are looked up while the store lists the series.
    sources_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="idc-mcp-sources")
    sources = sources_pool.submit(provenance.lookup_sources, catalog, plans)
    sources_pool.shutdown(wait=False)
    unreachable: str | None = None
    try:
        if dry_run:
            try:
                listed = bounds.list_sample(
                    client, plans, destination, opts.endpoint_url, opts.workers, opts.retry, cancel, records
                )
            except s3.StoreUnavailable as exc:
                # A dry run answers offline from the catalog: every series by the index's figures.
                unreachable = s3.unreachable(opts.endpoint_url, exc)
                listed = [SeriesFiles(p, [], estimated=True) for p in plans]
        else:
            listed = listing.list_all(
                client,
                plans,
                destination,
                opts.endpoint_url,
                opts.workers,
                opts.retry,
                cancel,
                records,
                bounds.MAX_OBJECTS_PER_CALL,
            )
    except s3.TooManyObjects as exc:
        raise DownloadError(
            f"The object store lists more files than one call may hold ({exc}), more than the index "
            f"says. {bounds.too_many_message(plans)}"
        ) from exc
    except s3.Cancelled as exc:
        raise DownloadCancelled("Download cancelled while listing; nothing was written.") from exc
    except s3.StoreUnavailable as exc:
        raise DownloadError(
            f"{s3.unreachable(opts.endpoint_url, exc)} Nothing was written; call download again once the "
            f"store answers. {OFFLINE}"
        ) from exc
    except s3.ObjectError as exc:
        raise DownloadError(f"The object store refused the listing: {exc}.") from exc
    empty = [sf.series.series_uid for sf in listed if not sf.files and not sf.estimated]
    if empty:
        raise DownloadError(
            f"{len(empty)} selected series have no files in the object store (e.g. {empty[0]}); the "
            f"mirror at {opts.endpoint_url} may be incomplete. Drop them from the selection or use "
            "another endpoint."
        )
    files = [f for sf in listed for f in sf.files]
    seen: dict[Path, s3.RemoteFile] = {}
    for f in files:
        if f.dest in seen:
            raise DownloadError(
                f"Two objects would be written to the same file {str(f.dest)!r} with dir_template "
                f"{template!r}; use a template that includes %SeriesInstanceUID."
            )
        seen[f.dest] = f
    folders = {f.dest.parent for f in files}
    for folder in folders:  # the folders exist nowhere yet, or exist inside the root (no links out)
        try:
            inside = folder.resolve().is_relative_to(real_root)
        except (OSError, RuntimeError):  # a link loop or one we may not read: not followed
            inside = False
        if not inside:
            raise PathRefused(
                f"The folder {str(folder)!r} resolves outside the download root or cannot be resolved; "
                "remove the link."
            )
    if not dry_run:
        _clean_temporaries(folders)
    # Series taken from the state file were just found unchanged, file by file (see listing.from_state);
    # any other file counts as complete only by its recorded stamp or its content (s3.is_verified).
    stamps = _recorded_stamps(records)
    todo = [
        f
        for sf in listed
        if not sf.from_state
        for f in sf.files
        if not s3.is_verified(f, stamps.get((f.bucket, f.key)))
    ]
    verified = {f.dest for f in files}.difference(f.dest for f in todo)
    outcome = Outcome(
        destination=destination,
        series=listed,
        sources=sources.result(),
        files_total=sum(sf.count for sf in listed),
        bytes_total=sum(sf.size for sf in listed),
        files_skipped=len(files) - len(todo),
        bytes_needed=sum(f.size for f in todo) + sum(sf.size for sf in listed if sf.estimated),
        free_bytes=free_bytes(destination),
        dry_run=dry_run,
        renamed=[f for f in files if f.renamed_from],
        series_estimated=sum(1 for sf in listed if sf.estimated),
        too_many_for_one_call=expected > bounds.MAX_OBJECTS_PER_CALL,
        unreachable=unreachable,
    )
    if outcome.bytes_needed > outcome.free_bytes and not dry_run:  # a dry run reports it (next_step)
        raise DownloadError(
            f"Not enough free disk space in {str(destination)!r}: the download needs "
            f"{outcome.bytes_needed:,} bytes and {outcome.free_bytes:,} are available. Free space, choose "
            "a smaller selection, or set IDC_MCP_DOWNLOAD_ROOT to a larger disk."
        )
    if dry_run:
        return outcome
    try:
        destination.mkdir(parents=True, exist_ok=True)
        outcome.manifest_path = provenance.write_provenance(
            real_root,
            destination,
            plans,
            outcome.sources,
            {sf.series.series_uid: (len(sf.files), sf.size) for sf in listed},
        )
        for folder in sorted(folders):
            folder.mkdir(parents=True, exist_ok=True)
            ensure_inside(real_root, folder / "probe")
    except OSError as exc:
        raise DownloadError(
            f"Cannot create folders in {str(destination)!r}: {exc.strerror or exc}. Choose another "
            "download_dir inside the download root (or fix its permissions)."
        ) from exc
    progress.total = outcome.bytes_total
    progress.files_total = outcome.files_total
    progress.done = outcome.bytes_total - outcome.bytes_needed
    progress.files_done = outcome.files_skipped
    progress.phase = "downloading"
    # Large files first: they bound the total time, small ones fill the gaps.
    todo.sort(key=lambda f: f.size, reverse=True)

    # Objects of PART_THRESHOLD bytes or more are fetched in concurrent ranges (s3transfer).
    large = any(f.size >= ranged.PART_THRESHOLD for f in todo)
    parts = ranged.RangedFetcher(client.get(), opts.workers) if large else None

    def fetch(f: s3.RemoteFile) -> int:
        received = s3.fetch(client.get(), f, real_root, opts.retry, cancel, progress.add, parts)
        verified.add(f.dest)
        progress.file_done()
        return received

    try:
        received = listing.run_pool(opts.workers, todo, fetch, cancel)
    except (s3.Cancelled, s3.StoreUnavailable, s3.ObjectError, OSError) as exc:
        if not isinstance(exc, s3.Cancelled):
            listing.forget_listings(opts.endpoint_url, plans)
        _record(real_root, destination, records, listed, opts.endpoint_url, verified)
        complete = sum(1 for f in files if f.dest in verified)
        where = f"{complete} of {len(files)} files are complete in {str(destination)!r}"
        if isinstance(exc, s3.Cancelled):
            raise DownloadCancelled(
                f"Download cancelled: {where}; no partial files are left. Call download again with the same "
                "arguments to resume."
            ) from exc
        if isinstance(exc, s3.StoreUnavailable):
            cause = s3.unreachable(opts.endpoint_url, exc)
        elif isinstance(exc, s3.ObjectError):
            cause = f"The object store refused an object ({exc}); the mirror may be incomplete."
        else:
            cause = f"Writing a file failed: {exc.strerror or exc} ({exc.filename or ''})."
        raise DownloadError(
            f"{cause} {where} and no partial files are left; call download again with the same arguments "
            "to resume (complete files are skipped)."
        ) from exc
    finally:
        if parts is not None:
            parts.close(cancel=cancel.is_set())
        progress.phase = "finished"
    _record(real_root, destination, records, listed, opts.endpoint_url, None)
    outcome.files_downloaded = len(todo)
    outcome.bytes_downloaded = sum(received)
    return outcome


def _record(
    root: Path,
    destination: Path,
    records: dict[str, state.SeriesRecord],
    listed: list[SeriesFiles],
    endpoint: str,
    verified: set[Path] | None,
) -> None:
    """Update the state file with the series now complete (all of them after a successful run, when
    `verified` is None; after a failed one, those whose files are all in `verified`: found unchanged or
    fetched by this run). Skipped when nothing changed; a failure to write it costs only the shortcut,
    so it is ignored."""
    changed = False
    for sf in listed:
        if sf.from_state or (verified is not None and not all(f.dest in verified for f in sf.files)):
            continue
        record = sf.record(endpoint)
        if records.get(sf.series.series_uid) != record:
            records.pop(sf.series.series_uid, None)  # re-inserted last: the newest are kept longest
            records[sf.series.series_uid] = record
            changed = True
    if changed:
        try:
            state.save(root, destination, records)
        except (OSError, PathRefused):
            pass
