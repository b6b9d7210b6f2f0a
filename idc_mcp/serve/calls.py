"""One MCP middleware around every tool call: who calls, limits, a log line, an audit record.

It sits on the SDK's middleware chain (`MCPServer.middleware`), so it sees the same calls on stdio and
HTTP, before the arguments are validated. The caller is the token id the SDK's bearer middleware put on
the HTTP request, `anonymous` on an HTTP server without tokens, and `local` on stdio.

The tool name is the caller's text: log lines and audit records show it escaped and cut
(`log_text.printable`), and refusals past the first few a minute are only counted (`refusals`).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel
from starlette.requests import Request

from idc_mcp.cancellation import CallCancellation, current_call
from idc_mcp.serve.audit import AuditLog, argument_digest
from idc_mcp.serve.limits import CallLimiter
from idc_mcp.serve.log_text import printable
from idc_mcp.serve.refusals import RefusalLedger
from idc_mcp.serve.sessions import caller_of_scope

log = logging.getLogger("idc_mcp.calls")
DISCONNECT_POLL_S = 0.25  # how soon a call notices that its HTTP client went away


def caller_of(ctx: ServerRequestContext[Any, Any]) -> str:
    request = ctx.request
    if request is None:
        return "local"
    return caller_of_scope(request.scope) if hasattr(request, "scope") else "anonymous"


def _reply_size(result: HandlerResult) -> int:
    if isinstance(result, BaseModel):
        return len(result.model_dump_json(by_alias=True, exclude_none=True))
    if isinstance(result, dict):
        return len(json.dumps(result, separators=(",", ":"), default=str))
    return 0


def _outcome(result: HandlerResult) -> str:
    is_error = isinstance(result, CallToolResult) and result.is_error
    is_error = is_error or (isinstance(result, dict) and result.get("isError") is True)
    return "tool_error" if is_error else "ok"


class CallGate:
    """`ServerMiddleware` for `tools/call`: limits (optional), then the call, then log + audit."""

    def __init__(
        self,
        limiter: CallLimiter | None = None,
        audit: AuditLog | None = None,
        read_only_hidden: set[str] | None = None,
    ):
        self.limiter = limiter
        self.audit = audit
        self.read_only_hidden = read_only_hidden or set()
        self.refusals = RefusalLedger()

    def _refusal(self, tool: str, caller: str) -> tuple[str, str] | None:
        """(outcome, message) when the call is refused. Every call counts against the caller's limits,
        a call of a hidden tool too."""
        limited = self.limiter.admit(caller) if self.limiter else None
        if limited is not None:
            return "refused_limit", limited
        if tool in self.read_only_hidden:
            if self.limiter is not None:
                self.limiter.release(caller)
            return "refused_read_only", (
                f"{tool} is not available: this server is read-only, so tools that write files are turned "
                "off. Plan here (query, estimate_size, check_licenses, get_citations), then download on "
                "your own machine with idc-mcp"
            )
        return None

    def refused(self, caller: str, what: str, outcome: str, reason: str) -> None:
        """A refusal made outside a tool call (a session the caller may not open): logged and audited
        like a refused call, within the caller's refusal records."""
        self._write_summaries()
        if not self.refusals.record_one_by_one(caller):
            return
        log.info("%s: %s refused: %s", caller, what, reason)
        if self.audit is not None:
            now = datetime.now(UTC).isoformat(timespec="microseconds")
            self.audit.write({"time": now, "token_id": caller, "tool": what, "outcome": outcome})

    def _write_summaries(self, everything: bool = False) -> None:
        for summary in self.refusals.due(everything=everything):
            log.warning(
                "%s: %d more refusals in the minute from %s were counted, not logged one by one",
                summary["token_id"],
                summary["refused"],
                summary["time"],
            )
            if self.audit is not None:
                self.audit.write(summary)

    def close(self) -> None:
        """At shutdown: write the refusal counts still held."""
        self._write_summaries(everything=True)

    async def _run(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> tuple[HandlerResult, bool]:
        """The call, stopped if its HTTP client disconnects (the SDK lets an orphaned call run on).

        The watcher cancels the call's task and, through `idc_mcp.cancellation`, the work a synchronous
        tool is doing in its thread (a DuckDB query is interrupted), so a dropped caller frees its slot.
        """
        cancellation = CallCancellation()
        token = current_call.set(cancellation)
        request = ctx.request
        try:
            if not isinstance(request, Request):  # stdio: the session ends with the client
                return await call_next(ctx), False
            result: HandlerResult = CallToolResult(
                content=[TextContent(type="text", text="the client disconnected; the call was stopped")],
                is_error=True,
            )
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    while not await request.is_disconnected():
                        await anyio.sleep(DISCONNECT_POLL_S)
                    cancellation.cancel()
                    group.cancel_scope.cancel()

                group.start_soon(watch)
                result = await call_next(ctx)
                group.cancel_scope.cancel()
            return result, cancellation.cancelled
        finally:
            current_call.reset(token)

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        params = ctx.params or {}
        tool = printable(params.get("name", ""))  # the caller's text: escaped and cut wherever it is shown
        caller = caller_of(ctx)
        started_at = datetime.now(UTC)
        started = time.monotonic()
        self._write_summaries()
        refusal = self._refusal(str(params.get("name", "")), caller)
        one_by_one = refusal is None or self.refusals.record_one_by_one(caller)
        if one_by_one:
            log.info("%s calls %s%s", caller, tool, f" (refused: {refusal[1]})" if refusal else "")
        outcome, size = "error", 0
        try:
            if refusal is not None:
                outcome = refusal[0]
                result: HandlerResult = CallToolResult(
                    content=[TextContent(type="text", text=refusal[1])], is_error=True
                )
            else:
                result, disconnected = await self._run(ctx, call_next)
                outcome = "cancelled_client_gone" if disconnected else _outcome(result)
            size = _reply_size(result)
            return result
        except anyio.get_cancelled_exc_class():
            outcome = "cancelled"
            raise
        finally:
            if refusal is None and self.limiter is not None:
                self.limiter.release(caller)
            duration_ms = round((time.monotonic() - started) * 1000, 3)
            if one_by_one:
                log.info("%s called %s: %s in %.0f ms, %d bytes", caller, tool, outcome, duration_ms, size)
            if self.audit is not None and one_by_one:
                self.audit.write(
                    {
                        "time": started_at.isoformat(timespec="microseconds"),
                        "token_id": caller,
                        "tool": tool,
                        "arguments_sha256": argument_digest(params.get("arguments") or {}),
                        "outcome": outcome,
                        "duration_ms": duration_ms,
                        "bytes": size,
                    }
                )
