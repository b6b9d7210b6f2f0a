"""SQL text for DuckDB built by us: the one identifier-quoting and the one string-literal helper."""

from __future__ import annotations


def quote_identifier(name: str) -> str:
    """A DuckDB identifier in double quotes (inner quotes doubled), safe for any table or column name."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: str) -> str:
    """A DuckDB string literal (quotes doubled; DuckDB strings have no backslash escapes).

    For file paths in DDL, which takes no parameters, and instead of bound parameters on the download
    rerun path: binding any Python parameter makes DuckDB import pandas (~0.7 s), which a short-lived
    process resuming a complete download would pay."""
    if "\x00" in value:
        raise ValueError("NUL in an SQL literal")
    return "'" + value.replace("'", "''") + "'"
