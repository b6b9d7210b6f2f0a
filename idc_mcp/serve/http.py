"""The streamable-HTTP app for a shared server: bearer tokens, Host/Origin checks, a health endpoint.

Built from the SDK's own parts: `MCPServer.streamable_http_app` (with its DNS-rebinding protection,
`TransportSecuritySettings`), and around it the SDK's `BearerAuthBackend` + `RequireAuthMiddleware`
fed by our `TokenVerifier`. (`MCPServer(auth=AuthSettings(...))` would wire the same parts, but its
settings require the URL of an OAuth authorization server, which a static-token server does not have.)
`/health` answers without a token and says only that the server is up.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.provider import TokenVerifier
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

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
) -> Starlette:
    mcp_app = server.streamable_http_app(transport_security=transport_security(bind_host, allowed_hosts))

    async def health_endpoint(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "server": "idc-mcp", **health.__dict__})

    if verifier is None:
        protected: Any = mcp_app
        middleware: list[Middleware] = []
    else:
        protected = RequireAuthMiddleware(mcp_app, required_scopes=[])
        middleware = [
            Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(verifier)),
            Middleware(AuthContextMiddleware),
        ]
    return Starlette(
        routes=[Route("/health", health_endpoint, methods=["GET"]), Mount("/", app=protected)],
        middleware=middleware,
        lifespan=mcp_app.router.lifespan_context,  # runs the SDK's session manager
    )
