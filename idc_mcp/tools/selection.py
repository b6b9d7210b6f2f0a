"""One selection of series, shared by every tool that takes one.

Arguments combine with AND; at least one is required. IDs are checked against the catalog and unknown
ones are reported by name with the closest known ones, never dropped silently.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field

from idc_mcp.catalog.database import Catalog, QueryFailed, QueryOutput, QueryStopped
from idc_mcp.catalog.sqltext import quote_identifier
from idc_mcp.diagnostics import explain
from idc_mcp.diagnostics.fuzzy import closest, resembles
from idc_mcp.errors import AssistantError
from idc_mcp.sql.guard import ValidatedQuery
from idc_mcp.tools.query import QueryError, validate_for

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_SELECTION_SERIES = 100_000
MAX_IDS_PER_ARGUMENT = 10_000
# Rows the caller's `sql` may produce (its rows only feed a filter; see _sql_predicate).
SQL_ROW_CEILING = 10**9
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")

AnalysisResults = Literal["include", "exclude", "only"]

# Argument types the selection tools share. Seven tools take them, so they are described once, in the
# server's instructions (SELECTION_ARGUMENTS), not in every tool's schema (the names say the rest).
CollectionIds = list[str] | None
PatientIds = list[str] | None
StudyUids = list[str] | None
SeriesUids = list[str] | None
SelectionSql = str | None


def _default_said_once(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # 'include': SELECTION_ARGUMENTS says it


AnalysisResultsArg = Annotated[AnalysisResults, Field(json_schema_extra=_default_said_once)]
SELECTION_ARGUMENTS = (
    "Selection tools take collection_ids, patient_ids, study_uids, series_uids, sql (a "
    "SELECT returning SeriesInstanceUID) and analysis_results (derived series: SEG, SR, ANN...: "
    "include (default), exclude or only), combined with AND."
)


class SelectionError(AssistantError, ValueError):
    """The selection is invalid; the message says what to change."""


@dataclass(frozen=True)
class Selection:
    """What a selection tool was asked for: immutable and hashable, so it can key a cache.

    Lists given for the ID arguments (as the tools receive them) are kept as tuples; anything else is
    kept as given for `resolve_selection` to refuse with a clear message.
    """

    collection_ids: tuple[str, ...] | None = None
    patient_ids: tuple[str, ...] | None = None
    study_uids: tuple[str, ...] | None = None
    series_uids: tuple[str, ...] | None = None
    sql: str | None = None
    analysis_results: AnalysisResults = "include"

    def __post_init__(self) -> None:
        for argument, _ in _ID_COLUMNS:
            values = getattr(self, argument)
            if isinstance(values, list):
                object.__setattr__(self, argument, tuple(values))

    def is_empty(self) -> bool:
        return not any([self.collection_ids, self.patient_ids, self.study_uids, self.series_uids, self.sql])

    def describe(self) -> str:
        parts = []
        for label, values in (
            ("collection_ids", self.collection_ids),
            ("patient_ids", self.patient_ids),
            ("study_uids", self.study_uids),
            ("series_uids", self.series_uids),
        ):
            if values:
                shown = ", ".join(values[:3]) + (f" (+{len(values) - 3} more)" if len(values) > 3 else "")
                parts.append(f"{label}=[{shown}]")
        if self.sql:
            parts.append("sql=…")
        if self.analysis_results != "include":
            parts.append(f"analysis_results={self.analysis_results}")
        return ", ".join(parts)


@dataclass
class ResolvedSelection:
    selection: Selection
    series_uids: list[str] = field(default_factory=list)
    # The ID filters as a predicate on `index`, kept when it is deterministic (no caller sql): filtering
    # by it is ~20x faster than by a long UID list, and it picks exactly `series_uids`.
    predicate: str | None = None
    params: list[object] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.series_uids)


_ID_COLUMNS = (
    ("collection_ids", "collection_id"),
    ("patient_ids", "PatientID"),
    ("study_uids", "StudyInstanceUID"),
    ("series_uids", "SeriesInstanceUID"),
)


def clean_ids(argument: str, values: Sequence[str] | None, uid: bool) -> list[str] | None:
    """Strip, check (UIDs: digits and dots, at most 64 characters) and deduplicate one argument's values."""
    if values is None:
        return None
    if not isinstance(values, list | tuple):
        raise SelectionError(f"{argument} must be a list of strings, e.g. {argument}=['...'].")
    if len(values) > MAX_IDS_PER_ARGUMENT:
        raise SelectionError(
            f"{argument} has {len(values):,} values; at most {MAX_IDS_PER_ARGUMENT:,} are accepted. "
            "Select with `sql` instead (a query returning SeriesInstanceUID)."
        )
    cleaned = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise SelectionError(f"{argument} contains an empty or non-string value: {value!r}.")
        value = value.strip()
        if uid and (len(value) > 64 or not _UID.match(value)):
            raise SelectionError(
                f"{argument} value {value[:80]!r} is not a DICOM UID: UIDs are digits and dots, at most 64 "
                "characters (e.g. 1.3.6.1.4.1.14519.5.2.1.6279.6001.100225287222365663678666836860)."
            )
        if len(value) > 256:
            raise SelectionError(f"{argument} value {value[:80]!r}… is longer than 256 characters.")
        cleaned.append(value)
    return list(dict.fromkeys(cleaned)) or None


def report_unknown(catalog: Catalog, argument: str, column: str, values: list[str]) -> None:
    """Raise a SelectionError naming the values of `column` that are not in the index, with hints."""
    # A filter scan (zone maps help on the sorted columns) is ~5x faster than NOT IN over the column.
    found = {
        r[0]
        for r in catalog.execute(
            f'SELECT DISTINCT "{column}" FROM index WHERE "{column}" IN (SELECT unnest(?))', [values]
        ).rows
    }
    unknown = [v for v in values if v not in found]
    if not unknown:
        return
    candidates: list[str] = []
    if column in ("collection_id", "PatientID"):
        candidates = [
            r[0]
            for r in catalog.execute(
                f'SELECT DISTINCT "{column}" FROM index WHERE "{column}" IS NOT NULL'
            ).rows
        ]
    lines = []
    for value in unknown[:10]:
        hint = ""
        if candidates:
            near = [n for n in closest(value, candidates, limit=3) if resembles(value, n)]
            if near:
                hint = " — did you mean " + ", ".join(repr(n) for n in near) + "?"
        else:
            prior = catalog.execute(
                "SELECT min(min_idc_version), max(max_idc_version) FROM prior_versions_index "
                f'WHERE "{column}" = ?',
                [value],
            ).rows
            if prior and prior[0][0] is not None:
                hint = (
                    f" — it was in IDC versions {prior[0][0]}–{prior[0][1]} but is not in the current "
                    "release (see prior_versions_index)"
                )
        lines.append(f"{value!r}{hint}")
    more = f" (and {len(unknown) - 10} more)" if len(unknown) > 10 else ""
    listed = "; ".join(lines) + more
    raise SelectionError(
        f"Unknown {argument}: {listed}{'' if listed.endswith('?') else '.'} "
        f"Look values up with the query tool, e.g. SELECT DISTINCT {column} FROM index WHERE ... ."
    )


def _run(catalog: Catalog, sql: str, params: list[object] | None = None, *, caller_sql: bool) -> QueryOutput:
    """Run selection SQL, turning a timeout or a DuckDB error into a SelectionError.

    A DuckDB error is put down to the caller's `sql` only when the statement contains it
    (`caller_sql`); otherwise the SQL is ours alone, so it is logged as our failure, not theirs.
    """
    try:
        return catalog.execute(sql, params)
    except QueryStopped as exc:
        raise SelectionError(
            f"{exc}. Narrow the selection: filter on collection_id or Modality in `sql`, "
            "or pass collection_ids."
        ) from exc
    except QueryFailed as exc:
        first = str(exc).splitlines()[0][:300]
        if not caller_sql:
            log.error("a selection query we built failed: %s\nSQL: %s", first, sql)
            raise SelectionError(
                f"The selection could not be resolved: the server's own query failed ({first}). "
                "This is not a mistake in the arguments; retry once, and report it if it happens again."
            ) from exc
        raise SelectionError(
            f"sql failed: {first}. Fix it with the query tool first (it explains unknown columns), "
            "then pass it here."
        ) from exc


def _sql_predicate(catalog: Catalog, sql: str) -> tuple[str, ValidatedQuery]:
    """Validate the caller's `sql` exactly like `query`: a predicate on index.SeriesInstanceUID, and the
    validated query (for `_explain_empty_sql`)."""
    try:
        # No row cap here: the rows only feed an IN (...) filter, and a cap would silently cut the selection.
        validated = validate_for(catalog, sql, SQL_ROW_CEILING)
    except QueryError as exc:
        raise SelectionError(f"sql: {exc}") from exc
    try:
        probe = catalog.execute(f"SELECT * FROM ({validated.sql}) AS _sel LIMIT 0")
    except QueryFailed as exc:
        raise SelectionError(f"sql: {explain.explain_error(catalog, validated, exc)}") from exc
    except QueryStopped as exc:
        raise SelectionError(f"sql: {exc}. Simplify it (filter on collection_id first).") from exc
    matches = [c for c in probe.columns if c.lower() == "seriesinstanceuid"]
    if not matches:
        found = ", ".join(probe.columns[:10]) or "none"
        raise SelectionError(
            "sql must return a SeriesInstanceUID column (its columns are: "
            f"{found}). Add SeriesInstanceUID to the SELECT list."
        )
    column = quote_identifier(matches[0])
    return f"SeriesInstanceUID IN (SELECT {column} FROM ({validated.sql}) AS _sel)", validated


def _explain_empty_sql(catalog: Catalog, validated: ValidatedQuery) -> None:
    """When the caller's `sql` returns nothing by itself, say why (a wrong value, like `query` does)."""
    if _run(catalog, f"SELECT 1 FROM ({validated.sql}) AS _sel LIMIT 1", caller_sql=True).rows:
        return  # it selects rows: the combination with the other arguments is what is empty
    notes = explain.explain_empty(catalog, validated)
    raise SelectionError(
        "sql selects no series on its own. "
        + " ".join(notes)
        + " Fix it (the query tool shows the same hints), "
        "then pass it here."
    )


def _totals_hint(selection: Selection) -> str:
    """Sizes and licenses of any number of series: an aggregate query has no series cap."""
    ids = [i.replace("'", "''") for i in (selection.collection_ids or [])[:5]]
    where = "collection_id IN (" + ", ".join(f"'{i}'" for i in ids) + ")" if ids else "..."
    return (
        "For totals only (series, size, licenses), the query tool aggregates without this cap: SELECT "
        "collection_id, license_short_name, count(*) AS series, round(sum(series_size_MB) / 1000, 1) AS GB "
        f"FROM index WHERE {where} GROUP BY ALL"
    )


def resolve_selection(catalog: Catalog, selection: Selection) -> ResolvedSelection:
    """The SeriesInstanceUIDs a selection names, checked and bounded."""
    if selection.is_empty():
        raise SelectionError(
            "Empty selection: give at least one of collection_ids, patient_ids, study_uids, series_uids or "
            "sql (a query returning SeriesInstanceUID)."
        )
    if selection.analysis_results not in ("include", "exclude", "only"):
        raise SelectionError(
            f"analysis_results must be 'include', 'exclude' or 'only', not {selection.analysis_results!r}."
        )
    where: list[str] = []
    params: list[object] = []
    for argument, column in _ID_COLUMNS:
        values = clean_ids(argument, getattr(selection, argument), uid=column.endswith("UID"))
        if not values:
            continue
        report_unknown(catalog, argument, column, values)
        where.append(f'"{column}" IN (SELECT unnest(?))')
        params.append(values)
    validated = None
    if selection.sql:
        predicate, validated = _sql_predicate(catalog, selection.sql)
        where.append(predicate)
    if selection.analysis_results == "exclude":
        where.append("analysis_result_id IS NULL")
    elif selection.analysis_results == "only":
        where.append("analysis_result_id IS NOT NULL")
    sql = (
        "SELECT SeriesInstanceUID FROM index WHERE "
        + " AND ".join(where)
        + " ORDER BY collection_id, PatientID, StudyInstanceUID, SeriesInstanceUID"
        + f" LIMIT {MAX_SELECTION_SERIES + 1}"
    )
    uids = [r[0] for r in _run(catalog, sql, params, caller_sql=bool(selection.sql)).rows]
    if not uids:
        if validated is not None:
            _explain_empty_sql(catalog, validated)
        raise SelectionError(
            f"The selection ({selection.describe()}) matches no series. Each value exists, but together they "
            "select nothing: drop one filter, or check analysis_results (derived series have "
            "analysis_result_id set)."
        )
    if len(uids) > MAX_SELECTION_SERIES:
        count = "SELECT count(*) FROM index WHERE " + " AND ".join(where)
        total = _run(catalog, count, params, caller_sql=bool(selection.sql)).rows[0][0]
        raise SelectionError(
            f"The selection matches {total:,} series; at most {MAX_SELECTION_SERIES:,} are accepted "
            "in one call. "
            "Narrow it: add a Modality or collection filter through `sql`, or split it by collection_ids. "
            + _totals_hint(selection)
        )
    deterministic = not selection.sql  # caller sql may sample (random(), LIMIT without ORDER BY)
    return ResolvedSelection(
        selection=selection,
        series_uids=list(dict.fromkeys(uids)),
        predicate=" AND ".join(where) if deterministic else None,
        params=params if deterministic else [],
    )


def selection_where(resolved: ResolvedSelection) -> tuple[str, list[object]]:
    """A predicate (and its parameters) on `index` that picks exactly the resolved series."""
    if resolved.predicate is not None:
        return f"({resolved.predicate})", list(resolved.params)
    return "SeriesInstanceUID IN (SELECT unnest(?))", [resolved.series_uids]


# ---------------------------------------------------------------- publishing a selection as tool arguments
# The six arguments every selection tool takes, in this order, in place of its `selection` parameter.
_SELECTION_ARGUMENTS = [
    inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation, default=default)
    for name, annotation, default in (
        ("collection_ids", CollectionIds, None),
        ("patient_ids", PatientIds, None),
        ("study_uids", StudyUids, None),
        ("series_uids", SeriesUids, None),
        ("sql", SelectionSql, None),
        ("analysis_results", AnalysisResultsArg, "include"),
    )
]


def takes_selection(fn: Callable[..., T]) -> Callable[..., T]:
    """Publish `fn(..., selection: Selection, ...)` as a tool taking the six selection arguments in place
    of `selection`; the call bundles them into one Selection. Name, docstring and the other arguments stay
    as `fn` declares them. (The SDK builds a tool's input schema from its signature: this is the signature
    it sees.)"""
    signature = inspect.signature(fn, eval_str=True)
    if "selection" not in signature.parameters:
        raise TypeError(f"{fn.__name__} has no `selection` parameter to publish as the selection arguments")
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        parameters += _SELECTION_ARGUMENTS if parameter.name == "selection" else [parameter]

    def bundle(kwargs: dict[str, Any]) -> dict[str, Any]:
        values = {p.name: kwargs.pop(p.name, p.default) for p in _SELECTION_ARGUMENTS}
        return {**kwargs, "selection": Selection(**values)}

    if inspect.iscoroutinefunction(fn):

        async def tool(**kwargs: Any) -> Any:
            return await fn(**bundle(kwargs))
    else:

        def tool(**kwargs: Any) -> Any:
            return fn(**bundle(kwargs))

    functools.update_wrapper(tool, fn)
    tool.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    # The SDK finds the Context argument through the annotations, the schema through the signature.
    tool.__annotations__ = {p.name: p.annotation for p in parameters}
    tool.__annotations__["return"] = signature.return_annotation
    return tool  # type: ignore[return-value]
