"""`create_server(settings)`: the one way to build the MCP server.

The factory makes the server's state once (the settings and the catalog opened with them), registers the
tool table (server.py), the resources and prompts (docs/surface.py) and the instructions, and gives the
server a lifespan that hands that state to every session. When the last session ends, the lifespan closes
the catalog: its query worker is stopped, not left to die with this process. The command line builds its
server here; tests build as many servers as they need, each with its own settings.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from mcp_types import Resource as MCPResource
from mcp_types import Tool as MCPTool
from pydantic import ValidationError

from idc_mcp import __version__
from idc_mcp.calls import AppState
from idc_mcp.catalog.database import Catalog
from idc_mcp.config import Settings
from idc_mcp.guides import prompts, surface
from idc_mcp.preview.runner import PreviewWorkers
from idc_mcp.tools import arguments

log = logging.getLogger(__name__)
# How long the last session's end waits for the catalog to close (an open still building the catalog
# file for the first time holds it longer: it finishes on its own, see cli._let_background_open_finish).
CLOSE_WAIT_S = 1.0


class IdcServer(MCPServer[AppState]):
    """MCPServer whose argument-validation errors read like our own errors (no pydantic text or links),
    and whose input and output schemas are sent without what only costs tokens and validation time
    (see `arguments.compact_schema`: a client compiles each output schema and checks every reply
    against it).

    The SDK has no hook for either: the compacted schemas are made from its public `list_tools()`
    (remembered until a tool is added or removed), and its `call_tool` is wrapped."""

    def __init__(self, state: AppState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self._schemas: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] | None = None

    def add_tool(self, *args: Any, **kwargs: Any) -> None:
        super().add_tool(*args, **kwargs)
        self._schemas = None

    def remove_tool(self, name: str) -> None:
        super().remove_tool(name)
        self._schemas = None

    async def _compacted(self) -> dict[str, tuple[dict[str, Any], dict[str, Any] | None]]:
        """Each tool's (input, output) schema as sent: made once, looked up by every call."""
        if self._schemas is None:
            self._schemas = {
                t.name: (
                    arguments.omittable_without_null(
                        arguments.compact_schema(arguments.inline_definitions(t.input_schema))
                    ),
                    arguments.compact_schema(arguments.inline_definitions(t.output_schema)),
                )
                for t in await super().list_tools()
            }
        return self._schemas

    async def list_tools(self) -> list[MCPTool]:
        schemas = await self._compacted()
        return [
            t.model_copy(
                update={
                    "description": inspect.cleandoc(t.description or ""),  # no docstring indentation
                    "input_schema": schemas[t.name][0],
                    "output_schema": schemas[t.name][1],
                }
            )
            for t in await super().list_tools()
        ]

    async def list_resources(self) -> list[MCPResource]:
        """The fixed resources, and one `idc://cohorts/{name}` per saved cohort (cohort files come and go)."""
        from idc_mcp.cohorts.store import names
        from idc_mcp.errors import AssistantError

        try:
            saved = await anyio.to_thread.run_sync(names, self.state.settings.download_root)
        except (OSError, AssistantError):  # a download root that cannot be created: no cohorts to list
            saved = []
        cohorts = [
            MCPResource(
                uri=f"idc://cohorts/{n}",
                name=f"cohort:{n}",
                title=f"cohort {n}",
                mime_type="application/json",
            )
            for n in saved
        ]
        return await super().list_resources() + cohorts

    async def run_stdio_async(self) -> None:
        """Serve stdio on the event loop's pipe transports (serve/stdio_pipes.py: no thread hop per line);
        the SDK's own threads where stdin and stdout are not pipes or sockets."""
        from mcp.server.stdio import stdio_server

        from idc_mcp.serve import stdio_pipes

        # The one private name used here: MCPServer has no public way to run its lowlevel server on
        # streams of our own. Without it (a renamed attribute), the SDK's stdio path serves as before.
        lowlevel = getattr(self, "_lowlevel_server", None)
        wire = stdio_pipes.claim() if lowlevel is not None else None
        if wire is None:
            await super().run_stdio_async()
            return
        try:
            async with (
                stdio_pipes.streams(wire) as (stdin, stdout),
                stdio_server(stdin, stdout) as (read_stream, write_stream),
            ):
                await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
        finally:
            wire.release()

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Any = None
    ) -> Any:
        """Arguments checked against the prompt's declaration first: a wrong name answers with what the
        prompt takes (the SDK would log a traceback and answer 'Internal server error')."""
        known = {
            p.name: [(a.name, bool(a.required)) for a in p.arguments or []] for p in await self.list_prompts()
        }
        if problem := prompts.argument_problem(name, known, arguments):
            raise MCPError(code=INVALID_PARAMS, message=problem)
        return await super().get_prompt(name, arguments, context)

    async def call_tool(self, name: str, arguments_: dict[str, Any], context: Context | None = None) -> Any:  # type: ignore[override]
        schema = (await self._compacted()).get(name, (None, None))[0]
        if schema is not None and (unknown := arguments.unknown_arguments(name, schema, arguments_ or {})):
            raise ToolError(unknown)
        try:
            return await super().call_tool(name, arguments_, context)
        except ToolError as exc:
            cause = exc.__cause__
            if not isinstance(cause, ValidationError):
                raise
            errors = cause.errors(include_url=False)
            raise ToolError(arguments.explain_arguments(name, schema or {}, arguments_, errors)) from cause


def create_server(
    settings: Settings, catalog: Catalog | None = None, *, close_catalog: bool = True
) -> IdcServer:
    """The MCP server for `settings`.

    `catalog`: one already opening with these settings (the command line starts its query worker before
    it imports the server); by default a new one, opened on first use. The lifespan closes it when the
    last session ends; `close_catalog=False` leaves it open for its owner (tests share one catalog across
    many short-lived servers).
    """
    from idc_mcp import server as table  # the tool table: imported here, so this module stays light

    state = AppState(
        settings,
        catalog if catalog is not None else Catalog(settings),
        PreviewWorkers(settings.preview_timeout_s),
    )
    sessions = 0

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncIterator[AppState]:
        nonlocal sessions
        sessions += 1
        try:
            yield state
        finally:
            sessions -= 1
            if sessions == 0:
                state.previews.close()  # the spare preview worker; a later preview starts another
            if sessions == 0 and close_catalog:
                with anyio.move_on_after(CLOSE_WAIT_S, shield=True):
                    await anyio.to_thread.run_sync(state.catalog.close, abandon_on_cancel=True)

    from idc_mcp.apps.surface import apps  # the explorer MCP App: `explore`, its ui:// page, app-only tools

    server = IdcServer(
        state,
        name="idc-mcp",
        version=__version__,
        instructions=surface.INSTRUCTIONS,
        lifespan=lifespan,
        extensions=[apps],
    )
    for fn, hints, meta in table.TOOLS:
        server.add_tool(fn, annotations=hints, meta=meta)
    surface.register(server, state.catalog)
    _register_cohort_resource(server, state)
    return server


def _register_cohort_resource(server: IdcServer, state: AppState) -> None:
    from mcp.server.mcpserver.exceptions import ResourceNotFoundError

    from idc_mcp.cohorts.format import CohortError, to_text
    from idc_mcp.cohorts.store import load

    @server.resource(
        "idc://cohorts/{name}", name="cohort", title="Saved cohort", mime_type="application/json"
    )
    def cohort_resource(name: str) -> str:
        """A saved cohort file (docs/cohorts.md): its definition and members, each pinned to one version."""
        try:
            return to_text(load(state.settings.download_root, name))
        except CohortError as exc:
            raise ResourceNotFoundError(str(exc)) from exc
