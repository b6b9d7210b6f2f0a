"""Which files each series has: from a previous run's state file when it still holds, else from the
object store's listing (in parallel, with retries, remembered in-process); and the worker pool both the
listing and the transfers run on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idc_mcp.catalog.memo import Memo
from idc_mcp.download import s3, state
from idc_mcp.download.plan import SeriesPlan, folder_path
from idc_mcp.files import is_own_name, safe_component


@dataclass
class SeriesFiles:
    series: SeriesPlan
    files: list[s3.RemoteFile]

    from_state: bool = False  # the listing came from the state file (no request was sent)
    estimated: bool = False  # a dry run did not list it: count and size are the index's figures

    @property
    def size(self) -> int:
        return self.series.index_size_bytes if self.estimated else sum(f.size for f in self.files)

    @property
    def count(self) -> int:
        return self.series.instance_count if self.estimated else len(self.files)

    def record(self, endpoint: str) -> state.SeriesRecord:
        """The state record of this series, with each file's stamp now (call once all are verified)."""
        objects = tuple((f.key, f.size, f.etag) for f in self.files)
        stamps = tuple(s3.stamp(f.dest) or "" for f in self.files)
        s = self.series
        return state.SeriesRecord(endpoint, s.bucket, s.prefix, s.collection_id, objects, stamps)


def run_pool(workers: int, items: list[Any], fn: Callable[[Any], Any], cancel: threading.Event) -> list[Any]:
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


# Recent series listings by (endpoint, bucket, prefix), bounded by the objects they hold in all (compact
# (key, size, etag) tuples, ~0.25 KB each). In IDC a crdc_series_uuid names one immutable version of a
# series (new content gets a new uuid), so a listing stays true; keeping it makes a resume in the same
# server process cost only a stat per file.
_LISTINGS: Memo[list[s3.Listed]] = Memo(maxsize=200_000, getsizeof=len)


def forget_listings(endpoint: str, series: list[SeriesPlan]) -> None:
    """Drop the remembered listings of these series: after a failed transfer the store may have changed
    (an object of another size), and the next call must ask it again rather than repeat the failure."""
    for p in series:
        _LISTINGS.discard((endpoint, p.bucket, p.prefix))


def clear_listings() -> None:
    _LISTINGS.clear()


class LazyClient:
    """The S3 client, built on first use (~0.4 s): a rerun that needs no request never builds one."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._client: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._make()
            return self._client


RENAMED_PREFIX = "object_"


def data_file_name(key_rest: str) -> tuple[str, str | None]:
    """(file name, the name it replaces or None) for an object's key below its series prefix. A name the
    engine keeps for its own files (LICENSE_*.txt, CITATION_*.txt, idc_manifest_*.csv) is prefixed with
    `object_`, so data never lands on a sidecar, a manifest or the state file, nor they on data."""
    name = safe_component(key_rest.replace("/", "_"), fallback="object")
    if is_own_name(name):
        return f"{RENAMED_PREFIX}{name}", name
    return name, None


def remote_files(plan: SeriesPlan, objects: list[s3.Listed], destination: Path) -> list[s3.RemoteFile]:
    folder = folder_path(destination, plan)
    files = []
    for key, size, etag in objects:
        name, renamed_from = data_file_name(key[len(plan.prefix) :])
        files.append(s3.RemoteFile(plan.bucket, key, size, etag, folder / name, renamed_from))
    return files


def from_state(
    plan: SeriesPlan, record: state.SeriesRecord | None, destination: Path, endpoint: str
) -> SeriesFiles | None:
    """The series' files from a previous run's record, only if the record is for the same endpoint,
    bucket and prefix and every recorded file is still on disk exactly as verified (its stamp); otherwise
    None (list it, then each file is checked by its stamp or its content)."""
    if record is None or (record.endpoint, record.bucket, record.prefix) != (
        endpoint,
        plan.bucket,
        plan.prefix,
    ):
        return None
    files = remote_files(plan, record.listing(), destination)
    if not all(s3.stamp(f.dest) == recorded for f, recorded in zip(files, record.stamps, strict=True)):
        return None
    return SeriesFiles(plan, files, from_state=True)


def list_all(
    client: LazyClient,
    series: list[SeriesPlan],
    destination: Path,
    endpoint: str,
    workers: int,
    retry: s3.RetryPolicy,
    cancel: threading.Event,
    records: dict[str, state.SeriesRecord],
    max_objects: int | None = None,
) -> list[SeriesFiles]:
    """Each series' files: from the state file when it holds and the files agree, else listed (with
    retries) in parallel, through the in-process listing cache. More than `max_objects` objects in all
    raises s3.TooManyObjects (whatever the index said), so a listing never holds more."""
    known = {p.series_uid: from_state(p, records.get(p.series_uid), destination, endpoint) for p in series}
    held = [sum(len(k.files) for k in known.values() if k is not None)]
    held_lock = threading.Lock()

    def count(n: int, where: str) -> None:
        with held_lock:
            held[0] += n
            if max_objects is not None and held[0] > max_objects:
                raise s3.TooManyObjects(f"{where} brought the listing past {max_objects:,} objects")

    def one(plan: SeriesPlan) -> SeriesFiles:
        key = (endpoint, plan.bucket, plan.prefix)
        objects = _LISTINGS.get(key)
        if objects is None:
            left = None if max_objects is None else max(0, max_objects - held[0])
            objects = s3.with_retries(
                lambda: s3.list_objects(client.get(), plan.bucket, plan.prefix, left),
                retry,
                cancel,
                f"listing {plan.s3_url}",
            )
            if objects:  # an empty listing may be a mirror catching up: ask again next time
                _LISTINGS.put(key, objects)
        count(len(objects), plan.s3_url)
        return SeriesFiles(plan, remote_files(plan, objects, destination))

    to_list = [p for p in series if known[p.series_uid] is None]
    listed = iter(run_pool(workers, to_list, one, cancel) if to_list else [])
    return [known[p.series_uid] or next(listed) for p in series]
