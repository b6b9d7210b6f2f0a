"""Large objects in ranged parts fetched concurrently, by s3transfer (AWS's transfer manager, the one
boto3's `download_file` uses), into the same verified temporary as a single GET.

One stream from S3 is limited (tens of MB/s), so an object of at least PART_THRESHOLD bytes is fetched
as PART_BYTES ranges, several at once, written at their offsets. Every range carries `If-Match` with
the listed ETag, so parts of two versions of an object never mix (a changed object fails with 412).
Ranged replies carry no store checksum: once all parts are in, the file is read back and its MD5
compared with a single-part ETag (a multipart object is checked by its size, as with a single GET
without a store checksum). Cancellation is passed to s3transfer, which stops every part within one
256 KiB write; the caller's `atomic_write` then removes the temporary.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

import botocore.exceptions as bce

from idc_mcp.object_store import CHUNK_BYTES, Cancelled, ObjectError, Streamed, TransferMismatch

MIB = 1024 * 1024
PART_THRESHOLD = 64 * MIB  # smaller objects take one GET (the store's checksum then checks them)
PART_BYTES = 16 * MIB
CANCEL_POLL_S = 0.05  # how often a waiting fetch looks at the cancel event


class RangedFetcher:
    """One s3transfer manager for a download call: at most `workers` ranged GETs in flight in all."""

    def __init__(self, client: Any, workers: int) -> None:
        from s3transfer.manager import TransferConfig, TransferManager

        config = TransferConfig(
            multipart_threshold=PART_THRESHOLD,
            multipart_chunksize=PART_BYTES,
            max_request_concurrency=workers,
        )
        self._manager = TransferManager(client, config)

    def close(self, cancel: bool = False) -> None:
        self._manager.shutdown(cancel=cancel)

    def fetch(
        self,
        bucket: str,
        key: str,
        size: int,
        etag: str,
        md5: str | None,
        out: BinaryIO,
        cancel: threading.Event,
        on_bytes: Callable[[int], None],
    ) -> Streamed:
        """Fetch the object into `out` (a new, empty, seekable file opened for writing) in parts; returns
        what `s3.check_streamed` checks, with the MD5 of the whole file when the ETag is one."""
        from s3transfer.exceptions import CancelledError, RetriesExceededError, S3DownloadFailedError
        from s3transfer.subscribers import BaseSubscriber

        done = threading.Event()
        lock = threading.Lock()

        class Watch(BaseSubscriber):  # type: ignore[misc]
            def on_queued(self, future: Any, **kwargs: Any) -> None:
                future.meta.provide_transfer_size(size)  # known from the listing: no HEAD request
                future.meta.provide_object_etag(etag)  # If-Match on every range

            def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
                with lock:  # parts report from several threads (negative when a part starts over)
                    on_bytes(bytes_transferred)

            def on_done(self, future: Any, **kwargs: Any) -> None:
                done.set()

        future = self._manager.download(bucket, key, out, subscribers=[Watch()])
        while not done.wait(CANCEL_POLL_S):
            if cancel.is_set():
                future.cancel()
                done.wait()
        try:
            future.result()
        except CancelledError as exc:
            raise Cancelled() from exc
        except S3DownloadFailedError as exc:  # s3transfer's word for a 412 to If-Match
            raise TransferMismatch("the object's ETag changed since it was listed") from exc
        except RetriesExceededError as exc:  # a part's body kept being cut: retried as a whole
            raise TransferMismatch(f"a part kept failing ({exc})") from exc
        except bce.ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status < 500 and status != 429:
                raise ObjectError(f"s3://{bucket}/{key}: HTTP {status}") from exc
            raise
        if cancel.is_set():
            raise Cancelled()
        out.flush()
        written = os.fstat(out.fileno()).st_size
        return Streamed(size=written, etag=etag, store_checksum=None, md5=_md5_of(out) if md5 else None)


def _md5_of(out: BinaryIO) -> str:
    """The MD5 of everything written to `out` (read back through its descriptor: the temporary was
    created for reading and writing, and what was just written is still in the page cache)."""
    digest = hashlib.md5(usedforsecurity=False)
    fd = out.fileno()
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, CHUNK_BYTES):
        digest.update(chunk)
    return digest.hexdigest()
