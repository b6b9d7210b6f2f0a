"""The server stays under 1 GiB (its process and its query worker together) under the exhaustion corpus.

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

from tests.test_security import ONE_GIB, QUERY_TIMEOUT_S, RESOURCE_EXHAUSTION, SELECTION_DOUBLING, PeakRss

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


class ChildPeakRss(PeakRss):
    """Samples the resident memory of the server process this test started (`python -m idc_mcp`) and of
    all its children, and remembers which of its workers it saw (`seen["catalog.worker"]`,
    `seen["preview.worker"]`: process ids)."""

    ROLES = ("catalog.worker", "preview.worker")

    def __init__(self) -> None:
        super().__init__()
        self._process = None  # type: ignore[assignment]
        self.found = threading.Event()
        self.seen: dict[str, set[int]] = {role: set() for role in self.ROLES}

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.01):
            if self._process is None:
                # The server this test started (not a worker an in-process test left running).
                servers = [p for p in me.children() if p.cmdline()[1:3] == ["-m", "idc_mcp"]]
                if not servers:
                    continue
                self._process = servers[0]
                self.found.set()
            try:
                tree = [self._process, *self._process.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for process in tree:
                try:
                    total += process.memory_info().rss
                    command = " ".join(process.cmdline())
                except psutil.NoSuchProcess:
                    continue
                for role in self.ROLES:
                    if role in command:
                        self.seen[role].add(process.pid)
            self.peak = max(self.peak, total)


async def test_server_process_memory_stays_under_one_gib_under_the_exhaustion_corpus(
    built_catalog: Path,
) -> None:
    # The catalog is built first: a first-ever build is a one-time child process, not caused by SQL.
    env = dict(os.environ, IDC_MCP_QUERY_TIMEOUT=str(QUERY_TIMEOUT_S))
    server = StdioServerParameters(command=sys.executable, args=["-m", "idc_mcp"], env=env, cwd=str(ROOT))
    with ChildPeakRss() as sampler, anyio.fail_after(300):
        async with Client(server, mode="legacy", read_timeout_seconds=120) as client:
            for name, sql in RESOURCE_EXHAUSTION.items():
                result = await client.call_tool("query", {"sql": sql})
                if not result.is_error:
                    assert result.structured_content is not None, name
            # The CTE doubling through the `sql` selection argument (5 GiB, 3.6 GiB before).
            for tool in ("check_licenses", "get_dicomweb_urls"):
                result = await client.call_tool(tool, {"sql": SELECTION_DOUBLING})
                assert result.is_error
            # Still answering after the corpus.
            after = await client.call_tool(
                "query", {"sql": "SELECT count(*) AS n FROM version_metadata_index"}
            )
            assert not after.is_error
    assert sampler.found.is_set(), "the server process was never seen"
    assert sampler.seen["catalog.worker"], "the query worker was never seen"
    # The whole tree: the server process and its query worker(s), summed at each sample.
    assert 0 < sampler.peak < ONE_GIB, f"server peak RSS under the corpus: {sampler.peak / 2**20:.0f} MiB"
