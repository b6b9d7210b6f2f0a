"""BigQuery results that are too big to hold: each attack of issue 21 (section 3) on the real server.

A query that passes every guard can still return one enormous value: a 450-million-character string, a
50-million-element array, a 200-million-digit number. The library reads a whole API response before it
looks at it, so before the fix each of these took the server to 1.3-2.5 GiB, and the array ran past the
timeout. Now results are read in pages capped in rows and bytes (`idc_mcp/bigquery/transport.py`), and
the call's deadline holds while they are read.

The server is `python -m idc_mcp` over stdio, pointed at its own BigQuery emulator (started for this
module and stopped at its end: the emulator keeps building a huge answer after the server has given up
on it). Its memory is the whole tree (server and query worker), sampled while the attacks run.
"""

from __future__ import annotations

import http.server
import os
import re
import socketserver
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from idc_mcp.bigquery import transport
from tests.bqemulator import emulator_executable, start_emulator
from tests.test_security import ONE_GIB
from tests.test_server_memory import ChildPeakRss

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 120  # IDC_MCP_BQ_TIMEOUT of the server under attack (the emulator is slow to build them)
HUGE_STRING = "SELECT RPAD('x', 450000000, 'y') AS s"
HUGE_NUMBER = "SELECT FORMAT('%0200000000d', 1) AS f"
HUGE_ARRAY = "SELECT ARRAY(SELECT x FROM UNNEST(GENERATE_ARRAY(1, 50000000)) x) AS a"
LARGE_ARRAY = "SELECT ARRAY(SELECT x FROM UNNEST(GENERATE_ARRAY(1, 700000)) x) AS a"  # ~11 MB of JSON


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    started = start_emulator(emulator_executable(), tmp_path_factory.mktemp("bqemulator-attacks"))
    try:
        yield started.endpoint
    finally:
        started.stop()


def _text(result) -> str:  # type: ignore[no-untyped-def]
    return result.content[0].text  # type: ignore[union-attr]


def test_a_page_over_its_byte_cap_is_read_again_in_fewer_rows(emulator: str, built_catalog: Path) -> None:
    # 100 rows of 200,000 characters: a 20 MB page. Asked again in pages that fit, every row arrives
    # (each value cut for the reply), none of the pages over 8 MiB is kept.
    from idc_mcp.bigquery.service import run_bigquery_query
    from idc_mcp.catalog.database import get_catalog
    from idc_mcp.config import load_settings

    settings = load_settings(bq_api_endpoint=emulator, bq_project="idc-mcp-attacks")
    sql = "SELECT n, RPAD('x', 200000, 'y') AS s FROM UNNEST(GENERATE_ARRAY(1, 100)) AS n ORDER BY n"
    result = run_bigquery_query(settings, get_catalog(), sql, 100)
    assert [row["n"] for row in result.rows] == list(range(1, 101))
    assert all(row["s"].endswith("…[cut: 200,000 chars in all]") for row in result.rows)
    assert not result.truncated


async def test_huge_bigquery_values_are_refused_and_the_server_stays_under_one_gib(
    emulator: str, built_catalog: Path
) -> None:
    env = dict(
        os.environ,
        IDC_MCP_BQ_API_ENDPOINT=emulator,
        IDC_MCP_BQ_PROJECT="idc-mcp-attacks",
        IDC_MCP_BQ_TIMEOUT=str(DEADLINE_S),
    )
    server = StdioServerParameters(command=sys.executable, args=["-m", "idc_mcp"], env=env, cwd=str(ROOT))
    with ChildPeakRss() as sampler, anyio.fail_after(600):
        async with Client(server, mode="legacy", read_timeout_seconds=300) as client:
            # One value larger than a page: refused with what to select instead, nothing of it kept.
            for sql in (HUGE_STRING, HUGE_NUMBER, LARGE_ARRAY):
                result = await client.call_tool("bigquery_query", {"sql": sql})
                assert result.is_error, sql
                assert "larger than 8 MiB" in _text(result) and "SUBSTR" in _text(result), _text(result)
            # Still answering.
            ok = await client.call_tool("bigquery_query", {"sql": "SELECT 40 + 2 AS answer"})
            assert not ok.is_error and ok.structured_content["rows"] == [{"answer": 42}]  # type: ignore[index]
            # 50 million elements: the call ends either at a deadline (a request's 30 s, or the job's: the
            # emulator may need longer than that to run it and build its answer) or, when the emulator is
            # quicker, at the first row's page cap. Which one depends on the machine; both are bounded,
            # and the tree's peak below holds for either.
            with anyio.fail_after(DEADLINE_S + 60):
                result = await client.call_tool("bigquery_query", {"sql": HUGE_ARRAY})
            assert result.is_error
            assert re.search(r"longer than \d+ s|within \d+ s|larger than 8 MiB", _text(result)), _text(
                result
            )
    assert sampler.found.is_set(), "the server process was never seen"
    assert 0 < sampler.peak < ONE_GIB, f"server peak RSS under the attacks: {sampler.peak / 2**20:.0f} MiB"


# ------------------------------------------------------------------ the capped transport on its own
class _Endless(http.server.BaseHTTPRequestHandler):
    """Answers with a body that never ends (chunked, no length), fast or one byte at a time."""

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        slow = self.path == "/slow"
        chunk = b"x" if slow else b"y" * 65536
        try:
            while True:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                if slow:
                    self.wfile.flush()
                    time.sleep(0.05)  # a trickle: each read returns in time, the whole never does
        except OSError:
            return  # the client gave up: what this test waits for

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def endless() -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Endless)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_endless_response_is_given_up_at_its_byte_cap(endless: str) -> None:
    from google.auth.credentials import AnonymousCredentials

    session = transport.capped_session(AnonymousCredentials())
    with transport.reading(1_000_000, None), pytest.raises(transport.ResponseTooLarge):
        session.get(f"{endless}/fast", timeout=30)


def test_a_trickling_response_is_given_up_at_the_call_deadline(endless: str) -> None:
    from google.auth.credentials import AnonymousCredentials

    session = transport.capped_session(AnonymousCredentials())
    # Each byte arrives well within the socket timeout; only the call's deadline can end the read.
    with transport.reading(1_000_000, time.monotonic() + 1.0), pytest.raises(transport.DeadlinePassed):
        session.get(f"{endless}/slow", timeout=30)
