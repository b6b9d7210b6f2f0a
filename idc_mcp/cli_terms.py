"""Messages written for the assistant, retold in the command line's words.

The services behind `idc-mcp download`, `preview` and `fetch-index` are the MCP tools' services: their
errors name tool arguments (`collection_ids`, `dry_run=false`) and tools ("call download again",
`fetch_index("sm_index")`, "the query tool"). At a terminal those are flags and commands. One table of
phrases and the parser's own flags (each argument's name -> its option) do the retelling.
"""

from __future__ import annotations

import argparse
import re

# Tool phrases -> commands, most specific first.
_COMMANDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (
            r"call download with the same arguments and\s+dry_run=false",
            "run the same command without --dry-run",
        ),
        (r"call download again", "run the same `idc-mcp download` command again"),
        (r"\bdownload\(dry_run=true\)", "`idc-mcp download --dry-run`"),
        (
            r"""\b[Cc]all fetch_index\(\s*["']?([\w-]+)["']?\s*\), then list_tables\(\)""",
            r"Run `idc-mcp fetch-index \1`",
        ),
        (r"""\b[Cc]all fetch_index\(\s*["']?([\w-]+)["']?\s*\)""", r"Run `idc-mcp fetch-index \1`"),
        (r"""\bfetch_index\(\s*["']?([\w-]+)["']?\s*\)""", r"`idc-mcp fetch-index \1`"),
        (r"call fetch_index again", "run `idc-mcp fetch-index` again"),
        (r"\bfetch_index\b", "`idc-mcp fetch-index`"),
        (r" \(list_tables shows all\)", ""),
        (
            r'\(list_tables\(\) shows all of them, describe_table\(table="(\w+)"\) their columns\)',
            r'(`idc-mcp query "SELECT * FROM \1 LIMIT 0"` shows the columns of \1)',
        ),
        (
            r'describe_table\(table="(\w+)"\) lists (?:every column with its description|its columns)',
            r'`idc-mcp query "SELECT * FROM \1 LIMIT 0"` lists its columns',
        ),
        (
            r'describe_table\(table="(\w+)", column="([\w.]+)"\) lists (?:its values|them with counts)',
            r'`idc-mcp query "SELECT \2, count(*) AS n FROM \1 GROUP BY ALL ORDER BY n DESC"` lists them',
        ),
        (r"\bthe query tool\b", "`idc-mcp query`"),
        (r"as do the search, license, size and citation tools", "as does `idc-mcp query`"),
        (r"\(see the LICENSE files, or check_licenses\)", "(see the LICENSE files)"),
        (r"\bget_viewer_url\([^)]*\)", "IDC's web viewer (link below)"),
        (r"\bestimate_size\b", "`idc-mcp download --dry-run`"),
        (r"\bcheck_licenses\b", "`idc-mcp download --dry-run` (its licenses)"),
    )
)
# Plain words that are also argument names: only these, and only as whole lower-case words.
_PLAIN_ARGUMENTS = {"sql"}


def argument_flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each argument's name (its `dest`) -> how it is written on the command line, over all subcommands."""
    options: dict[str, str] = {}
    positionals: dict[str, str] = {}
    pending = [parser]
    while pending:
        current = pending.pop()
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending.extend(action.choices.values())
            elif action.option_strings:
                options.setdefault(action.dest, max(action.option_strings, key=len))
            elif action.dest != argparse.SUPPRESS:
                positionals.setdefault(action.dest, str(action.metavar or action.dest.upper()))
    flags = positionals | options  # an option's name wins (`--sql` of download over query's SQL)
    return {dest: flag for dest, flag in flags.items() if "_" in dest or dest in _PLAIN_ARGUMENTS}


def in_cli_terms(message: str, flags: dict[str, str]) -> str:
    """The message with tool phrases replaced by commands and argument names by their flags."""
    for pattern, replacement in _COMMANDS:
        message = pattern.sub(replacement, message)
    if not flags:
        return message
    names = "|".join(sorted(map(re.escape, flags), key=len, reverse=True))
    # `analysis_results=only` -> `--analysis-results only`; a bare name -> its flag. Not inside other
    # words, paths, SQL identifiers or format placeholders (%PatientID, index.collection_id).
    message = re.sub(
        rf"(?<![\w%./-])({names})=(\w+)",
        lambda m: f"{flags[m.group(1)]} {m.group(2)}" if flags[m.group(1)].startswith("-") else m.group(0),
        message,
    )
    return re.sub(rf"(?<![\w%./-])({names})(?![\w(])", lambda m: flags[m.group(1)], message)
