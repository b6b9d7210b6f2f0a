"""One bound for result rows (`sql.json_values.bounded_records`), used by the query and bigquery_query
tools alike: JSON-safe values, long cells cut, and no more rows than fit in the reply."""

from __future__ import annotations

import datetime as dt

from idc_mcp.bigquery.service import _shape_rows
from idc_mcp.sql.json_values import MAX_CELL_CHARS, MAX_REPLY_BYTES, bounded_records


def test_rows_stop_before_the_reply_would_pass_its_byte_bound() -> None:
    wide = "x" * 1_000
    rows = [(i, wide) for i in range(1_000)]  # ~1 MB in all, four times the bound
    bounded = bounded_records(["n", "text"], rows)
    assert bounded.cut_at_size and 0 < len(bounded.rows) < len(rows)
    assert sum(len(r["text"]) + 20 for r in bounded.rows) <= MAX_REPLY_BYTES
    assert bounded.notes == [
        f"The reply was cut at {len(bounded.rows)} rows to stay under {MAX_REPLY_BYTES // 1024} KB. "
        "Select fewer or narrower columns, or fewer rows."
    ]


def test_values_are_made_json_safe_and_long_cells_are_cut() -> None:
    bounded = bounded_records(["d", "long"], [(dt.date(2024, 5, 1), "y" * (MAX_CELL_CHARS + 1))])
    assert bounded.rows[0]["d"] == "2024-05-01"
    assert bounded.cells_cut and bounded.rows[0]["long"].endswith("chars in all]")
    assert not bounded.cut_at_size and bounded.notes == []


def test_bigquery_rows_are_bounded_by_the_same_rule() -> None:
    rows = [{"n": i, "text": "x" * 1_000} for i in range(1_000)]
    records, truncated, notes = _shape_rows(["n", "text"], rows, max_rows=1_000, more=False)
    same = bounded_records(["n", "text"], [(r["n"], r["text"]) for r in rows])
    assert records == same.rows and truncated and notes[0] == same.notes[0]
