"""`idc-mcp query "SELECT ..."`: the query tool at a terminal, for looking values up before a download.

The same validated, read-only SQL and the same repair hints as the MCP tool; rows as an aligned table
on stdout (or JSON with --json), hints on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys

from idc_mcp.tools.query import MAX_ROWS_CAP, QueryError, QueryResult, run_query

CELL_CHARS = 60  # a wider value is cut in the table (--json prints it whole)


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "query",
        help="run a read-only SQL query over the IDC catalog (look up values before a download)",
        description="Run one SELECT over the offline IDC catalog (tables: index, collections_index, ...; "
        "see references/ for the schema). When a name or value is wrong, the reply says what to change.",
    )
    p.add_argument(
        "sql", metavar="SQL", help="e.g. \"SELECT DISTINCT collection_id FROM index WHERE Modality = 'SM'\""
    )
    p.add_argument("--max-rows", type=int, default=50, help=f"rows to print (1-{MAX_ROWS_CAP}, default 50)")
    p.add_argument("--json", action="store_true", help="print the whole reply as JSON instead of a table")
    p.set_defaults(func=run)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def table(result: QueryResult) -> str:
    """Rows as aligned text columns under a header."""
    cells = [[_cell(row.get(column)) for column in result.columns] for row in result.rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(result.columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(result.columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from idc_mcp.catalog.database import Catalog

    try:
        result = run_query(Catalog(args.settings), args.sql, args.max_rows)
    except QueryError as exc:
        print(f"error: {args.terms(str(exc))}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.model_dump(), indent=2, default=str))
        return 0
    print(table(result))
    more = " (more rows exist: raise --max-rows or add a LIMIT/aggregate)" if result.truncated else ""
    print(f"{result.row_count} row{'s' * (result.row_count != 1)}{more}", file=sys.stderr)
    for hint in result.diagnostics:
        print(f"note: {args.terms(hint)}", file=sys.stderr)
    return 0
