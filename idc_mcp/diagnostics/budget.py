"""A time budget for diagnostic queries: each gets a short timeout, and none starts once time is up.

A diagnostic that would be slow is skipped (counted in `skipped`), never waited for: the caller's
query already has its answer, the diagnostics are a bonus. A diagnostic query that fails is SQL we
generated, so a bug of ours: it is logged with its SQL and counted in `failed`, not blamed on time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from sqlglot import exp

from idc_mcp.catalog.database import Catalog, QueryFailed, QueryOutput, QueryStopped, ResultTooLarge

log = logging.getLogger(__name__)

BUDGET_S = 3.0  # all diagnostics of one reply
PER_QUERY_S = 1.0  # one diagnostic query
MIN_SLICE_S = 0.02  # below this, do not start another query


@dataclass
class Budget:
    total_s: float = field(default_factory=lambda: BUDGET_S)
    per_query_s: float = field(default_factory=lambda: PER_QUERY_S)
    started: float = field(default_factory=time.monotonic)
    skipped: int = 0  # not run, or stopped, for lack of time
    failed: int = 0  # failed for another reason (logged)
    ran: int = 0
    # The same check is often needed twice in one diagnosis (a count without one condition is the
    # count with the other): answer repeats from here.
    _seen: dict[str, QueryOutput] = field(default_factory=dict, repr=False)

    @property
    def remaining_s(self) -> float:
        return self.total_s - (time.monotonic() - self.started)

    def run(self, catalog: Catalog, tree: exp.Expression) -> QueryOutput | None:
        """Run SQL we generated with sqlglot; None when out of time, too slow, or failing."""
        sql = tree.sql(dialect="duckdb")
        if sql in self._seen:
            return self._seen[sql]
        slice_s = min(self.per_query_s, self.remaining_s)
        if slice_s < MIN_SLICE_S:
            self.skipped += 1
            return None
        try:
            out = catalog.execute(sql, timeout_s=slice_s)
        except QueryStopped:
            self.skipped += 1
            return None
        except (QueryFailed, ResultTooLarge) as exc:
            self.failed += 1
            log.warning("a diagnostic query failed: %s\nSQL: %s", str(exc).splitlines()[0][:300], sql)
            return None
        self.ran += 1
        self._seen[sql] = out
        return out
