"""Turning DuckDB values into bounded, JSON-safe reply values."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import uuid
from typing import Any

MAX_CELL_CHARS = 2_000


def json_safe(value: Any) -> Any:
    """A JSON-serializable copy of a DuckDB value (dates as ISO text, NaN as null, bytes as hex)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_safe(v) for v in value]
    return str(value)


def cut_cell(value: Any, max_chars: int = MAX_CELL_CHARS) -> tuple[Any, bool]:
    """Shorten a long cell, marking the cut; returns (value, was_cut)."""
    if isinstance(value, str):
        if len(value) > max_chars:
            return value[:max_chars] + f"…[cut: {len(value):,} chars in all]", True
        return value, False
    if isinstance(value, dict | list):
        text = json.dumps(value, default=str)
        if len(text) > max_chars:
            return text[:max_chars] + f"…[cut: {len(text):,} chars of JSON in all]", True
    return value, False


def json_size(value: Any) -> int:
    return len(json.dumps(value, default=str, ensure_ascii=False).encode())
