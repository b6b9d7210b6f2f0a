"""The team server over real HTTP on loopback: `idc-mcp --transport streamable-http` as a subprocess.

Each test names the abuse it stops: callers without a valid token, writing tools on a read-only server,
one caller starving the others, an audit log that leaks tokens or misses calls, orphaned calls that keep
running after their client left, and pages on other sites driving the server through DNS rebinding.
Issue 21 (section 2) adds one token taking every session, refusals flushing the audit log, caller text
forging operator log lines, a read-only server telling its paths and disk, and a Host that only starts
like an allowed one.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from idc_mcp.serve.tokens import digest_of
from tests.mcp_wire import INITIALIZE

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # each server is a process

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 120
CHEAP_SQL = "SELECT collection_id, count(*) AS n FROM index GROUP BY collection_id ORDER BY n DESC"
# Runs for minutes (every pair of series inside each collection): only a cancellation ends it early.
ENDLESS_SQL = (
    "SELECT count(*) AS n FROM index a JOIN index b ON a.collection_id = b.collection_id "
    "WHERE a.series_size_MB + b.series_size_MB > 1e9"
)
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@dataclass
class TeamServer:
    url: str
    base: str
    tokens: dict[str, str]
    audit: Path
    stderr: Path
    download_root: Path
    process: subprocess.Popen[bytes] | None = None

    def audit_records(self) -> list[dict]:
        return (
            [json.loads(line) for line in self.audit.read_text().splitlines()] if self.audit.exists() else []
        )

    def client(self, token_id: str = "alice") -> Client:
        http = httpx2.AsyncClient(
            headers={"authorization": f"Bearer {self.tokens[token_id]}"}, timeout=TIMEOUT_S
        )
        return Client(
            streamable_http_client(self.url, http_client=http), mode="legacy", read_timeout_seconds=TIMEOUT_S
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_health(proc: subprocess.Popen[bytes], base: str, stderr: Path) -> None:
    with httpx2.Client(timeout=5) as http:
        for _ in range(600):  # bounded: 600 tries, each at most a short wait
            if proc.poll() is not None:
                raise AssertionError(
                    f"the server exited with {proc.returncode}: {stderr.read_text()[-2000:]}"
                )
            try:
                if http.get(f"{base}/health").status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            try:
                proc.wait(timeout=0.1)  # wait on the process, not a sleep: returns early if it dies
            except subprocess.TimeoutExpired:
                pass
    raise AssertionError("the server did not answer /health")


@pytest.fixture(scope="module")
def start_server(tmp_path_factory: pytest.TempPathFactory, built_catalog: Path) -> Iterator:
    """Starts team servers (sharing the run's built catalog); stops them at the end of the module."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*flags: str, env: dict[str, str] | None = None) -> TeamServer:
        folder = tmp_path_factory.mktemp("team")
        tokens = {name: secrets.token_urlsafe(32) for name in ("alice", "bob", "carol")}
        tomorrow = (datetime.now() + timedelta(days=2)).date().isoformat()
        (folder / "tokens.txt").write_text(
            "# test tokens\n"
            f"alice {tokens['alice']}\n"
            f"bob sha256:{digest_of(tokens['bob']).hex()} {tomorrow}\n"
            f"carol {tokens['carol']} 2020-01-01  # expired\n"
        )
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = TeamServer(
            f"{base}/mcp", base, tokens, folder / "audit.jsonl", folder / "stderr.txt", folder / "downloads"
        )
        command = [sys.executable, "-m", "idc_mcp", "--transport", "streamable-http", "--port", str(port)]
        command += ["--tokens-file", str(folder / "tokens.txt"), "--audit-log", str(server.audit), *flags]
        environment = dict(os.environ, IDC_MCP_DOWNLOAD_ROOT=str(server.download_root), **(env or {}))
        proc = subprocess.Popen(command, stderr=server.stderr.open("w"), cwd=ROOT, env=environment)
        started.append(proc)
        server.process = proc
        _wait_for_health(proc, base, server.stderr)
        return server

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def team(start_server) -> TeamServer:
    # A long query timeout: only a cancellation can stop ENDLESS_SQL early. INFO logs: the tests read them
    # (a call has started) and check that no token reaches them.
    return start_server("--log-level", "INFO", env={"IDC_MCP_QUERY_TIMEOUT": "600"})


async def test_a_valid_token_gets_tools_and_answers(team: TeamServer) -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with team.client("alice") as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            assert {"query", "download", "export_manifest"} <= tools  # not read-only: everything offered
            result = await client.call_tool("query", {"sql": CHEAP_SQL, "max_rows": 3})
            assert not result.is_error, result.content
        async with team.client("bob") as client:  # a token given in the file only as its SHA-256 digest
            assert not (await client.call_tool("list_tables", {})).is_error


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-token-of-this-server-0123456789abcdef", "Basic YWxpY2U6c2VjcmV0", "carol"],
    ids=["missing", "wrong", "not-bearer", "expired"],
)
async def test_calls_without_a_valid_token_get_401_and_run_nothing(team: TeamServer, authorization) -> None:
    if authorization == "carol":
        authorization = f"Bearer {team.tokens['carol']}"  # right token, but it expired in 2020
    headers = {**MCP_HEADERS, **({"authorization": authorization} if authorization else {})}
    before = len(team.audit_records())
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "list_tables", "arguments": {}},
    }
    async with httpx2.AsyncClient(timeout=30) as http:
        for message in (INITIALIZE, call):
            response = await http.post(team.url, json=message, headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert len(team.audit_records()) == before  # no tool ran: nothing to audit


async def test_health_answers_without_a_token_and_tells_nothing_secret(team: TeamServer) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        health = (await http.get(f"{team.base}/health")).json()
    assert health["status"] == "ok" and health["authenticated"] is True and health["read_only"] is False
    assert not any(token in json.dumps(health) for token in team.tokens.values())


@pytest.mark.parametrize(
    ("header", "value", "status"),
    [
        ("host", "attacker.example:80", 421),
        ("origin", "http://attacker.example", 403),
        # Issue 21: the SDK's `name:*` patterns matched these by prefix.
        ("host", "127.0.0.1:evil@attacker.example", 421),
        ("host", "localhost:80@attacker.example", 421),
        ("origin", "http://127.0.0.1:evil@attacker.example", 403),
    ],
)
async def test_dns_rebinding_requests_from_other_sites_are_refused(
    team: TeamServer, header, value, status
) -> None:
    # A page on attacker.example whose name resolves to 127.0.0.1 sends its own Host/Origin: refused even
    # with a valid token (a browser could hold one from an earlier visit).
    headers = {**MCP_HEADERS, "authorization": f"Bearer {team.tokens['alice']}", header: value}
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(team.url, json=INITIALIZE, headers=headers)
    assert response.status_code == status


async def test_audit_log_records_every_call_and_never_a_token(team: TeamServer) -> None:
    before = len(team.audit_records())
    calls = [
        ("alice", "query", {"sql": CHEAP_SQL, "max_rows": 2}, "ok"),
        ("alice", "describe_table", {"table": "no_such_table"}, "tool_error"),
        ("bob", "list_tables", {}, "ok"),
    ]
    with anyio.fail_after(TIMEOUT_S):
        for token_id, tool, arguments, _ in calls:
            async with team.client(token_id) as client:
                await client.call_tool(tool, arguments)
    records = team.audit_records()[before:]
    assert [(r["token_id"], r["tool"], r["outcome"]) for r in records] == [(c[0], c[1], c[3]) for c in calls]
    for record in records:
        assert set(record) == {
            "time",
            "token_id",
            "tool",
            "arguments_sha256",
            "outcome",
            "duration_ms",
            "bytes",
        }
        assert len(record["arguments_sha256"]) == 64 and record["duration_ms"] >= 0
    assert records[0]["bytes"] > 0
    everything_logged = "".join(p.read_text() for p in team.audit.parent.glob("audit.jsonl*"))
    everything_logged += team.stderr.read_text()
    for token in team.tokens.values():
        assert token not in everything_logged
        assert digest_of(token).hex() not in everything_logged


async def test_a_call_whose_client_disconnects_is_cancelled(team: TeamServer) -> None:
    # Without this, a dropped client leaves its query running (here for minutes) and holding a slot.
    headers = {**MCP_HEADERS, "authorization": f"Bearer {team.tokens['alice']}"}
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "query", "arguments": {}}}
    call["params"]["arguments"] = {"sql": ENDLESS_SQL}
    before = len(team.audit_records())
    started_before = team.stderr.read_text().count("alice calls query")
    with anyio.fail_after(TIMEOUT_S):
        async with httpx2.AsyncClient(timeout=TIMEOUT_S) as http:
            opened = await http.post(team.url, json=INITIALIZE, headers=headers)
            session = {
                "mcp-session-id": opened.headers["mcp-session-id"],
                "mcp-protocol-version": "2025-06-18",
            }
            initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            await http.post(team.url, json=initialized, headers={**headers, **session})
            async with http.stream("POST", team.url, json=call, headers={**headers, **session}) as response:
                assert response.status_code == 200
                while team.stderr.read_text().count("alice calls query") == started_before:  # not started yet
                    await anyio.sleep(0.05)
            # Leaving the block closes the connection before any answer: the client is gone.
        while len(team.audit_records()) == before:
            await anyio.sleep(0.05)
    (record,) = team.audit_records()[before:]
    assert record["tool"] == "query" and record["outcome"] == "cancelled_client_gone"


async def test_read_only_offers_no_writing_tool_and_refuses_a_direct_call(start_server) -> None:
    server = start_server("--read-only")
    with anyio.fail_after(TIMEOUT_S):
        async with server.client() as client:
            listed = {tool.name: tool for tool in (await client.list_tools()).tools}
            assert "download" not in listed and "export_manifest" not in listed
            assert "query" in listed and "fetch_index" in listed  # fetch_index writes only the server cache
            assert all(
                tool.annotations is not None and tool.annotations.read_only_hint or name == "fetch_index"
                for name, tool in listed.items()
            )
            for tool, arguments in [
                ("download", {"collection_ids": ["rider_pilot"]}),
                ("export_manifest", {"collection_ids": ["rider_pilot"], "path": "m.txt"}),
            ]:
                result = await client.call_tool(tool, arguments)
                assert result.is_error
                assert "read-only" in result.content[0].text  # type: ignore[union-attr]
    assert not server.download_root.exists() or not any(server.download_root.rglob("*"))
    outcomes = [r["outcome"] for r in server.audit_records()]
    assert outcomes == ["refused_read_only", "refused_read_only"]


async def _one_call_each(server: TeamServer, clients: int, token_id: str = "alice") -> list[str]:
    """`clients` clients connect at once and each makes one query call; returns each reply's text."""
    replies: list[str] = []

    async def one() -> None:
        async with server.client(token_id) as client:
            result = await client.call_tool("query", {"sql": CHEAP_SQL, "max_rows": 1})
            replies.append(result.content[0].text if result.is_error else "ok")  # type: ignore[union-attr]

    with anyio.fail_after(TIMEOUT_S):
        async with anyio.create_task_group() as group:
            for _ in range(clients):
                group.start_soon(one)
    return replies


async def test_calls_per_minute_limit_holds_under_50_concurrent_clients(start_server) -> None:
    server = start_server("--calls-per-minute", "10", "--max-concurrent", "50", "--max-sessions", "50")
    replies = await _one_call_each(server, 50)
    assert replies.count("ok") == 10
    refused = [reply for reply in replies if reply != "ok"]
    assert len(refused) == 40 and all("10 tool calls per minute" in reply for reply in refused)
    # Another token has its own budget: alice's flood does not lock bob out.
    assert await _one_call_each(server, 1, "bob") == ["ok"]


async def test_concurrency_limit_holds_under_50_concurrent_clients(start_server) -> None:
    server = start_server("--max-concurrent", "2", "--calls-per-minute", "1000", "--max-sessions", "50")
    replies = await _one_call_each(server, 50)
    refused = [reply for reply in replies if reply != "ok"]
    assert all("2 tool calls at a time" in reply for reply in refused)
    _stop(server)  # writes the count of the refusals past the first 10 of the minute
    records = [r for r in server.audit_records() if r["outcome"] != "refused_summary"]
    summarised = sum(r["refused"] for r in server.audit_records() if r["outcome"] == "refused_summary")
    assert len(records) + summarised == 50  # every call is accounted for
    assert len([r for r in records if r["outcome"] == "refused_limit"]) == min(10, len(refused))
    # From the audit log's own clock: at no moment did more than 2 admitted calls of alice overlap.
    events = []
    for record in records:
        if record["outcome"] == "ok":
            start = datetime.fromisoformat(record["time"]).timestamp()
            events += [(start, 1), (start + record["duration_ms"] / 1000 - 1e-4, -1)]
    running = peak = 0
    for _, step in sorted(events, key=lambda event: (event[0], event[1])):
        running += step
        peak = max(peak, running)
    assert 1 <= peak <= 2
    assert replies.count("ok") == len([r for r in records if r["outcome"] == "ok"])


# ---------------------------------------------------------------- issue 21: one caller's flood
async def _open_session(http: httpx2.AsyncClient, server: TeamServer, token_id: str) -> dict[str, str]:
    """Headers of a new MCP session of `token_id` (initialize, then initialized), for raw requests."""
    headers = {**MCP_HEADERS, "authorization": f"Bearer {server.tokens[token_id]}"}
    opened = await http.post(server.url, json=INITIALIZE, headers=headers)
    assert opened.status_code == 200, opened.text
    session = {
        **headers,
        "mcp-session-id": opened.headers["mcp-session-id"],
        "mcp-protocol-version": "2025-06-18",
    }
    await http.post(
        server.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session
    )
    return session


def _stop(server: TeamServer) -> None:
    """SIGTERM, as systemd stops it: the server writes what it still holds (refusal counts) and exits."""
    assert server.process is not None
    server.process.terminate()
    server.process.wait(timeout=60)


async def test_repeated_initialize_from_one_token_cannot_take_the_sessions_others_need(start_server) -> None:
    # Before: one token opened 9,993 sessions in a minute, up to the SDK's cap, and every other token
    # got 503 for the 30 minutes the sessions stayed open.
    server = start_server("--max-sessions", "3")
    alice = {**MCP_HEADERS, "authorization": f"Bearer {server.tokens['alice']}"}
    with anyio.fail_after(TIMEOUT_S):
        async with httpx2.AsyncClient(timeout=TIMEOUT_S) as http:
            answers = [await http.post(server.url, json=INITIALIZE, headers=alice) for _ in range(6)]
            assert [a.status_code for a in answers] == [200, 200, 200, 429, 429, 429]
            refusal = answers[-1].json()["error"]["message"]
            assert "'alice' may hold 3 MCP sessions" in refusal and "Close sessions" in refusal
            # Another token is not affected.
            assert (
                await http.post(
                    server.url,
                    json=INITIALIZE,
                    headers={**alice, "authorization": f"Bearer {server.tokens['bob']}"},
                )
            ).status_code == 200
            # A session alice closes is hers to open again.
            closing = {**alice, "mcp-session-id": answers[0].headers["mcp-session-id"]}
            assert (await http.delete(server.url, headers=closing)).status_code < 300
            assert (await http.post(server.url, json=INITIALIZE, headers=alice)).status_code == 200
            assert (await http.post(server.url, json=INITIALIZE, headers=alice)).status_code == 429
    refused = [r for r in server.audit_records() if r["outcome"] == "refused_sessions"]
    assert len(refused) == 4 and {r["token_id"] for r in refused} == {"alice"}


HUGE_NAME = "q" * 3_900_000  # 3.9 MB: a request body under the SDK's 4 MiB limit


async def test_one_caller_cannot_flush_the_audit_log_with_refused_calls(start_server) -> None:
    # Before: 18 calls with a 3.9 MB tool name, each audited in full, pushed every earlier record out of a
    # 60 MB rotated log in seconds; refused calls were not counted, so a flood never slowed down.
    server = start_server(
        "--calls-per-minute", "5", "--audit-max-mb", "1", "--audit-backups", "1", "--log-level", "INFO"
    )
    with anyio.fail_after(TIMEOUT_S * 2):
        async with server.client("bob") as client:  # the record that must survive the flood
            assert not (await client.call_tool("list_tables", {})).is_error
        async with httpx2.AsyncClient(timeout=TIMEOUT_S) as http:
            session = await _open_session(http, server, "alice")
            for number in range(18):
                call = {"jsonrpc": "2.0", "id": 10 + number, "method": "tools/call"}
                call["params"] = {"name": HUGE_NAME, "arguments": {}}
                assert (await http.post(server.url, json=call, headers=session)).status_code == 200
        async with server.client("alice") as client:
            replies = [await client.call_tool("list_tables", {}) for _ in range(100)]
    # Refused calls count: alice's budget went to the 5 first huge calls; every later call is refused.
    assert all(reply.is_error and "5 tool calls per minute" in reply.content[0].text for reply in replies)  # type: ignore[union-attr]
    _stop(server)
    lines = [
        line for f in sorted(server.audit.parent.glob("audit.jsonl*")) for line in f.read_text().splitlines()
    ]
    assert all(len(line.encode()) < 1024 for line in lines)  # every field bounded: a record stays small
    records = [json.loads(line) for line in lines]
    assert [r["token_id"] for r in records if r["token_id"] == "bob"] == ["bob"]  # still there
    alice = [r for r in records if r["token_id"] == "alice"]
    one_by_one = [r for r in alice if r["outcome"] != "refused_summary"]
    assert len(one_by_one) == 5 + 10  # her 5 calls, then the first 10 refusals of the minute
    assert all(len(r["tool"]) < 300 for r in one_by_one)
    (summary,) = [r for r in alice if r["outcome"] == "refused_summary"]
    assert summary["refused"] == 18 + 100 - 15  # the rest counted, written at shutdown
    stderr = server.stderr.read_text()
    assert len(stderr) < 100_000 and max(len(line) for line in stderr.splitlines()) < 2_200


FORGED = "x\x1b[2J\r\n2026-01-01 00:00:00,000 WARNING idc_mcp: the operator's forged line\u2028"


async def test_caller_text_cannot_forge_operator_log_lines(team: TeamServer) -> None:
    # With --log-level INFO the tool name went raw into stderr: ESC cleared the operator's terminal and
    # CR/LF began a line that looked like the server's own.
    with anyio.fail_after(TIMEOUT_S):
        async with team.client("alice") as client:
            assert (await client.call_tool(FORGED, {})).is_error
    stderr = team.stderr.read_text()
    assert "\x1b" not in stderr and "\r" not in stderr and "\u2028" not in stderr
    assert not any(line.startswith("2026-01-01 00:00:00,000 WARNING") for line in stderr.splitlines())
    assert "x\\x1b[2J\\r\\n2026-01-01 00:00:00,000 WARNING" in stderr  # shown, escaped, in alice's line


async def test_a_read_only_server_tells_no_paths_or_disk_and_creates_nothing(start_server) -> None:
    # Before: estimate_size(..., download_dir="x") answered with the server's absolute path and free disk
    # space, and created the download folder.
    server = start_server("--read-only")
    with anyio.fail_after(TIMEOUT_S):
        async with server.client() as client:
            result = await client.call_tool(
                "estimate_size", {"collection_ids": ["rider_pilot"], "download_dir": "x"}
            )
    assert not result.is_error, result.content
    reply = result.structured_content or {}
    assert reply["disk"] is None and reply["series_count"] > 0
    assert "read-only" in reply["summary"]
    everything = json.dumps(reply)
    assert str(server.download_root) not in everything and "free_MB" not in everything
    assert not server.download_root.exists()


async def test_an_unexpected_prompt_argument_gets_a_clear_error_and_no_traceback(team: TeamServer) -> None:
    from mcp.shared.exceptions import MCPError

    logged_before = len(team.stderr.read_text())
    with anyio.fail_after(TIMEOUT_S):
        async with team.client("alice") as client:
            for name, arguments, expected in [
                ("cite_selection", {"bogus": "x"}, "has no argument 'bogus': it takes no arguments"),
                ("find_dataset", {"topic": "lung", "bogus": "x"}, "has no argument 'bogus': it takes topic"),
                ("find_dataset", {}, "needs topic"),
                ("no_such_prompt", {}, "the prompts are: cite_selection, find_dataset"),
            ]:
                with pytest.raises(MCPError) as refused:
                    await client.get_prompt(name, arguments)
                assert expected in str(refused.value)
            assert (await client.get_prompt("find_dataset", {"topic": "lung CT"})).messages
    logged = team.stderr.read_text()[logged_before:]
    assert "Traceback" not in logged and "Error rendering prompt" not in logged
