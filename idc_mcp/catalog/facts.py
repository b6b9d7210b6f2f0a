"""Facts about the bundled tables, computed once when the catalog file is built and read back by the
diagnostics and `describe_table`, so that a call does not scan a whole column to get them.

A date column (text 'YYYY-MM-DD') of a table with collection_id and PatientID also gets, per collection
whose values are placeholders, the day they fall on: when nearly all of a collection's dates share one
day of the year across many patients (NLST: January 2 of 1999-2001, de-identified to the year; LIDC-IDRI:
2000-01-01 for every patient), they are not real dates, and the assistant must be told before it filters
or groups by them.

Every column's NULL count is kept too.

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
from typing import TYPE_CHECKING, Any

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

# Rows where each column (nested ones too) is NULL.
NULL_COUNTS = f"{FACTS_SCHEMA}.null_counts"
# One row per (table, date column, collection) whose dates are placeholders (see the module's docstring).
PLACEHOLDER_DATES = f"{FACTS_SCHEMA}.placeholder_dates"

TOP_VALUES = 2_000  # most common values kept per text column (diagnostics: 2,000; describe_table: 500)
SAMPLE_ROWS = 5_000  # rows sampled to tell identifier-like columns from categorical ones
# A collection's dates are placeholders when this share of them falls on one day of the year (month and
# day) and it has at least PLACEHOLDER_PATIENTS patients with a date (one phantom scanned on one day is not).
PLACEHOLDER_SHARE = 0.9
PLACEHOLDER_PATIENTS = 20
DATE_TEXT = r"\d{4}-\d{2}-\d{2}"  # what a date written as text looks like (most values of the column)


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
    con.execute(f"CREATE TABLE {NULL_COUNTS} (table_name VARCHAR, column_name VARCHAR, null_count BIGINT)")
    con.execute(
        f"CREATE TABLE {PLACEHOLDER_DATES} (table_name VARCHAR, column_name VARCHAR, collection_id VARCHAR, "
        "dated_rows BIGINT, patients BIGINT, day VARCHAR, day_rows BIGINT, first_year INTEGER, "
        "last_year INTEGER, dates BIGINT)"
    )
    for table in tables:
        _write_null_counts(con, table)
        columns = con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE schema_name = 'main' AND table_name = ? "
            "AND data_type NOT LIKE '%[]' AND data_type NOT LIKE 'STRUCT%' AND data_type NOT LIKE 'MAP%'",
            [table],
        ).fetchall()
        for column, dtype in columns:
            _write_column(con, table, column, dtype)
        names = {c for c, _ in columns}
        if {"collection_id", "PatientID"} <= names:
            for column in (c for c, t in columns if t == "VARCHAR" and _is_date_text(con, table, c)):
                _write_placeholder_dates(con, table, column)


def _write_null_counts(con: duckdb.DuckDBPyConnection, table: str) -> None:
    names = [r[0] for r in con.execute(f"DESCRIBE {quote_identifier(table)}").fetchall()]
    counts = ", ".join(f"count(*) - count({quote_identifier(c)})" for c in names)
    (row,) = con.execute(f"SELECT {counts} FROM {quote_identifier(table)}").fetchall()
    for column, n in zip(names, row, strict=True):
        con.execute(f"INSERT INTO {NULL_COUNTS} VALUES (?, ?, ?)", [table, column, int(n)])


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


def _is_date_text(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    """Most rows of the column's most common values (kept above) are dates written as text."""
    (dated, total) = con.execute(  # type: ignore[misc]
        f"SELECT sum(n) FILTER (WHERE regexp_full_match(v, {sql_literal(DATE_TEXT)})), sum(n) FROM ("
        f'SELECT unnest("values") AS v, unnest(counts) AS n FROM {TEXT_COLUMNS} '
        "WHERE table_name = ? AND column_name = ?)",
        [table, column],
    ).fetchone()
    return bool(total) and (dated or 0) >= 0.8 * total


def _write_placeholder_dates(con: duckdb.DuckDBPyConnection, table: str, column: str) -> None:
    q, ref = quote_identifier(column), quote_identifier(table)
    con.execute(
        f"INSERT INTO {PLACEHOLDER_DATES} "
        f"WITH dated AS (SELECT collection_id, PatientID, {q} AS d FROM {ref} "
        f"WHERE regexp_full_match({q}, {sql_literal(DATE_TEXT)})), "
        "per_day AS (SELECT collection_id, substr(d, 6) AS day, count(*) AS n, "
        "min(CAST(substr(d, 1, 4) AS INTEGER)) AS y0, max(CAST(substr(d, 1, 4) AS INTEGER)) AS y1, "
        "count(DISTINCT d) AS dates FROM dated GROUP BY ALL), "
        "per_collection AS (SELECT collection_id, count(*) AS n, count(DISTINCT PatientID) AS patients "
        "FROM dated GROUP BY ALL) "
        f"SELECT {sql_literal(table)}, {sql_literal(column)}, collection_id, c.n, c.patients, day, d.n, "
        "y0, y1, dates FROM per_day d JOIN per_collection c USING (collection_id) "
        f"WHERE d.n >= {PLACEHOLDER_SHARE} * c.n AND c.patients >= {PLACEHOLDER_PATIENTS} "
        "ORDER BY c.n DESC, collection_id"
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

# What the query worker reads when it opens a built catalog and hands over with its table facts
# (`preload`, `Catalog.preloaded_facts`), so that a call's diagnostics find them without a query of their
# own (issue 26: a first query on a column paid 1-2 ms per fact fetched). The placeholder dates (a few
# dozen rows) and the text columns whose values are complete (tens of KB); the long, cut lists of
# identifier-like columns are read when a diagnostic needs them.
_PRELOAD_TEXT = (
    f'SELECT lower(table_name), lower(column_name), identifier_like, distinct_count, "values", counts '
    f'FROM {TEXT_COLUMNS} WHERE NOT identifier_like AND len("values") >= distinct_count'
)
_PRELOAD_PLACEHOLDERS = (
    "SELECT lower(table_name), lower(column_name), collection_id, dated_rows, patients, day, day_rows, "
    f"first_year, last_year, dates FROM {PLACEHOLDER_DATES} ORDER BY dated_rows DESC, collection_id"
)


def preload(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    """The facts every call may need, read in the worker when it opens the catalog (empty without them)."""
    import duckdb

    try:
        return {
            "text_values": conn.execute(_PRELOAD_TEXT).fetchall(),
            "placeholder_dates": conn.execute(_PRELOAD_PLACEHOLDERS).fetchall(),
        }
    except duckdb.Error:  # no facts schema: the parquet views of a first-ever start
        return {}


def _preloaded_text(catalog: Catalog, table: str, column: str) -> TextValues | None:
    for row in catalog.preloaded_facts().get("text_values", ()):
        name, col, is_identifier, distinct, values, counts = row
        if name == table and col == column:
            return TextValues(
                values=tuple(zip(values, map(int, counts), strict=True)),
                identifier_like=bool(is_identifier),
                distinct_count=int(distinct),
            )
    return None


def text_values(catalog: Catalog, table: str, column: str) -> TextValues | None:
    """The built facts of a text column of a bundled table; None when the catalog has none for it
    (not a bundled text column, or a catalog without facts). Preloaded, or one query on first use; kept."""
    key = (catalog.cache_key, table.lower(), column.lower())
    found = _TEXT_VALUES.get(key)
    if found is None and (found := _preloaded_text(catalog, table.lower(), column.lower())) is not None:
        _TEXT_VALUES.put(key, found)
    if found is None:
        found = _read(catalog, table, column).get(column.lower())
    return found


@dataclass(frozen=True)
class PlaceholderDates:
    """A collection whose dates in one column nearly all fall on one day of the year."""

    collection_id: str
    dated_rows: int  # rows of the collection with a date
    patients: int
    day: str  # 'MM-DD'
    day_rows: int  # rows on that day
    first_year: int
    last_year: int
    dates: int  # distinct dates on that day (one per year)


_PLACEHOLDERS: Memo[tuple[PlaceholderDates, ...]] = Memo(maxsize=128)


def placeholder_dates(catalog: Catalog, table: str, column: str) -> tuple[PlaceholderDates, ...]:
    """The collections whose `column` of `table` holds placeholder dates, most rows first: from the facts
    the worker preloaded (none for a catalog without these facts, e.g. the parquet views of a first-ever
    start, which have no facts schema to read them from)."""
    key = (catalog.cache_key, table.lower(), column.lower())
    found = _PLACEHOLDERS.get(key)
    if found is None:
        preloaded = catalog.preloaded_facts().get("placeholder_dates", ())
        rows = [r[2:] for r in preloaded if r[0] == table.lower() and r[1] == column.lower()]
        found = tuple(PlaceholderDates(*row) for row in rows)
        _PLACEHOLDERS.put(key, found)
    return found


def placeholder_columns(catalog: Catalog) -> set[tuple[str, str]]:
    """(table, column), lower case, of every column with placeholder dates."""
    return {(r[0], r[1]) for r in catalog.preloaded_facts().get("placeholder_dates", ())}


def null_counts(catalog: Catalog, table: str) -> dict[str, int]:
    """Rows where each column of a bundled table is NULL (empty for a catalog without these facts)."""
    from idc_mcp.catalog.executor import QueryFailed

    try:
        rows = catalog.execute(
            f"SELECT column_name, null_count FROM {NULL_COUNTS} WHERE table_name = {sql_literal(table)}"
        ).rows
    except QueryFailed:
        return {}
    return {c: int(n) for c, n in rows}


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
