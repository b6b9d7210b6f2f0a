"""Every `idc-mcp ...` command line the README shows is one the CLI accepts (docs checked by tests)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from idc_mcp.cli import build_parser

README = Path(__file__).resolve().parent.parent / "README.md"
# `idc-mcp` as a command (not ~/.cache/idc-mcp/..., idc-mcp-downloads), up to a backtick, quote, comment
# or line end.
COMMAND = re.compile(r'idc-mcp(?![\w/-])([^`#"\n]*)')


def _documented_arguments() -> list[str]:
    return sorted({match.group(1).strip() for match in COMMAND.finditer(README.read_text())})


def test_readme_shows_the_stdio_and_http_command_lines() -> None:
    arguments = _documented_arguments()
    assert "" in arguments  # plain `idc-mcp`: stdio, what Claude launches
    assert any("--transport streamable-http" in args for args in arguments)


@pytest.mark.parametrize("arguments", _documented_arguments())
def test_documented_command_line_is_accepted_by_the_cli(arguments: str) -> None:
    # argparse exits (SystemExit) on an unknown flag, a missing value or an invalid choice.
    build_parser().parse_args(shlex.split(arguments))
