"""Worker processes of the benchmark, each measured from outside by bench_query.py.

python benchmarks/workers.py layout file|views DB_FILE|- REPS   # one storage layout, JSON on stdout
python benchmarks/workers.py peer NAME,NAME,... REPS            # idc-index, JSON lines on stdout
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from workload import WORKLOAD  # noqa: E402


def layout_worker(layout: str, target: str, reps: int) -> None:
    """Open one storage layout as the server would (same limits) and run the workload; print JSON."""
    import duckdb
    import idc_index_data

    from idc_mcp.config import load_settings
    from idc_mcp.sql import guard

    settings = load_settings()
    config = {
        "autoload_known_extensions": False,
        "autoinstall_known_extensions": False,
        "threads": settings.threads,
        "memory_limit": settings.memory_limit,
    }
    started = time.perf_counter()
    if layout == "views":
        conn = duckdb.connect(":memory:", config=config)
        folder = Path(idc_index_data.__file__).parent
        for name, file in (
            ("index", "idc_index.parquet"),
            ("collections_index", "collections_index.parquet"),
        ):
            conn.execute(f"CREATE VIEW \"{name}\" AS SELECT * FROM read_parquet('{folder / file}')")
    else:
        conn = duckdb.connect(target, read_only=True, config=config)
    tables = ["index", "collections_index"]
    sqls = [guard.validate(sql, tables, 100, []).sql for _, sql in WORKLOAD]
    conn.execute(sqls[0]).fetchall()
    first = time.perf_counter() - started
    passes = []
    for _ in range(reps):
        times = []
        for sql in sqls:
            t = time.perf_counter()
            conn.execute(sql).fetchall()
            times.append(time.perf_counter() - t)
        passes.append(times)
    print(json.dumps({"open_first_s": first, "passes": passes}))


def peer_worker(names: list[str], reps: int) -> None:
    """IDCClient().sql_query on a subset of the workload; one JSON line per event on stdout."""
    import idc_index_data
    import pandas as pd
    from idc_index import IDCClient

    client = IDCClient()
    # The bundled collections_index, registered the way idc-index registers its own indices.
    bundled = Path(idc_index_data.__file__).parent / "collections_index.parquet"
    client.collections_index = pd.read_parquet(bundled)
    client.indices_overview.setdefault("collections_index", {})
    sqls = dict(WORKLOAD)
    client.sql_query(sqls[names[0]])
    print(json.dumps({"event": "first_answer"}), flush=True)
    passes = []
    for _ in range(reps):
        times = []
        for name in names:
            t = time.perf_counter()
            client.sql_query(sqls[name])
            times.append(time.perf_counter() - t)
        passes.append(times)
    print(json.dumps({"event": "done", "passes": passes}), flush=True)


if __name__ == "__main__":
    kind, *args = sys.argv[1:]
    if kind == "layout":
        layout_worker(args[0], args[1], int(args[2]))
    elif kind == "peer":
        peer_worker(args[0].split(","), int(args[1]))
    else:
        raise SystemExit(f"unknown worker {kind!r}: layout or peer")
