"""The streamable-HTTP app for a shared server: bearer tokens, Host/Origin checks, a health endpoint.

Built from the SDK's own parts: `MCPServer.streamable_http_app` (with its DNS-rebinding protection,
`TransportSecuritySettings`), and around it the SDK's `BearerAuthBackend` + `RequireAuthMiddleware`
fed by our `TokenVerifier`. (`MCPServer(auth=AuthSettings(...))` would wire the same parts, but its
settings require the URL of an OAuth authorization server, which a static-token server does not have.)
`/health` answers without a token and says only that the server is up.

Host and Origin are also checked here, before the SDK's own check, by parsing them: a Host is a name
or an IP (optionally with a numeric port) and nothing else, an Origin is `http(s)://` such a host. The
SDK's `name:*` patterns match by prefix, so `idc.lab.example.org:evil@x` passed them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.provider import TokenVerifier
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from idc_mcp.serve.sessions import SessionQuota

LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
WILDCARD_BINDS = {"0.0.0.0", "::", ""}


class HostConfigError(ValueError):
    """The bind address and allowed host names do not fit together; the message says what to pass."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _with_port_patterns(name: str) -> list[str]:
    """'lab.org' -> ['lab.org', 'lab.org:*'] (behind a proxy on 443 the Host header has no port)."""
    if name.startswith("[") and name.endswith("]") or ":" not in name:
        return [name, f"{name}:*"]
    return [name]  # already host:port


def transport_security(bind_host: str, allowed_hosts: list[str]) -> TransportSecuritySettings:
    """Host and Origin headers a request may carry: loopback, the bind address, and `allowed_hosts`."""
    names = list(allowed_hosts)
    if not names and bind_host in WILDCARD_BINDS:
        raise HostConfigError(
            f"binding {bind_host or 'every interface'} needs the host name clients will use, to check the "
            "Host header (DNS-rebinding protection): add --allowed-host NAME (e.g. idc.lab.example.org)"
        )
    if bind_host not in WILDCARD_BINDS and not is_loopback(bind_host):
        names.append(f"[{bind_host}]" if ":" in bind_host else bind_host)
    hosts: list[str] = []
    for name in [*LOOPBACK_HOSTS, *names]:
        hosts += [h for h in _with_port_patterns(name) if h not in hosts]
    origins = [f"{scheme}://{host}" for host in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


# A Host header: a DNS name or an IPv4 address, or an IPv6 address in brackets; then at most a port.
_HOST = re.compile(
    r"(?P<name>[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\])(?::(?P<port>\d{1,5}))?"
)


def allowed_names(bind_host: str, allowed_hosts: list[str]) -> set[tuple[str, int | None]]:
    """(name, port or None for any) pairs a Host may name: loopback, the bind address, `allowed_hosts`."""
    names = [*LOOPBACK_HOSTS, *allowed_hosts]
    if bind_host not in WILDCARD_BINDS and not is_loopback(bind_host):
        names.append(f"[{bind_host}]" if ":" in bind_host else bind_host)
    pairs: set[tuple[str, int | None]] = set()
    for name in names:
        match = _HOST.fullmatch(name)
        if match is None:
            raise HostConfigError(f"--allowed-host {name!r} is not a host name (e.g. idc.lab.example.org)")
        port = match.group("port")
        pairs.add((match.group("name").lower(), int(port) if port else None))
    return pairs


def host_allowed(value: str, allowed: set[tuple[str, int | None]]) -> bool:
    """True when a Host value is exactly an allowed name, with no port or a valid one it allows."""
    match = _HOST.fullmatch(value)
    if match is None:
        return False
    name, port_text = match.group("name").lower(), match.group("port")
    port = int(port_text) if port_text else None
    if port is not None and not 0 < port < 65536:
        return False
    return (name, None) in allowed or (port is not None and (name, port) in allowed)


def origin_allowed(value: str, allowed: set[tuple[str, int | None]]) -> bool:
    """True when an Origin is http(s):// an allowed host (nothing else: no user, path or query)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or parts.path or parts.query or parts.fragment:
        return False
    return "@" not in parts.netloc and host_allowed(parts.netloc, allowed)


class HostCheck:
    """ASGI middleware: 421 for a Host, 403 for an Origin that is not exactly an allowed host."""

    def __init__(self, app: ASGIApp, allowed: set[tuple[str, int | None]]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            if not host_allowed(headers.get("host", ""), self.allowed):
                await PlainTextResponse("Invalid Host header", status_code=421)(scope, receive, send)
                return
            origin = headers.get("origin")
            if origin is not None and not origin_allowed(origin, self.allowed):
                await PlainTextResponse("Invalid Origin header", status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class Health:
    version: str
    data_version: str
    read_only: bool
    authenticated: bool


def build_http_app(
    server: MCPServer[Any],
    *,
    bind_host: str,
    allowed_hosts: list[str],
    verifier: TokenVerifier | None,
    health: Health,
    sessions_per_caller: int,
    callers: int,
    on_session_refused: Callable[[str, str], None] = lambda caller, reason: None,
    on_shutdown: Callable[[], None] = lambda: None,
) -> Starlette:
    """The app: /health, and /mcp behind the Host check, the token check and the per-caller sessions."""
    mcp_app = server.streamable_http_app(
        transport_security=transport_security(bind_host, allowed_hosts),
        # Never the binding limit: each caller reaches its own first.
        max_sessions=sessions_per_caller * max(1, callers),
    )
    quota = SessionQuota(mcp_app, lambda: server.session_manager, sessions_per_caller, on_session_refused)

    async def health_endpoint(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "server": "idc-mcp", **health.__dict__})

    if verifier is None:
        protected: Any = quota
        middleware: list[Middleware] = []
    else:
        protected = RequireAuthMiddleware(quota, required_scopes=[])
        middleware = [
            Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(verifier)),
            Middleware(AuthContextMiddleware),
        ]
    return Starlette(
        routes=[
            Route("/health", health_endpoint, methods=["GET"]),
            Mount("/", app=HostCheck(protected, allowed_names(bind_host, allowed_hosts))),
        ],
        middleware=middleware,
        lifespan=_lifespan_then(mcp_app.router.lifespan_context, on_shutdown),
    )


def _lifespan_then(lifespan: Any, on_shutdown: Callable[[], None]) -> Any:
    """The SDK's lifespan (it runs the session manager), then `on_shutdown`: uvicorn re-raises SIGTERM
    once it has stopped, so code after `Server.run()` never runs on a signal."""

    @asynccontextmanager
    async def run(app: Starlette) -> AsyncIterator[None]:
        try:
            async with lifespan(app):
                yield
        finally:
            on_shutdown()

    return run
