"""The base of our own errors: those whose message is written for the assistant.

A tool's work raises a subclass (with what was wrong and what to do next, e.g. the nearest valid value and
the call to make); the call runner (`calls.run_call`) passes its message on as the tool's error reply. Any
other exception is a bug or an outage: the SDK masks it, so no traceback or internal detail reaches the
assistant.
"""

from __future__ import annotations


class AssistantError(Exception):
    """An error whose message is for the assistant: what was wrong, what to do instead."""
