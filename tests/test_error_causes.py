"""Errors name their real cause: a failure in SQL we generated is ours, not the caller's nor the clock's,
and a size refusal is not a timeout."""

from __future__ import annotations

import logging
from typing import Any

import duckdb
import pytest
from sqlglot import exp

from idc_mcp.catalog.database import Catalog, QueryTimeout, ResultTooLarge
from idc_mcp.diagnostics.budget import Budget
from idc_mcp.tools.query import QueryError, run_query
from idc_mcp.tools.selection import Selection, SelectionError, resolve_selection


class Failing:
    """A catalog whose statements containing `marker` fail with `error` (as a bug in our SQL would)."""

    def __init__(self, inner: Catalog, marker: str, error: Exception) -> None:
        self.inner, self.marker, self.error = inner, marker, error

    def execute(self, sql: str, params: Any = None, timeout_s: float | None = None) -> Any:
        if self.marker in sql:
            raise self.error
        return self.inner.execute(sql, params, timeout_s=timeout_s)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_failing_diagnostic_query_is_logged_not_counted_as_out_of_time(
    catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    budget = Budget()
    bad = exp.select("no_such_column").from_("index")  # SQL of ours that DuckDB refuses
    with caplog.at_level(logging.WARNING, logger="idc_mcp.diagnostics.budget"):
        assert budget.run(catalog, bad) is None
    assert budget.skipped == 0 and budget.failed == 1
    assert any("no_such_column" in r.getMessage() for r in caplog.records)


def test_a_slow_diagnostic_query_still_counts_as_skipped_for_time(catalog: Catalog) -> None:
    slow = Failing(catalog, "SELECT", QueryTimeout("the query took longer than 1 s and was stopped"))
    budget = Budget()
    assert budget.run(slow, exp.select("1")) is None  # type: ignore[arg-type]
    assert budget.skipped == 1 and budget.failed == 0


def test_a_failure_of_our_selection_sql_does_not_tell_the_caller_to_fix_their_sql(
    catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    broken = Failing(catalog, "SELECT SeriesInstanceUID FROM index WHERE", duckdb.InternalException("boom"))
    with (
        caplog.at_level(logging.ERROR, logger="idc_mcp.tools.selection"),
        pytest.raises(SelectionError) as err,
    ):
        resolve_selection(broken, Selection(collection_ids=["qin_breast"]))  # type: ignore[arg-type]
    message = str(err.value)
    assert "sql failed" not in message and "Fix it" not in message
    assert "server's own query failed" in message and "not a mistake in the arguments" in message
    assert any(
        "boom" in r.getMessage() and "SELECT SeriesInstanceUID" in r.getMessage() for r in caplog.records
    )


def test_a_failure_while_running_the_callers_sql_still_points_at_it(catalog: Catalog) -> None:
    broken = Failing(
        catalog, "SELECT SeriesInstanceUID FROM index WHERE", duckdb.ConversionException("bad cast")
    )
    with pytest.raises(SelectionError, match="sql failed: bad cast"):
        resolve_selection(broken, Selection(sql="SELECT SeriesInstanceUID FROM index"))  # type: ignore[arg-type]


def test_a_result_too_large_is_not_a_timeout() -> None:
    assert not issubclass(ResultTooLarge, QueryTimeout)


def test_a_size_refusal_reads_as_a_size_refusal_not_as_a_slow_query(catalog: Catalog) -> None:
    too_large = ResultTooLarge(
        "the result holds 30 MB of nested values (lists, structs, maps); the limit is 8 MB"
    )
    big = Failing(catalog, "list(", too_large)
    with pytest.raises(QueryError) as err:
        run_query(big, "SELECT list(Modality) FROM index")  # type: ignore[arg-type]
    message = str(err.value)
    assert message.startswith("the result holds 30 MB of nested values")
    assert "cross joins" not in message and "took longer" not in message
