"""Every `idc-mcp ...` command line the README shows is one the CLI accepts (docs checked by tests)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from idc_mcp.cli import build_parser

README = Path(__file__).resolve().parent.parent / "README.md"
SHELL_BLOCK = re.compile(r"```(?:bash|sh|shell|console)\n(.*?)```", re.S)
INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
# `idc-mcp` as a command word (not ~/.cache/idc-mcp/..., idc-mcp-downloads): what follows is its arguments.
COMMAND = re.compile(r"(?:^|[\s/])idc-mcp(?![\w/-])(.*)$")


def _documented_arguments() -> list[str]:
    text = README.read_text()
    lines = [line for block in SHELL_BLOCK.findall(text) for line in block.splitlines()]
    lines += INLINE_CODE.findall(SHELL_BLOCK.sub("", text))
    found = set()
    for line in lines:
        match = COMMAND.search(line)
        if match:
            found.add(shlex.join(shlex.split(match.group(1), comments=True)))
    return sorted(found)


def test_readme_shows_the_stdio_and_http_command_lines() -> None:
    arguments = _documented_arguments()
    assert "" in arguments  # plain `idc-mcp`: stdio, what Claude launches
    assert any("--transport streamable-http" in args for args in arguments)


@pytest.mark.parametrize("arguments", _documented_arguments())
def test_documented_command_line_is_accepted_by_the_cli(arguments: str) -> None:
    # argparse exits (SystemExit) on an unknown flag, a missing value or an invalid choice.
    build_parser().parse_args(shlex.split(arguments))
