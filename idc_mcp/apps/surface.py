"""The explorer as an MCP App: the `explore` tool the model calls, the `ui://idc/explorer` resource (one
self-contained HTML file, built from `src/` and committed), and the tools only the app calls
(visibility `app`: hosts keep them out of the model's tool list and context).

The app's actions (check_licenses, estimate_size, export_manifest, download, save_cohort,
get_viewer_url) are the server's own tools called through the host, so they refuse exactly what they
refuse for the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from mcp.server.apps import APP_MIME_TYPE, Apps, ResourceCsp
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resources import FileResource
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from idc_mcp import preview
from idc_mcp.apps import explorer
from idc_mcp.calls import run_call
from idc_mcp.preview.reply import preview_reply
from idc_mcp.tools.selection import (
    AnalysisResults,
    AnalysisResultsArg,
    CollectionIds,
    PatientIds,
    Selection,
    SelectionSql,
    SeriesUids,
    StudyUids,
)

URI = "ui://idc/explorer"
HTML = Path(__file__).with_name("explorer.html")
# Where "open in IDC's viewer" may lead (the app asks the host to open only these: tools/viewers.py).
VIEWER_DOMAINS = ["https://viewer.imaging.datacommons.cancer.gov"]
# No remote scripts, styles, fonts or connections: everything is inline and images are data: URIs.
CSP = ResourceCsp(connect_domains=[], resource_domains=[], frame_domains=[], base_uri_domains=[])
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
IMAGES = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)

apps = Apps()
apps.add_resource(
    FileResource(
        uri=URI,
        name="idc_explorer",
        title="IDC explorer",
        description="Interactive overview, series grid and viewer of an IDC selection (MCP App).",
        mime_type=APP_MIME_TYPE,
        path=HTML,
        encoding="utf-8",
        meta={
            "ui": {
                "csp": CSP.model_dump(by_alias=True, exclude_none=True),
                "prefersBorder": True,
                "viewerDomains": VIEWER_DOMAINS,
            }
        },
    )
)


class SelectionArgs(BaseModel):
    """The selection the app was opened with (the arguments of every selection tool)."""

    model_config = ConfigDict(extra="forbid")  # a misspelled or forged field is refused, not dropped

    collection_ids: list[str] | None = None
    patient_ids: list[str] | None = None
    study_uids: list[str] | None = None
    series_uids: list[str] | None = None
    sql: str | None = None
    analysis_results: AnalysisResults = "include"

    def selection(self) -> Selection:
        return Selection(**self.model_dump())


FiltersArg = Annotated[dict[explorer.Facet, list[str]] | None, Field(description="facet -> exact values")]


@apps.tool(resource_uri=URI, annotations=READ_ONLY)
async def explore(
    ctx: Context,
    collection_ids: CollectionIds = None,
    patient_ids: PatientIds = None,
    study_uids: StudyUids = None,
    series_uids: SeriesUids = None,
    sql: SelectionSql = None,
    analysis_results: AnalysisResultsArg = "include",
) -> Annotated[CallToolResult, explorer.Overview]:
    """Open an interactive explorer of a selection: charts, series previews, viewer, actions.

    Call it when the user wants to look at and narrow data themselves. Also answers in text.
    """
    args = SelectionArgs(
        collection_ids=collection_ids, patient_ids=patient_ids, study_uids=study_uids,
        series_uids=series_uids, sql=sql, analysis_results=analysis_results,
    )  # fmt: skip
    view = await run_call(ctx, lambda call: explorer.overview(call.catalog, args.selection()))
    return CallToolResult(
        content=[TextContent(type="text", text=explorer.summary(view))],
        structured_content=view.model_dump(mode="json"),
    )


@apps.tool(resource_uri=URI, visibility=["app"], annotations=READ_ONLY)
async def explorer_overview(
    ctx: Context, selection: SelectionArgs, filters: FiltersArg = None
) -> explorer.Overview:
    """Called by the explorer app only: totals and counts by facet of the selection narrowed by filters."""
    return await run_call(
        ctx,
        lambda call: explorer.overview(call.catalog, selection.selection(), filters),  # type: ignore[arg-type]
    )


@apps.tool(resource_uri=URI, visibility=["app"], annotations=READ_ONLY)
async def explorer_series(
    ctx: Context,
    selection: SelectionArgs,
    filters: FiltersArg = None,
    page: Annotated[int, Field(ge=1, le=explorer.MAX_PAGE)] = 1,
    page_size: Annotated[int, Field(ge=1, le=explorer.MAX_PAGE_SIZE)] = explorer.PAGE_SIZE,
) -> explorer.SeriesPage:
    """Called by the explorer app only: one page of series cards of the narrowed selection."""
    return await run_call(
        ctx,
        lambda call: explorer.series_page(
            call.catalog,
            selection.selection(),
            filters,
            page,
            page_size,  # type: ignore[arg-type]
        ),
    )


@apps.tool(resource_uri=URI, visibility=["app"], annotations=IMAGES)
async def explorer_image(
    ctx: Context,
    series_uid: str,
    kind: preview.Kind = "auto",
    slice_index: Annotated[int | None, Field(ge=0)] = None,
    instance: Annotated[str | None, Field(max_length=64)] = None,
    window: str | None = None,
    slices: Annotated[int, Field(ge=2, le=preview.MAX_SLICES)] = preview.DEFAULT_SLICES,
) -> Annotated[CallToolResult, preview.PreviewInfo]:
    """Called by the explorer app only: one picture of a series (a slice by index or instance, a montage,
    a slide thumbnail or a SEG overlay) from the preview service, with its facts."""
    at: int | str | None = instance if instance is not None else slice_index
    return await preview_reply(ctx, series_uid, kind, window, slices, at=at)
