"""The MCP tool table: each tool a thin, typed declaration over a plain function.

A tool's docstring is the description the assistant reads (what it does, when to call it); its
arguments are typed and bounded; its body is one `run_call` (calls.py), which runs the work in a thread,
cancellable, with progress, our errors made into the assistant's message. `app.create_server` puts every
tool declared here on a server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from idc_mcp import preview
from idc_mcp.bigquery import models as bigquery
from idc_mcp.calls import json_reply, run_call
from idc_mcp.download import models as dl
from idc_mcp.indices import common
from idc_mcp.prepare import models as prep
from idc_mcp.preview.reply import preview_reply
from idc_mcp.serve.read_only import SERVER_CACHE, WRITES
from idc_mcp.sql.json_values import MaxRows
from idc_mcp.tools import citations, collections, licenses, manifest, sizes, tables, viewers
from idc_mcp.tools import cohorts as cohorts_mod
from idc_mcp.tools import query as query_mod
from idc_mcp.tools.selection import CohortName, Selection, takes_selection

F = TypeVar("F", bound=Callable[..., Any])


# (function, annotations, meta) of each tool, in this table's order.
TOOLS: list[tuple[Callable[..., Any], ToolAnnotations, dict[str, Any] | None]] = []


def tool(annotations: ToolAnnotations, meta: dict[str, Any] | None = None) -> Callable[[F], F]:
    """Declare a tool (in this table's order); `app.create_server` registers it."""

    def declare(fn: F) -> F:
        TOOLS.append((fn, annotations, meta))
        return fn

    return declare


READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
WRITES_FILE = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)
DOWNLOAD = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)
PREVIEW = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)
# As a download, but it writes only verified index files to the server's cache: its meta keeps it in
# --read-only (see serve/read_only.py).
FETCH = DOWNLOAD
# Read-only, but open world: it reaches Google Cloud and scanned bytes are billed to the user's project.
BIGQUERY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)


# ---------------------------------------------------------------- query core: tables and SQL
@tool(READ_ONLY)
async def list_tables(ctx: Context) -> list[tables.TableSummary]:
    """List every IDC table: name, description, whether it is installed, and its row count.

    Call this first to see what can be queried; a table not installed shows the fetch_index call.
    """
    return await run_call(ctx, lambda call: tables.list_tables(call.catalog))


@tool(READ_ONLY)
async def describe_table(
    table: Annotated[str, Field(description="table name from list_tables(), e.g. 'index'")],
    ctx: Context,
    column: Annotated[str | None, Field(description="one column in full: every value, whole")] = None,
) -> tables.TableDescription:
    """Describe a table's columns, one line each: type, description, NULLs, top values with counts,
    format warnings.

    Call this before filtering, to use exact values; column= gives one column in full (also the values
    inside lists and structs, with the filter that works).
    """
    return await run_call(ctx, lambda call: tables.describe_table(call.catalog, table, column))


@tool(READ_ONLY)
async def query(
    sql: Annotated[str, Field(description="one read-only SELECT, DuckDB SQL")],
    ctx: Context,
    max_rows: MaxRows = 100,
) -> Annotated[CallToolResult, query_mod.QueryResult]:
    """Run one read-only SQL SELECT (DuckDB) over the IDC tables.

    Call it to count, filter or list series (`index`: one row per DICOM series). A wrong name or value,
    or no match, gets `diagnostics` saying what to change.
    """
    result = await run_call(
        ctx, lambda call: query_mod.run_query(call.catalog, sql, max_rows), reports_progress=False
    )
    return json_reply(result)


# ---------------------------------------------------------------- collections and selections
@tool(READ_ONLY)
async def list_collections(
    ctx: Context,
    topic: Annotated[
        str | None, Field(description="words in id, name, cancer types, sites, modalities, description")
    ] = None,
    cancer_type: Annotated[str | None, Field(description="in cancer_types, e.g. 'lung'")] = None,
    tumor_location: str | None = None,
    modality: Annotated[str | None, Field(description="e.g. 'MR'")] = None,
    license: Annotated[str | None, Field(description="e.g. 'CC BY 4.0', 'NC'")] = None,
) -> collections.CollectionList:
    """List IDC collections with cancer types, sites, modalities, series, size, licenses, DOIs.

    Call this to find collections for a topic before selecting data; filters combine with AND.
    """
    return await run_call(
        ctx,
        lambda call: collections.list_collections(
            call.catalog, cancer_type, tumor_location, modality, license, topic
        ),
    )


@tool(READ_ONLY)
@takes_selection
async def check_licenses(ctx: Context, selection: Selection) -> licenses.LicenseReport:
    """Say which licenses cover a selection (series, size, URL each) and whether it may be used
    commercially.

    Call this before any download, redistribution or commercial use.
    """
    return await run_call(ctx, lambda call: licenses.check_licenses(call.catalog, selection))


@tool(READ_ONLY)
@takes_selection
async def estimate_size(
    ctx: Context,
    selection: Selection,
    download_dir: Annotated[
        str | None,
        Field(description="download root folder to check free space in"),
    ] = None,
) -> sizes.SizeEstimate:
    """Count the series (original and derived), files and size of a selection; check free space.

    Call this before downloading or when asked how big data is.
    """
    return await run_call(
        ctx,
        lambda call: sizes.estimate_size(
            call.catalog, selection, download_dir, call.settings.download_root, call.settings.read_only
        ),
    )


@tool(READ_ONLY)
async def get_viewer_url(
    ctx: Context,
    series_uid: viewers.SeriesUidArg = None,
    study_uid: viewers.StudyUidArg = None,
    viewer: viewers.ViewerArg = "auto",
) -> viewers.ViewerLinks:
    """Make web-viewer links for series or a study (no download, no login).

    Call this when the user wants to see the images: a link per series (up to 50) or for a study.
    """
    return await run_call(
        ctx, lambda call: viewers.get_viewer_url(call.catalog, series_uid, study_uid, viewer)
    )


@tool(READ_ONLY)
@takes_selection
async def get_citations(
    ctx: Context,
    selection: Selection,
    format: Annotated[citations.CitationFormat, Field(description="apa: titles *italic*")] = "text",
) -> citations.Citations:
    """Give the citations a selection requires: one per source DOI, plus the IDC platform paper.

    Call this whenever data will be used or published (the licenses require attribution).
    """
    return await run_call(ctx, lambda call: citations.get_citations(call.catalog, selection, format))


@tool(READ_ONLY)
@takes_selection
async def get_dicomweb_urls(ctx: Context, selection: Selection) -> viewers.DicomwebUrls:
    """List DICOMweb URLs (IDC's public proxy) for a selection's series.

    Call this when a DICOMweb client or viewer needs them; the proxy is quota-limited, for viewing
    only (to download: download or export_manifest).
    """
    return await run_call(ctx, lambda call: viewers.get_dicomweb_urls(call.catalog, selection))


@tool(WRITES_FILE)
@takes_selection
async def export_manifest(
    ctx: Context,
    selection: Selection,
    format: manifest.FormatArg = "s5cmd",
    path: manifest.PathArg = None,
    dir_template: Annotated[str | None, Field(description="as in download")] = None,
) -> manifest.Manifest:
    """Export a selection as an s5cmd manifest (a folder per series) or a CSV, inline or as a file.

    Call this when the user downloads with their own tools or keeps a record of a cohort.
    """
    return await run_call(
        ctx,
        lambda call: manifest.export_manifest(
            call.catalog,
            selection,
            format,
            path,
            call.settings.download_root,
            call.settings.s3_endpoint_url,
            dir_template,
        ),
    )


# ---------------------------------------------------------------- saved cohorts (docs/cohorts.md)
@tool(WRITES_FILE)
@takes_selection
async def save_cohort(
    name: Annotated[str, Field(description="file name: letters, digits, _ - .")],
    description: Annotated[str, Field(max_length=4000, description="what the cohort is, for whom")],
    ctx: Context,
    selection: Selection,
    overwrite: bool = False,
) -> cohorts_mod.CohortSaved:
    """Save a selection as a named, shareable cohort file, each series pinned to today's version.

    Call this before any download the user may need to reproduce (a paper, a model).
    """
    return await run_call(
        ctx,
        lambda call: cohorts_mod.save_cohort(
            call.catalog, call.settings.download_root, name, description, selection, overwrite
        ),
    )


@tool(READ_ONLY)
async def list_cohorts(ctx: Context) -> cohorts_mod.CohortList:
    """List the saved cohorts: name, description, release, series.

    Call this when the user names a cohort or asks what was saved.
    """
    return await run_call(ctx, lambda call: cohorts_mod.list_cohorts(call.settings.download_root))


@tool(READ_ONLY)
async def compare_cohort(name: str, ctx: Context) -> cohorts_mod.CohortComparison:
    """Compare a saved cohort with the current IDC release: members unchanged, revised (when),
    removed; series its query would add today.

    Call this before reusing an old cohort.
    """
    return await run_call(
        ctx, lambda call: cohorts_mod.compare_cohort(call.catalog, call.settings.download_root, name)
    )


@tool(WRITES_FILE)
async def import_cohort(
    name: Annotated[str, Field(description="cohort name to save as")],
    ctx: Context,
    path: Annotated[str | None, Field(description="export file in the download root")] = None,
    content: Annotated[str | None, Field(description="or the export's text")] = None,
    description: str = "",
    overwrite: bool = False,
) -> cohorts_mod.CohortSaved:
    """Save an IDC portal export (s5cmd manifest, or CSV/JSON with idc_data_version) as a cohort
    at the versions it names.

    Call this when the user has a manifest or portal export.
    """

    def work(call: Any) -> cohorts_mod.CohortSaved:
        root = call.settings.download_root
        text, source = cohorts_mod.read_export(root, path, content)
        return cohorts_mod.import_cohort(call.catalog, root, name, description, text, source, overwrite)

    return await run_call(ctx, work)


@tool(READ_ONLY)
@takes_selection
async def whats_new(
    since_release: Annotated[int, Field(ge=1, description="IDC release number, e.g. 21")],
    ctx: Context,
    selection: Selection,
) -> cohorts_mod.WhatsNew:
    """Count and list the series of a selection added or revised after an IDC release.

    Call this when asked what is new since a release.
    """
    return await run_call(ctx, lambda call: cohorts_mod.whats_new(call.catalog, selection, since_release))


# ---------------------------------------------------------------- download
@tool(DOWNLOAD)
@takes_selection
async def download(
    ctx: Context,
    selection: Selection,
    download_dir: dl.DownloadDir = None,
    dir_template: dl.DirTemplate = None,
    dry_run: dl.DryRun = False,
) -> dl.DownloadResult:
    """Download a selection's DICOM files to the local download root (verified; a new call resumes),
    with LICENSE and CITATION texts.

    Call after check_licenses and estimate_size; start with dry_run=true.
    """
    from idc_mcp.download.engine import DownloadCounter
    from idc_mcp.download.service import progress_update, run_download

    progress = DownloadCounter()
    return await run_call(
        ctx,
        lambda call: run_download(
            call.catalog, call.settings, selection, download_dir, dir_template, dry_run, progress, call.cancel
        ),
        wait_for_stop=True,  # the engine removes its temporaries before the call ends
        progress=lambda: progress_update(progress),
    )


# ---------------------------------------------------------------- analysis-ready data
@tool(DOWNLOAD)
@takes_selection
async def prepare_dataset(
    ctx: Context,
    selection: Selection,
    layout: prep.Layout = "plain",
    output_dir: str | None = None,
    commercial: bool = False,
    split: list[float] | None = None,
    seed: int = 0,
    dry_run: bool = False,
) -> prep.PrepareResult:
    """Make a selection analysis-ready: NIfTI volumes, SEG/RTSTRUCT label maps on the image grid, SR
    measurement tables, a plain/nnunet/monai layout and a dataset card; split=[train,val,test] by patient.

    Call when the user wants to train or analyse, after check_licenses; dry_run=true first.
    """
    from idc_mcp.prepare.engine import PrepareCounter, Request
    from idc_mcp.prepare.service import progress_update, run_prepare

    progress = PrepareCounter()
    request = Request(layout, output_dir, commercial, tuple(split or (0.7, 0.15, 0.15)), seed, dry_run)
    return await run_call(
        ctx,
        lambda call: run_prepare(call.catalog, call.settings, selection, request, progress, call.cancel),
        wait_for_stop=True,  # finished series stay, the converter is stopped and its temporaries removed
        progress=lambda: progress_update(progress),
    )


# ---------------------------------------------------------------- previews
@tool(PREVIEW)
async def preview_series(
    series_uid: Annotated[str, Field(description="a SeriesInstanceUID")],
    ctx: Context,
    kind: preview.KindArg = "auto",
    window: preview.WindowArg = None,
    slices: preview.SlicesArg = preview.DEFAULT_SLICES,
    cohort: CohortName = None,
) -> Annotated[CallToolResult, preview.PreviewInfo]:
    """Show a series as an image (PNG/JPEG, at most 1024 px), fetching only the bytes it needs.

    Call this to check that a series is what the user means (anatomy, contrast, quality, the right
    segmentation) before download, or when asked what a series looks like.
    """
    return await preview_reply(ctx, series_uid, kind, window, slices, cohort=cohort)


# ---------------------------------------------------------------- specialized indices
@tool(FETCH, meta={WRITES: SERVER_CACHE})
async def fetch_index(
    name: Annotated[str, Field(description="e.g. 'sm_index'")],
    ctx: Context,
) -> common.FetchResult:
    """Install a specialized IDC index for query (cached).

    Call it when list_tables() shows a table not installed or a reply says to: sm_index (slides),
    seg_index (segmentations), mr_index, clinical_index (and clinical_* tables), ...
    """
    from idc_mcp.indices.fetch import fetch_index as fetch

    return await run_call(
        ctx,
        lambda call: fetch(call.catalog, name, call.report, call.cancel),
        wait_for_stop=True,  # the fetch releases its lock and removes its partial files first
    )


# ---------------------------------------------------------------- BigQuery
@tool(BIGQUERY)
async def bigquery_query(
    sql: bigquery.BigQuerySql,
    ctx: Context,
    max_rows: MaxRows = 100,
    max_gb: bigquery.MaxGb = None,
) -> bigquery.BigQueryResult:
    """Query IDC's full DICOM metadata in BigQuery (the user's Google Cloud project pays per byte
    scanned; dry-run first, refused above a cap).

    Call it only when the local tables cannot answer: instance rows (dicom_all), other DICOM attributes,
    segments, SR measurements, past releases (idc_v<N>). Read few columns; call describe_bigquery_table
    first. SeriesInstanceUID in the result gives a `selection`.
    """
    from idc_mcp.bigquery.service import run_bigquery_query

    # Cancelled, the call returns at once: the job is cancelled in BigQuery without waiting for its answer.
    return await run_call(
        ctx,
        lambda call: run_bigquery_query(
            call.settings, call.catalog, sql, max_rows, max_gb, cancel=call.cancel, progress=call.report
        ),
    )


@tool(BIGQUERY)
async def describe_bigquery_table(
    table: bigquery.TableArg,
    ctx: Context,
    column_filter: bigquery.ColumnFilter = None,
) -> bigquery.BigQueryTableDescription:
    """Describe an IDC BigQuery table from its live schema (columns, nested fields, types,
    descriptions; size, rows). Free.

    Call it before bigquery_query to use real names (dicom_all has thousands: pass column_filter).
    """
    from idc_mcp.bigquery.service import describe_bigquery_table as describe

    return await run_call(ctx, lambda call: describe(call.settings, table, column_filter))
