"""Turning DuckDB values into bounded, JSON-safe reply values."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

MAX_ROWS_CAP = 1_000  # rows one reply may hold (query, bigquery_query): `max_rows` goes up to it
MAX_CELL_CHARS = 2_000
MAX_REPLY_BYTES = 256 * 1024  # the rows of one reply, as JSON

# The `max_rows` argument of the tools that return rows.
MaxRows = Annotated[int, Field(ge=1, le=MAX_ROWS_CAP, description="rows to return")]


def max_rows_refused(max_rows: object) -> str | None:
    """Why `max_rows` cannot be used (called without the tool's schema, e.g. from Python), or None."""
    if isinstance(max_rows, int) and not isinstance(max_rows, bool) and 1 <= max_rows <= MAX_ROWS_CAP:
        return None
    return f"max_rows must be between 1 and {MAX_ROWS_CAP}; got {max_rows!r}."


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


@dataclass
class Records:
    """Result rows as JSON-safe records, bounded in size; `notes` say what was cut."""

    rows: list[dict[str, Any]]
    cut_at_size: bool  # rows were left out to keep the reply under MAX_REPLY_BYTES
    cells_cut: bool  # some long values were shortened (marked in the value)
    notes: list[str]
    size: int = 0  # bytes of the kept records as JSON (what a cache of the reply is charged)


def bounded_records(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Records:
    """`rows` (values in `columns` order) as records: values made JSON-safe, long cells cut, and no more
    rows than fit in MAX_REPLY_BYTES."""
    records: list[dict[str, Any]] = []
    notes: list[str] = []
    size = 0
    cells_cut = cut_at_size = False
    for row in rows:
        record: dict[str, Any] = {}
        for name, value in zip(columns, row, strict=True):
            safe, was_cut = cut_cell(json_safe(value))
            cells_cut |= was_cut
            record[name] = safe
        size += json_size(record)
        if size > MAX_REPLY_BYTES:
            cut_at_size = True
            notes.append(
                f"The reply was cut at {len(records)} rows to stay under {MAX_REPLY_BYTES // 1024} KB. "
                "Select fewer or narrower columns, or fewer rows."
            )
            size -= json_size(record)
            break
        records.append(record)
    return Records(records, cut_at_size, cells_cut, notes, size)
