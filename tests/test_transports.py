"""End to end: the server as a real subprocess, over stdio and over streamable HTTP.

What Claude Desktop / Claude Code launch is `python -m idc_mcp` speaking JSON-RPC on stdin/stdout;
these tests talk to exactly that, with the mcp client, and check the answer against plain DuckDB
over the bundled parquet.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import duckdb
import filelock
import idc_index_data
import psutil
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from idc_mcp.catalog.build import CATALOG_FILE, lock_path
from tests.mcp_wire import INITIALIZE

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # each test starts a server process

ROOT = Path(__file__).resolve().parent.parent
PARQUET = Path(idc_index_data.__file__).parent / "idc_index.parquet"
CORE_TOOLS = {"list_tables", "describe_table", "query"}
COUNT_SQL = "SELECT count(*) AS n FROM index WHERE collection_id = 'tcga_luad' AND Modality = 'CT'"
TIMEOUT_S = 120  # bounds every test; the first-ever catalog build on a slow machine fits in it


def _expected_count() -> int:
    """The same figure, computed independently with plain DuckDB over the bundled parquet file."""
    sql = (
        f"SELECT count(*) FROM read_parquet('{PARQUET}') "
        "WHERE collection_id = 'tcga_luad' AND Modality = 'CT'"
    )
    return int(duckdb.sql(sql).fetchone()[0])  # type: ignore[index]


def _server(*args: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "idc_mcp", *args], env=env or dict(os.environ), cwd=str(ROOT)
    )


async def _check_session(client: Client) -> None:
    tools = {tool.name for tool in (await client.list_tools()).tools}
    assert CORE_TOOLS <= tools
    result = await client.call_tool("query", {"sql": COUNT_SQL})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.structured_content["rows"] == [{"n": _expected_count()}]


async def test_stdio_server_answers_initialize_tools_list_and_a_query() -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with Client(_server(), mode="legacy", read_timeout_seconds=TIMEOUT_S) as client:
            assert client.server_info is not None and client.server_info.name == "idc-mcp"
            await _check_session(client)


async def test_stdio_handshake_does_not_wait_for_the_catalog(tmp_path: Path) -> None:
    # Hold the catalog build lock of an empty cache folder: opening the catalog blocks until the test
    # ends, so initialize and tools/list can only answer if they never touch the catalog.
    env = dict(os.environ, IDC_MCP_CACHE_DIR=str(tmp_path))
    version_dir = tmp_path / idc_index_data.__version__
    version_dir.mkdir()
    with filelock.FileLock(lock_path(version_dir / CATALOG_FILE)):
        with anyio.fail_after(30):
            async with Client(_server(env=env), mode="legacy") as client:
                tools = {tool.name for tool in (await client.list_tools()).tools}
                assert CORE_TOOLS <= tools
        assert not any(version_dir.glob("catalog*.duckdb"))  # nothing was built: the lock was ours


def test_stdio_server_exits_cleanly_when_the_session_ends_during_the_catalog_open() -> None:
    # Regression: the client hangs up right after the handshake while the background thread is still
    # inside DuckDB opening the catalog; Python's shutdown then made DuckDB abort the process (exit 134).
    handshake = [INITIALIZE, {"jsonrpc": "2.0", "method": "notifications/initialized"}]
    done = subprocess.run(
        [sys.executable, "-m", "idc_mcp"],
        input="".join(json.dumps(m) + "\n" for m in handshake),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[0])["id"] == 1


def test_stdio_stdout_carries_only_protocol_and_logs_go_to_stderr(tmp_path: Path) -> None:
    # Debug logging on: every log line must land on stderr, and stdout must be pure JSON-RPC.
    messages = [
        INITIALIZE,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "query", "arguments": {"sql": COUNT_SQL}},
        },
    ]
    stderr_file = tmp_path / "stderr.txt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "idc_mcp", "--log-level", "DEBUG"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr_file.open("w"),  # a file, not a pipe: debug logs cannot fill it and block the server
        text=True,
        cwd=ROOT,
    )
    watchdog = threading.Timer(TIMEOUT_S, proc.kill)  # bounds the blocking reads below
    watchdog.start()
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
        proc.stdin.flush()
        replies = []
        while not any(reply.get("id") == 3 for reply in replies):
            line = proc.stdout.readline()
            assert line, "the server closed stdout before answering the query"
            replies.append(json.loads(line))  # fails on any non-JSON line
        proc.stdin.close()  # end of session: the server exits on its own
        replies.extend(json.loads(line) for line in proc.stdout.read().splitlines())
        proc.wait(timeout=30)
    finally:
        watchdog.cancel()
        proc.kill()
    stderr = stderr_file.read_text()
    assert proc.returncode == 0, stderr[-2000:]
    assert all(reply.get("jsonrpc") == "2.0" for reply in replies)
    by_id = {reply["id"]: reply for reply in replies if "id" in reply}
    assert set(by_id) == {1, 2, 3}
    assert by_id[3]["result"]["structuredContent"]["rows"] == [{"n": _expected_count()}]
    assert "DEBUG" in stderr  # the logs exist, and went to stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _http_server(port: int, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "idc_mcp",
            "--transport",
            "streamable-http",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.communicate(timeout=30)


async def _wait_until_listening(proc: subprocess.Popen[str], port: int) -> None:
    """Retry connecting until the server accepts (bounded by the caller's fail_after)."""
    while True:
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"the HTTP server exited with {proc.returncode}: {err[-2000:]}")
        try:
            stream = await anyio.connect_tcp("127.0.0.1", port)
        except OSError:
            await anyio.sleep(0.05)  # connection refused: the server is still starting
            continue
        await stream.aclose()
        return


async def test_streamable_http_server_answers_initialize_tools_list_and_a_query() -> None:
    port = _free_port()
    with _http_server(port) as proc, anyio.fail_after(TIMEOUT_S):
        await _wait_until_listening(proc, port)
        async with Client(
            f"http://127.0.0.1:{port}/mcp", mode="legacy", read_timeout_seconds=TIMEOUT_S
        ) as client:
            assert client.server_info is not None and client.server_info.name == "idc-mcp"
            await _check_session(client)


def _worker_of(proc: subprocess.Popen[str]) -> psutil.Process | None:
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            if "idc_mcp.catalog.worker" in " ".join(child.cmdline()):
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


_HANGING_CLIENT = """
import sys, anyio
from mcp import Client

async def main() -> None:
    async with Client(sys.argv[1], mode="legacy", read_timeout_seconds=900) as client:
        print("connected", flush=True)
        await client.call_tool("query", {"sql": "SELECT count(*) AS n FROM index a, index b, index c"})

anyio.run(main)
"""


async def test_http_client_that_disconnects_mid_query_stops_its_work(tmp_path: Path) -> None:
    # The query would run for its whole 600 s timeout; the client process is killed (no goodbye, no
    # cancel notification) while it runs. Its work must stop long before that, and the server answers on.
    port = _free_port()
    env = dict(os.environ, IDC_MCP_QUERY_TIMEOUT="600")
    with _http_server(port, env) as proc, anyio.fail_after(TIMEOUT_S + 120):
        await _wait_until_listening(proc, port)
        url = f"http://127.0.0.1:{port}/mcp"
        async with Client(url, mode="legacy", read_timeout_seconds=TIMEOUT_S) as first:
            await _check_session(first)  # the catalog is open: what the worker does next is the query
        client = subprocess.Popen(
            [sys.executable, "-c", _HANGING_CLIENT, url], stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        try:
            assert client.stdout is not None and client.stdout.readline().strip() == "connected"
            worker = None
            while worker is None or _cpu_seconds(worker) < 2.0:  # the cross join is running
                await anyio.sleep(0.2)
                worker = worker or _worker_of(proc)
        finally:
            client.kill()
            client.wait(30)
        # Busy means more than half a core over a second; wait (bounded above) until it is idle.
        busy = True
        while busy:
            current = _worker_of(proc)
            if current is None:
                await anyio.sleep(0.2)
                continue
            before = _cpu_seconds(current)
            await anyio.sleep(1.0)
            busy = current.is_running() and _cpu_seconds(current) - before > 0.5
        async with Client(url, mode="legacy", read_timeout_seconds=TIMEOUT_S) as again:
            await _check_session(again)
