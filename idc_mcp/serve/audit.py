"""The audit log: one JSON line per tool call, in a size-rotated file.

A record says when, who (the token id, never the token), which tool, a SHA-256 digest of the arguments
(so a call can be matched to a claimed argument set without the log holding cohort details), the
outcome, how long it took and how many bytes the reply had. Rotation is the standard library's
`RotatingFileHandler` (`audit.jsonl`, `audit.jsonl.1`, ...).

Every text field is cut to `MAX_LOGGED_CHARS` (a caller chooses the tool name: 3.9 MB of it must not
become 3.9 MB of log), so a record stays under 1 KB; how many records one caller can cause a minute is
bounded by its call limits and by `refusals.RefusalLedger`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

from idc_mcp.serve.log_text import MAX_LOGGED_CHARS, printable


def argument_digest(arguments: Any) -> str:
    """SHA-256 of the arguments as canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class _OwnerOnlyRotatingFile(RotatingFileHandler):
    """Every file it opens, the first and each one after a rotation, is readable by the owner only:
    the log names callers and what they asked for."""

    def _open(self):  # type: ignore[no-untyped-def]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


class AuditLog:
    def __init__(self, path: Path, max_bytes: int = 10 * 1024 * 1024, backups: int = 5):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handler = _OwnerOnlyRotatingFile(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        # A logger of its own, outside the `idc_mcp` tree: records go to this file only.
        self._logger = logging.Logger("idc_mcp.audit", level=logging.INFO)
        self._logger.addHandler(self._handler)

    def write(self, record: dict[str, Any]) -> None:
        bounded = {
            key: printable(value, MAX_LOGGED_CHARS) if isinstance(value, str) else value
            for key, value in record.items()
        }
        self._logger.info(json.dumps(bounded, separators=(",", ":"), default=str))

    def close(self) -> None:
        self._handler.close()
