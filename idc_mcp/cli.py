"""Command line: `idc-mcp` serves MCP (stdio by default); subcommands do work for people at a terminal.

The settings are made once here, from the environment and the flags (which win), and handed down:
to the server's start-up state, or to the subcommand. Nothing is written back into the environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from idc_mcp.catalog.database import Catalog
    from idc_mcp.config import Settings

log = logging.getLogger("idc_mcp")


def _open_catalog_in_background(catalog: Catalog) -> threading.Thread:
    """Open (and on a first start, build) the catalog while the client runs the MCP handshake.

    `initialize` and `tools/list` never wait for it; the first query waits only for what is left.
    A failure here is logged and retried by the first query, which reports it.
    """

    def open_catalog() -> None:
        try:
            catalog.installed_tables()
        except Exception:  # noqa: BLE001 - the first query retries and reports the error
            log.warning("opening the catalog in the background failed", exc_info=True)

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
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _serve(args: argparse.Namespace) -> int:
    from idc_mcp.server import mcp, start

    state = start(args.settings)
    opener = None if args.lazy_catalog else _open_catalog_in_background(state.catalog)
    try:
        if args.transport == "stdio":
            mcp.run("stdio")
        else:
            mcp.run("streamable-http", host=args.host, port=args.port)
    finally:
        if opener is not None:
            _let_background_open_finish(opener)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="idc-mcp", description="MCP server for NCI Imaging Data Commons")
    parser.add_argument("--transport", choices=["stdio", "streamable-http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP host (streamable-http)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (streamable-http)")
    parser.add_argument("--download-root", help="overrides IDC_MCP_DOWNLOAD_ROOT")
    parser.add_argument("--s3-endpoint-url", help="overrides IDC_MCP_S3_ENDPOINT_URL")
    parser.add_argument("--cache-dir", help="overrides IDC_MCP_CACHE_DIR")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument(
        "--lazy-catalog",
        action="store_true",
        help="open the catalog on the first query instead of in the background at start",
    )
    parser.set_defaults(func=_serve)
    commands = parser.add_subparsers(dest="command")
    fetch = commands.add_parser(
        "fetch-index",
        help="install a specialized index (sm_index, seg_index, clinical_index, ...) into the cache",
        description="Download (or take from IDC_MCP_INDEX_DIR), verify and cache an IDC index.",
    )
    fetch.add_argument("name", help="index name, e.g. sm_index (see list_tables)")
    fetch.set_defaults(func=_fetch_index)
    from idc_mcp.download.cli import add_parser as add_download_parser

    add_download_parser(commands)
    from idc_mcp.preview.cli import add_parser as add_preview_parser

    add_preview_parser(commands)
    return parser


def _fetch_index(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from idc_mcp.catalog.database import Catalog
    from idc_mcp.indices import fetch

    bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, desc=args.name, leave=False)

    def progress(done: float, total: float | None, message: str) -> None:
        if total and total > 1 and bar.total != total:
            bar.reset(total=int(total))
        if total and total > 1:
            bar.n = int(done)
            bar.refresh()
        bar.set_postfix_str(message[:60], refresh=True)

    try:
        result = fetch.fetch_index(Catalog(args.settings), args.name, progress)
    except fetch.IndexFetchError as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 1
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
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    args.settings = settings_from(args)
    return int(args.func(args) or 0)


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings of this run: the environment's, with the flags given on the command line instead."""
    from idc_mcp.config import load_settings

    flags: dict[str, object] = {}
    for name in ("download_root", "cache_dir"):
        if value := getattr(args, name, None):
            flags[name] = Path(value).expanduser()
    if value := getattr(args, "s3_endpoint_url", None):
        flags["s3_endpoint_url"] = value
    return dataclasses.replace(load_settings(), **flags)
