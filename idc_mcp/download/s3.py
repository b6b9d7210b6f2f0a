"""Fetching one object of a series safely, with the one S3 client (`idc_mcp.object_store`).

A fetched object is written to a temporary name in its final folder and renamed only once its size
(and, for single-part uploads, its MD5 = ETag) matches the listing, so a file under its final name is
always complete. Connection errors, timeouts, cut-off bodies and 5xx replies are retried with
exponential backoff (`object_store.with_retries`); the waits are interruptible by the cancel event.
"""

from __future__ import annotations

import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idc_mcp.files import atomic_write
from idc_mcp.object_store import (
    Cancelled,
    ObjectError,
    RetryPolicy,
    StoreUnavailable,
    TransferMismatch,
    list_objects,
    make_client,
    stream_object,
    with_retries,
)

# The engine and the listing reach the client through this module.
__all__ = [
    "Cancelled",
    "ObjectError",
    "RemoteFile",
    "RetryPolicy",
    "StoreUnavailable",
    "fetch",
    "is_complete",
    "is_temp",
    "list_objects",
    "make_client",
    "with_retries",
]

TEMP_SUFFIX = ".idcpart"


@dataclass(frozen=True)
class RemoteFile:
    bucket: str
    key: str
    size: int
    etag: str
    dest: Path

    @property
    def md5(self) -> str | None:
        """The MD5 the ETag carries: only for single-part uploads (multipart ETags contain '-')."""
        tag = self.etag.strip('"')
        return tag.lower() if tag and "-" not in tag and len(tag) == 32 else None


def is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def is_complete(remote: RemoteFile) -> bool:
    """A file under its final name with the listed size (final names are only given to verified files)."""
    try:
        st = remote.dest.lstat()  # one system call; a link is not a regular file to lstat
    except (FileNotFoundError, NotADirectoryError):
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == remote.size


def fetch(
    client: Any,
    remote: RemoteFile,
    root: Path,
    policy: RetryPolicy,
    cancel: threading.Event,
    on_bytes: Callable[[int], None],
) -> int:
    """Download one object to its final path via a verified temporary; returns bytes received.

    `on_bytes` is called with increments that never exceed the object's size in total, so progress
    stays monotonic even when an attempt fails halfway and starts over.
    """
    credited = 0
    received = 0

    def attempt() -> None:
        nonlocal credited, received
        written = 0

        def count(n: int) -> None:
            nonlocal credited, received, written
            written += n
            received += n
            if written > credited:
                on_bytes(min(written, remote.size) - credited)
                credited = min(written, remote.size)

        # The temporary `.<name>.<random>.idcpart` sits in the final folder; it gets the final name
        # only if the block ends cleanly, and is removed otherwise.
        with atomic_write(remote.dest, binary=True, root=root, suffix=TEMP_SUFFIX) as out:
            size, md5 = stream_object(client, remote.bucket, remote.key, out, cancel, count)
            if cancel.is_set():  # never give a final name after cancellation was asked for
                raise Cancelled()
            if size != remote.size:
                raise TransferMismatch(f"received {size} of {remote.size} bytes")
            if remote.md5 and md5 != remote.md5:
                raise TransferMismatch("MD5 differs from the object's ETag")

    with_retries(attempt, policy, cancel, f"s3://{remote.bucket}/{remote.key}")
    if credited < remote.size:
        on_bytes(remote.size - credited)
    return received
