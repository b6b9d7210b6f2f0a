"""Opening the catalog from two threads at once: the server opens it in the background at start while
the first query may already be asking for it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import filelock
import idc_index_data
import pytest

from idc_mcp.catalog.build import CATALOG_FILE, ensure_catalog_file, lock_path
from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.executor import Executor
from idc_mcp.config import load_settings


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


def _held(lock: Path) -> bool:
    probe = filelock.FileLock(lock, timeout=0)
    try:
        probe.acquire()
    except filelock.Timeout:
        return True
    probe.release()
    return False


def test_a_first_build_outlives_the_process_that_started_it_and_stays_the_only_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A query worker starts the first-ever build and is killed (its deadline, the memory cap, the server
    # stopping). Its build child finishes on its own; it must keep holding the build lock, or the next
    # worker starts a second build of over 1 GB beside it (seen once when the parent held the lock).
    monkeypatch.setenv("IDC_MCP_CACHE_DIR", str(tmp_path))
    target = tmp_path / idc_index_data.__version__ / CATALOG_FILE
    start_build = (
        "import idc_mcp.catalog.build as b, idc_mcp.config as c; b.ensure_catalog_file(c.load_settings())"
    )
    starter = subprocess.Popen(
        [sys.executable, "-c", start_build], cwd=Path(__file__).resolve().parent.parent
    )
    try:
        deadline = time.monotonic() + 60
        while not _held(lock_path(target)):
            assert time.monotonic() < deadline, "the build never took its lock"
            time.sleep(0.05)
    finally:
        starter.kill()
        starter.wait(30)
    assert _held(lock_path(target))  # by the build child: its killed parent held nothing
    assert not target.exists()
    # The next worker's build waits for that one and then finds the file: no second build.
    assert ensure_catalog_file(load_settings()) == target and target.is_file()
