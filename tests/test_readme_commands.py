"""Every `idc-mcp ...` command line in the README and docs/ is one the CLI accepts (docs checked by tests)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from idc_mcp.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "docs").glob("*.md"))]
SHELL_BLOCK = re.compile(r"```(?:bash|sh|shell|console)\n(.*?)```", re.S)
INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
SHELL_OPERATOR = re.compile(r"\s(?:&&|\|\||;|\|)\s")


def shell_lines(path: Path) -> list[str]:
    """Each command of the shell blocks and inline code of a markdown file (`a && b` gives two)."""
    text = path.read_text()
    lines = [line for block in SHELL_BLOCK.findall(text) for line in block.splitlines()]
    lines += INLINE_CODE.findall(SHELL_BLOCK.sub("", text))
    return [command for line in lines for command in SHELL_OPERATOR.split(line)]


def command_arguments(line: str) -> list[str] | None:
    """The arguments after `idc-mcp` run as a command in a shell line (a word of its own, or a path
    ending in bin/idc-mcp), or None. Not a folder given to `--from` (`uvx --from ./idc-mcp idc-mcp`),
    `~/.cache/idc-mcp`, `idc-mcp@idc-mcp` (a plugin name) or `idc-mcp: ...` (a message it prints)."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return None
    for i, word in enumerate(words):
        if (word == "idc-mcp" or word.endswith("/bin/idc-mcp")) and (i == 0 or words[i - 1] != "--from"):
            return words[i + 1 :]
    return None


def _documented_arguments(paths: list[Path] = DOCS) -> list[str]:
    found = set()
    for line in [line for path in paths for line in shell_lines(path)]:
        arguments = command_arguments(line)
        if arguments is not None:
            found.add(shlex.join(arguments))
    return sorted(found)


def test_readme_shows_the_stdio_and_http_command_lines() -> None:
    arguments = _documented_arguments([README])
    assert "" in arguments  # plain `idc-mcp`: stdio, what Claude launches
    assert any("--transport streamable-http" in args for args in arguments)


@pytest.mark.parametrize("arguments", _documented_arguments())
def test_documented_command_line_is_accepted_by_the_cli(arguments: str) -> None:
    # argparse exits with 2 on an unknown flag, a missing value or an invalid choice (0 for --help/--version).
    try:
        build_parser().parse_args(shlex.split(arguments))
    except SystemExit as exc:
        assert exc.code == 0, f"`idc-mcp {arguments}` is refused by the CLI"
