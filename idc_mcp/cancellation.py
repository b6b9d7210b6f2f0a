"""Stopping a tool call's work when its caller has gone away.

The server's call middleware (serve/calls.py) opens a `CallCancellation` for each tool call and
cancels it when the HTTP client disconnects. Code below the MCP layer that can stop early registers how
(DuckDB: `cursor.interrupt`) with `on_cancel`; the registration is found through a context variable,
which anyio copies into the worker thread that runs a synchronous tool. Outside a call it does nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# How work below the MCP layer reports progress: report(done, total or None, message). Safe to call from
# any thread; it never blocks on the client and never raises (see calls.Call.report).
Report = Callable[[float, float | None, str | None], None]


class CallCancellation:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], object]] = []
        self.cancelled = False

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    @contextmanager
    def registered(self, callback: Callable[[], object]) -> Iterator[None]:
        with self._lock:
            already = self.cancelled
            self._callbacks.append(callback)
        if already:
            callback()
        try:
            yield
        finally:
            with self._lock:
                self._callbacks.remove(callback)


current_call: ContextVar[CallCancellation | None] = ContextVar("idc_mcp_current_call", default=None)


@contextmanager
def on_cancel(callback: Callable[[], object]) -> Iterator[None]:
    """Within the block, call `callback` (from another thread) if the current tool call is cancelled."""
    call = current_call.get()
    if call is None:
        yield
        return
    with call.registered(callback):
        yield


def cancelled() -> bool:
    call = current_call.get()
    return call is not None and call.cancelled
