"""The server's own memory stays under 1 GiB while it is attacked with the resource-exhaustion corpus.

Measured on the real server process (`python -m idc_mcp` over stdio), not on the test process: a pytest
process that has run the rest of the suite carries that suite's memory, which says nothing about the
server's.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import anyio
import psutil
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.test_security import ONE_GIB, QUERY_TIMEOUT_S, RESOURCE_EXHAUSTION, PeakRss

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


class ChildPeakRss(PeakRss):
    """Samples the resident memory of the server process this test started."""

    def __init__(self) -> None:
        super().__init__()
        self._process = None  # type: ignore[assignment]
        self.found = threading.Event()

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.01):
            if self._process is None:
                servers = [p for p in me.children(recursive=True) if "idc_mcp" in " ".join(p.cmdline())]
                if not servers:
                    continue
                self._process = servers[0]
                self.found.set()
            try:
                self.peak = max(self.peak, self._process.memory_info().rss)
            except psutil.NoSuchProcess:
                return


async def test_server_process_memory_stays_under_one_gib_under_the_exhaustion_corpus() -> None:
    env = dict(os.environ, IDC_MCP_QUERY_TIMEOUT=str(QUERY_TIMEOUT_S))
    server = StdioServerParameters(command=sys.executable, args=["-m", "idc_mcp"], env=env, cwd=str(ROOT))
    with ChildPeakRss() as sampler, anyio.fail_after(300):
        async with Client(server, mode="legacy", read_timeout_seconds=120) as client:
            for name, sql in RESOURCE_EXHAUSTION.items():
                result = await client.call_tool("query", {"sql": sql})
                if not result.is_error:
                    assert result.structured_content is not None, name
            # Still answering after the corpus.
            after = await client.call_tool(
                "query", {"sql": "SELECT count(*) AS n FROM version_metadata_index"}
            )
            assert not after.is_error
    assert sampler.found.is_set(), "the server process was never seen"
    assert 0 < sampler.peak < ONE_GIB, f"server peak RSS under the corpus: {sampler.peak / 2**20:.0f} MiB"
