"""Stopping a tool call's work when its caller has gone away.

The server's call middleware (serve/calls.py) opens a `CallCancellation` for each tool call and
cancels it when the HTTP client disconnects. Code below the MCP layer that can stop early registers how
(DuckDB: `cursor.interrupt`) with `on_cancel`; the registration is found through a context variable,
which anyio copies into the worker thread that runs a synchronous tool. Outside a call it does nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

T = TypeVar("T")


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


async def run_in_thread(
    work: Callable[[threading.Event], T], beside: Callable[[], Awaitable[None]] | None = None
) -> T:
    """Run blocking `work(cancel)` in a worker thread and return its result (or raise its error).

    `cancel` is set when this call is cancelled (by the client, or by an HTTP client going away:
    `on_cancel`); the thread is then awaited, so the work has stopped and cleaned up before the
    cancellation goes on. `beside()` (e.g. a progress reporter) runs while the work runs and is
    cancelled when it ends.
    """
    cancel = threading.Event()
    result: list[T] = []
    failure: list[BaseException] = []

    async def watch() -> None:
        try:
            if beside is not None:
                await beside()
            await anyio.sleep_forever()
        finally:
            cancel.set()

    def run() -> None:
        try:
            with on_cancel(cancel.set):
                result.append(work(cancel))
        except BaseException as exc:  # raised below, outside the task group (not as an ExceptionGroup)
            failure.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        await anyio.to_thread.run_sync(run)
        tg.cancel_scope.cancel()
    # If our caller was cancelled, the work's own "cancelled" error is not the answer: let the
    # cancellation itself propagate now that the work has cleaned up.
    await anyio.lowlevel.checkpoint_if_cancelled()
    if failure:
        raise failure[0]
    return result[0]
