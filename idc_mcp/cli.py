"""Command line: `idc-mcp` serves MCP (stdio by default); subcommands do work for people at a terminal.

The settings are made once here, from the environment and the flags (which win), and handed down:
to the server's start-up state, or to the subcommand. Nothing is written back into the environment.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idc_mcp.cli_terms import argument_flags, in_cli_terms

if TYPE_CHECKING:
    from idc_mcp.catalog.database import Catalog
    from idc_mcp.config import Settings

log = logging.getLogger("idc_mcp")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _open_catalog_in_background(catalog: Catalog) -> threading.Thread:
    """Open (and on a first start, build) the catalog while the client runs the MCP handshake.

    `initialize` and `tools/list` never wait for it; the first query waits only for what is left.
    A failure here is logged and retried by the first query, which reports it.
    """

    def open_catalog() -> None:
        started = time.monotonic()
        log.info("opening the catalog (the first start builds it: up to a minute)")
        try:
            tables = catalog.installed_tables()
        except Exception:  # noqa: BLE001 - the first query retries and reports the error
            log.warning("opening the catalog in the background failed", exc_info=True)
            return
        if catalog.building:  # "ready" is said by the query worker once the build is done
            log.info(
                "catalog building (first start of this IDC data version, up to a minute); meanwhile "
                "queries are answered from the bundled metadata (%d tables), 2-3x slower",
                len(tables),
            )
        else:
            log.info("catalog ready in %.1f s: %d tables installed", time.monotonic() - started, len(tables))

    thread = threading.Thread(target=open_catalog, name="catalog-open", daemon=True)
    thread.start()
    return thread


def _let_background_open_finish(thread: threading.Thread, timeout_s: float = 1.0) -> None:
    """DuckDB aborts the process if Python shuts down while a thread is inside it: wait for the open.

    Opening a built catalog takes well under a second. A first-ever build runs in a child process that
    finishes on its own (the file appears atomically): if the open is still running, leave without
    interpreter shutdown, which is what would abort.
    """
    thread.join(timeout_s)
    if thread.is_alive():
        print("idc-mcp: stopped (the catalog build finishes on its own)", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _build_server(args: argparse.Namespace) -> tuple[Any, Any, Any, threading.Thread | None] | int:
    """(server, HTTP options or None for stdio, audit log, the catalog opener), or an exit code."""
    from idc_mcp.catalog.database import Catalog

    settings = args.settings
    # The query worker starts first: it opens the catalog on the other core while this process imports
    # the MCP server and its transports (most of a cold start).
    catalog = Catalog(settings)
    opener = None if args.lazy_catalog else _open_catalog_in_background(catalog)
    from idc_mcp.serve import run
    from idc_mcp.serve.audit import AuditLog
    from idc_mcp.serve.limits import Limits
    from idc_mcp.serve.tokens import TokenConfigError, load_tokens

    try:
        if args.transport == "stdio":
            options = None
        else:
            tokens = settings.tokens.get_secret_value() if settings.tokens is not None else None
            options = run.HttpOptions(
                host=args.host,
                port=args.port,
                tokens=load_tokens(settings.tokens_file, tokens),
                allow_unauthenticated=args.allow_unauthenticated,
                allowed_hosts=args.allowed_host or [],
                limits=Limits(args.max_concurrent, args.calls_per_minute),
                sessions_per_token=args.max_sessions,
                ssl_certfile=args.ssl_certfile,
                ssl_keyfile=args.ssl_keyfile,
                log_level=args.log_level,
            )
            run.check_exposure(options)
    except (TokenConfigError, run.ServeRefused) as exc:
        print(f"idc-mcp: error: {exc}", file=sys.stderr)
        return 2
    audit_path = args.audit_log
    if audit_path is None and options is not None:
        audit_path = str(run.default_audit_path(settings))
    audit = None
    if audit_path:
        audit = AuditLog(Path(audit_path), args.audit_max_mb * 1024 * 1024, args.audit_backups)

    from idc_mcp.app import create_server

    return create_server(settings, catalog), options, audit, opener


@contextmanager
def _starting_without_gc() -> Iterator[None]:
    """No garbage collection while the server is imported and built: the SDK, pydantic's models of every
    tool and sqlglot allocate hundreds of thousands of objects, and the collections they triggered were
    15-25% of a cold start. What was built is then frozen (later collections never scan it again, only
    what calls allocate), and collection resumes before the first message is read."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _serve(args: argparse.Namespace) -> int:
    with _starting_without_gc():
        built = _build_server(args)
    if isinstance(built, int):
        return built
    server, options, audit, opener = built
    settings = args.settings
    from idc_mcp.serve import run
    from idc_mcp.serve.http import HostConfigError

    def on_exit() -> None:
        if opener is not None:
            _let_background_open_finish(opener)

    try:
        if options is None:
            run.serve_stdio(server, settings, read_only=settings.read_only, audit=audit, on_exit=on_exit)
        else:
            run.serve_http(
                server, settings, options, read_only=settings.read_only, audit=audit, on_exit=on_exit
            )
    except HostConfigError as exc:
        print(f"idc-mcp: error: {exc}", file=sys.stderr)
        on_exit()
        return 2
    return 0


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{value!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
    return level


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: give a whole number of at least 1")
    return number


def _port(value: str) -> int:
    number = _positive(value)
    if number > 65535:
        raise argparse.ArgumentTypeError(f"{value!r}: a port is a number from 1 to 65535")
    return number


def build_parser() -> argparse.ArgumentParser:
    from idc_mcp import __version__

    parser = argparse.ArgumentParser(
        prog="idc-mcp",
        description="MCP server for NCI Imaging Data Commons. With no command it serves MCP over stdio, "
        "which is how Claude Desktop and Claude Code start it.",
    )
    parser.add_argument("--version", action="version", version=f"idc-mcp {__version__}")
    parser.add_argument(
        "--transport",
        choices=["stdio", "streamable-http"],
        default="stdio",
        help="stdio (default: a client starts the server) or streamable-http (a server for a team)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="HTTP address to bind (streamable-http)")
    parser.add_argument("--port", type=_port, default=8000, help="HTTP port (streamable-http)")
    team = parser.add_argument_group("team server (streamable-http; see docs/team-server.md)")
    _add_setting_flags({"": parser, "team": team})
    parser.add_argument("--log-level", type=_log_level, default="WARNING", help=", ".join(LOG_LEVELS))
    parser.add_argument(
        "--lazy-catalog",
        action="store_true",
        help="open the catalog on the first query instead of in the background at start",
    )
    parser.add_argument(
        "--read-only", action="store_true", help="do not offer the tools that write files (download, ...)"
    )
    team.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="serve a non-loopback address without tokens (only on a network you trust)",
    )
    team.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="a host name clients use in the URL (Host/Origin check); repeat for several",
    )
    team.add_argument("--max-concurrent", type=_positive, default=4, help="tool calls at once, per token")
    team.add_argument("--calls-per-minute", type=_positive, default=60, help="tool calls a minute, per token")
    team.add_argument("--max-sessions", type=_positive, default=16, help="open MCP sessions, per token")
    team.add_argument("--audit-log", help="JSON-lines audit file (HTTP default: <cache>/audit/audit.jsonl)")
    team.add_argument("--audit-max-mb", type=_positive, default=10, help="rotate the audit log at this size")
    team.add_argument("--audit-backups", type=_positive, default=5, help="rotated audit files kept")
    team.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (PEM)")
    team.add_argument("--ssl-keyfile", help="the certificate's private key (PEM)")
    parser.set_defaults(func=_serve)
    commands = parser.add_subparsers(dest="command")
    fetch = commands.add_parser(
        "fetch-index",
        help="install a specialized index (sm_index, seg_index, clinical_index, ...) into the cache",
        description="Download (or take from IDC_MCP_INDEX_DIR), verify and cache an IDC index.",
    )
    fetch.add_argument(
        "name", help="index name: sm_index, seg_index, clinical_index, ... (an unknown name lists them all)"
    )
    fetch.set_defaults(func=_fetch_index)
    token = commands.add_parser(
        "new-token",
        help="make a bearer token for the team server",
        description="Print a new random token (give it to the person) and the line for the tokens file "
        "(it holds only the token's SHA-256 digest; an expiry date may be appended).",
    )
    token.add_argument("token_id", help="who the token is for, e.g. alice (shown in the audit log)")
    token.set_defaults(func=_new_token)
    from idc_mcp.download.cli import add_parser as add_download_parser

    add_download_parser(commands)
    from idc_mcp.preview.cli import add_parser as add_preview_parser

    add_preview_parser(commands)
    from idc_mcp.tools.query_cli import add_parser as add_query_parser

    add_query_parser(commands)
    from idc_mcp.prepare.cli import add_parser as add_prepare_parser

    add_prepare_parser(commands)

    from idc_mcp.tools.cohorts_cli import add_parser as add_cohort_parser

    add_cohort_parser(commands)
    return parser


def _new_token(args: argparse.Namespace) -> int:
    from idc_mcp.serve.tokens import TokenConfigError, new_token

    try:
        token, line = new_token(args.token_id)
    except TokenConfigError as exc:
        print(f"idc-mcp: error: {exc}", file=sys.stderr)
        return 2
    print(f"token (give it to {args.token_id}; it is not stored anywhere): {token}")
    print(f"line for the tokens file: {line}")
    return 0


def _fetch_index(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from idc_mcp.catalog.database import Catalog
    from idc_mcp.indices import fetch

    bars: list[tqdm] = []  # made at the first progress report: a refused name shows no empty bar

    def progress(done: float, total: float | None, message: str) -> None:
        if not bars:
            bars.append(
                tqdm(
                    unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, desc=args.name, leave=False
                )
            )
        bar = bars[0]
        if total and total > 1 and bar.total != total:
            bar.reset(total=int(total))
        if total and total > 1:
            bar.n = int(done)
            bar.refresh()
        bar.set_postfix_str(message[:60], refresh=True)

    try:
        result = fetch.fetch_index(Catalog(args.settings), args.name, progress)
    except fetch.IndexFetchError as exc:
        for bar in bars:
            bar.close()
        print(f"error: {args.terms(str(exc))}", file=sys.stderr)
        return 1
    for bar in bars:
        bar.close()
    size = fetch.human_size(result.size_bytes)
    print(f"{result.name}: {result.status}, {result.row_count} rows" + (f", {size}" if size else ""))
    print(f"  source: {result.source}")
    print(f"  verified: {result.checksum}")
    if len(result.tables) > 1:
        print(f"  tables: {', '.join(result.tables)}")
    for note in result.notes:
        print(f"  note: {note}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Logs go to stderr only: stdout is the MCP channel.
    # Caller text (tool names, headers) reaches log lines: the formatter escapes it (serve/log_text.py).
    from idc_mcp.serve.log_text import EscapingFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=args.log_level, handlers=[handler])
    if args.log_level == "DEBUG":
        # The SDK logs one line per registered resource/tool/prompt at start: noise, not news.
        for manager in ("resources", "tools", "prompts"):
            logging.getLogger(f"mcp.server.mcpserver.{manager}").setLevel(logging.INFO)
    from idc_mcp.config import SettingError

    try:
        args.settings = settings_from(args)
    except SettingError as exc:
        print(f"idc-mcp: error: {exc}", file=sys.stderr)
        return 2
    flags = argument_flags(parser)
    args.terms = lambda message: in_cli_terms(message, flags)  # errors in flags and commands, not tools
    return int(args.func(args) or 0)


def _add_setting_flags(groups: dict[str, argparse._ActionsContainer]) -> None:
    """One flag for each setting that declares one (config.Settings), with its description as help."""
    from idc_mcp.config import declared, flag_of

    for name, env, description, _default, group in declared():
        if group is not None:
            groups[group].add_argument(
                flag_of(name), dest=name, metavar=name.upper(), help=f"{description} (overrides {env})"
            )


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings of this run: the environment's, with the flags given on the command line instead.
    Raises SettingError naming each value that cannot be used."""
    from idc_mcp.config import declared, load_settings

    flags = {name: value for name, *_ in declared() if (value := getattr(args, name, None)) not in (None, "")}
    if getattr(args, "read_only", False):
        flags["read_only"] = True  # the --read-only switch (a flag of its own, not a valued one)
    return load_settings(**flags)
