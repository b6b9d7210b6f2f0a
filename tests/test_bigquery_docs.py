"""Every BigQuery example in the skill and references (```sql bigquery) runs through bigquery_query on
the emulator's synthetic IDC tables and returns rows, so the documented SQL is valid for the guard, the
name checks and a BigQuery API server."""

from __future__ import annotations

import pytest

from idc_mcp.bigquery.service import run_bigquery_query
from idc_mcp.catalog.database import get_catalog
from idc_mcp.config import load_settings
from tests.bigquery_emulator_session import bigquery_examples

EXAMPLES = bigquery_examples()


def test_the_cookbook_has_a_bigquery_section_of_at_least_5_queries():
    cookbook = [e for e in EXAMPLES if e.file.endswith("sql_cookbook.md")]
    assert len(cookbook) >= 5
    shown = "\n".join(e.code for e in cookbook)
    for needle in ("UNNEST(", "segmentations", "quantitative_measurements", "INFORMATION_SCHEMA", "JOIN"):
        assert needle in shown, needle


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.label for e in EXAMPLES])
def test_bigquery_example_runs_through_the_tool_and_returns_rows(example, bq_env):
    result = run_bigquery_query(load_settings(), get_catalog(), example.code, max_rows=5)
    assert result.row_count >= 1, f"{example.label} returned no rows: {result.notes}"
