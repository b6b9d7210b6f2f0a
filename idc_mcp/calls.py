"""The one way a tool call runs its work: in a worker thread, cancellable, with progress, our errors made
into the message the assistant reads.

A tool is a thin async declaration (see server.py) whose body is one `run_call`:

    async def my_tool(name: str, ctx: Context) -> MyResult:
        \"\"\"What it does. When to call it.\"\"\"
        return await run_call(ctx, lambda call: my_module.do_it(call.catalog, name, call.cancel, call.report))

`work(call)` runs in a worker thread (never on the event loop) and is handed a `Call`:

- `call.settings`, `call.catalog`: the server's settings and catalog, made once by `app.create_server`.
- `call.cancel`: a `threading.Event` set when the call is cancelled (the client's notifications/cancelled,
  the session ending, an HTTP client that went away). Catalog queries the work runs are interrupted then
  too, without the work doing anything; long loops and blocking waits should check or wait on the event.
- `call.report(done, total=None, message=None)`: progress, from any thread, as often as convenient: it
  only records the value. The runner sends the first report, then the latest at most every
  `PROGRESS_INTERVAL_S` (when it changed), and the last one when the work ends. A client that stops
  listening never stops the work: a failed send is logged and dropped.

When the call is cancelled it returns at once by default: the work is told to stop (`call.cancel`) and
left to wind down on its own (a DuckDB query interrupted, a BigQuery job cancelled). With
`wait_for_stop=True` the cancellation goes on only once the work has returned: for work that must clean
up before anyone may look (downloads remove their temporaries, index fetches release their locks).

Errors: a subclass of `errors.AssistantError` raised by the work becomes the `ToolError` whose message the
assistant reads (what was wrong, what to do next); any other exception stays masked by the SDK.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import anyio
import anyio.lowlevel
import anyio.to_thread
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel

from idc_mcp.cancellation import CallCancellation, current_call
from idc_mcp.catalog.database import Catalog
from idc_mcp.config import Settings
from idc_mcp.errors import AssistantError

log = logging.getLogger(__name__)
T = TypeVar("T")
PROGRESS_INTERVAL_S = 0.5
_PROGRESS_TICK_S = 0.05  # how often the runner looks for a new progress value
_LAST_REPORT_S = 1.0  # at most this long to send the last progress value when the work ends

Update = tuple[float, float | None, str | None]


@dataclass(frozen=True)
class AppState:
    """What every call of one server shares: its settings and the catalog opened with them (made once by
    `app.create_server`, handed to each session by the server's lifespan)."""

    settings: Settings
    catalog: Catalog
    # The preview workers (`preview.runner.PreviewWorkers`), made by `app.create_server`: a preview is
    # drawn in a killable child process under a deadline and a memory cap.
    previews: Any = None


def json_reply(model: BaseModel) -> CallToolResult:
    """A tool's reply from its result model: the structured content, and the same JSON, compact, as the
    text a client shows the model.

    The SDK's own conversion indents that text: 18-34% of a query reply's text was indentation (a
    100-row count by collection: 7,881 -> 5,232 bytes), tokens the assistant reads and bytes on the wire
    (issue 26). A tool returning this declares `-> Annotated[CallToolResult, Model]`, so its output
    schema stays the model's (the SDK checks the structured content against it)."""
    return CallToolResult(
        content=[TextContent(type="text", text=model.model_dump_json())],
        structured_content=model.model_dump(mode="json"),
    )


def app_state(ctx: Context) -> AppState:
    """The state of the server this request came to."""
    return cast(AppState, ctx.request_context.lifespan_context)


@dataclass
class Call:
    """What the work of one tool call is handed (see the module's docstring)."""

    settings: Settings
    catalog: Catalog
    cancel: threading.Event = field(default_factory=threading.Event)
    _first: Update | None = None
    _latest: Update | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def report(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Record progress; never blocks and never raises."""
        with self._lock:
            self._latest = (done, total, message)
            if self._first is None:
                self._first = self._latest

    def latest(self) -> Update | None:
        with self._lock:
            return self._latest

    def first(self) -> Update | None:
        with self._lock:
            return self._first


async def run_call(
    ctx: Context,
    work: Callable[[Call], T],
    *,
    wait_for_stop: bool = False,
    progress: Callable[[], Update | None] | None = None,
    reports_progress: bool = True,
) -> T:
    """Run `work(call)` in a worker thread and return its result (see the module's docstring).

    `progress`: where the runner reads progress instead of `call.report` (e.g. a counter the work's own
    threads update, as the download engine's); None from it means nothing to report yet.
    `reports_progress=False`: the work never reports progress (a query): the call runs without the task
    that would send it, 0.15 ms less per call (issue 26); a cancelled call still stops its work.
    """
    state = app_state(ctx)
    call = Call(state.settings, state.catalog)
    # The call middleware (serve/calls.py) opened one for this call on HTTP: its client going away cancels
    # it. Without the middleware (in-process clients) the call has its own.
    cancellation = current_call.get() or CallCancellation()
    read_progress = progress or call.latest
    outcome: list[Any] = []
    failure: list[BaseException] = []
    finished = False

    def run() -> None:
        token = current_call.set(cancellation)
        try:
            with cancellation.registered(call.cancel.set):
                outcome.append(work(call))
        except BaseException as exc:  # raised below, outside the task group (not as an ExceptionGroup)
            failure.append(exc)
        finally:
            current_call.reset(token)

    sent: list[Update | None] = [None]
    first_sent = False

    async def send(update: Update | None) -> None:
        nonlocal first_sent
        if not first_sent and (first := call.first()) is not None:
            first_sent = True  # the first report always goes out, however soon the next one replaces it
            if first != update:
                await send(first)
        if update is None or update == sent[0]:
            return
        sent[0] = update
        try:
            await ctx.report_progress(*update)
        except Exception:  # a client that stops listening must not stop the work
            log.debug("progress report failed", exc_info=True)

    async def pump() -> None:
        last_sent = float("-inf")
        try:
            while True:
                await anyio.sleep(_PROGRESS_TICK_S)
                if time.monotonic() - last_sent >= PROGRESS_INTERVAL_S and read_progress() != sent[0]:
                    last_sent = time.monotonic()
                    await send(read_progress())
        finally:
            if not finished:  # this call was cancelled: stop the work (and its catalog queries)
                cancellation.cancel()

    if not reports_progress and not wait_for_stop:
        try:
            await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
            finished = True
        finally:
            if not finished:  # this call was cancelled: stop the work (and its catalog queries)
                cancellation.cancel()
    else:
        async with anyio.create_task_group() as group:
            group.start_soon(pump)
            await anyio.to_thread.run_sync(run, abandon_on_cancel=not wait_for_stop)
            finished = True
            group.cancel_scope.cancel()
        # A call cancelled while its work wound down: the work's own "stopped" error is not the answer.
        await anyio.lowlevel.checkpoint_if_cancelled()
        with anyio.move_on_after(_LAST_REPORT_S, shield=True):
            await send(read_progress())
    if failure:
        if isinstance(failure[0], AssistantError):
            raise ToolError(str(failure[0])) from failure[0]
        raise failure[0]
    return cast(T, outcome[0])
