"""Bounded HTTP downloads for fetch_index: urllib, connect/read timeouts, a deadline for the whole transfer,
cancellation, size and checksum while streaming.

A per-read timeout alone does not bound a transfer (a server may send one byte every few seconds), so
a watchdog thread shuts the connection down when the deadline passes or the cancel event is set; the
blocked read then returns at once. Nothing here knows about indices; errors say which URL was tried
and what went wrong.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from idc_mcp import __version__, object_store

CHUNK = 1 << 20
USER_AGENT = f"idc-mcp/{__version__}"

# progress(bytes_so_far, total_bytes_or_None)
BytesReport = Callable[[int, int | None], None]


class FetchFailed(Exception):
    """A download failed; the message names the URL and the reason."""

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.status = status


class FetchCancelled(FetchFailed):
    """The caller cancelled the transfer."""


class DeadlinePassed(FetchFailed):
    """The whole fetch took longer than its deadline."""


WATCH_INTERVAL_S = 0.1  # how soon a cancel request is seen


@dataclass(frozen=True)
class Limits:
    """What bounds one whole fetch: an absolute deadline (time.monotonic) and a cancel event."""

    deadline: float | None = None
    deadline_s: float | None = None  # the same deadline as a duration, for messages
    cancel: threading.Event | None = None

    @classmethod
    def within(cls, seconds: float, cancel: threading.Event | None = None) -> Limits:
        return cls(time.monotonic() + seconds, seconds, cancel)

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def check(self, url: str) -> None:
        """Raise if cancelled or past the deadline."""
        if self.cancel is not None and self.cancel.is_set():
            raise FetchCancelled(url, "cancelled")
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlinePassed(url, f"the fetch did not finish within {self.deadline_s:g} s")

    def over(self) -> bool:
        """Cancelled, or past the deadline."""
        remaining = self.remaining()
        return (self.cancel is not None and self.cancel.is_set()) or (
            remaining is not None and remaining <= 0
        )

    def timeout(self, per_read: float) -> float:
        """The socket timeout: the per-read timeout, but never past the deadline."""
        remaining = self.remaining()
        return per_read if remaining is None else max(0.001, min(per_read, remaining))


NO_LIMITS = Limits()


@contextmanager
def _watched(response: http.client.HTTPResponse, limits: Limits) -> Iterator[None]:
    """While inside, a watchdog shuts the connection when the deadline passes or cancel is set."""
    if limits.deadline is None and limits.cancel is None:
        yield
        return
    shut = functools.partial(object_store.shut_down, response)
    with object_store.watching(limits.over, shut, "http-fetch-watchdog", WATCH_INTERVAL_S):
        yield


@dataclass(frozen=True)
class Downloaded:
    size: int
    sha256: str
    md5: str


def _check_scheme(url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise FetchFailed(url, "only http:// and https:// URLs are supported")


def _open(url: str, timeout: float, method: str = "GET"):  # type: ignore[no-untyped-def]
    _check_scheme(url)
    request = urllib.request.Request(url, method=method, headers={"User-Agent": USER_AGENT})
    try:
        # The timeout bounds the connection and every read that follows.
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (scheme checked above)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise FetchFailed(url, f"HTTP {exc.code} {exc.reason}", exc.code) from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError | socket.timeout):
            raise FetchFailed(url, f"no answer within {timeout:g} s") from exc
        raise FetchFailed(url, f"cannot connect ({reason})") from exc
    except TimeoutError as exc:
        raise FetchFailed(url, f"no answer within {timeout:g} s") from exc
    except OSError as exc:
        raise FetchFailed(url, f"cannot connect ({exc})") from exc


def download(
    url: str, dest: Path, timeout: float, progress: BytesReport | None = None, limits: Limits = NO_LIMITS
) -> Downloaded:
    """Stream `url` into `dest` (which the caller removes on failure), hashing as it goes; the whole
    transfer ends at `limits` (deadline, cancel)."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    size = 0
    limits.check(url)
    with _open(url, limits.timeout(timeout)) as response, _watched(response, limits):
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if progress:
            progress(0, total)
        try:
            with open(dest, "wb") as out:
                while True:
                    try:
                        chunk = response.read1(CHUNK)
                    finally:
                        limits.check(url)  # the watchdog may have cut the read short
                    if not chunk:
                        break
                    out.write(chunk)
                    sha.update(chunk)
                    md5.update(chunk)
                    size += len(chunk)
                    if progress:
                        progress(size, total)
        except TimeoutError as exc:
            raise FetchFailed(
                url, f"the server stopped sending for {timeout:g} s after {size} bytes"
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise FetchFailed(
                url, f"the transfer broke off after {size} bytes ({type(exc).__name__})"
            ) from exc
    if total is not None and size != total:
        raise FetchFailed(url, f"the transfer ended after {size} of {total} bytes")
    return Downloaded(size=size, sha256=sha.hexdigest(), md5=md5.hexdigest())


def get_small(url: str, timeout: float, max_bytes: int = 8 << 20, limits: Limits = NO_LIMITS) -> bytes:
    """A small document (a checksum file, a listing), bounded in size and by `limits`."""
    limits.check(url)
    with _open(url, limits.timeout(timeout)) as response, _watched(response, limits):
        try:
            try:
                data = response.read(max_bytes + 1)
            finally:
                limits.check(url)
        except TimeoutError as exc:
            raise FetchFailed(url, f"no answer within {timeout:g} s") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise FetchFailed(url, f"the transfer broke off ({type(exc).__name__})") from exc
    if len(data) > max_bytes:
        raise FetchFailed(url, f"the reply is larger than {max_bytes} bytes")
    return data
