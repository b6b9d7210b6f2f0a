"""`--read-only`: the tools that write files for the caller are not offered at all.

A tool is classified where it is declared, by its MCP annotations: `read_only_hint=True` stays. A tool
that writes only to the server's own cache says so with `meta={WRITES: SERVER_CACHE}` and stays too
(fetch_index: a fixed list of index names, each verified, written once per data version; the caller
chooses neither the content nor the place, and the disk used is bounded by that list; see
docs/team-server.md). Every other tool, including one with no annotations, is removed: a new tool is
hidden until its declaration says it does not write.

Removed tools are gone from the server: `tools/list` does not show them and a direct `tools/call`
gets the SDK's unknown-tool error.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp_types import Tool

WRITES = "idc-mcp/writes"  # key in a tool's `_meta`
SERVER_CACHE = "server-cache"  # the tool writes only to the server's cache, never where the caller says


def writes_for_caller(tool: Tool) -> bool:
    if tool.annotations is not None and tool.annotations.read_only_hint is True:
        return False
    return (tool.meta or {}).get(WRITES) != SERVER_CACHE


async def restrict_to_read_only(server: MCPServer[Any]) -> list[str]:
    """Remove every tool that writes for the caller; return their names."""
    removed = [tool.name for tool in await server.list_tools() if writes_for_caller(tool)]
    for name in removed:
        server.remove_tool(name)
    return sorted(removed)
