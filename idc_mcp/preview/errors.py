"""The one error type of previews: its message is written for the assistant (what, why, what next)."""

from __future__ import annotations

from idc_mcp.errors import AssistantError


class PreviewError(AssistantError, ValueError):
    """A preview cannot be made; the message says why and what to do instead."""
