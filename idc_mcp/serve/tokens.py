"""Bearer tokens for the team server: read from a file or the environment, checked in constant time.

One token per line, `#` starts a comment:

    <token id>  <token, or sha256:<hex digest of the token>>  [expiry: 2027-01-31 or 2027-01-31T12:00Z]

The token id names the caller in the audit log and the per-caller limits; the token itself is never
logged. Only SHA-256 digests are kept in memory, and a presented token is compared with every entry by
`hmac.compare_digest`, so neither the comparison nor the number of entries tried depends on how much of
a guess was right. `idc-mcp new-token NAME` makes a token and the line to put in the file.

The verifier implements the MCP SDK's `TokenVerifier`; the SDK's bearer middleware refuses a missing,
unknown or expired token with 401 before any MCP message is read.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

from mcp.server.auth.provider import AccessToken

log = logging.getLogger(__name__)

MIN_TOKEN_CHARS = 32  # `new-token` makes 43 characters (256 random bits)
TOKEN_ID = re.compile(r"[A-Za-z0-9._@+-]{1,64}")
DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


class TokenConfigError(ValueError):
    """The token file or variable cannot be used; the message says which line and what to do."""


@dataclass(frozen=True)
class TokenEntry:
    token_id: str
    digest: bytes  # SHA-256 of the token
    expires_at: int | None  # Unix time, or None for no expiry


def digest_of(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_token(token_id: str) -> tuple[str, str]:
    """A fresh random token and the tokens-file line for it (holding only its digest)."""
    if not TOKEN_ID.fullmatch(token_id):
        raise TokenConfigError(f"token id {token_id!r}: use 1-64 letters, digits or . _ @ + -")
    token = secrets.token_urlsafe(32)
    return token, f"{token_id} sha256:{digest_of(token).hex()}"


def _expiry(text: str, where: str) -> int:
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):  # a date: valid through the end of that day (UTC)
            moment = datetime.combine(date.fromisoformat(text), time.max, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError as exc:
        raise TokenConfigError(
            f"{where}: expiry {text!r} is not a date; write 2027-01-31 or 2027-01-31T12:00Z"
        ) from exc
    return int(moment.timestamp())


def parse_tokens(lines: Iterable[str], source: str) -> list[TokenEntry]:
    """Parse `<id> <token|sha256:hex> [expiry]` lines; refuse short tokens and repeated ids."""
    entries: list[TokenEntry] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{source} line {number}"
        fields = line.split()
        if len(fields) not in (2, 3):
            raise TokenConfigError(
                f"{where}: expected '<token id> <token> [expiry]', got {len(fields)} fields"
            )
        token_id, secret = fields[0], fields[1]
        if not TOKEN_ID.fullmatch(token_id):
            raise TokenConfigError(f"{where}: token id {token_id!r}: use 1-64 letters, digits or . _ @ + -")
        if any(entry.token_id == token_id for entry in entries):
            raise TokenConfigError(f"{where}: token id {token_id!r} appears twice; ids name callers")
        if match := DIGEST.fullmatch(secret):
            digest = bytes.fromhex(match.group(1))
        elif secret.startswith("sha256:"):
            raise TokenConfigError(f"{where}: a sha256: digest is 64 lowercase hex characters")
        elif len(secret) < MIN_TOKEN_CHARS:
            raise TokenConfigError(
                f"{where}: the token for {token_id!r} has {len(secret)} characters, fewer than "
                f"{MIN_TOKEN_CHARS}; make one with `idc-mcp new-token {token_id}`"
            )
        else:
            digest = digest_of(secret)
        expires_at = _expiry(fields[2], where) if len(fields) == 3 else None
        entries.append(TokenEntry(token_id, digest, expires_at))
    return entries


def load_tokens(file: Path | None, env_value: str | None) -> list[TokenEntry]:
    """Tokens from a file and/or an environment value (same format; `;` may separate entries)."""
    entries: list[TokenEntry] = []
    if file is not None:
        try:
            text = file.read_text()
        except OSError as exc:
            raise TokenConfigError(f"cannot read the tokens file {file}: {exc.strerror or exc}") from exc
        entries += parse_tokens(text.splitlines(), str(file))
    if env_value:
        entries += parse_tokens(env_value.replace(";", "\n").splitlines(), "IDC_MCP_TOKENS")
    ids = [entry.token_id for entry in entries]
    repeated = sorted({token_id for token_id in ids if ids.count(token_id) > 1})
    if repeated:
        raise TokenConfigError(f"token ids {repeated} are given both in the file and in IDC_MCP_TOKENS")
    return entries


class StaticTokenVerifier:
    """The SDK's `TokenVerifier` over a fixed list of token digests."""

    def __init__(self, entries: list[TokenEntry]):
        if not entries:
            raise TokenConfigError("no tokens: the tokens file and IDC_MCP_TOKENS are empty")
        self._entries = list(entries)

    async def verify_token(self, token: str) -> AccessToken | None:
        presented = digest_of(token)
        found: TokenEntry | None = None
        for entry in self._entries:  # every entry is compared: the time does not say which one matched
            if hmac.compare_digest(presented, entry.digest):
                found = entry
        if found is None:
            return None
        # The SDK's bearer middleware refuses a token whose expires_at has passed.
        # The AccessToken keeps the digest, not the token: nothing downstream can log it.
        return AccessToken(
            token=presented.hex(), client_id=found.token_id, scopes=[], expires_at=found.expires_at
        )
