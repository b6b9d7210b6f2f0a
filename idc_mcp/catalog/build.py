"""Build the catalog file: the bundled parquet materialized once per idc-index-data version.

The build runs in a child process (`python -m idc_mcp.catalog.build TARGET THREADS`): it peaks above
1 GB, and the server must stay small. That child holds the one portable file lock (`files.file_lock`)
while it builds, so concurrent servers wait for it, and a query worker killed during a first-ever build
(its child lives on and finishes) does not let a second build start beside it.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from idc_mcp.catalog.location import CATALOG_FILE, CATALOG_LAYOUT, catalog_file
from idc_mcp.catalog.sqltext import quote_identifier, sql_literal
from idc_mcp.files import atomic_output, file_lock

__all__ = ["CATALOG_FILE", "CATALOG_LAYOUT", "build_catalog_file", "catalog_file", "ensure_catalog_file"]

if TYPE_CHECKING:  # the query worker imports this module: it stays without pydantic (~20 MiB)
    from idc_mcp.config import Settings

log = logging.getLogger(__name__)

# The files of older layouts are removed once this one is built.
_LAYOUT_FILE = re.compile(r"catalog-v(\d+)\.duckdb")
# Rows are kept in the order of the bundled parquet: idc-index-data writes `index` ordered by
# collection_id and PatientID, so a study's series sit together. DuckDB's zone maps skip row groups on
# those columns, and PatientID and StudyInstanceUID stay dictionary-compressed, which is what makes
# COUNT(DISTINCT PatientID / StudyInstanceUID) fast. Layout 4 re-sorted by collection_id, Modality,
# PatientID, StudyInstanceUID: splitting studies across modalities left those columns FSST-compressed,
# and whole-table distinct counts ran up to twice as long (measured on the queries of
# benchmarks/workload.py: the typical workload and the issue 26 kinds, cold and warm, 2 threads).


def build_catalog_file(target: Path, threads: int = 2) -> None:
    """Materialize the bundled parquet files into a DuckDB file, atomically (temp file + rename)."""
    import duckdb

    from idc_mcp.catalog.facts import write_facts
    from idc_mcp.catalog.schemas import bundled_tables

    started = time.monotonic()
    with atomic_output(target) as tmp:
        con = duckdb.connect(str(tmp), config={"threads": threads, "autoload_known_extensions": False})
        try:
            con.execute("SET enable_progress_bar = false")
            con.execute("SET preserve_insertion_order = true")
            for name, info in bundled_tables().items():
                path = sql_literal(str(info.parquet_path))
                con.execute(f"CREATE TABLE {quote_identifier(name)} AS SELECT * FROM read_parquet({path})")
            # In storage order, as the queries that would otherwise compute them see the rows (a
            # sample of the first rows tells identifier-like columns).
            write_facts(con, list(bundled_tables()))
            con.execute("CHECKPOINT")
        finally:
            con.close()
    log.info("built catalog %s in %.1f s", target, time.monotonic() - started)


def _catalog_is_current(path: Path) -> bool:
    return path.is_file()


def ensure_catalog_file(settings: Settings) -> Path:
    """Return the catalog file for this idc-index-data version, building it once (process-safe)."""
    return ensure_catalog_at(catalog_file(settings), settings.threads)


def ensure_catalog_at(target: Path, threads: int) -> Path:
    """`ensure_catalog_file` for a target path (`catalog_file`) and a build thread count."""
    if _catalog_is_current(target):
        return target
    # A child process: the build peaks above 1 GB, the server must stay small. It takes the lock (see
    # `build_once`): this process may be killed while it waits, the build goes on and stays the only one.
    done = subprocess.run(
        [sys.executable, "-m", "idc_mcp.catalog.build", str(target), str(threads)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not _catalog_is_current(target):
        raise RuntimeError(f"building the IDC catalog failed: {done.stderr.strip()[-2000:]}")
    return target


def lock_path(target: Path) -> Path:
    """The lock that the one build of `target`'s folder holds."""
    return target.parent / ".catalog.lock"


def build_once(target: Path, threads: int) -> None:
    """Build `target` unless another process did while this one waited for the lock (the child's work)."""
    with file_lock(lock_path(target)):
        if not _catalog_is_current(target):
            build_catalog_file(target, threads)
            _remove_older_layouts(target)


def _remove_older_layouts(target: Path) -> None:
    """Delete the catalog files of older layouts in this version's folder: this code never opens them,
    and each is as large as the catalog (a server still running on one keeps reading it: POSIX unlink).
    Newer layouts are left to the newer code that built them."""
    for old in target.parent.glob("catalog-v*.duckdb"):
        match = _LAYOUT_FILE.fullmatch(old.name)
        if match and int(match.group(1)) < CATALOG_LAYOUT:
            try:
                old.unlink()
            except OSError as exc:  # e.g. open in another process on Windows: left in place
                log.info("could not remove the old catalog file %s: %s", old, exc)


if __name__ == "__main__":
    build_once(Path(sys.argv[1]), int(sys.argv[2]))
