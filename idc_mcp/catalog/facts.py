"""Facts about the bundled tables, computed once when the catalog file is built and read back by the
diagnostics and `describe_table`, so that a call does not scan a whole column to get them.

They live in their own schema of the catalog file (`idc_mcp_facts`: never listed, never a caller's
table): the exact distinct count of every scalar column, and for every text column its values with
their row counts. A text column keeps its TOP_VALUES most common values (all of them when it has no
more), and none when it is identifier-like (almost every value distinct in a sample of SAMPLE_ROWS
rows: UIDs), where only a word search is worth running. The data never changes for a catalog file, so
what is read back is kept for the life of the process.

A catalog without the facts (the parquet views of a first-ever start, a fetched index) answers None:
the callers then compute the same thing with a query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from idc_mcp.catalog.memo import Memo
from idc_mcp.catalog.sqltext import quote_identifier, sql_literal

if TYPE_CHECKING:  # DuckDB loads in the build process only; the reader runs its SQL through a Catalog
    import duckdb

    from idc_mcp.catalog.database import Catalog

FACTS_SCHEMA = "idc_mcp_facts"
DISTINCT_COUNTS = f"{FACTS_SCHEMA}.distinct_counts"
# One row per text column: identifier-like or not, its values and their row counts (two lists, most
# common first), so that reading a column's facts is one short row, not a scan of a long table.
TEXT_COLUMNS = f"{FACTS_SCHEMA}.text_columns"

TOP_VALUES = 2_000  # most common values kept per text column (diagnostics: 2,000; describe_table: 500)
SAMPLE_ROWS = 5_000  # rows sampled to tell identifier-like columns from categorical ones


def identifier_like(distinct_in_sample: int, rows_in_sample: int) -> bool:
    """Almost every value of a sample distinct: an identifier (UIDs, URLs), not a category."""
    return rows_in_sample >= SAMPLE_ROWS // 5 and distinct_in_sample > 0.9 * rows_in_sample


# -- build time --------------------------------------------------------------------------------------
def write_facts(con: duckdb.DuckDBPyConnection, tables: list[str]) -> None:
    """Compute every fact of `tables` into FACTS_SCHEMA (the build's connection, before its checkpoint)."""
    con.execute(f"CREATE SCHEMA {FACTS_SCHEMA}")
    con.execute(
        f"CREATE TABLE {DISTINCT_COUNTS} (table_name VARCHAR, column_name VARCHAR, distinct_count BIGINT)"
    )
    con.execute(
        f"CREATE TABLE {TEXT_COLUMNS} (table_name VARCHAR, column_name VARCHAR, identifier_like BOOLEAN, "
        'distinct_count BIGINT, "values" VARCHAR[], counts BIGINT[])'
    )
    for table in tables:
        columns = con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE schema_name = 'main' AND table_name = ? "
            "AND data_type NOT LIKE '%[]' AND data_type NOT LIKE 'STRUCT%' AND data_type NOT LIKE 'MAP%'",
            [table],
        ).fetchall()
        for column, dtype in columns:
            _write_column(con, table, column, dtype)


def _write_column(con: duckdb.DuckDBPyConnection, table: str, column: str, dtype: str) -> None:
    q, ref = quote_identifier(column), quote_identifier(table)
    names = f"{sql_literal(table)}, {sql_literal(column)}"
    (distinct,) = con.execute(f"SELECT count(DISTINCT {q}) FROM {ref}").fetchone()  # type: ignore[misc]
    con.execute(f"INSERT INTO {DISTINCT_COUNTS} VALUES ({names}, {int(distinct)})")
    if dtype != "VARCHAR":
        return
    sample = con.execute(
        f"SELECT count(DISTINCT {q}), count({q}) FROM (SELECT {q} FROM {ref} LIMIT {SAMPLE_ROWS})"
    )
    is_identifier = identifier_like(*sample.fetchone())  # type: ignore[misc]
    if is_identifier:  # its values are not worth keeping: only a word search helps
        con.execute(f"INSERT INTO {TEXT_COLUMNS} VALUES ({names}, true, {int(distinct)}, [], [])")
        return
    con.execute(
        f"INSERT INTO {TEXT_COLUMNS} SELECT {names}, false, {int(distinct)}, "
        "coalesce(list(v ORDER BY n DESC, v), []), coalesce(list(n ORDER BY n DESC, v), []) FROM ("
        f"SELECT {q} AS v, count(*) AS n FROM {ref} WHERE {q} IS NOT NULL "
        f"GROUP BY {q} ORDER BY n DESC, {q} LIMIT {TOP_VALUES})"
    )


# -- run time ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TextValues:
    """A text column's values with their row counts, most common first (ties: by value)."""

    values: tuple[tuple[str, int], ...]
    identifier_like: bool
    distinct_count: int  # of the whole column (NULL left out)

    @property
    def complete(self) -> bool:
        """Whether `values` holds every distinct value of the column."""
        return not self.identifier_like and len(self.values) >= self.distinct_count


# Keyed by what the catalog holds (`Catalog.cache_key`), like every cache of answers.
_TEXT_VALUES: Memo[TextValues] = Memo(maxsize=512)


def text_values(catalog: Catalog, table: str, column: str) -> TextValues | None:
    """The built facts of a text column of a bundled table; None when the catalog has none for it
    (not a bundled text column, or a catalog without facts). One query on first use, then kept."""
    key = (catalog.cache_key, table.lower(), column.lower())
    found = _TEXT_VALUES.get(key)
    if found is None:
        found = _read(catalog, table, column).get(column.lower())
    return found


def load_table(catalog: Catalog, table: str) -> None:
    """Read the facts of every text column of `table` in one query (describe_table needs them all)."""
    _read(catalog, table, None)


def _read(catalog: Catalog, table: str, column: str | None) -> dict[str, TextValues]:
    """Facts of one text column (or of all of `table`'s), kept by lower-case column name."""
    from idc_mcp.catalog.executor import QueryFailed  # here: the query worker imports this module too

    # Names as SQL compares them: case-insensitively (`manufacturer = 'GE'` reads Manufacturer).
    where = f"lower(table_name) = {sql_literal(table.lower())}"
    if column is not None:
        where += f" AND lower(column_name) = {sql_literal(column.lower())}"
    try:
        rows = catalog.execute(
            f'SELECT column_name, identifier_like, distinct_count, "values", counts FROM {TEXT_COLUMNS} '
            f"WHERE {where}"
        ).rows
    except QueryFailed:  # no facts schema: the parquet views of a first-ever start
        return {}
    found: dict[str, TextValues] = {}
    for name, is_identifier, distinct, values, counts in rows:
        found[name.lower()] = facts = TextValues(
            values=tuple(zip(values, map(int, counts), strict=True)),
            identifier_like=bool(is_identifier),
            distinct_count=int(distinct),
        )
        _TEXT_VALUES.put((catalog.cache_key, table.lower(), name.lower()), facts)
    return found
