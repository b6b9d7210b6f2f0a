"""Opening the catalog from two threads at once: the server opens it in the background at start while
the first query may already be asking for it."""

from __future__ import annotations

import threading
from pathlib import Path

from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.executor import Executor


def test_query_racing_the_background_open_waits_for_the_table_list(built_catalog: Path) -> None:
    # Regression: the connection used to be published before the table facts were loaded, so a query
    # arriving mid-open saw no tables at all and was told `index` was not installed.
    catalog = Catalog()
    starting, release = threading.Event(), threading.Event()
    start_executor = catalog._start_executor

    def slow_start() -> Executor:
        starting.set()
        release.wait(30)
        return start_executor()

    catalog._start_executor = slow_start  # type: ignore[method-assign]
    opener = threading.Thread(target=catalog.installed_tables)
    opener.start()
    assert starting.wait(60), "the background open never started the worker"

    seen: list[list[str]] = []
    racer = threading.Thread(target=lambda: seen.append(catalog.installed_tables()))
    racer.start()
    racer.join(0.5)  # with the bug the racer returns at once (empty list); fixed, it waits for the open
    release.set()
    racer.join(30)
    opener.join(30)
    catalog.close()
    assert seen and "index" in seen[0] and "collections_index" in seen[0]
