"""The plain functions behind the BigQuery tools: a guarded, dry-run, capped, cancellable query whose
series feed the selection tools, and live table descriptions."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from sqlglot import exp

from idc_mcp.bigquery import client as bq
from idc_mcp.bigquery.guard import (
    DATASET_PATTERN,
    PUBLIC_PROJECT,
    BigQueryRejected,
    TableRef,
    ValidatedBigQuery,
    validate,
)
from idc_mcp.bigquery.local_first import LOCAL_EQUIVALENTS, local_note
from idc_mcp.bigquery.models import (
    BigQueryError,
    BigQueryField,
    BigQueryResult,
    BigQueryTableDescription,
    JobStats,
)
from idc_mcp.bigquery.names import name_in_error, unknown_column, unknown_column_message
from idc_mcp.bigquery.schema import SCHEMAS, TableSchema, UnknownBigQueryName, nearest_fields
from idc_mcp.cancellation import Report
from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.schemas import all_tables
from idc_mcp.config import GB, MIN_BQ_CAP_GB, Settings
from idc_mcp.sql.json_values import MAX_ROWS_CAP, bounded_records, max_rows_refused
from idc_mcp.units import size_text

MAX_DESCRIBED_FIELDS = 400
COLUMN_PROBES = 8
COLUMN_PROBE_BUDGET_S = 5.0
TIB = 2**40
SELECTION_TOOLS = "check_licenses, estimate_size, get_citations, get_dicomweb_urls, export_manifest, download"


# ---------------------------------------------------------------------------------------- helpers
def byte_cap(settings: Settings, max_gb: float | None) -> int:
    """The cap for this call: the server's, or a lower one the caller asked for."""
    if max_gb is None:
        return settings.bq_max_bytes
    if not isinstance(max_gb, int | float) or isinstance(max_gb, bool) or max_gb < MIN_BQ_CAP_GB:
        raise BigQueryError(
            f"max_gb must be a number of GB (10^9 bytes) of at least {MIN_BQ_CAP_GB}; got {max_gb!r}."
        )
    if max_gb > settings.bq_max_gb:
        raise BigQueryError(
            f"max_gb={max_gb:g} is above this server's cap of {settings.bq_max_gb:g} GB; a call may only "
            "lower it. Narrow the query, or ask the user to raise IDC_MCP_BQ_MAX_GB in the server's "
            "environment."
        )
    return int(max_gb * GB)


def gb(n: int) -> str:
    return size_text(n, "GB", 2)


def cost_usd(n: int, settings: Settings) -> float:
    return round(n / TIB * settings.bq_usd_per_tib, 4)


def _schemas(backend: bq.Backend, validated: ValidatedBigQuery) -> tuple[list[TableSchema], bool]:
    """Live schemas of the tables read, and whether that covers every table (INFORMATION_SCHEMA and
    wildcard tables have none)."""
    schemas = []
    complete = True
    for ref in validated.tables:
        if ref.is_information_schema or ref.is_wildcard:
            complete = False
            continue
        try:
            schemas.append(SCHEMAS.table(backend, ref))
        except UnknownBigQueryName as exc:
            raise BigQueryError(str(exc)) from exc
    return schemas, complete


def _explain_api_error(exc: bq.BigQueryJobError, schemas: list[TableSchema]) -> str:
    message = str(exc).rstrip(".")
    name = name_in_error(exc.api_message)
    if name and schemas:
        near = nearest_fields(name, schemas)
        if near:
            return (
                f"BigQuery refused the query: {message}. Nearest real names for {name!r}: {'; '.join(near)}."
            )
    return f"BigQuery refused the query: {message}."


def _columns_read(validated: ValidatedBigQuery, schemas: list[TableSchema]) -> list[tuple[TableSchema, str]]:
    """(table, top-level column) pairs the query reads, in order of first use."""
    found: list[tuple[TableSchema, str]] = []
    for column in validated.tree.find_all(exp.Column):
        for part in column.parts:
            if not isinstance(part, exp.Identifier):
                continue
            for schema in schemas:
                field = schema.top_level.get(part.name.lower())
                if field and (schema, field.path) not in found:
                    found.append((schema, field.path))
    return found


def _cost_refusal(
    backend: bq.Backend,
    validated: ValidatedBigQuery,
    schemas: list[TableSchema],
    estimate: int,
    cap: int,
    settings: Settings,
) -> str:
    lines = [
        f"Refused before running: the dry run says this query would scan {gb(estimate)} "
        f"({estimate:,} bytes), above the cap of {gb(cap)} (IDC_MCP_BQ_MAX_GB, or max_gb). On demand it "
        f"would cost about ${cost_usd(estimate, settings):,.2f} at ${settings.bq_usd_per_tib:g} per TiB (the "
        "first 1 TiB each month is free).",
        "BigQuery bills the columns a query reads, not the rows it returns: LIMIT and WHERE do not lower "
        "it, and IDC's tables are neither partitioned nor clustered, so the only lever is reading fewer "
        "columns (or fewer tables).",
    ]
    if validated.selects_star:
        lines.append("SELECT * reads every column: name only the columns you need.")
    else:
        costs: list[tuple[int, str]] = []
        started = time.monotonic()
        for schema, column in _columns_read(validated, schemas)[:COLUMN_PROBES]:
            if time.monotonic() - started > COLUMN_PROBE_BUDGET_S:
                break
            try:
                size = backend.dry_run(f"SELECT `{column}` FROM `{schema.ref.full_name}`")
            except (bq.BigQueryJobError, bq.BigQueryUnavailable):
                continue
            costs.append((size, f"{schema.ref.table}.{column}"))
        costs.sort(reverse=True)
        if costs:
            listed = ", ".join(f"{name} {gb(size)}" for size, name in costs)
            lines.append(f"Columns read, largest first: {listed}. Drop the largest ones you do not need.")
    note = local_note(validated)
    lines.append(
        note
        or "For series-level questions (collections, modalities, body parts, sizes, licenses), query() on "
        "the local catalog is free and offline."
    )
    return " ".join(lines)


def _shape_rows(
    columns: list[str], rows: list[dict[str, Any]], max_rows: int, more: bool
) -> tuple[list[dict[str, Any]], bool, list[str]]:
    truncated = more or len(rows) > max_rows
    bounded = bounded_records(columns, ([row.get(name) for name in columns] for row in rows[:max_rows]))
    records, notes = bounded.rows, bounded.notes
    truncated |= bounded.cut_at_size
    if truncated and len(records) == max_rows:
        notes.append(
            f"Only the first {max_rows} rows are shown. Aggregate (GROUP BY, ARRAY_AGG), filter, or raise "
            f"max_rows (up to {MAX_ROWS_CAP}); a rerun of the same SQL is usually a free cache hit."
        )
    if bounded.cells_cut:
        notes.append("Some long values were cut (marked '…[cut: …]'). Select fewer or narrower fields.")
    return records, truncated, notes


def _hand_off(
    columns: list[str], records: list[dict[str, Any]], truncated: bool, catalog: Catalog
) -> tuple[list[str], dict[str, list[str]] | None, list[str], list[str]]:
    """The series of the returned rows, split into those the local catalog has (a ready selection) and
    the others."""
    column = next((c for c in columns if c.lower() == "seriesinstanceuid"), None)
    if column is None:
        return [], None, [], []
    uids = list(dict.fromkeys(str(r[column]) for r in records if isinstance(r.get(column), str)))
    if not uids:
        return [], None, [], []
    present = {
        row[0]
        for row in catalog.execute(
            "SELECT SeriesInstanceUID FROM index WHERE SeriesInstanceUID IN (SELECT unnest(?))", [uids]
        ).rows
    }
    known = [u for u in uids if u in present]
    unknown = [u for u in uids if u not in present]
    notes = []
    if known:
        notes.append(
            f"{len(known)} series in these rows are in the local catalog: pass `selection` as the "
            f"arguments of {SELECTION_TOOLS} (e.g. check_licenses(series_uids=[...])), or a UID to "
            "get_viewer_url." + (" It holds only the series of the returned rows." if truncated else "")
        )
    if unknown:
        notes.append(
            f"{len(unknown)} series are not in the local catalog (idc-index-data "
            f"{catalog.settings.data_version}): they come from another IDC release than the bundled one. "
            "Query the matching release (`bigquery-public-data.idc_v<N>`) or compare prior_versions_index."
        )
    return uids, ({"series_uids": known} if known else None), unknown, notes


# ---------------------------------------------------------------------------------------- the tools
def run_bigquery_query(
    settings: Settings,
    catalog: Catalog,
    sql: str,
    max_rows: int = 100,
    max_gb: float | None = None,
    *,
    backend: bq.Backend | None = None,
    cancel: threading.Event | None = None,
    progress: Report | None = None,
) -> BigQueryResult:
    """Validate, resolve names, dry-run, refuse above the cap, run capped, shape the reply.

    `cancel` (set from another thread) cancels the job; `progress` hears each step (dry run, submitted)."""
    if refused := max_rows_refused(max_rows):
        raise BigQueryError(refused)
    cap = byte_cap(settings, max_gb)
    try:
        validated = validate(sql, max_rows)
    except BigQueryRejected as exc:
        raise BigQueryError(str(exc)) from exc
    steps = 0

    def say(message: str) -> None:
        nonlocal steps
        steps += 1
        if progress is not None:
            progress(steps, None, message)

    try:
        backend = backend or bq.connect(settings)
        schemas, complete = _schemas(backend, validated)
        if complete:
            unknown = unknown_column(validated, schemas)
            if unknown:
                raise BigQueryError(unknown_column_message(*unknown, schemas))
        try:
            estimate = backend.dry_run(validated.sql)
        except bq.BigQueryJobError as exc:
            raise BigQueryError(_explain_api_error(exc, schemas)) from exc
        say(f"dry run: {gb(estimate)} to scan (cap {gb(cap)})")
        if estimate > cap:
            raise BigQueryError(_cost_refusal(backend, validated, schemas, estimate, cap, settings))
        job_id = backend.new_job_id()

        def submitted(job: str) -> None:
            say(f"job {job} submitted")

        try:
            outcome = backend.run(
                validated.sql, job_id, cap, max_rows + 1, cancel or threading.Event(), submitted
            )
        except bq.BigQueryJobError as exc:
            if exc.reason == "bytesBilledLimitExceeded":
                raise BigQueryError(
                    f"BigQuery stopped the job at the byte cap of {gb(cap)}: {exc}. Read fewer columns."
                ) from exc
            raise BigQueryError(_explain_api_error(exc, schemas)) from exc
    except (bq.BigQueryUnavailable, bq.BigQueryJobError) as exc:
        raise BigQueryError(str(exc)) from exc

    records, truncated, notes = _shape_rows(outcome.columns, outcome.rows, max_rows, outcome.more_rows)
    note = local_note(validated)
    if note:
        notes.insert(0, note)
    uids, selection, unknown, hand_notes = _hand_off(outcome.columns, records, truncated, catalog)
    notes.extend(hand_notes)
    return BigQueryResult(
        columns=outcome.columns,
        rows=records,
        row_count=len(records),
        truncated=truncated,
        notes=notes,
        executed_sql=validated.sql,
        job=JobStats(
            job_id=outcome.job_id,
            location=outcome.location,
            billing_project=backend.project,
            estimated_bytes=estimate,
            estimated_cost_usd=cost_usd(estimate, settings),
            byte_cap=cap,
            bytes_processed=outcome.bytes_processed,
            bytes_billed=outcome.bytes_billed,
            cache_hit=outcome.cache_hit,
            elapsed_s=outcome.elapsed_s,
        ),
        series_instance_uids=uids,
        selection=selection,
        series_not_in_catalog=unknown,
    )


_TABLE_ARG = re.compile(
    r"`?(?:(?:bigquery-public-data)[.:])?(?:(?P<dataset>[A-Za-z0-9_]+)\.)?(?P<table>[A-Za-z0-9_]+)`?"
)


def describe_bigquery_table(
    settings: Settings,
    table: str,
    column_filter: str | None = None,
    *,
    backend: bq.Backend | None = None,
) -> BigQueryTableDescription:
    """A table's live schema: every column and nested field with type, mode and description."""
    match = _TABLE_ARG.fullmatch(table.strip()) if isinstance(table, str) else None
    if not match:
        raise BigQueryError(
            f"{table!r} is not a table name. Give e.g. 'dicom_all', 'idc_current.segmentations' or "
            f"'{PUBLIC_PROJECT}.idc_v22.dicom_all'."
        )
    dataset = match.group("dataset") or "idc_current"
    name = match.group("table")
    try:
        backend = backend or bq.connect(settings)
        if match.group("dataset") is None and DATASET_PATTERN.fullmatch(name):
            tables = SCHEMAS.tables_of(backend, name)
            raise BigQueryError(
                f"{name!r} is a dataset; describe one of its tables: {', '.join(tables[:60])}"
                f"{' ...' if len(tables) > 60 else ''}."
            )
        if not DATASET_PATTERN.fullmatch(dataset):
            raise BigQueryError(
                f"Dataset {dataset!r} is not one of IDC's: use idc_current or idc_v<N> (e.g. idc_v22)."
            )
        schema = SCHEMAS.table(backend, TableRef(dataset, name))
    except (UnknownBigQueryName, bq.BigQueryUnavailable, bq.BigQueryJobError) as exc:
        raise BigQueryError(str(exc)) from exc
    fields = list(schema.fields)
    if column_filter:
        needle = column_filter.lower()
        fields = [f for f in fields if needle in f.path.lower() or needle in f.description.lower()]
    notes = []
    if len(fields) > MAX_DESCRIBED_FIELDS:
        notes.append(
            f"{len(fields):,} fields match; the first {MAX_DESCRIBED_FIELDS} are listed. Pass column_filter "
            "(a substring of the name or description, e.g. 'Slice') to see the others."
        )
    if column_filter and not fields:
        near = nearest_fields(column_filter, [schema])
        notes.append(
            f"No field contains {column_filter!r}." + (f" Nearest: {'; '.join(near)}." if near else "")
        )
    if any(f.mode == "REPEATED" for f in schema.fields):
        notes.append(
            "REPEATED fields are arrays: read them with UNNEST, e.g. FROM t, UNNEST(t.ImageType) AS it, or "
            "test membership with 'ORIGINAL' IN UNNEST(ImageType)."
        )
    local = LOCAL_EQUIVALENTS.get(name)
    if local:
        local_columns = {c.lower() for c in all_tables()[local].column_names}
        shared = sum(1 for f in schema.fields if "." not in f.path and f.path.lower() in local_columns)
        notes.append(
            f"The local `{local}` table has {shared} of these columns (summarized, series level): "
            "query() answers questions on them free and offline."
        )
    if schema.num_bytes:
        notes.append(
            f"Reading every column scans about {gb(schema.num_bytes)}; name only the columns you need."
        )
    return BigQueryTableDescription(
        table=f"`{schema.ref.full_name}`",
        kind=schema.kind,
        description=schema.description,
        num_rows=schema.num_rows,
        num_bytes=schema.num_bytes,
        fields_total=len(schema.fields),
        fields=[
            BigQueryField(path=f.path, type=f.type, mode=f.mode, description=f.description)
            for f in fields[:MAX_DESCRIBED_FIELDS]
        ],
        notes=notes,
    )
