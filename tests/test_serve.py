"""The team-server pieces as plain functions: tokens, limits, read-only classification, Host checks, audit."""

from __future__ import annotations

import hmac
import json
import logging
import sys
from pathlib import Path

import pytest
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

from idc_mcp.serve import tokens as tokens_mod
from idc_mcp.serve.audit import AuditLog, argument_digest
from idc_mcp.serve.http import (
    HostConfigError,
    allowed_names,
    host_allowed,
    is_loopback,
    origin_allowed,
    transport_security,
)
from idc_mcp.serve.limits import CallLimiter, Limits
from idc_mcp.serve.log_text import EscapingFormatter, printable
from idc_mcp.serve.read_only import SERVER_CACHE, WRITES, restrict_to_read_only, writes_for_caller
from idc_mcp.serve.refusals import RefusalLedger
from idc_mcp.serve.run import HttpOptions, ServeRefused, check_exposure
from idc_mcp.serve.tokens import StaticTokenVerifier, TokenConfigError, digest_of, load_tokens, parse_tokens

pytestmark = pytest.mark.anyio
GOOD = "k" * 40


# ---------------------------------------------------------------- tokens
def test_token_lines_give_ids_digests_and_expiry() -> None:
    token, line = tokens_mod.new_token("dave")
    entries = parse_tokens(
        [f"alice {GOOD}  # lab PI", "", "# comment", line, f"erin {GOOD}x 2030-01-31"], "tokens.txt"
    )
    assert [e.token_id for e in entries] == ["alice", "dave", "erin"]
    assert entries[1].digest == digest_of(token) and token not in line  # the file line holds no token
    assert entries[0].expires_at is None and entries[2].expires_at is not None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("alice short", "fewer than 32"),  # a guessable token
        ("alice", "expected '<token id> <token> [expiry]'"),
        (f"al/ice {GOOD}", "token id"),
        (f"alice sha256:{'ab' * 10}", "64 lowercase hex"),
        (f"alice {GOOD} next-tuesday", "is not a date"),
    ],
)
def test_bad_token_lines_are_refused_with_the_line_and_the_fix(line: str, message: str) -> None:
    with pytest.raises(TokenConfigError, match="t.txt line 1") as raised:
        parse_tokens([line], "t.txt")
    assert message in str(raised.value)


def test_a_token_id_given_twice_is_refused_so_audit_names_stay_unambiguous(tmp_path: Path) -> None:
    with pytest.raises(TokenConfigError, match="appears twice"):
        parse_tokens([f"alice {GOOD}", f"alice {GOOD}y"], "t")
    file = tmp_path / "tokens"
    file.write_text(f"alice {GOOD}\n")
    with pytest.raises(TokenConfigError, match="both in the file and in IDC_MCP_TOKENS"):
        load_tokens(file, f"bob {GOOD}y; alice {GOOD}z")
    assert [e.token_id for e in load_tokens(file, f"bob {GOOD}y;carol {GOOD}z")] == ["alice", "bob", "carol"]


def test_a_missing_tokens_file_is_an_error_not_an_open_server(tmp_path: Path) -> None:
    with pytest.raises(TokenConfigError, match="cannot read the tokens file"):
        load_tokens(tmp_path / "nope", None)


async def test_verifier_accepts_the_right_token_and_keeps_only_its_digest() -> None:
    verifier = StaticTokenVerifier(parse_tokens([f"alice {GOOD}", f"bob {GOOD}b 2020-01-01"], "t"))
    access = await verifier.verify_token(GOOD)
    assert access is not None and access.client_id == "alice" and GOOD not in access.model_dump_json()
    assert await verifier.verify_token(GOOD[:-1]) is None
    assert await verifier.verify_token("") is None
    expired = await verifier.verify_token(GOOD + "b")
    assert expired is not None and expired.expires_at is not None  # the SDK middleware refuses it (401)


async def test_verifier_compares_with_every_entry_so_timing_does_not_tell_which_matched(monkeypatch) -> None:
    compared: list[bytes] = []
    compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return compare(a, b)

    monkeypatch.setattr(tokens_mod.hmac, "compare_digest", counting)
    verifier = StaticTokenVerifier(parse_tokens([f"a{i} {GOOD}{i}" for i in range(5)], "t"))
    assert (await verifier.verify_token(f"{GOOD}0")) is not None  # the first entry matches...
    assert len(compared) == 5  # ...and all five were still compared


def test_no_tokens_at_all_is_refused() -> None:
    with pytest.raises(TokenConfigError, match="no tokens"):
        StaticTokenVerifier([])


# ---------------------------------------------------------------- limits
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_concurrency_limit_refuses_the_extra_call_until_one_finishes() -> None:
    limiter = CallLimiter(Limits(max_concurrent=2, calls_per_minute=100), Clock())
    assert limiter.admit("alice") is None and limiter.admit("alice") is None
    refusal = limiter.admit("alice")
    assert refusal is not None and "2 tool calls at a time" in refusal
    assert limiter.admit("bob") is None  # another caller is not affected
    limiter.release("alice")
    assert limiter.admit("alice") is None


def test_rate_limit_says_when_to_call_again_and_the_window_slides() -> None:
    clock = Clock()
    limiter = CallLimiter(Limits(max_concurrent=100, calls_per_minute=3), clock)
    for _ in range(3):
        assert limiter.admit("alice") is None
        limiter.release("alice")
    clock.now += 20
    refusal = limiter.admit("alice")
    assert refusal is not None and "3 tool calls per minute" in refusal and "in 40 s" in refusal
    clock.now += 40  # the first three calls are now a minute old
    assert limiter.admit("alice") is None


def test_refused_calls_count_so_a_flooding_caller_stays_refused() -> None:
    # Issue 21: refused calls were not counted, so a caller calling non-stop got 3 calls every minute.
    clock = Clock()
    limiter = CallLimiter(Limits(max_concurrent=100, calls_per_minute=3), clock)
    admitted = 0
    for _ in range(240):  # four minutes, one call a second
        if limiter.admit("mallory") is None:
            admitted += 1
            limiter.release("mallory")
        clock.now += 1
    assert admitted == 3  # the first three; every later attempt found three in the last minute
    assert limiter.admit("bob") is None  # others keep their budget
    clock.now += 60  # once mallory stops for a minute, she may call again
    assert limiter.admit("mallory") is None


def test_refusals_past_ten_a_minute_are_counted_in_one_summary() -> None:
    clock = Clock()
    ledger = RefusalLedger(per_minute=10, clock=clock)
    recorded = [ledger.record_one_by_one("mallory") for _ in range(1000)]
    assert recorded.count(True) == 10 and recorded[:10] == [True] * 10
    assert ledger.record_one_by_one("bob") is True  # per caller
    assert ledger.due() == []  # the minute is not over
    clock.now += 60
    (summary,) = ledger.due()
    assert summary["token_id"] == "mallory" and summary["refused"] == 990
    assert summary["outcome"] == "refused_summary" and ledger.due() == []


# ---------------------------------------------------------------- read-only
async def test_read_only_classifies_the_real_tools_by_their_annotations() -> None:
    from tests.servers import server_from_environment

    server = server_from_environment()
    writing = sorted(tool.name for tool in await server.list_tools() if writes_for_caller(tool))
    assert writing == ["download", "export_manifest", "import_cohort", "prepare_dataset", "save_cohort"]


async def test_read_only_hides_an_unannotated_tool_and_keeps_declared_ones() -> None:
    # A tool added later without annotations is assumed to write: hidden until declared read-only.
    server: MCPServer = MCPServer(name="t")

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def look() -> str:
        return "x"

    @server.tool(annotations=ToolAnnotations(read_only_hint=False), meta={WRITES: SERVER_CACHE})
    def cache_something() -> str:
        return "x"

    @server.tool()
    def undeclared() -> str:
        return "x"

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True))
    def write_file() -> str:
        return "x"

    assert await restrict_to_read_only(server) == ["undeclared", "write_file"]
    assert sorted(tool.name for tool in await server.list_tools()) == ["cache_something", "look"]


# ---------------------------------------------------------------- exposure and Host checks
@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("localhost", True)])
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "lab-server.example.org", "::"])
def test_serving_beyond_loopback_without_tokens_is_refused(host: str) -> None:
    with pytest.raises(ServeRefused, match="without authentication"):
        check_exposure(HttpOptions(host=host))
    check_exposure(HttpOptions(host=host, allow_unauthenticated=True))  # an explicit choice
    check_exposure(HttpOptions(host=host, tokens=parse_tokens([f"a {GOOD}"], "t")))


def test_host_check_allows_loopback_and_the_named_hosts_only() -> None:
    settings = transport_security("0.0.0.0", ["idc.lab.example.org"])
    assert settings.enable_dns_rebinding_protection
    assert {"idc.lab.example.org", "idc.lab.example.org:*", "127.0.0.1:*"} <= set(settings.allowed_hosts)
    assert "https://idc.lab.example.org" in settings.allowed_origins
    assert not any("attacker" in host for host in settings.allowed_hosts)


def test_binding_every_interface_needs_the_public_host_name() -> None:
    with pytest.raises(HostConfigError, match="--allowed-host"):
        transport_security("0.0.0.0", [])
    assert "10.1.2.3:*" in transport_security("10.1.2.3", []).allowed_hosts


@pytest.mark.parametrize(
    "host",
    [
        "idc.lab.example.org:evil@x",  # issue 21: passed the SDK's prefix match on 'name:*'
        "idc.lab.example.org.attacker.example",
        "idc.lab.example.org:",
        "idc.lab.example.org:99999",
        "idc.lab.example.org:80/path",
        "idc.lab.example.org\r\nx: y",
        "127.0.0.1:8000@attacker.example",
        "[::1]:evil",
        "",
    ],
)
def test_host_values_that_only_start_like_an_allowed_host_are_refused(host: str) -> None:
    assert not host_allowed(host, allowed_names("0.0.0.0", ["idc.lab.example.org"]))


def test_allowed_hosts_with_or_without_a_port_and_origins() -> None:
    allowed = allowed_names("0.0.0.0", ["idc.lab.example.org", "other.example:8443"])
    for host in ["idc.lab.example.org", "IDC.lab.example.org:443", "127.0.0.1:8000", "[::1]:9", "localhost"]:
        assert host_allowed(host, allowed), host
    assert host_allowed("other.example:8443", allowed) and not host_allowed("other.example:8444", allowed)
    assert origin_allowed("https://idc.lab.example.org", allowed)
    assert not origin_allowed("https://idc.lab.example.org:evil@attacker.example", allowed)
    assert not origin_allowed("https://user@idc.lab.example.org", allowed)
    assert not origin_allowed("javascript://idc.lab.example.org", allowed)


# ---------------------------------------------------------------- logs
def test_caller_text_is_escaped_and_cut_in_log_lines() -> None:
    forged = "q\x1b[2J\r\n2026-01-01 00:00:00,000 WARNING idc_mcp: forged\u2028\x85"
    assert printable(forged) == ("q\\x1b[2J\\r\\n2026-01-01 00:00:00,000 WARNING idc_mcp: forged\\u2028\\x85")
    assert printable("q" * 3_900_000) == "q" * 200 + "…[3,900,000 chars]"
    record = logging.LogRecord("mcp", logging.WARNING, "x", 1, "Unknown tool: %s", (forged,), None)
    line = EscapingFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert "\n" not in line and "\x1b" not in line and "\r" not in line
    try:
        raise ValueError(f"bad {forged}")
    except ValueError:
        record.exc_info = sys.exc_info()
    lines = EscapingFormatter("%(message)s").format(record).split("\n")
    assert all(line.startswith("  | ") for line in lines[1:]) and len(lines) > 2


# ---------------------------------------------------------------- audit
def test_audit_records_cut_every_text_field(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl")
    audit.write({"token_id": "alice", "tool": "q" * 3_900_000, "outcome": "tool_error"})
    audit.close()
    line = (tmp_path / "audit.jsonl").read_text()
    assert len(line) < 400 and json.loads(line)["tool"].endswith("…[3,900,000 chars]")


def test_audit_log_rotates_and_is_private(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "a" / "audit.jsonl", max_bytes=400, backups=2)
    for number in range(60):
        audit.write({"n": number, "token_id": "alice"})
    audit.close()
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert all(file.stat().st_mode & 0o077 == 0 for file in (tmp_path / "a").iterdir())  # owner only
    last = (tmp_path / "a" / "audit.jsonl").read_text().splitlines()[-1]
    assert json.loads(last) == {"n": 59, "token_id": "alice"}


def test_argument_digest_ignores_key_order_only() -> None:
    assert argument_digest({"a": 1, "b": [2]}) == argument_digest({"b": [2], "a": 1})
    assert argument_digest({"a": 1}) != argument_digest({"a": 2})
