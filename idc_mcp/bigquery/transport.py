"""The HTTP session the BigQuery client reads through: every response is capped in bytes and in time.

google-cloud-bigquery reads a whole API response into memory before it looks at it, and BigQuery (or
an emulator) answers a result page with every row of it, however large: one 450-million-character
value is a 450 MB response, parsed into several copies of itself. Here each response is read in chunks
and given up as soon as it passes its byte cap (its declared Content-Length is checked first) or the
call's deadline passes, so the most a response costs is its cap, whatever the query returned.

The cap and the deadline are set per call by `reading(...)` (a context variable: the library's requests
run in the calling thread); outside it a response may have `METADATA_BYTES` (table schemas, job
resources) and no deadline beyond each request's own timeout.

`requests` comes with the optional `bigquery` extra: it is imported only when a session is made.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

METADATA_BYTES = 32 * 2**20  # a table schema or a job resource; IDC's widest schema is far below
CHUNK_BYTES = 64 * 1024


class ResponseTooLarge(Exception):
    """A response passed its byte cap; nothing of it is kept."""

    def __init__(self, limit: int, declared: int | None = None) -> None:
        super().__init__(f"response larger than {limit:,} bytes" + (f" ({declared:,})" if declared else ""))
        self.limit = limit
        self.declared = declared  # the Content-Length it announced, when it did


class DeadlinePassed(Exception):
    """The call's deadline passed while a response was being read."""


@dataclass(frozen=True)
class _Budget:
    max_bytes: int
    deadline: float | None  # time.monotonic() value


_OUTSIDE_CALLS = _Budget(METADATA_BYTES, None)
_budget: ContextVar[_Budget] = ContextVar("bigquery_response_budget", default=_OUTSIDE_CALLS)  # noqa: B039 - frozen


@contextmanager
def reading(max_bytes: int, deadline: float | None) -> Iterator[None]:
    """Responses read in this block (in this thread) may have `max_bytes` each and end by `deadline`."""
    token = _budget.set(_Budget(max_bytes, deadline))
    try:
        yield
    finally:
        _budget.reset(token)


def seconds_left(default: float) -> float:
    """The time a request may take: `default`, or less when the call's deadline is nearer."""
    deadline = _budget.get().deadline
    if deadline is None:
        return default
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlinePassed()
    return min(default, left)


class _CappedBody:
    """urllib3's response body, read through a byte cap and a deadline (requests calls `stream`)."""

    def __init__(self, raw: Any, budget: _Budget) -> None:
        self._raw = raw
        self._budget = budget

    def stream(self, amt: int | None = CHUNK_BYTES, decode_content: bool | None = None) -> Iterator[bytes]:
        total = 0
        for chunk in self._raw.stream(min(amt or CHUNK_BYTES, CHUNK_BYTES), decode_content=decode_content):
            total += len(chunk)  # decoded bytes: a compressed bomb is counted as what it becomes
            if total > self._budget.max_bytes:
                self._raw.close()  # drop the connection: the rest is never read
                raise ResponseTooLarge(self._budget.max_bytes)
            if self._budget.deadline is not None and time.monotonic() > self._budget.deadline:
                self._raw.close()
                raise DeadlinePassed()
            yield chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def _capped_response(response: requests.Response, resp: Any) -> requests.Response:
    """The response of `resp` (urllib3's), read through the current budget."""
    budget = _budget.get()
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > budget.max_bytes:  # said up front: read none of it
        resp.close()
        raise ResponseTooLarge(budget.max_bytes, int(declared))
    response.raw = _CappedBody(resp, budget)
    return response


def capped_session(credentials: Any) -> requests.Session:
    """An authorized session (the library's own kind) whose responses are read through the budget."""
    from google.auth.transport.requests import AuthorizedSession
    from requests.adapters import HTTPAdapter

    class CappedAdapter(HTTPAdapter):
        def build_response(self, req: Any, resp: Any) -> requests.Response:
            return _capped_response(super().build_response(req, resp), resp)

    session = AuthorizedSession(credentials)
    adapter = CappedAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
