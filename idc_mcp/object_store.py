"""The one anonymous S3 client: creation, retries with backoff, listing, streaming one object.

IDC's buckets are public: requests are unsigned. Connection errors, timeouts, cut-off bodies and 5xx
replies are retried with exponential backoff and full jitter; the waits are interruptible by a cancel
event. Downloads (`download/`) and the clinical tables (`indices/clinical.py`) both use it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import random
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

import botocore.exceptions as bce

CANCEL_WATCH_S = 0.1  # how soon a watched body sees a cancel request (stream_object(close_on_cancel=True))
CHUNK_BYTES = 1 << 20  # a cancel request is seen after at most one chunk (measured: 1 MiB beats 256 KiB)
T = TypeVar("T")


class Cancelled(Exception):
    """The caller asked the download to stop."""


class StoreUnavailable(Exception):
    """The object store kept failing after every retry (connection errors, timeouts or 5xx)."""


def unreachable(endpoint_url: str, failure: Exception) -> str:
    """The first sentence about a store that did not answer: the network, unless the user chose the store.

    The setting is named only when the user set it: a user who never touched IDC_MCP_S3_ENDPOINT_URL
    has a network problem (offline, a proxy, a firewall), not a setting to check.
    """
    from idc_mcp.config import DEFAULT_S3_ENDPOINT  # its one definition

    answered = "HTTP " in str(failure)  # it answered, with errors (5xx): not the network
    if endpoint_url.rstrip("/") == DEFAULT_S3_ENDPOINT:
        if answered:
            return f"IDC's storage kept failing: {failure}. Try again later."
        return f"Cannot reach IDC's storage (network): {failure}."
    return (
        f"The S3 endpoint {endpoint_url} (set by IDC_MCP_S3_ENDPOINT_URL or --s3-endpoint-url) "
        f"{'kept failing' if answered else 'cannot be reached'}: {failure}. Check that server, or unset the "
        "setting to use IDC's storage."
    )


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


@functools.lru_cache(maxsize=8)
def make_client(
    endpoint_url: str, max_pool: int, connect_timeout_s: float = 10, read_timeout_s: float = 60
) -> Any:
    """An unsigned (anonymous) S3 client; retries are ours (see RetryPolicy), so botocore tries once.

    Clients are thread-safe and slow to build (~0.3 s), so one is kept per endpoint and settings.
    botocore is imported here: a rerun with nothing to fetch or list never needs it. Timestamps in
    replies (LastModified of every listed object and every GET) stay text: nothing here reads them,
    and parsing them with dateutil was a tenth of the CPU time of a download of small files.
    """
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config

    config = Config(
        signature_version=UNSIGNED,
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        max_pool_connections=max_pool,
        tcp_keepalive=True,
        # The store's checksum of an object is asked for (and checked) per request, by `_response`:
        # whole-object reads ask for it, ranged reads cannot use it.
        response_checksum_validation="when_required",
    )
    session = botocore.session.Session()
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
    return session.create_client("s3", endpoint_url=endpoint_url, region_name="us-east-1", config=config)


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
        | TransferMismatch,
    )


class TransferMismatch(Exception):
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


def list_objects(client: Any, bucket: str, prefix: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Every object under the prefix (Key, Size, ETag), all pages; with `limit`, paging stops as soon as
    more than `limit` objects were listed (the caller sees the excess and refuses)."""
    found: list[dict[str, Any]] = []
    for contents in iter_pages(client, bucket, prefix):
        found.extend(contents)
        if limit is not None and len(found) > limit:
            break
    return found


def iter_pages(client: Any, bucket: str, prefix: str) -> Iterator[list[dict[str, Any]]]:
    """The objects under the prefix, one page (at most 1,000) at a time: a caller that keeps only what it
    needs of each page holds one page of botocore's dicts, never the whole listing."""
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": 1000}
        if token:
            kwargs["ContinuationToken"] = token
        try:
            page = client.list_objects_v2(**kwargs)
        except bce.ClientError as exc:
            if not _retryable(exc):
                raise ObjectError(f"s3://{bucket}/{prefix}: {_describe(exc)}") from exc
            raise
        yield page.get("Contents", [])
        if not page.get("IsTruncated"):
            return
        token = page.get("NextContinuationToken")


def _response(client: Any, bucket: str, key: str, byte_range: str | None, store_checksum: bool) -> Any:
    """The reply to a GET (its streaming body unread); ObjectError for a missing or forbidden object
    (asking again will not help), retryable errors as raised. With `store_checksum`, botocore checks the
    body as it is read against the checksum the store sends with a whole object, if it sends one (a
    mismatch raises FlexibleChecksumError at the end of the body, retried)."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if byte_range:
        kwargs["Range"] = byte_range
    if store_checksum:
        kwargs["ChecksumMode"] = "ENABLED"
    try:
        return client.get_object(**kwargs)
    except bce.ClientError as exc:
        if not _retryable(exc):
            raise ObjectError(f"s3://{bucket}/{key}: {_describe(exc)}") from exc
        raise


def get_bytes(client: Any, bucket: str, key: str, start: int | None = None, end: int | None = None) -> bytes:
    """One GET of an object, or of bytes [start, end) with a Range request; ObjectError when asking again
    will not help. The caller checks the length it expected (a cut body is retried by `with_retries`)."""
    byte_range = f"bytes={start}-{end - 1}" if start is not None and end is not None else None
    body = _response(client, bucket, key, byte_range, store_checksum=byte_range is None)["Body"]
    try:
        return body.read()
    finally:
        body.close()


_CHECKSUMS = ("crc64nvme", "crc32c", "crc32", "sha1", "sha256")  # botocore's order of preference


@dataclass(frozen=True)
class Streamed:
    """One object as `stream_object` wrote it: its size, the ETag the store answered with, and what
    checked the bytes: `store_checksum`, the algorithm (e.g. 'crc32') botocore checked them with against
    the checksum the store keeps for the object (a mismatch raises before this is returned), and `md5`,
    their MD5 in hex when it was computed here (None when the store's checksum made it unnecessary)."""

    size: int
    etag: str
    store_checksum: str | None
    md5: str | None


def shut_down(connection: Any) -> None:
    """Shut down the socket under `connection` (anything with `fileno()`) from another thread: a read
    blocked on it returns at once. Closing would not do: the reading thread keeps the socket open."""
    try:
        sock = socket.socket(fileno=os.dup(connection.fileno()))
    except (OSError, ValueError, AttributeError):
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


@contextlib.contextmanager
def watching(
    condition: Callable[[], bool], act: Callable[[], object], name: str, interval_s: float
) -> Iterator[None]:
    """While inside, a watchdog thread checks `condition` every `interval_s` and, once it holds, calls
    `act` once (e.g. shuts a connection a read is blocked on). Leaving the block stops the watchdog."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(interval_s):
            if condition():
                act()
                return

    watcher = threading.Thread(target=watch, name=name, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def _closed_on(cancel: threading.Event, body: Any) -> contextlib.AbstractContextManager[None]:
    """While inside, the body's connection is shut once `cancel` is set (a read blocked on it then
    fails). botocore keeps the urllib3 response as the body's `_raw_stream`."""
    shut = functools.partial(shut_down, getattr(body, "_raw_stream", body))
    return watching(cancel.is_set, shut, "s3-body-watchdog", CANCEL_WATCH_S)


def stream_object(
    client: Any,
    bucket: str,
    key: str,
    out: BinaryIO,
    cancel: threading.Event,
    on_chunk: Callable[[int], None] | None = None,
    md5_if_store_checked: bool = True,
    close_on_cancel: bool = False,
) -> Streamed:
    """Write one object's body to `out` chunk by chunk, checked by the store's own checksum when it
    sends one with the object, and hashed (MD5) unless `md5_if_store_checked` is False and the store's
    checksum already checks it (hashing every byte twice costs a large file half its CPU time).

    A missing or forbidden object raises ObjectError (asking again will not help); a body that fails
    the store's checksum raises botocore's FlexibleChecksumError (retryable); cancellation is seen
    between chunks, and with `close_on_cancel` also inside one: a watchdog shuts the connection down, so
    a store that trickles bytes or goes silent cannot hold the read. The caller compares size and MD5
    (or ETag) with the listing (TransferMismatch)."""
    from botocore.httpchecksum import StreamingChecksumBody  # loaded by then (the client uses it)

    response = _response(client, bucket, key, None, store_checksum=True)
    body = response["Body"]
    algorithm = None
    if isinstance(body, StreamingChecksumBody):  # botocore found the store's checksum and checks it
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        algorithm = next((a for a in _CHECKSUMS if f"x-amz-checksum-{a}" in headers), "checksum")
    digest = hashlib.md5(usedforsecurity=False) if algorithm is None or md5_if_store_checked else None
    written = 0
    try:
        with _closed_on(cancel, body) if close_on_cancel else contextlib.nullcontext():
            for chunk in body.iter_chunks(CHUNK_BYTES):
                if cancel.is_set():
                    raise Cancelled()
                out.write(chunk)
                if digest is not None:
                    digest.update(chunk)
                written += len(chunk)
                if on_chunk is not None:
                    on_chunk(len(chunk))
    except Exception as exc:
        if cancel.is_set() and not isinstance(exc, Cancelled):
            raise Cancelled() from exc  # whatever the closed body raised in the reading thread
        raise
    finally:
        body.close()
    return Streamed(
        size=written,
        etag=str(response.get("ETag", "")),
        store_checksum=algorithm,
        md5=digest.hexdigest() if digest is not None else None,
    )
