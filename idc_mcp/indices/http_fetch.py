"""Bounded HTTP downloads for fetch_index: urllib, connect/read timeouts, size and checksum while streaming.

Nothing here knows about indices; errors say which URL was tried and what went wrong.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from idc_mcp import __version__

CHUNK = 1 << 20
USER_AGENT = f"idc-mcp/{__version__}"

# progress(bytes_so_far, total_bytes_or_None)
Progress = Callable[[int, int | None], None]


class FetchFailed(Exception):
    """A download failed; the message names the URL and the reason."""

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.status = status


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


def download(url: str, dest: Path, timeout: float, progress: Progress | None = None) -> Downloaded:
    """Stream `url` into `dest` (which the caller removes on failure), hashing as it goes."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    size = 0
    with _open(url, timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if progress:
            progress(0, total)
        try:
            with open(dest, "wb") as out:
                while True:
                    chunk = response.read(CHUNK)
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


def get_small(url: str, timeout: float, max_bytes: int = 8 << 20) -> bytes:
    """A small document (a checksum file, a listing), bounded in size."""
    with _open(url, timeout) as response:
        try:
            data = response.read(max_bytes + 1)
        except TimeoutError as exc:
            raise FetchFailed(url, f"no answer within {timeout:g} s") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise FetchFailed(url, f"the transfer broke off ({type(exc).__name__})") from exc
    if len(data) > max_bytes:
        raise FetchFailed(url, f"the reply is larger than {max_bytes} bytes")
    return data
