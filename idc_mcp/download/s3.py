"""Fetching one object of a series safely, with the one S3 client (`idc_mcp.object_store`).

A fetched object is written to a temporary name in its final folder and renamed only once its size
matches the listing and its bytes passed their check (`check_streamed`: the store's checksum, else the
MD5 of a single-part upload = its ETag), so a file under its final name is always complete.
Connection errors, timeouts, cut-off bodies and 5xx replies are retried with exponential backoff
(`object_store.with_retries`); the waits are interruptible by the cancel event.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idc_mcp.download import ranged
from idc_mcp.files import atomic_write
from idc_mcp.object_store import (
    CHUNK_BYTES,
    Cancelled,
    ObjectError,
    RetryPolicy,
    StoreUnavailable,
    Streamed,
    TransferMismatch,
    iter_pages,
    make_client,
    stream_object,
    unreachable,
    with_retries,
)

# The engine and the listing reach the client through this module.
__all__ = [
    "Cancelled",
    "ObjectError",
    "RemoteFile",
    "RetryPolicy",
    "StoreUnavailable",
    "TooManyObjects",
    "fetch",
    "is_complete",
    "is_temp",
    "list_objects",
    "unreachable",
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
    renamed_from: str | None = None  # the name the object would have had, when it is a name we keep

    @property
    def md5(self) -> str | None:
        """The MD5 the ETag carries: only for single-part uploads (multipart ETags contain '-')."""
        tag = self.etag.strip('"')
        return tag.lower() if tag and "-" not in tag and len(tag) == 32 else None


class TooManyObjects(Exception):
    """A listing passed the number of objects one call may hold."""


# One listed object, as compact as it can be kept: (key, size, etag). botocore's dicts (with dates,
# owner, storage class) cost ~1.4 KB each; these ~0.25 KB.
Listed = tuple[str, int, str]


def list_objects(client: Any, bucket: str, prefix: str, max_objects: int | None = None) -> list[Listed]:
    """Every object under the prefix as (key, size, etag), streamed: each page of 1,000 is cut down to
    tuples before the next is asked for. More than `max_objects` raises TooManyObjects."""
    found: list[Listed] = []
    for contents in iter_pages(client, bucket, prefix):
        found.extend((str(o["Key"]), int(o["Size"]), str(o.get("ETag", ""))) for o in contents)
        if max_objects is not None and len(found) > max_objects:
            raise TooManyObjects(f"s3://{bucket}/{prefix} holds more than {max_objects:,} objects")
    return found


def is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


# Tokens of the temporaries this process is writing now: another download into the same folder (a
# concurrent call) must leave them alone; see `is_stale_temp`. A temporary is named
# `.<name>.<random>.<pid>-<token>.idcpart`: the writer's process and its fetch.
_LIVE_TOKENS: set[str] = set()
_LIVE_LOCK = threading.Lock()
_TEMP_OWNER = re.compile(r"\.(\d+)-([0-9a-f]{12})" + re.escape(TEMP_SUFFIX) + "$")


def temp_suffix(token: str) -> str:
    return f".{os.getpid()}-{token}{TEMP_SUFFIX}"


def _process_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no cheap, safe probe: never remove another process's temporaries
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, only the process's existence is checked
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def is_stale_temp(name: str) -> bool:
    """A temporary nobody is writing any more: its process is gone, or it is ours and no fetch of this
    process has it open. A temporary of a concurrent download (this process or another) is not stale."""
    if not is_temp(name):
        return False
    owner = _TEMP_OWNER.search(name)
    if owner is None:
        return True  # an older version's name (no owner): left by an interrupted run
    pid, token = int(owner.group(1)), owner.group(2)
    if pid == os.getpid():
        with _LIVE_LOCK:
            return token not in _LIVE_TOKENS
    return not _process_alive(pid)


def is_complete(remote: RemoteFile) -> bool:
    """A file under its final name with the listed size (final names are only given to verified files)."""
    try:
        st = remote.dest.lstat()  # one system call; a link is not a regular file to lstat
    except (FileNotFoundError, NotADirectoryError):
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == remote.size


def stamp(path: Path) -> str | None:
    """What identifies the file we wrote: inode, size, modification and change times (ns). Replacing it,
    writing into it or renaming another file onto it changes the stamp, even at the same size; None when
    the path is not a regular file."""
    try:
        st = path.lstat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def content_matches(remote: RemoteFile) -> bool:
    """The file on disk has the object's size and its MD5 equals the object's ETag. Objects uploaded in
    parts carry no MD5 in their ETag: for them this is False (the file is fetched again)."""
    if remote.md5 is None or not is_complete(remote):
        return False
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with open(remote.dest, "rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
    except OSError:
        return False
    return digest.hexdigest() == remote.md5


def is_verified(remote: RemoteFile, recorded_stamp: str | None) -> bool:
    """Complete and unchanged: the stamp recorded when we wrote (or last verified) the file still holds,
    or else its content hashes to the object's MD5. Size alone never certifies a file."""
    if not is_complete(remote):
        return False
    if recorded_stamp is not None and stamp(remote.dest) == recorded_stamp:
        return True
    return content_matches(remote)


def check_streamed(remote: RemoteFile, got: Streamed) -> None:
    """Refuse (TransferMismatch) bytes that are not the listed object: another size, or content that
    fails its check. The check is the store's own checksum of the object when it sent one (verified by
    botocore while streaming) and the reply's ETag equals the listed one (the same object version);
    else the MD5 of the bytes against a single-part ETag; a multipart object without a store checksum
    is checked by its size only (its ETag is no MD5)."""
    if got.size != remote.size:
        raise TransferMismatch(f"received {got.size} of {remote.size} bytes")
    if got.store_checksum is not None:
        if remote.etag and got.etag and got.etag.strip('"') != remote.etag.strip('"'):
            raise TransferMismatch("the object's ETag changed since it was listed")
    elif remote.md5 and got.md5 != remote.md5:
        raise TransferMismatch("MD5 differs from the object's ETag")


def fetch(
    client: Any,
    remote: RemoteFile,
    root: Path,
    policy: RetryPolicy,
    cancel: threading.Event,
    on_bytes: Callable[[int], None],
    parts: ranged.RangedFetcher | None = None,
) -> int:
    """Download one object to its final path via a verified temporary; returns bytes received. With
    `parts`, an object of at least `ranged.PART_THRESHOLD` bytes is fetched in concurrent ranges.

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

        # The temporary `.<name>.<random>.<pid>-<token>.idcpart` sits in the final folder; it gets the
        # final name only if the block ends cleanly, and is removed otherwise. While it is written, its
        # token is registered live, so a concurrent download's clean-up leaves it alone.
        token = uuid.uuid4().hex[:12]
        with _LIVE_LOCK:
            _LIVE_TOKENS.add(token)
        try:
            with atomic_write(remote.dest, binary=True, root=root, suffix=temp_suffix(token)) as out:
                if parts is not None and remote.size >= ranged.PART_THRESHOLD:
                    got = parts.fetch(
                        remote.bucket, remote.key, remote.size, remote.etag, remote.md5, out, cancel, count
                    )
                else:
                    got = stream_object(
                        client, remote.bucket, remote.key, out, cancel, count, md5_if_store_checked=False
                    )
                if cancel.is_set():  # never give a final name after cancellation was asked for
                    raise Cancelled()
                check_streamed(remote, got)
        finally:
            with _LIVE_LOCK:
                _LIVE_TOKENS.discard(token)

    with_retries(attempt, policy, cancel, f"s3://{remote.bucket}/{remote.key}")
    if credited < remote.size:
        on_bytes(remote.size - credited)
    return received
