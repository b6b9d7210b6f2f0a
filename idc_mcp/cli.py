"""Command line: `idc-mcp` serves MCP (stdio by default); subcommands do work for people at a terminal."""

from __future__ import annotations

import argparse
import logging
import os
import sys


def _serve(args: argparse.Namespace) -> int:
    from idc_mcp.server import mcp

    if args.transport == "stdio":
        mcp.run("stdio")
    else:
        mcp.run("streamable-http", host=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="idc-mcp", description="MCP server for NCI Imaging Data Commons")
    parser.add_argument("--transport", choices=["stdio", "streamable-http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP host (streamable-http)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (streamable-http)")
    parser.add_argument("--download-root", help="sets IDC_MCP_DOWNLOAD_ROOT")
    parser.add_argument("--s3-endpoint-url", help="sets IDC_MCP_S3_ENDPOINT_URL")
    parser.add_argument("--cache-dir", help="sets IDC_MCP_CACHE_DIR")
    parser.add_argument("--log-level", default="WARNING")
    parser.set_defaults(func=_serve)
    subparsers = parser.add_subparsers(dest="command")
    from idc_mcp.download.cli import add_parser as add_download_parser

    add_download_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Logs go to stderr only: stdout is the MCP channel.
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    for flag, env in (
        ("download_root", "IDC_MCP_DOWNLOAD_ROOT"),
        ("s3_endpoint_url", "IDC_MCP_S3_ENDPOINT_URL"),
        ("cache_dir", "IDC_MCP_CACHE_DIR"),
    ):
        value = getattr(args, flag, None)
        if value:
            os.environ[env] = value
    return int(args.func(args) or 0)
