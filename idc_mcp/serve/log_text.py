"""Caller text in log lines: bounded and escaped, so a caller can neither flood a log nor forge a line.

A tool name, a Host header or a session id comes from the caller. Written raw, an ESC sequence rewrites
the operator's terminal, and a CR or LF starts what looks like a line of the server's own (a forged
`WARNING` or `stopped`). `printable` shows such text with its control characters escaped and its length
cut; `EscapingFormatter` does the same to every log record's message, whoever logged it (our code, the
MCP SDK, uvicorn), and marks each line of a traceback as a continuation of its record.
"""

from __future__ import annotations

import logging
import re

MAX_LOGGED_CHARS = 200  # one caller-supplied field in a log line or an audit record
MAX_MESSAGE_CHARS = 2_000  # one log record's message, whoever logged it (tracebacks aside)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char) or (
        f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    )


def escaped(text: str) -> str:
    """`text` with every control character (C0, DEL, C1, line/paragraph separators) written as an escape."""
    return _CONTROL.sub(_escape, text)


def printable(value: object, limit: int = MAX_LOGGED_CHARS) -> str:
    """Caller text as a log line or an audit record shows it: escaped, and cut to `limit` characters
    (saying how long it was)."""
    text = str(value)
    if len(text) > limit:
        return f"{escaped(text[:limit])}…[{len(text):,} chars]"
    return escaped(text)


class EscapingFormatter(logging.Formatter):
    """A formatter whose records cannot span lines: the message is escaped and cut to
    `MAX_MESSAGE_CHARS`, and each line of an attached traceback starts with `  | `, so nothing in it can
    pass for a record of its own."""

    def format(self, record: logging.LogRecord) -> str:
        original_msg, original_args = record.msg, record.args
        record.msg, record.args = printable(record.getMessage(), MAX_MESSAGE_CHARS), None
        try:
            line = super().format(record)
        finally:
            record.msg, record.args = original_msg, original_args
        first, _, rest = line.partition("\n")
        if not rest:
            return first
        return first + "".join(f"\n  | {escaped(part)}" for part in rest.split("\n"))
