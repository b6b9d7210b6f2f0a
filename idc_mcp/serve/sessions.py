"""MCP sessions counted per caller: one token can never take the sessions the others need.

The SDK's session manager caps the sessions of the whole server (10,000 by default) and keeps each for
30 minutes after its last request. Repeating `initialize` from one token used to take all of them, and
every other token then got 503 for half an hour. `SessionQuota` sits in front of the SDK's transport:
a request that would open a session (a POST without an `mcp-session-id`) is refused with 429 when its
caller already holds `per_caller` sessions (open ones, and openings still being answered). The sessions
a caller holds are the ids the SDK answered its openings with, for as long as the SDK still has them
(a client's DELETE, the idle timeout or a crash ends one). The server's own cap is set to
`per_caller` x the number of tokens, so it is never reached before a caller's own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_SESSIONS_PER_CALLER = 16
IDLE_TIMEOUT_S = 30 * 60  # the SDK's default: a session with no request for this long is closed


def caller_of_scope(scope: Scope) -> str:
    """The token id the SDK's bearer middleware put on the request, or `anonymous` without tokens."""
    user = scope.get("user")
    if isinstance(user, AuthenticatedUser):
        return user.access_token.client_id
    return "anonymous"


class SessionQuota:
    """ASGI middleware: at most `per_caller` MCP sessions per caller; `on_refused(caller, reason)`."""

    def __init__(
        self,
        app: ASGIApp,
        manager: Callable[[], StreamableHTTPSessionManager],
        per_caller: int,
        on_refused: Callable[[str, str], None] = lambda caller, reason: None,
    ) -> None:
        self.app = app
        self.per_caller = per_caller
        self._manager = manager
        self._on_refused = on_refused
        self._sessions: dict[str, set[str]] = defaultdict(set)
        self._opening: dict[str, int] = defaultdict(int)

    def held(self, caller: str) -> int:
        """Sessions `caller` holds now: those the SDK still has, and openings not yet answered."""
        # The SDK keeps its live sessions in this registry (no public accessor); a session it has
        # dropped (DELETE, idle timeout, crash) no longer counts.
        live = self._manager()._server_instances  # noqa: SLF001
        mine = self._sessions[caller]
        mine.intersection_update(live)
        return len(mine) + self._opening[caller]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope) if scope["type"] == "http" else None
        if headers is None or scope["method"] != "POST" or MCP_SESSION_ID_HEADER in headers:
            await self.app(scope, receive, send)
            return
        caller = caller_of_scope(scope)
        if self.held(caller) >= self.per_caller:
            reason = (
                f"too many open sessions: {caller!r} may hold {self.per_caller} MCP sessions at once on this "
                "server and holds them all. Close sessions you no longer use (a client closes its own when "
                f"it exits); a session with no request for {IDLE_TIMEOUT_S // 60} minutes ends by itself"
            )
            self._on_refused(caller, reason)
            error = {"code": -32000, "message": reason}
            body: dict[str, Any] = {"jsonrpc": "2.0", "id": None, "error": error}
            await JSONResponse(body, status_code=429)(scope, receive, send)
            return
        self._opening[caller] += 1
        opening = True

        async def note_session(message: Message) -> None:
            nonlocal opening
            if message["type"] == "http.response.start" and opening:
                session = Headers(raw=message.get("headers", [])).get(MCP_SESSION_ID_HEADER)
                if session and message["status"] < 400:
                    self._sessions[caller].add(session)
                self._opening[caller] -= 1
                opening = False
            await send(message)

        try:
            await self.app(scope, receive, note_session)
        finally:
            if opening:
                self._opening[caller] -= 1
