"""describe_table's compact view: one line per column, so that a whole table costs the assistant a few KB.

Each line keeps what gets a first query right: the type, the description's first words, how many rows are
NULL, the most common values with their row counts, and the warnings about how values are written (a
date or an age stored as text, one name spelled several ways, placeholder dates). Everything else (every
value, the whole description, the filters inside lists and structs) is one `column=` call away.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

from idc_mcp.tools.table_models import ColumnDescription, TableDescription, TableProfile

VALUES = 3  # most common values shown per column
VALUE_CHARS = 24  # a longer value is cut (marked …); `column=` gives it whole
DESCRIPTION = 44  # characters of the description's first sentence
FIELDS = 6  # fields of a list or struct column named
MOSTLY_NULL = 0.5
# Columns worth naming in the note: people filter on them.
_VALUE_COLUMNS_FIRST = ("Modality", "BodyPartExamined", "Manufacturer", "license_short_name")


def compact(profile: TableProfile) -> TableDescription:
    """The profile as one line per column, with a note saying how to get a column in full."""
    lines = {col.name: line(col, profile.row_count) for col in profile.columns}
    names = [c.name for c in profile.columns]
    example = next((c for c in _VALUE_COLUMNS_FIRST if c in names), names[0] if names else "<column>")
    notes = [
        *profile.notes,
        f'describe_table(table="{profile.name}", column="{example}") gives one column in full: every '
        "value whole (up to 500) with its row count, the description, notes.",
    ]
    return TableDescription(
        name=profile.name,
        description=_sentences(profile.description, 2),
        installed=profile.installed,
        row_count=profile.row_count,
        summary=lines,
        compact=True,
        notes=notes,
    )


def line(col: ColumnDescription, rows: int | None) -> str:
    """`TYPE; description; NULL share; values; format; warnings` (empty parts left out)."""
    parts = [_type(col.type), _first_words(col.description)]
    if col.null_count and rows:
        share = col.null_count / rows
        parts.append(f"{'mostly ' if share > MOSTLY_NULL else ''}NULL {_percent(share)}")
    if col.values is not None and col.distinct_count is not None:
        shown = ", ".join(f"{_value(v.value)} {v.count:,}" for v in col.values[:VALUES])
        parts.append(f"{col.distinct_count:,} values: {shown}")
    elif col.examples and col.distinct_count is not None:
        parts.append(f"{col.distinct_count:,} distinct, e.g. {_value(col.examples[0])}")
    elif col.nested:
        fields = [n.path for n in col.nested]
        more = ", …" if len(fields) > FIELDS else ""
        parts.append(f"inside: {', '.join(fields[:FIELDS])}{more}")
    if col._brief_format:
        parts.append(col._brief_format)
    if col._brief_notes:
        parts.extend(col._brief_notes)
    return "; ".join(p for p in parts if p)


def _type(dtype: str) -> str:
    """STRUCT(a VARCHAR, b STRUCT(...))[] -> STRUCT[]: the fields are named in the line."""
    return re.sub(r"^(STRUCT|MAP)\(.*\)", r"\1", dtype)


def _sentences(text: str, n: int) -> str:
    return " ".join(re.split(r"(?<=\.)\s+", text.strip())[:n])


def _first_words(description: str) -> str:
    first = re.split(r"(?<=[.;])\s", description.strip(), maxsplit=1)[0].rstrip(".;")
    first = first.removesuffix(" (DICOM attribute)")  # said of most `index` columns: the full view says it
    return textwrap.shorten(first, DESCRIPTION, placeholder=" …") if len(first) > DESCRIPTION else first


def _value(value: Any) -> str:
    if isinstance(value, str):
        text = " ".join(value.split())
        return repr(text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS] + "…")
    return str(value)


def _percent(share: float) -> str:
    return "<1%" if share < 0.01 else f"{share:.0%}"
