"""Anonymous S3 access: listing a series' objects and fetching one object safely.

A fetched object is written to a temporary name in its final folder and renamed only once its size
(and, for single-part uploads, its MD5 = ETag) matches the listing, so a file under its final name is
always complete. Connection errors, timeouts, cut-off bodies and 5xx replies are retried with
exponential backoff; the waits are interruptible by the cancel event.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import re
import stat
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import botocore.exceptions as bce

from idc_mcp.files import ensure_inside

CHUNK_BYTES = 1 << 20  # a cancel request is seen after at most one chunk (measured: 1 MiB beats 256 KiB)
TEMP_SUFFIX = ".idcpart"
T = TypeVar("T")


class Cancelled(Exception):
    """The caller asked the download to stop."""


class StoreUnavailable(Exception):
    """The object store kept failing after every retry (connection errors, timeouts or 5xx)."""


class ObjectError(Exception):
    """A non-retryable reply for one object (missing, forbidden); the message names it."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0

    def delay(self, attempt: int) -> float:
        # Full jitter: spreads retries of many workers hitting the same failing store.
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


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


@functools.lru_cache(maxsize=8)
def make_client(
    endpoint_url: str, max_pool: int, connect_timeout_s: float = 10, read_timeout_s: float = 60
) -> Any:
    """An unsigned (anonymous) S3 client; retries are ours (see RetryPolicy), so botocore tries once.

    Clients are thread-safe and slow to build (~0.4 s), so one is kept per endpoint and settings.
    boto3 is imported here (~0.25 s): a rerun with nothing to fetch or list never needs it.
    """
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    config = Config(
        signature_version=UNSIGNED,
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        max_pool_connections=max_pool,
        tcp_keepalive=True,
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name="us-east-1", config=config
    )


def _retryable(exc: BaseException) -> bool:
    from urllib3.exceptions import HTTPError as Urllib3Error  # loaded by then (botocore sends with it)

    if isinstance(exc, bce.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = exc.response.get("Error", {}).get("Code", "")
        return status >= 500 or status == 429 or code in ("SlowDown", "RequestTimeout", "Throttling")
    return isinstance(
        exc,
        bce.EndpointConnectionError
        | bce.ConnectionError
        | bce.HTTPClientError
        | bce.ResponseStreamingError
        | bce.IncompleteReadError
        | bce.FlexibleChecksumError
        | Urllib3Error
        | ConnectionError
        | TimeoutError
        | _Mismatch,
    )


class _Mismatch(Exception):
    """The bytes received do not match the listing (cut short or corrupted in transit)."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, bce.ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        return f"HTTP {status} {err.get('Code', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def with_retries(fn: Callable[[], T], policy: RetryPolicy, cancel: threading.Event, what: str) -> T:
    """Call fn, retrying retryable failures with backoff; raise StoreUnavailable when they persist."""
    last: BaseException | None = None
    for attempt in range(policy.attempts):
        if cancel.is_set():
            raise Cancelled()
        try:
            return fn()
        except (Cancelled, ObjectError):
            raise
        except Exception as exc:
            if not _retryable(exc):
                raise
            last = exc
        if attempt + 1 < policy.attempts and cancel.wait(policy.delay(attempt)):
            raise Cancelled()
    raise StoreUnavailable(
        f"{what}: {_describe(last) if last else 'failed'} after {policy.attempts} attempts"
    )


class TooManyObjects(Exception):
    """A listing passed the number of objects one call may hold."""


# One listed object, as compact as it can be kept: (key, size, etag). botocore's dicts (with dates,
# owner, storage class) cost ~1.4 KB each; these ~0.25 KB.
Listed = tuple[str, int, str]


def list_objects(client: Any, bucket: str, prefix: str, max_objects: int | None = None) -> list[Listed]:
    """Every object under the prefix as (key, size, etag), all pages, streamed: each page of 1,000 is cut
    down to tuples before the next is asked for. More than `max_objects` raises TooManyObjects."""
    found: list[Listed] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": 1000}
        if token:
            kwargs["ContinuationToken"] = token
        try:
            page = client.list_objects_v2(**kwargs)
            page_more, token = bool(page.get("IsTruncated")), page.get("NextContinuationToken")
        except bce.ClientError as exc:
            if not _retryable(exc):
                raise ObjectError(f"s3://{bucket}/{prefix}: {_describe(exc)}") from exc
            raise
        found.extend(
            (str(o["Key"]), int(o["Size"]), str(o.get("ETag", ""))) for o in page.get("Contents", [])
        )
        del page
        if max_objects is not None and len(found) > max_objects:
            raise TooManyObjects(f"s3://{bucket}/{prefix} holds more than {max_objects:,} objects")
        if not page_more:
            return found


# Names of the temporaries this process is writing now: another download into the same folder (a
# concurrent call) must leave them alone; see `is_stale_temp`.
_LIVE_TEMPS: set[str] = set()
_LIVE_LOCK = threading.Lock()
_TEMP_OWNER = re.compile(r"\.(\d+)-[0-9a-f]{12}" + re.escape(TEMP_SUFFIX) + "$")


def temp_name(dest: Path) -> Path:
    """`.<name>.<pid>-<random>.idcpart`: hidden, unique, and naming the process that writes it."""
    return dest.with_name(f".{dest.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")


def is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


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
    pid = int(owner.group(1))
    if pid == os.getpid():
        with _LIVE_LOCK:
            return name not in _LIVE_TEMPS
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
        tmp = temp_name(remote.dest)
        ensure_inside(root, tmp)
        with _LIVE_LOCK:
            _LIVE_TEMPS.add(tmp.name)
        try:
            try:
                reply = client.get_object(Bucket=remote.bucket, Key=remote.key)
            except bce.ClientError as exc:
                if not _retryable(exc):  # missing, forbidden...: asking again will not help
                    raise ObjectError(f"s3://{remote.bucket}/{remote.key}: {_describe(exc)}") from exc
                raise
            body = reply["Body"]
            digest = hashlib.md5(usedforsecurity=False)
            written = 0
            try:
                # 'xb' never follows or truncates an existing file or link at the temporary name.
                with open(tmp, "xb") as out:
                    for chunk in body.iter_chunks(CHUNK_BYTES):
                        if cancel.is_set():
                            raise Cancelled()
                        out.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                        received += len(chunk)
                        if written > credited:
                            on_bytes(min(written, remote.size) - credited)
                            credited = min(written, remote.size)
            finally:
                body.close()
            if cancel.is_set():  # never give a final name after cancellation was asked for
                raise Cancelled()
            if written != remote.size:
                raise _Mismatch(f"received {written} of {remote.size} bytes")
            if remote.md5 and digest.hexdigest() != remote.md5:
                raise _Mismatch("MD5 differs from the object's ETag")
            final = ensure_inside(root, remote.dest)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            with _LIVE_LOCK:
                _LIVE_TEMPS.discard(tmp.name)

    with_retries(attempt, policy, cancel, f"s3://{remote.bucket}/{remote.key}")
    if credited < remote.size:
        on_bytes(remote.size - credited)
    return received
