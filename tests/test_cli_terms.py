"""The command line speaks in its own words: flags and `idc-mcp` commands, never the MCP tools' names.

A user at a terminal who reads "collection_ids", "call fetch_index" or "the query tool" has nothing to
type: each error of `idc-mcp download / preview / fetch-index / query` is checked for the tools' words,
and every flag of every command has help text.
"""

from __future__ import annotations

import argparse
import asyncio
import re

import pytest
from mcp import Client

from idc_mcp import cli
from idc_mcp.cli_terms import argument_flags, in_cli_terms
from idc_mcp.download.cli import bar_note
from idc_mcp.download.engine import Progress
from tests.servers import server_from_environment


def _tool_names() -> set[str]:
    async def names() -> set[str]:
        async with Client(server_from_environment()) as client:
            return {tool.name for tool in (await client.list_tools()).tools}

    return asyncio.run(names())


TOOLS = _tool_names()
# The tool names that are also commands' names ("query", "download") are words a CLI message may use.
TOOL_WORDS = re.compile(
    r"\b(" + "|".join(sorted((t for t in TOOLS if "_" in t), key=len, reverse=True)) + r")\b"
)
SNAKE_ARGUMENTS = re.compile(
    r"(?<![\w%./-])(" + "|".join(d for d in argument_flags(cli.build_parser()) if "_" in d) + r")(?![\w(])"
)


def _assert_in_cli_terms(text: str) -> None:
    assert text.strip(), "no message"
    assert not TOOL_WORDS.search(text), f"names an MCP tool: {text}"
    assert not SNAKE_ARGUMENTS.search(text), f"names a tool argument, not its flag: {text}"
    for phrase in ("the query tool", "call download", "call fetch_index", "dry_run="):
        assert phrase not in text, text


def _parsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(parser.prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _parsers(sub)
    return found


@pytest.mark.parametrize(("prog", "parser"), _parsers(cli.build_parser()), ids=lambda v: str(v))
def test_every_flag_of_every_command_has_help_text(prog: str, parser: argparse.ArgumentParser) -> None:
    # Issue 22: `--kind` and `--analysis-results` had none.
    missing = [
        "/".join(a.option_strings) or a.dest
        for a in parser._actions
        if not isinstance(a, argparse._SubParsersAction)
        and a.help != argparse.SUPPRESS
        and not (a.help or "").strip()
    ]
    assert not missing, f"{prog}: no help for {missing}"


def test_help_of_the_commands_names_no_mcp_tool(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["download"], ["preview"], ["fetch-index"], ["query"], []):
        with pytest.raises(SystemExit):
            cli.main([*command, "--help"])
        _assert_in_cli_terms(capsys.readouterr().out)


# ---------------------------------------------------------------- the retelling itself
def test_argument_names_become_flags_and_tool_phrases_commands() -> None:
    flags = argument_flags(cli.build_parser())
    told = in_cli_terms(
        "Unknown collection_ids: 'x'. Look values up with the query tool. Select with `sql` instead; "
        'check analysis_results=only. Call fetch_index("clinical_index"). Then call download with the '
        "same arguments and dry_run=false.",
        flags,
    )
    assert told == (
        "Unknown --collection-ids: 'x'. Look values up with `idc-mcp query`. Select with `--sql` instead; "
        "check --analysis-results only. Run `idc-mcp fetch-index clinical_index`. Then run the same "
        "command without --dry-run."
    )


def test_names_inside_sql_paths_and_templates_are_left_alone() -> None:
    flags = argument_flags(cli.build_parser())
    text = (
        "SELECT DISTINCT collection_id FROM index WHERE index.series_uids = 1; folder "
        "%collection_id/%PatientID; /tmp/download_dir/x; SQL must return SeriesInstanceUID"
    )
    assert in_cli_terms(text, flags) == text


# ---------------------------------------------------------------- the commands' errors
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["download", "--collection-ids", "rider_pilo"], "Unknown --collection-ids: 'rider_pilo'"),
        (["download", "--dry-run"], "give at least one of --collection-ids"),
        (["download", "--sql", "SELECT Modality FROM index", "--dry-run"], "--sql must return"),
        (["download", "--collection-ids", "nlst", "--dry-run"], "or split it by --collection-ids"),
        (
            ["download", "--collection-ids", "rider_pilot", "--dir-template", "%Nope"],
            "--dir-template '%Nope'",
        ),
        (["preview", "1.2.3"], "Unknown SERIES_UID: '1.2.3'"),
        (["fetch-index", "clinical_foo"], "Run `idc-mcp fetch-index clinical_index`"),
        (["fetch-index", "sm_inde"], "Did you mean 'sm_index'"),
        (["query", "SELECT Modalty FROM index"], '`idc-mcp query "SELECT * FROM index LIMIT 0"` lists'),
        (["query", "SELECT * FROM inde"], "`idc-mcp fetch-index sm_index`"),
    ],
)
def test_command_errors_name_flags_and_commands_not_tools(
    argv: list[str], expected: str, catalog: object, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert expected in captured.err, captured.err
    _assert_in_cli_terms(captured.err)


def test_query_prints_a_table_and_says_when_rows_were_cut(
    catalog: object, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = "SELECT collection_id, count(*) AS n FROM index GROUP BY 1 ORDER BY 2 DESC, 1"
    assert cli.main(["query", sql, "--max-rows", "2"]) == 0
    out, err = capsys.readouterr()
    header, *rows = out.splitlines()
    assert header.split() == ["collection_id", "n"] and len(rows) == 2 and rows[0].split()[0] == "nlst"
    assert "2 rows (more rows exist" in err and "--max-rows" in err
    _assert_in_cli_terms(err)


# ---------------------------------------------------------------- the progress bar
def test_the_progress_bar_says_what_it_does_before_sizes_are_known() -> None:
    progress = Progress()
    assert bar_note(progress.snapshot()[2]) == "selecting the series"
    progress.phase = "listing the files of 12 series"
    assert bar_note(progress.snapshot()[2]) == "listing the files of 12 series"
    progress.phase, progress.files_total, progress.files_done = "downloading", 40, 3
    assert bar_note(progress.snapshot()[2]) == "3/40 files"
