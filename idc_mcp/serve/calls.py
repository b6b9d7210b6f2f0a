"""One MCP middleware around every tool call: who calls, limits, a log line, an audit record.

It sits on the SDK's middleware chain (`MCPServer.middleware`), so it sees the same calls on stdio and
HTTP, before the arguments are validated. The caller is the token id the SDK's bearer middleware put on
the HTTP request, `anonymous` on an HTTP server without tokens, and `local` on stdio.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel
from starlette.requests import Request

from idc_mcp.cancellation import CallCancellation, current_call
from idc_mcp.serve.audit import AuditLog, argument_digest
from idc_mcp.serve.limits import CallLimiter

log = logging.getLogger("idc_mcp.calls")
DISCONNECT_POLL_S = 0.25  # how soon a call notices that its HTTP client went away


def caller_of(ctx: ServerRequestContext[Any, Any]) -> str:
    request = ctx.request
    if request is None:
        return "local"
    user = request.scope.get("user") if hasattr(request, "scope") else None
    if isinstance(user, AuthenticatedUser):
        return user.access_token.client_id
    return "anonymous"


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

    def _refusal(self, tool: str, caller: str) -> str | None:
        if tool in self.read_only_hidden:
            return (
                f"{tool} is not available: this server is read-only, so tools that write files are turned "
                "off. Plan here (query, estimate_size, check_licenses, get_citations), then download on "
                "your own machine with idc-mcp"
            )
        return self.limiter.admit(caller) if self.limiter else None

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
        tool = str(params.get("name", ""))
        caller = caller_of(ctx)
        started_at = datetime.now(UTC)
        started = time.monotonic()
        refusal = self._refusal(tool, caller)
        log.info("%s calls %s%s", caller, tool, f" (refused: {refusal})" if refusal else "")
        outcome, size = "error", 0
        try:
            if refusal is not None:
                outcome = "refused_read_only" if tool in self.read_only_hidden else "refused_limit"
                result: HandlerResult = CallToolResult(
                    content=[TextContent(type="text", text=refusal)], is_error=True
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
            log.info("%s called %s: %s in %.0f ms, %d bytes", caller, tool, outcome, duration_ms, size)
            if self.audit is not None:
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
