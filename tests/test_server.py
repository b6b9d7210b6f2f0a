"""The MCP surface, exercised in memory through a real client."""

import pytest
from mcp import Client

from tests.servers import server_from_environment

pytestmark = pytest.mark.anyio


async def test_query_tool_returns_structured_rows():
    async with Client(server_from_environment()) as client:
        result = await client.call_tool(
            "query",
            {"sql": "SELECT Modality, count(*) AS n FROM index GROUP BY 1 ORDER BY n DESC", "max_rows": 3},
        )
        assert not result.is_error
        data = result.structured_content
        assert data["columns"] == ["Modality", "n"]
        assert data["row_count"] == 3 and data["truncated"] is True


async def test_rejected_sql_reaches_the_assistant_as_a_tool_error():
    async with Client(server_from_environment()) as client:
        result = await client.call_tool("query", {"sql": "SELECT * FROM read_csv('/etc/passwd')"})
        assert result.is_error
        assert "read_csv" in result.content[0].text
