"""Validation of caller SQL for BigQuery: the control between an assistant and a billed cloud account.

Same principles as the local `query` guard, in the BigQuery dialect: exactly one SELECT (or a set
operation of SELECTs, WITH allowed but not RECURSIVE); every table is a CTE or a fully qualified table of
IDC's public datasets (`bigquery-public-data.idc_current.*`, `bigquery-public-data.idc_v<N>.*`, a few
dataset-level INFORMATION_SCHEMA views, wildcard tables inside those datasets); only pure functions on an
allowlist (no EXTERNAL_QUERY, ML/AI functions, user-defined functions of any dataset, SESSION_USER);
no DML, DDL, scripting, parameters or temp functions. The row cap is enforced by rewriting LIMIT and only
the SQL regenerated from the validated tree runs, comments dropped.

What this guards: the caller's credentials can read and write whatever their project can, and every byte
scanned is billed. The guard confines reads to IDC's public tables; cost is bounded by the dry run and
`maximum_bytes_billed` (see client.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from idc_mcp.sql.guard import ALLOWED_FUNCTION_NODES, MAX_NESTING, MAX_NODES, MAX_SQL_CHARS

_BIGQUERY = Dialect.get_or_raise("bigquery")

PUBLIC_PROJECT = "bigquery-public-data"
DATASET_PATTERN = re.compile(r"idc_current|idc_v[1-9][0-9]{0,3}")
EXAMPLE_TABLE = f"`{PUBLIC_PROJECT}.idc_current.dicom_all`"
# Dataset-level INFORMATION_SCHEMA views that describe tables (region- or project-level views, such as
# JOBS, would show the caller's own job history and are refused).
INFORMATION_SCHEMA_VIEWS = frozenset({"TABLES", "COLUMNS", "COLUMN_FIELD_PATHS", "TABLE_OPTIONS", "VIEWS"})
_TABLE_NAME = re.compile(r"[A-Za-z0-9_]{1,1024}")
_WILDCARD = re.compile(r"[A-Za-z0-9_]{0,1023}\*")

# sqlglot's typed nodes for BigQuery functions beyond the local guard's list: all pure.
_BIGQUERY_FUNCTION_NODES = frozenset(
    """
    SafeDivide SafeFunc RangeBucket ArrayConcatAgg ApproxQuantiles ApproxTopK ApproxTopSum RegexpInstr
    Normalize ToBase64 FromBase64 LowerHex MD5Digest SHA1Digest SHA2Digest FarmFingerprint ToCodePoints
    CodePointsToString SafeConvertBytesToString ParseNumeric ParseBignumeric GenerateSeries
    GenerateDateArray CurrentDatetime CurrentTimestamp CurrentTime TsOrDsToDatetime TsOrDsToTime
    TsOrDsToTimestamp DateFromUnixDate UnixDate DatetimeAdd DatetimeSub DatetimeDiff DatetimeTrunc
    UnixSeconds UnixMillis UnixMicros ParseDatetime ParseTime TimeAdd TimeSub TimeDiff TimeTrunc
    JustifyDays JustifyHours JustifyInterval JSONExtractArray JSONValueArray JSONKeysAtDepth String
    Int64 Float64 JSONBool LaxBool LaxFloat64 LaxInt64 LaxString NetFunc Host RegDomain BitwiseCount
    CosineDistance EuclideanDistance WeekStart DateBin TimestampBucket DatetimeBucket
    """.split()
)
ALLOWED_FUNCTIONS = ALLOWED_FUNCTION_NODES | _BIGQUERY_FUNCTION_NODES

# BigQuery functions sqlglot does not type (exp.Anonymous), by lower-case name.
ALLOWED_ANONYMOUS = frozenset(
    """
    ieee_divide safe_add safe_subtract safe_multiply safe_negate array_includes array_includes_all
    array_includes_any array_is_distinct offset ordinal safe_offset safe_ordinal json_extract_string_array
    json_value_array json_strip_nulls lax_int64 lax_float64 lax_bool lax_string cosine_distance
    euclidean_distance approx_top_count approx_top_sum hll_count_extract timestamp_bucket datetime_bucket
    date_bucket regexp_contains regexp_substr byte_length char_length character_length octet_length
    array_concat_agg countif logical_and logical_or bit_and bit_or bit_xor max_by min_by
    """.split()
)

# Statement and clause nodes that never belong in a read-only query (scripting, DML, DDL, exports).
_FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name)
    for name in (
        "Insert Update Delete Merge Create Drop Alter AlterColumn Command Copy Set SetItem Pragma Use "
        "Declare DeclareItem Export Attach Detach Transaction Commit Rollback Describe Show Into LoadData "
        "Install Placeholder Parameter SessionParameter Lateral Analyze Grant Revoke Kill Cache Uncache "
        "Refresh TruncateTable Comment Predict Execute"
    ).split()
    if hasattr(exp, name)
)

_NODE_FRIENDLY = {
    "Placeholder": "Query parameters (?)",
    "Parameter": "Query parameters and system variables (@name, @@project_id)",
    "SessionParameter": "System variables (@@...)",
    "Into": "SELECT ... INTO",
    "Declare": "Scripting (DECLARE)",
    "Command": "This statement",
    "Export": "EXPORT DATA",
    "Predict": "ML functions (ML.PREDICT, ...)",
    "Create": "CREATE (including CREATE TEMP FUNCTION)",
}

_OPENERS = {TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE}
_CLOSERS = {TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE}


class BigQueryRejected(ValueError):
    """The BigQuery SQL is not allowed. The message says which part and what to write instead."""


@dataclass(frozen=True)
class TableRef:
    """A table of IDC's public datasets that a query reads."""

    dataset: str
    table: str

    @property
    def full_name(self) -> str:
        return f"{PUBLIC_PROJECT}.{self.dataset}.{self.table}"

    @property
    def is_information_schema(self) -> bool:
        return self.table.upper().startswith("INFORMATION_SCHEMA.")

    @property
    def is_wildcard(self) -> bool:
        return self.table.endswith("*")


@dataclass(frozen=True)
class ValidatedBigQuery:
    """A validated query: `sql` is regenerated from the tree and carries the enforced LIMIT."""

    sql: str
    tree: exp.Expression
    tables: tuple[TableRef, ...]
    limit: int
    selects_star: bool


def parse_one_statement(sql: str) -> exp.Expression:
    """Parse exactly one BigQuery statement, refusing anything else with a clear reason."""
    if not isinstance(sql, str) or not sql.strip():
        raise BigQueryRejected(
            f"The SQL is empty. Send one SELECT, e.g. SELECT Modality FROM {EXAMPLE_TABLE}."
        )
    if len(sql) > MAX_SQL_CHARS:
        raise BigQueryRejected(
            f"The SQL is {len(sql):,} characters; the limit is {MAX_SQL_CHARS:,}. Write a shorter query: "
            "filter with joins or IN (subquery) instead of long literal lists."
        )
    if "\x00" in sql:
        raise BigQueryRejected("The SQL contains a NUL character. Send plain text SQL.")
    try:
        tokens = _BIGQUERY.tokenize(sql)
    except TokenError as exc:
        message = str(exc).splitlines()[0][:300]
        raise BigQueryRejected(f"The SQL could not be read: {message}. Check quotes and comments.") from exc
    depth = deepest = 0
    for token in tokens:
        if token.token_type in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        elif token.token_type in _CLOSERS:
            depth -= 1
    if deepest > MAX_NESTING:
        raise BigQueryRejected(
            f"The SQL nests brackets more than {MAX_NESTING} deep. Flatten it, e.g. with WITH (CTEs)."
        )
    try:
        statements = [s for s in _BIGQUERY.parser().parse(tokens, sql) if s is not None]
    except (ParseError, TokenError) as exc:
        message = str(exc).splitlines()[0][:300]
        raise BigQueryRejected(
            f"The SQL could not be parsed as BigQuery Standard SQL: {message.rstrip('.')}. "
            "Check the syntax near that point (BigQuery quotes table names with backticks)."
        ) from exc
    except RecursionError as exc:
        raise BigQueryRejected("The SQL is nested too deeply to parse. Flatten it with WITH (CTEs).") from exc
    if len(statements) != 1:
        raise BigQueryRejected(
            f"Send exactly one statement; this text has {len(statements)}. Scripts (DECLARE, SET, "
            "multiple statements) are not run: remove the extra statements."
        )
    return statements[0]


def validate(sql: str, max_rows: int) -> ValidatedBigQuery:
    """Validate caller SQL and return the BigQuery SQL to run, with LIMIT max_rows + 1 enforced."""
    tree = parse_one_statement(sql)
    root = tree.this if isinstance(tree, exp.Subquery) and not tree.alias else tree
    if not isinstance(root, exp.Select | exp.SetOperation):
        kind = "a bare name" if isinstance(root, exp.Column) else type(root).__name__.upper()
        raise BigQueryRejected(
            f"Only read-only SELECT queries are allowed; this statement is {kind}. "
            "Write a SELECT (WITH ... SELECT and UNION ALL/INTERSECT/EXCEPT DISTINCT are fine)."
        )
    node_count = 0
    for node in root.walk():
        node_count += 1
        if node_count > MAX_NODES:
            raise BigQueryRejected(
                f"The query has more than {MAX_NODES:,} syntax nodes. Split it or use shorter lists."
            )
        if isinstance(node, _FORBIDDEN_NODES):
            name = type(node).__name__
            friendly = _NODE_FRIENDLY.get(name, name.upper())
            raise BigQueryRejected(f"{friendly}: not allowed; only one read-only SELECT runs here.")
        if isinstance(node, exp.With) and node.args.get("recursive"):
            raise BigQueryRejected("WITH RECURSIVE is not allowed. Use a plain WITH or joins instead.")
        if isinstance(node, exp.Func) and not isinstance(node, exp.Binary | exp.Connector):
            _check_function(node)

    cte_names = {cte.alias_or_name.lower() for cte in root.find_all(exp.CTE)}
    used: list[TableRef] = []
    for table in root.find_all(exp.Table):
        ref = _check_table(table, cte_names)
        if ref is not None and ref not in used:
            used.append(ref)
    _drop_generated_aliases(root)
    limited = _enforce_limit(root, max_rows)
    sql_out = limited.sql(dialect="bigquery", comments=False)
    star = any(isinstance(s, exp.Star) for s in limited.find_all(exp.Star))
    return ValidatedBigQuery(sql=sql_out, tree=limited, tables=tuple(used), limit=max_rows, selects_star=star)


def _check_function(node: exp.Func) -> None:
    parent = node.parent
    if isinstance(parent, exp.Dot) and parent.expression is node:
        raise BigQueryRejected(
            f"{parent.sql(dialect='bigquery')[:80]} calls a function inside a dataset or namespace "
            "(user-defined, KEYS., AEAD., HLL_COUNT., OBJ.); only built-in pure functions may be used."
        )
    if isinstance(node, exp.Anonymous):
        name = str(node.name).lower()
        if name in ALLOWED_ANONYMOUS:
            return
        raise BigQueryRejected(
            f"Function {name}() is not allowed. Only built-in scalar, aggregate, window, string, array, "
            "date and JSON functions may be used (no EXTERNAL_QUERY, ML./AI. functions, user-defined or "
            "temp functions). Rewrite the query without it."
        )
    if type(node).__name__ in ALLOWED_FUNCTIONS:
        return
    names = type(node).sql_names()
    label = names[0] if names else type(node).__name__
    raise BigQueryRejected(
        f"Function {label}() is not allowed here (identity, ML/AI, table-valued and generator functions "
        "are refused). Use plain SELECTs over IDC's tables."
    )


def _check_table(table: exp.Table, cte_names: set[str]) -> TableRef | None:
    if not isinstance(table.this, exp.Identifier):
        label = table.this.sql(dialect="bigquery")[:80] if table.this else "?"
        raise BigQueryRejected(
            f"Table functions are not allowed in FROM ({label}): no EXTERNAL_QUERY, ML.*, APPENDS, "
            f"VECTOR_SEARCH. Read IDC's tables by name, e.g. FROM {EXAMPLE_TABLE}."
        )
    project = table.catalog
    dataset = table.db
    name = table.name
    if not project and not dataset:
        if name.lower() in cte_names:
            return None
        raise BigQueryRejected(
            f"Table {name!r} is not fully qualified. Name IDC tables in full with backticks, e.g. "
            f"FROM `{PUBLIC_PROJECT}.idc_current.{name}` (a release: idc_v<N> instead of idc_current)."
        )
    if not project:
        if DATASET_PATTERN.fullmatch(dataset):
            raise BigQueryRejected(
                f"`{dataset}.{name}` would read your billing project, not IDC's. "
                f"Write `{PUBLIC_PROJECT}.{dataset}.{name}`."
            )
        raise BigQueryRejected(
            f"`{dataset}.{name}` is not one of IDC's public tables: only `{PUBLIC_PROJECT}.idc_current.*` "
            f"and `{PUBLIC_PROJECT}.idc_v<N>.*` may be read (region- or project-level INFORMATION_SCHEMA "
            "views are refused)."
        )
    if project != PUBLIC_PROJECT:
        raise BigQueryRejected(
            f"Project {project!r} is not allowed: only IDC's public datasets in {PUBLIC_PROJECT!r} "
            f"(idc_current, idc_v<N>) may be read, e.g. FROM {EXAMPLE_TABLE}."
        )
    if not DATASET_PATTERN.fullmatch(dataset):
        hint = ""
        if DATASET_PATTERN.fullmatch(dataset.lower()):
            hint = f" Dataset names are case-sensitive: write {dataset.lower()!r}."
        elif "clinical" in dataset.lower():
            hint = (
                " Clinical data is available locally: fetch_index('clinical_index') installs the "
                "clinical tables for query()."
            )
        raise BigQueryRejected(
            f"Dataset {dataset!r} is not allowed: only IDC's idc_current and idc_v<N> (e.g. idc_v22) "
            f"datasets of {PUBLIC_PROJECT!r} may be read.{hint}"
        )
    if name.upper().startswith("INFORMATION_SCHEMA."):
        view = name.split(".", 1)[1].upper()
        if view not in INFORMATION_SCHEMA_VIEWS:
            allowed = ", ".join(sorted(INFORMATION_SCHEMA_VIEWS))
            raise BigQueryRejected(
                f"INFORMATION_SCHEMA.{view} is not allowed; the dataset's {allowed} views are. "
                "describe_bigquery_table() gives a table's columns directly."
            )
        return TableRef(dataset, f"INFORMATION_SCHEMA.{view}")
    if _WILDCARD.fullmatch(name):
        return TableRef(dataset, name)
    if not _TABLE_NAME.fullmatch(name):
        raise BigQueryRejected(f"Table name {name!r} is not a BigQuery table name (letters, digits, _).")
    return TableRef(dataset, name)


def _drop_generated_aliases(root: exp.Expression) -> None:
    """sqlglot aliases an INFORMATION_SCHEMA view by its own dotted name, which BigQuery refuses as an
    alias; the view's columns need no qualifier, so the alias is dropped."""
    for table in root.find_all(exp.Table):
        alias = table.args.get("alias")
        if isinstance(alias, exp.TableAlias) and "." in alias.name and not alias.columns:
            table.set("alias", None)


def _literal_int(node: exp.Expression | None) -> int | None:
    if isinstance(node, exp.Literal) and node.is_int:
        return int(node.name)
    return None


def _enforce_limit(root: exp.Expression, max_rows: int) -> exp.Expression:
    """Cap the rows at max_rows + 1 (the extra row tells us it was truncated).

    A smaller literal LIMIT is kept, a larger one lowered; any other LIMIT (an expression) is kept as
    written and the query wrapped in an outer SELECT with the cap.
    """
    cap = max_rows + 1
    limit = root.args.get("limit")
    if limit is None:
        root.set("limit", exp.Limit(expression=exp.Literal.number(cap)))
        return root
    current = _literal_int(limit.expression) if isinstance(limit, exp.Limit) else None
    if current is not None:
        root.set("limit", exp.Limit(expression=exp.Literal.number(min(current, cap))))
        return root
    return exp.select("*").from_(root.subquery("_limited", copy=False)).limit(cap)
