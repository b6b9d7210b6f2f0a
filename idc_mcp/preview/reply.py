"""The reply of a tool that shows a series (`preview_series`, the explorer's `explorer_image`): the picture,
drawn in a killable preview worker (deadline, memory cap), as an image the client shows, and its facts as
text and as structured content."""

from __future__ import annotations

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.utilities.types import Image
from mcp_types import CallToolResult, TextContent

from idc_mcp.calls import app_state, run_call
from idc_mcp.preview.models import Kind


async def preview_reply(
    ctx: Context,
    series_uid: str,
    kind: Kind,
    window: str | None,
    slices: int,
    *,
    cohort: str | None = None,
    at: int | str | None = None,
) -> CallToolResult:
    """One picture of a series (`at`: a slice by index or an instance; `cohort`: the series as a saved
    cohort pinned it), with its facts."""
    previews = app_state(ctx).previews
    made = await run_call(
        ctx,
        lambda call: previews.make(
            call.catalog,
            call.settings.s3_endpoint_url,
            call.settings.cache_dir / "previews",
            series_uid,
            kind,
            window,
            slices,
            cancel=call.cancel,
            cohort=cohort,
            cohort_root=call.settings.download_root,
            at=at,
        ),
    )
    image = Image(data=made.image, format=made.mime_type.split("/")[1]).to_image_content()
    return CallToolResult(
        content=[image, TextContent(type="text", text=made.summary())],
        structured_content=made.info.model_dump(mode="json"),
    )
