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

from idc_mcp.sql.guard import ALLOWED_FUNCTION_NODES
from idc_mcp.sql.statement import (
    Rules,
    forbidden_nodes,
    parse_one,
    read_only_root,
)

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
_FORBIDDEN_NODES = forbidden_nodes(
    "Insert Update Delete Merge Create Drop Alter AlterColumn Command Copy Set SetItem Pragma Use "
    "Declare DeclareItem Export Attach Detach Transaction Commit Rollback Describe Show Into LoadData "
    "Install Placeholder Parameter SessionParameter Lateral Analyze Grant Revoke Kill Cache Uncache "
    "Refresh TruncateTable Comment Predict Execute"
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
    return parse_one(sql, RULES)


def validate(sql: str, max_rows: int) -> ValidatedBigQuery:
    """Validate caller SQL and return the BigQuery SQL to run, with LIMIT max_rows + 1 enforced."""
    root = read_only_root(parse_one_statement(sql), RULES)

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


RULES = Rules(
    dialect="bigquery",
    error=BigQueryRejected,
    empty_message=f"The SQL is empty. Send one SELECT, e.g. SELECT Modality FROM {EXAMPLE_TABLE}.",
    parse_label=" as BigQuery Standard SQL",
    parse_hint="Check the syntax near that point (BigQuery quotes table names with backticks).",
    extra_statements_hint=(
        "Scripts (DECLARE, SET, multiple statements) are not run: remove the extra statements."
    ),
    set_operations="UNION ALL/INTERSECT/EXCEPT DISTINCT",
    forbidden=_FORBIDDEN_NODES,
    friendly=_NODE_FRIENDLY,
    check_function=_check_function,
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
