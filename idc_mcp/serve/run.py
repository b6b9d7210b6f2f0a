"""Serving: put the pieces around the MCP server, say on stderr what is served, stop cleanly.

stdio: one line on stderr at start; the first Ctrl-C (or SIGTERM) and the end of input both stop the
server at once, without a traceback. streamable-http: tokens, read-only, limits, audit log and
Host checks as the options say; uvicorn stops on the first Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer

from idc_mcp import __version__
from idc_mcp.config import Settings
from idc_mcp.serve.audit import AuditLog
from idc_mcp.serve.calls import CallGate
from idc_mcp.serve.http import Health, build_http_app, is_loopback
from idc_mcp.serve.limits import CallLimiter, Limits
from idc_mcp.serve.read_only import restrict_to_read_only
from idc_mcp.serve.sessions import DEFAULT_SESSIONS_PER_CALLER
from idc_mcp.serve.tokens import StaticTokenVerifier, TokenEntry


@dataclass(frozen=True)
class HttpOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    tokens: list[TokenEntry] = field(default_factory=list)
    allow_unauthenticated: bool = False
    allowed_hosts: list[str] = field(default_factory=list)
    limits: Limits = Limits(max_concurrent=4, calls_per_minute=60)
    sessions_per_token: int = DEFAULT_SESSIONS_PER_CALLER
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    log_level: str = "WARNING"


class ServeRefused(ValueError):
    """The options would expose the server in a way it refuses to; the message says what to pass."""


def data_release(settings: Settings) -> str:
    """'IDC data v23 (idc-index-data 23.0.1)': the IDC release is the package's major version."""
    return f"IDC data v{settings.data_version.split('.')[0]} (idc-index-data {settings.data_version})"


def say(message: str) -> None:
    """A line for the person at the terminal: stderr (stdout is the MCP channel), whatever the log level."""
    print(f"idc-mcp: {message}", file=sys.stderr, flush=True)


def _prepare(
    server: MCPServer[Any], read_only: bool, limiter: CallLimiter | None, audit: AuditLog | None
) -> tuple[list[str], CallGate]:
    """Remove the writing tools (read-only), then put the call middleware on the server."""
    removed = anyio.run(restrict_to_read_only, server) if read_only else []
    gate = CallGate(limiter, audit, read_only_hidden=set(removed))
    server.middleware.append(gate)
    return removed, gate


def serve_stdio(
    server: MCPServer[Any],
    settings: Settings,
    *,
    read_only: bool = False,
    audit: AuditLog | None = None,
    on_exit: Callable[[], None] = lambda: None,
) -> None:
    removed, _ = _prepare(server, read_only, None, audit)

    def stop(signum: int, _: FrameType | None) -> None:
        # The stdin reader is a thread blocked in read(): no graceful path reaches it. Files are only
        # ever written atomically, so leaving at once loses nothing.
        say(f"stopped ({signal.Signals(signum).name})")
        os._exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    extra = f"; read-only (hidden: {', '.join(removed)})" if removed else ""
    say(
        f"version {__version__} serving MCP over stdio; {data_release(settings)}; "
        f"cache {settings.version_cache_dir}{extra}. Started by an MCP client (Claude Desktop/Code) "
        "it needs nothing from you; stop with Ctrl-C or end of input (Ctrl-D)."
    )
    server.run("stdio")
    on_exit()
    say("stopped (end of input)")


def check_exposure(options: HttpOptions) -> None:
    if not options.tokens and not options.allow_unauthenticated and not is_loopback(options.host):
        raise ServeRefused(
            f"refusing to serve {options.host} without authentication: anyone who can reach the port "
            "could call every tool. Give tokens (--tokens-file FILE or IDC_MCP_TOKENS; make one with "
            "`idc-mcp new-token NAME`), or bind 127.0.0.1, or pass --allow-unauthenticated if the network "
            "itself is trusted"
        )
    if bool(options.ssl_certfile) != bool(options.ssl_keyfile):
        raise ServeRefused("--ssl-certfile and --ssl-keyfile go together")


def serve_http(
    server: MCPServer[Any],
    settings: Settings,
    options: HttpOptions,
    *,
    read_only: bool = False,
    audit: AuditLog | None = None,
    on_exit: Callable[[], None] = lambda: None,
) -> None:
    import uvicorn

    check_exposure(options)
    verifier = StaticTokenVerifier(options.tokens) if options.tokens else None
    removed, gate = _prepare(server, read_only, CallLimiter(options.limits), audit)
    app = build_http_app(
        server,
        bind_host=options.host,
        allowed_hosts=options.allowed_hosts,
        verifier=verifier,
        health=Health(__version__, settings.data_version, read_only, verifier is not None),
        sessions_per_caller=options.sessions_per_token,
        callers=len(options.tokens),
        on_session_refused=lambda caller, reason: gate.refused(
            caller, "initialize", "refused_sessions", reason
        ),
        on_shutdown=gate.close,
    )
    scheme = "https" if options.ssl_certfile else "http"
    host = f"[{options.host}]" if ":" in options.host else options.host
    auth = f"{len(options.tokens)} bearer token(s)" if verifier else "NO authentication"
    details = [
        auth,
        f"read-only (hidden: {', '.join(removed)})" if read_only else "all tools",
        f"limits {options.limits.max_concurrent} at once, {options.limits.calls_per_minute}/min, "
        f"{options.sessions_per_token} sessions per caller",
        f"audit log {audit.path}" if audit else "no audit log",
    ]
    say(
        f"version {__version__} serving MCP over streamable HTTP at {scheme}://{host}:{options.port}/mcp "
        f"(health: /health); {'; '.join(details)}; {data_release(settings)}; cache "
        f"{settings.version_cache_dir}. Stop with Ctrl-C."
    )
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_level=options.log_level.lower(),
        log_config=None,  # uvicorn's records go through the root handler, which escapes caller text
        timeout_graceful_shutdown=5,
        ssl_certfile=options.ssl_certfile,
        ssl_keyfile=options.ssl_keyfile,
    )
    uvicorn.Server(config).run()
    on_exit()
    say("stopped")


def default_audit_path(settings: Settings) -> Path:
    return settings.cache_dir / "audit" / "audit.jsonl"
