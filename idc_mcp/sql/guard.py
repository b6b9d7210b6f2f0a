"""Validation of caller SQL: the primary control between an assistant and the catalog.

A query is accepted only when it is exactly one SELECT (or a set operation of SELECTs, WITH allowed)
over catalog tables and CTEs, using only functions on an allowlist of pure scalar, aggregate, window,
list, string and date functions. The SQL that runs is regenerated from the validated tree, with the
row limit enforced by rewriting; the caller's text never reaches DuckDB.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlglot import exp

from idc_mcp.sql.bounds import SQLRejected, bound_sizes, function_label, literal_int
from idc_mcp.sql.scopes import Scope, cte_references, scopes, table_aliases
from idc_mcp.sql.statement import (
    Rules,
    forbidden_nodes,
    parse_one,
    read_only_root,
)

__all__ = [
    "SQLRejected",
    "TableNotInstalled",
    "UnknownTable",
    "ValidatedQuery",
    "parse_one_statement",
    "validate",
    "validate_tree",
]


# Typed sqlglot function nodes that are pure (no I/O, no settings, no unbounded generators).
ALLOWED_FUNCTION_NODES: frozenset[str] = frozenset(
    """
    Abs Acos Acosh Asin Asinh Atan Atan2 Atanh Cbrt Ceil Cos Cosh Cot Degrees Exp Floor Ln Log Pi Pow
    Radians Round Sign Sin Sinh Sqrt Tan Tanh Trunc Factorial IsInf IsNan Greatest Least Rand
    Avg Count CountIf Sum Min Max Median Mode Quantile PercentileCont PercentileDisc ApproxDistinct
    ApproxQuantile AnyValue ArgMax ArgMin First Last Stddev StddevPop StddevSamp Variance VariancePop
    Corr CovarPop CovarSamp LogicalAnd LogicalOr GroupConcat ArrayAgg Kurtosis Skewness BitwiseAndAgg
    BitwiseOrAgg BitwiseXorAgg RegrSlope RegrIntercept RegrR2 RegrCount
    RowNumber Rank DenseRank PercentRank CumeDist Ntile Lag Lead FirstValue LastValue NthValue
    Lower Upper Length Substring Concat ConcatWs Trim Replace Reverse Left Right Initcap Ascii Chr
    StrPosition StartsWith EndsWith Contains Split SplitPart RegexpLike RegexpILike RegexpExtract
    RegexpExtractAll RegexpReplace RegexpSplit RegexpFullMatch RegexpCount Levenshtein
    JarowinklerSimilarity Soundex Translate Format Pad MD5 SHA SHA2 Hex Unhex Unicode BitLength ByteLength
    Coalesce Nullif Case If Cast TryCast Try Typeof Collate Columns Exists
    Array ArrayContains ArrayContainsAll ArrayOverlaps ArrayConcat ArrayDistinct ArrayFilter ArraySize
    ArraySlice ArraySort ArrayReverse ArrayToString ArrayPosition ArrayAppend ArrayPrepend ArrayIntersect
    ArrayExcept ArrayMax ArrayMin ArraySum ArrayAll ArrayAny ArrayFirst ArrayLast ArrayCompact
    ArrayRemove Transform Unnest Explode Flatten List Struct StructExtract Map MapKeys MapSize
    MapFromEntries VarMap ToMap
    CurrentDate DateFromParts Date DateAdd DateSub DateDiff DateTrunc Day DayOfMonth DayOfWeek
    DayOfWeekIso DayOfYear
    Dayname Month Monthname Quarter Week WeekOfYear Year YearOfWeek Hour Minute Second Extract
    StrToDate StrToTime TimeToStr TimeStrToTime TimeStrToDate TsOrDsToDate Timestamp TimestampTrunc
    TimestampAdd TimestampSub TimestampDiff MakeInterval LastDay UnixToTime TimeToUnix Time Datetime
    JSONExtract JSONExtractScalar JSONArray JSONObject JSONFormat ParseJSON JSONType JSONKeys
    """.split()
)

# Functions sqlglot does not type (exp.Anonymous), by DuckDB name.
ALLOWED_ANONYMOUS: frozenset[str] = frozenset(
    """
    abs ceil ceiling floor round sign sqrt cbrt exp ln log log10 log2 pow power mod greatest least
    even gamma lgamma isnan isinf isfinite nextafter bit_count xor
    count sum avg mean min max median mode quantile quantile_cont quantile_disc approx_count_distinct
    any_value arg_max arg_min argmax argmin arbitrary first last stddev stddev_pop stddev_samp var_pop
    var_samp variance corr covar_pop covar_samp bool_and bool_or string_agg group_concat listagg list
    array_agg count_star product fsum sumkahan kahan_sum entropy histogram approx_quantile
    row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
    lower upper lcase ucase length len strlen char_length character_length substring substr concat
    concat_ws trim ltrim rtrim replace reverse left right initcap ascii chr instr position strpos
    starts_with ends_with prefix suffix contains split string_split str_split string_split_regex
    str_split_regex split_part regexp_matches regexp_full_match regexp_extract regexp_extract_all
    regexp_replace regexp_split_to_array levenshtein damerau_levenshtein hamming jaccard jaro_similarity
    jaro_winkler_similarity mismatches editdist3 like_escape ilike_escape not_like_escape
    not_ilike_escape glob_match format printf md5 sha1 sha256 hash hex unhex unicode ord
    bit_length octet_length strip_accents nfc_normalize array_to_string list_aggregate translate
    coalesce ifnull nullif typeof try_cast
    list_value list_pack array_value list_contains list_has array_contains array_has list_has_any
    list_has_all array_has_any array_has_all list_concat array_concat list_cat array_cat list_distinct
    array_distinct list_unique array_unique list_filter array_filter filter list_transform
    array_transform apply list_apply array_apply list_sort array_sort
    list_reverse_sort array_reverse_sort list_reverse array_reverse list_slice array_slice list_extract
    array_extract list_element list_position array_position list_indexof array_indexof list_append
    array_append list_prepend array_prepend array_length len list_count list_sum list_min list_max
    list_avg list_first list_last list_any_value list_string_agg list_intersect array_intersect
    list_has_all flatten unnest list_zip array_zip struct_pack struct_extract row map map_keys
    map_values map_entries map_extract element_at cardinality list_where list_select list_grade_up
    current_date today date_part datepart date_diff datediff date_sub datesub date_trunc datetrunc
    date_add dayname monthname year month day dayofmonth dayofweek dayofyear week weekofyear
    yearweek quarter hour minute second epoch epoch_ms strftime strptime try_strptime make_date
    make_time make_timestamp to_days to_months to_years to_weeks to_hours to_minutes to_seconds age
    last_day isodow isoyear era century decade millennium
    json_extract json_extract_string json_extract_path json_extract_path_text json_type json_keys
    json_array_length json_valid json_object json_array json_quote to_json json_structure
    """.split()
)

# Statement and clause nodes that never belong in a read-only query.
_FORBIDDEN_NODES = forbidden_nodes(
    "Insert Update Delete Merge Create Drop Alter AlterColumn Command Copy Set SetItem Pragma Use "
    "Attach Detach Transaction Commit Rollback Describe Show Into LoadData Install Summarize "
    "Placeholder Parameter SessionParameter Lateral Analyze Grant Revoke Export Kill "
    "Cache Uncache Refresh TruncateTable Comment"
)

_NODE_FRIENDLY = {
    "Placeholder": "query parameters ($1, ?)",
    "Parameter": "query parameters",
    "Lateral": "LATERAL joins",
    "Into": "SELECT ... INTO",
}


@dataclass(frozen=True)
class ValidatedQuery:
    """A validated query: `sql` is regenerated from the tree and carries the enforced LIMIT.

    It carries what the diagnostics need, made once while validating: the parse tree, the root query's
    scope (sqlglot's name resolution; None when the LIMIT had to wrap the query or sqlglot cannot scope
    it) and the aliases of its FROM/JOIN. Nothing downstream parses the caller's text again."""

    sql: str
    tree: exp.Expression
    tables: tuple[str, ...]
    limit: int
    scope: Scope | None = None
    aliases: dict[str, str] = field(default_factory=dict)


def parse_one_statement(sql: str) -> exp.Expression:
    """Parse exactly one statement (duckdb dialect), refusing anything else with a clear reason."""
    return parse_one(sql, RULES)


def validate(
    sql: str,
    known_tables: Iterable[str],
    max_rows: int,
    not_installed: Iterable[str] = (),
) -> ValidatedQuery:
    """Validate caller SQL and return the SQL to run, with LIMIT max_rows + 1 enforced.

    `known_tables` are the installed catalog tables; `not_installed` are tables idc-index-data knows
    but that are not available yet (a reference to one gets an error naming `fetch_index`). An unknown
    table is refused with `UnknownTable`, which carries the parsed tree for the repair hints.
    """
    return validate_tree(parse_one_statement(sql), known_tables, max_rows, not_installed)


def validate_tree(
    tree: exp.Expression,
    known_tables: Iterable[str],
    max_rows: int,
    not_installed: Iterable[str] = (),
) -> ValidatedQuery:
    """`validate` for a parsed statement (ours, e.g. a suggested fix); rewrites `tree` in place."""
    root = read_only_root(tree, RULES)

    known = {t.lower(): t for t in known_tables}
    missing = {t.lower(): t for t in not_installed}
    used: list[str] = []
    # A name vouched for by a CTE must be one visible where it stands: a CTE defined in a subquery
    # must not vouch for a table of the same name elsewhere (e.g. a system view or a file name).
    found = scopes(root)  # the one scope build of this query
    ctes = cte_references(found)
    try:
        for table in root.find_all(exp.Table):
            _check_table(table, known, missing, id(table) in ctes)
            name = table.name.lower()
            if name in known and known[name] not in used:
                used.append(known[name])
    except UnknownTable as exc:
        exc.tree = root
        raise

    limited = _enforce_limit(bound_sizes(root), max_rows)
    # Comments are dropped: only the validated tree, nothing the caller hid around it, is executed.
    sql_out = limited.sql(dialect="duckdb", comments=False)
    return ValidatedQuery(
        sql=sql_out,
        tree=limited,
        tables=tuple(used),
        limit=max_rows,
        scope=found[-1] if found and limited is root else None,
        aliases=table_aliases(found, root),
    )


def _check_function(node: exp.Func) -> None:
    if isinstance(node, exp.Anonymous):
        name = str(node.name).lower()
        if name in ALLOWED_ANONYMOUS:
            return
        raise SQLRejected(
            f"Function {name}() is not allowed. Only pure scalar, aggregate, window, list, string and "
            "date functions may be used (no file, URL, settings or table functions). "
            "Rewrite the query without it."
        )
    if type(node).__name__ in ALLOWED_FUNCTION_NODES:
        return
    raise SQLRejected(
        f"Function {function_label(node)}() is not allowed here (file access, table functions, "
        "generators and settings are refused). Use plain SELECTs over the catalog tables."
    )


RULES = Rules(
    dialect="duckdb",
    error=SQLRejected,
    empty_message="The SQL is empty. Send one SELECT statement, e.g. SELECT * FROM index LIMIT 5.",
    parse_label="",
    parse_hint="Check the syntax near that point.",
    extra_statements_hint="Remove the extra statements (and any ';' in the middle).",
    set_operations="UNION/INTERSECT/EXCEPT",
    forbidden=_FORBIDDEN_NODES,
    friendly=_NODE_FRIENDLY,
    check_function=_check_function,
)


def _check_table(table: exp.Table, known: dict[str, str], missing: dict[str, str], is_cte: bool) -> None:
    if not isinstance(table.this, exp.Identifier):
        label = table.this.sql(dialect="duckdb")[:80] if table.this else "?"
        raise SQLRejected(
            f"Table functions and file or URL reads are not allowed in FROM ({label}). "
            "Query the catalog tables by name; list_tables() shows them."
        )
    if table.args.get("db") or table.args.get("catalog"):
        raise SQLRejected(
            f"Qualified table names ({table.sql(dialect='duckdb')}) are not allowed. "
            f"Use the bare table name, e.g. FROM {table.name}."
        )
    name = table.name.lower()
    if name in known or is_cte:
        return
    if name in missing:
        raise TableNotInstalled(missing[name])
    raise UnknownTable(table.name)


class UnknownTable(SQLRejected):
    def __init__(self, name: str) -> None:
        super().__init__(f"Table {name!r} does not exist.")
        self.table = name
        self.tree: exp.Expression | None = None  # the query as parsed, for the repair hints


class TableNotInstalled(SQLRejected):
    def __init__(self, name: str) -> None:
        super().__init__(
            f'Table {name!r} is an IDC index that is not installed yet. Call fetch_index("{name}") '
            "first, then run the query again."
        )
        self.table = name


def _enforce_limit(root: exp.Expression, max_rows: int) -> exp.Expression:
    """Cap the rows the query can return at max_rows + 1 (the extra row tells us it was truncated).

    A smaller literal LIMIT (or FETCH FIRST n ROWS) is kept; LIMIT ALL, NULL or a larger number is
    replaced. A LIMIT that is not a plain row count (an expression, a subquery, PERCENT, WITH TIES) is
    kept as written and the query is wrapped in an outer SELECT with the cap.
    """
    cap = max_rows + 1
    limit = root.args.get("limit")
    if limit is None:
        root.set("limit", exp.Limit(expression=exp.Literal.number(cap)))
        return root
    options = limit.args.get("limit_options")
    plain = options is None or not (options.args.get("percent") or options.args.get("with_ties"))
    value = limit.args.get("count") if isinstance(limit, exp.Fetch) else limit.expression
    if isinstance(limit, exp.Fetch) and value is None:
        value = exp.Literal.number(1)  # FETCH FIRST ROW ONLY: one row
    current = literal_int(value)
    if plain and isinstance(limit, exp.Limit | exp.Fetch) and (current is not None or _is_limit_all(value)):
        rows = cap if current is None or current < 0 else min(current, cap)
        root.set("limit", exp.Limit(expression=exp.Literal.number(rows)))
        return root
    return exp.select("*").from_(root.subquery("_limited", copy=False)).limit(cap)


def _is_limit_all(value: exp.Expression | None) -> bool:
    """LIMIT ALL / LIMIT NULL / FETCH FIRST ROWS ONLY (no count) / a negative literal mean no limit."""
    if value is None or isinstance(value, exp.Null):
        return True
    if isinstance(value, exp.Neg) and literal_int(value.this) is not None:
        return True
    return isinstance(value, exp.Var | exp.Column) and value.name.upper() == "ALL"
