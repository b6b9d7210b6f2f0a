"""The download engine: plan, list, check disk, fetch with a thread pool, write provenance.

Plain blocking code that knows nothing of MCP: progress is a shared counter the caller polls, and
cancellation is a `threading.Event` the caller sets. Everything written lands inside the root.
"""

from __future__ import annotations

import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from idc_mcp.catalog import Catalog
from idc_mcp.download import provenance, s3
from idc_mcp.download.plan import DEFAULT_TEMPLATE, SeriesPlan, check_template, folder_path, plan_series
from idc_mcp.paths import PathRefused, ensure_inside, resolve_inside, safe_component
from idc_mcp.selection import Selection, resolve_selection


class DownloadError(Exception):
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
    phase: str = "planning"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n

    def file_done(self) -> None:
        with self._lock:
            self.files_done += 1

    def snapshot(self) -> tuple[int, int, str]:
        with self._lock:
            return self.done, self.total, f"{self.phase}: {self.files_done}/{self.files_total} files"


@dataclass(frozen=True)
class Options:
    endpoint_url: str
    workers: int = 16
    retry: s3.RetryPolicy = field(default_factory=s3.RetryPolicy)
    connect_timeout_s: float = 10
    read_timeout_s: float = 60


@dataclass
class SeriesFiles:
    series: SeriesPlan
    files: list[s3.RemoteFile]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


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


def free_bytes(folder: Path) -> int:
    """Free space on the filesystem holding `folder` (or its nearest existing ancestor)."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _run_pool(workers: int, items: list[Any], fn: Callable[[Any], Any], cancel: threading.Event) -> list[Any]:
    """Run fn over items; on the first error stop the rest (set `cancel`) and re-raise it."""
    results: list[Any] = [None] * len(items)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items) or 1))) as pool:
        futures: dict[Future[Any], int] = {pool.submit(fn, item): i for i, item in enumerate(items)}
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            cancel.set()
            for f in pending:
                f.cancel()
            wait(pending)
            # A real failure explains more than the cancellations it caused in other workers.
            errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception()]
            real = [e for e in errors if not isinstance(e, s3.Cancelled)]
            raise (real or errors)[0]  # type: ignore[misc]
        for f, i in futures.items():
            results[i] = f.result()
    return results


class _ListingCache:
    """Recent series listings. In IDC a crdc_series_uuid names one immutable version of a series (new
    content gets a new uuid), so a listing stays true; keeping it makes a resume in the same server
    process cost only a stat per file. Bounded by the number of objects held."""

    def __init__(self, max_objects: int = 500_000) -> None:
        self.max_objects = max_objects
        self._items: OrderedDict[tuple[str, str, str], list[dict[str, Any]]] = OrderedDict()
        self._count = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> list[dict[str, Any]] | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: tuple[str, str, str], objects: list[dict[str, Any]]) -> None:
        if not objects or len(objects) > self.max_objects:  # an empty listing may be a mirror catching up
            return
        with self._lock:
            if key not in self._items:
                self._items[key] = objects
                self._count += len(objects)
            while self._count > self.max_objects:
                _, dropped = self._items.popitem(last=False)
                self._count -= len(dropped)


_LISTINGS = _ListingCache()


def clear_caches() -> None:
    """Forget remembered plans and listings (a new process starts this way)."""
    global _LISTINGS
    with _PLAN_CACHE_LOCK:
        _PLAN_CACHE.clear()
    _LISTINGS = _ListingCache()


def _list_all(
    client: Any, series: list[SeriesPlan], destination: Path, opts: Options, cancel: threading.Event
) -> list[SeriesFiles]:
    def one(plan: SeriesPlan) -> SeriesFiles:
        key = (opts.endpoint_url, plan.bucket, plan.prefix)
        objects = _LISTINGS.get(key)
        if objects is None:
            objects = s3.with_retries(
                lambda: s3.list_objects(client, plan.bucket, plan.prefix),
                opts.retry,
                cancel,
                f"listing {plan.s3_url}",
            )
            _LISTINGS.put(key, objects)
        folder = folder_path(destination, plan)
        files = []
        for obj in objects:
            name = safe_component(obj["Key"][len(plan.prefix) :].replace("/", "_"), fallback="object")
            files.append(
                s3.RemoteFile(plan.bucket, obj["Key"], int(obj["Size"]), obj.get("ETag", ""), folder / name)
            )
        return SeriesFiles(plan, files)

    return _run_pool(opts.workers, series, one, cancel)


_PLAN_CACHE: OrderedDict[tuple[int, str], list[SeriesPlan]] = OrderedDict()
_PLAN_CACHE_LOCK = threading.Lock()
_PLAN_CACHE_ENTRIES = 16
_PLAN_CACHE_MAX_SERIES = 20_000


def _plan(catalog: Catalog, selection: Selection, template: str) -> list[SeriesPlan]:
    """Resolve and plan a selection, remembering recent plans: the catalog never changes while it is
    open, and a rerun (resume) should not pay for three scans of the million-row index again."""
    key = (id(catalog), repr((selection, template)))
    with _PLAN_CACHE_LOCK:
        if key in _PLAN_CACHE:
            _PLAN_CACHE.move_to_end(key)
            return _PLAN_CACHE[key]
    plans = plan_series(catalog, resolve_selection(catalog, selection), template)
    if len(plans) <= _PLAN_CACHE_MAX_SERIES:
        with _PLAN_CACHE_LOCK:
            _PLAN_CACHE[key] = plans
            while len(_PLAN_CACHE) > _PLAN_CACHE_ENTRIES:
                _PLAN_CACHE.popitem(last=False)
    return plans


def _clean_temporaries(folders: set[Path]) -> None:
    """Remove temporaries an interrupted run left in the planned folders (and only there)."""
    for folder in folders:
        if folder.is_dir() and not folder.is_symlink():
            for entry in folder.iterdir():
                if s3.is_temp(entry.name) and (entry.is_file() or entry.is_symlink()):
                    entry.unlink(missing_ok=True)


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
    plans = _plan(catalog, selection, template)
    client = s3.make_client(opts.endpoint_url, opts.workers + 4, opts.connect_timeout_s, opts.read_timeout_s)
    progress.phase = "listing"
    try:
        listed = _list_all(client, plans, destination, opts, cancel)
    except s3.Cancelled as exc:
        raise DownloadCancelled("Download cancelled while listing; nothing was written.") from exc
    except s3.StoreUnavailable as exc:
        raise DownloadError(
            f"The object store at {opts.endpoint_url} did not answer the listing ({exc}). Nothing was "
            "written; check IDC_MCP_S3_ENDPOINT_URL and the network, then call download again."
        ) from exc
    except s3.ObjectError as exc:
        raise DownloadError(f"The object store refused the listing: {exc}.") from exc
    empty = [sf.series.series_uid for sf in listed if not sf.files]
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
        if not folder.resolve().is_relative_to(real_root):
            raise PathRefused(
                f"The folder {str(folder)!r} resolves outside the download root; remove the link."
            )
    if not dry_run:
        _clean_temporaries(folders)
    todo = [f for f in files if not s3.is_complete(f)]
    outcome = Outcome(
        destination=destination,
        series=listed,
        sources=provenance.lookup_sources(catalog, plans),
        files_total=len(files),
        bytes_total=sum(f.size for f in files),
        files_skipped=len(files) - len(todo),
        bytes_needed=sum(f.size for f in todo),
        free_bytes=free_bytes(destination),
        dry_run=dry_run,
    )
    if outcome.bytes_needed > outcome.free_bytes:
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

    def fetch(f: s3.RemoteFile) -> int:
        received = s3.fetch(client, f, real_root, opts.retry, cancel, progress.add)
        progress.file_done()
        return received

    try:
        received = _run_pool(opts.workers, todo, fetch, cancel)
    except (s3.Cancelled, s3.StoreUnavailable, s3.ObjectError, OSError) as exc:
        complete = sum(1 for f in files if s3.is_complete(f))
        where = f"{complete} of {len(files)} files are complete in {str(destination)!r}"
        if isinstance(exc, s3.Cancelled):
            raise DownloadCancelled(
                f"Download cancelled: {where}; no partial files are left. Call download again with the same "
                "arguments to resume."
            ) from exc
        if isinstance(exc, s3.StoreUnavailable):
            cause = f"The object store at {opts.endpoint_url} kept failing ({exc})."
        elif isinstance(exc, s3.ObjectError):
            cause = f"The object store refused an object ({exc}); the mirror may be incomplete."
        else:
            cause = f"Writing a file failed: {exc.strerror or exc} ({exc.filename or ''})."
        raise DownloadError(
            f"{cause} {where} and no partial files are left; call download again with the same arguments "
            "to resume (complete files are skipped)."
        ) from exc
    finally:
        progress.phase = "finished"
    outcome.files_downloaded = len(todo)
    outcome.bytes_downloaded = sum(received)
    return outcome
