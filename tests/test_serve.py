"""The team-server pieces as plain functions: tokens, limits, read-only classification, Host checks, audit."""

from __future__ import annotations

import hmac
import json
from pathlib import Path

import pytest
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

from idc_mcp.serve import tokens as tokens_mod
from idc_mcp.serve.audit import AuditLog, argument_digest
from idc_mcp.serve.http import HostConfigError, is_loopback, transport_security
from idc_mcp.serve.limits import CallLimiter, Limits
from idc_mcp.serve.read_only import SERVER_CACHE, WRITES, restrict_to_read_only, writes_for_caller
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


# ---------------------------------------------------------------- read-only
async def test_read_only_classifies_the_real_tools_by_their_annotations() -> None:
    from tests.servers import server_from_environment

    server = server_from_environment()
    writing = sorted(tool.name for tool in await server.list_tools() if writes_for_caller(tool))
    assert writing == ["download", "export_manifest"]


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


# ---------------------------------------------------------------- audit
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
