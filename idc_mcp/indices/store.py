"""The on-disk side of fetched indices: temp files, fetch records, parquet checks and conversion.

A fetched index is trusted only after `check_schema` (readable parquet, the bundled schema's columns) and
`convert` (every row read into a DuckDB file). Everything in progress is a dot-file named
`.<stem>.<pid>.<thread>.<suffix>`, so it can never be mistaken for a finished `<stem>.duckdb`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idc_mcp.catalog.schemas import TableInfo
from idc_mcp.catalog.sqltext import quote_identifier
from idc_mcp.config import Settings
from idc_mcp.errors import AssistantError
from idc_mcp.files import file_lock, write_text
from idc_mcp.indices import http_fetch
from idc_mcp.units import size_text

if TYPE_CHECKING:  # DuckDB loads only when an index is fetched: the server itself queries through a worker
    import duckdb


class IndexFetchError(AssistantError):
    """fetch_index failed; the message says what was tried and what to do next."""


class LockBusy(IndexFetchError):
    """Another fetch holds the lock and did not release it in time."""


LOCK_POLL_S = 0.2


@contextmanager
def bounded_lock(path: Path, wait_s: float, cancel: threading.Event | None = None) -> Iterator[None]:
    """The lock of `files.file_lock`, which a waiting caller gives up on: after `wait_s` seconds
    (LockBusy) or once `cancel` is set (http_fetch.FetchCancelled)."""
    import filelock

    lock = file_lock(path)
    give_up = time.monotonic() + wait_s
    while True:
        if cancel is not None and cancel.is_set():
            raise http_fetch.FetchCancelled(str(path), "cancelled while waiting for another fetch")
        try:
            lock.acquire(timeout=max(0.0, min(LOCK_POLL_S, give_up - time.monotonic())))
            break
        except filelock.Timeout:
            if time.monotonic() >= give_up:
                raise LockBusy(f"waited {wait_s:g} s") from None
    try:
        yield
    finally:
        lock.release()


def temp_path(folder: Path, stem: str, suffix: str) -> Path:
    return folder / f".{stem}.{os.getpid()}.{threading.get_ident()}.{suffix}"


def remove_leftovers(folder: Path, stem: str) -> None:
    """Remove what an interrupted fetch of `stem` left behind (call while holding its lock)."""
    for leftover in folder.glob(f".{stem}.*"):
        if leftover.suffix in (".parts", ".tmp") and leftover.is_dir():  # downloads; DuckDB's spill folder
            shutil.rmtree(leftover, ignore_errors=True)
        elif leftover.suffix in (".part", ".tmp", ".wal") and leftover.is_file():
            leftover.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    write_text(path, json.dumps(data, indent=1, sort_keys=True))


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def human_size(size: int | None) -> str | None:
    return None if size is None else size_text(size)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(http_fetch.CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def parse_checksum(text: str) -> str | None:
    match = re.match(r"\s*([0-9a-fA-F]{64})\b", text)
    return match.group(1).lower() if match else None


def _scratch() -> duckdb.DuckDBPyConnection:
    """An unlocked in-memory DuckDB (its own instance) for reading parquet we are about to trust."""
    import duckdb

    return duckdb.connect(":memory:", config={"autoload_known_extensions": False, "threads": 1})


def parquet_columns(path: Path | list[Path]) -> list[str]:
    import duckdb

    files = [str(p) for p in path] if isinstance(path, list) else [str(path)]
    con = _scratch()
    try:
        rows = con.execute(
            "DESCRIBE SELECT * FROM read_parquet($1, union_by_name = true)", [files]
        ).fetchall()
    except duckdb.Error as exc:
        raise IndexFetchError(f"not a readable parquet file ({str(exc).splitlines()[0][:200]})") from exc
    finally:
        con.close()
    return [r[0] for r in rows]


def check_schema(path: Path, info: TableInfo) -> None:
    """The parquet file must have exactly the columns of the bundled schema."""
    columns = parquet_columns(path)
    expected = info.column_names
    missing = [c for c in expected if c not in columns]
    extra = [c for c in columns if c not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} of its {len(expected)} columns are missing, e.g. {missing[:8]}")
        if extra:
            parts.append(f"{len(extra)} unexpected columns, e.g. {extra[:8]}")
        raise IndexFetchError(f"its columns do not match the bundled schema: {'; '.join(parts)}")


def convert(tables: dict[str, list[Path]], target_tmp: Path, settings: Settings) -> dict[str, int]:
    """Load parquet files into a new DuckDB file (a table each); returns the row counts.

    Reading every row here is also the last check: a damaged data page fails now, not in a query.
    """
    import duckdb

    con = duckdb.connect(
        str(target_tmp),
        config={
            "autoload_known_extensions": False,
            "threads": settings.threads,
            "memory_limit": settings.memory_limit,
        },
    )
    counts = {}
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute("SET preserve_insertion_order = false")  # lets DuckDB stream within the memory limit
        for table, files in tables.items():
            quoted = quote_identifier(table)
            con.execute(
                f"CREATE TABLE {quoted} AS SELECT * FROM read_parquet($1, union_by_name = true)",
                [[str(f) for f in files]],
            )
            counts[table] = int(con.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0])  # type: ignore[index]
        con.execute("CHECKPOINT")
    except duckdb.Error as exc:
        raise IndexFetchError(
            f"the parquet data could not be read ({str(exc).splitlines()[0][:200]})"
        ) from exc
    finally:
        con.close()
    return counts
