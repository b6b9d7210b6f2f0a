"""Opening the catalog from two threads at once: the server opens it in the background at start while
the first query may already be asking for it."""

from __future__ import annotations

import threading

import duckdb

from idc_mcp.catalog.database import Catalog


def test_query_racing_the_background_open_waits_for_the_table_list() -> None:
    # Regression: the connection used to be published before the table facts were loaded, so a query
    # arriving mid-open saw no tables at all and was told `index` was not installed.
    catalog = Catalog()
    loading, release = threading.Event(), threading.Event()
    load_facts = catalog._load_facts

    def slow_load_facts(conn: duckdb.DuckDBPyConnection) -> None:
        loading.set()
        release.wait(30)
        load_facts(conn)

    catalog._load_facts = slow_load_facts  # type: ignore[method-assign]
    opener = threading.Thread(target=catalog.installed_tables)
    opener.start()
    assert loading.wait(60), "the background open never reached the table facts"

    seen: list[list[str]] = []
    racer = threading.Thread(target=lambda: seen.append(catalog.installed_tables()))
    racer.start()
    racer.join(0.5)  # with the bug the racer returns at once (empty list); fixed, it waits for the open
    release.set()
    racer.join(30)
    opener.join(30)
    assert seen and "index" in seen[0] and "collections_index" in seen[0]
