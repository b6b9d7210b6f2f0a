"""Where one `query` call's time goes, stage by stage, for each kind of everyday query (issue 26).

    .venv/bin/python benchmarks/bench_call_stages.py [--repeats 7] [--set kinds|held_back|both]

One server in this process (`app.create_server`), called through the SDK's in-memory client, so every
stage a real call goes through runs: the SDK's argument handling, `calls.run_call`'s thread hop,
validation, the hand-off to the query worker and back, DuckDB in the worker, the conversion of rows,
the diagnostics done on success, the reply model, the SDK's serialisation and output-schema check, and
the client's own check of the reply. Each stage is timed by wrapping the function that does it; the
result cache is emptied before every call, so each call is a first pass.

The baseline is a plain DuckDB connection in this process on the same catalog file with the same thread
count, running the same SQL and fetching all rows: "fixed cost" is what a call costs above it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from workload import HELD_BACK, KINDS  # noqa: E402

STAGES = [
    ("validate", "validation (sqlglot parse, checks, regenerated SQL)"),
    ("handoff", "hand-off to the worker and back (pickling, socket, threads)"),
    ("duckdb", "DuckDB in the worker (execute + fetch)"),
    ("convert", "conversion of rows (JSON-safe, bounded)"),
    ("diagnose", "diagnostics done on success"),
    ("model", "the reply model (QueryResult)"),
    ("run_call", "run_call (thread hop, progress pump)"),
    ("sdk_out", "SDK: output check + structured and text serialisation"),
    ("rest", "the rest: protocol, argument checks, client's schema check"),
]


class Stages:
    """Wraps the functions a call goes through and adds up their times, per call."""

    def __init__(self) -> None:
        self.times: dict[str, float] = defaultdict(float)

    def wrap(self, owner: Any, name: str, stage: str, after: Callable[[Any], None] | None = None) -> None:
        original = getattr(owner, name)
        times = self.times

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                out = original(*args, **kwargs)
            finally:
                times[stage] += time.perf_counter() - started
            if after is not None:
                after(out)
            return out

        setattr(owner, name, timed)

    def wrap_async(self, owner: Any, name: str, stage: str) -> None:
        original = getattr(owner, name)
        times = self.times

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                times[stage] += time.perf_counter() - started

        setattr(owner, name, timed)


def instrument(stages: Stages) -> None:
    from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata

    from idc_mcp import calls, server
    from idc_mcp.catalog.database import Catalog
    from idc_mcp.diagnostics import explain
    from idc_mcp.tools import query as query_mod

    stages.wrap(query_mod, "validate_for", "validate")

    def worker_time(output: Any) -> None:
        stages.times["duckdb"] += output.elapsed_s

    stages.wrap(Catalog, "execute", "execute", after=worker_time)
    stages.wrap(query_mod, "bounded_records", "convert")
    for name in ("explain_related", "explain_empty", "explain_placeholders"):
        stages.wrap(explain, name, "diagnose")
    stages.wrap(query_mod.QueryResult, "__init__", "model")
    stages.wrap(query_mod, "run_query", "work")
    stages.wrap_async(calls, "run_call", "run_call_total")
    server.run_call = calls.run_call  # the tool table imported it by name
    stages.wrap(FuncMetadata, "convert_result", "sdk_out")


def plain_duckdb(threads: int) -> Callable[[str], float]:
    import duckdb

    from idc_mcp.catalog.build import ensure_catalog_file
    from idc_mcp.config import load_settings

    conn = duckdb.connect(
        str(ensure_catalog_file(load_settings())), read_only=True, config={"threads": threads}
    )

    def run(sql: str) -> float:
        started = time.perf_counter()
        conn.execute(sql).fetchall()
        return time.perf_counter() - started

    return run


async def measure(sets: dict[str, dict[str, list[str]]], repeats: int) -> dict[str, Any]:
    from idc_mcp.app import create_server
    from idc_mcp.config import load_settings

    settings = load_settings()
    stages = Stages()
    instrument(stages)
    server = create_server(settings)
    plain = plain_duckdb(settings.threads)
    rows: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    async with Client(server) as client:
        await client.call_tool("query", {"sql": "SELECT 1 AS warm"})
        catalog = server.state.catalog
        for _ in range(repeats):
            for set_name, kinds in sets.items():
                for kind, queries in kinds.items():
                    for sql in queries:
                        catalog.results.clear()
                        stages.times.clear()
                        started = time.perf_counter()
                        result = await client.call_tool("query", {"sql": sql, "max_rows": 100})
                        total = time.perf_counter() - started
                        if result.is_error:
                            raise SystemExit(f"{sql}: {result.content[0]}")
                        executed = result.structured_content["executed_sql"]
                        t = dict(stages.times)
                        t["total"] = total
                        t["plain"] = plain(executed)
                        t["plain_caller_sql"] = plain(sql)
                        t["handoff"] = t.get("execute", 0.0) - t.get("duckdb", 0.0)
                        t["diagnose"] = t.get("diagnose", 0.0)
                        t["run_call"] = t.get("run_call_total", 0.0) - t.get("work", 0.0)
                        t["rest"] = total - t.get("run_call_total", 0.0) - t.get("sdk_out", 0.0)
                        t["bytes"] = sum(len(c.text) for c in result.content if hasattr(c, "text"))
                        rows[(set_name, kind)].append(t)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--set", choices=["kinds", "held_back", "both"], default="both")
    args = parser.parse_args()
    sets = {"kinds": KINDS, "held_back": HELD_BACK}
    if args.set != "both":
        sets = {args.set: sets[args.set]}
    rows = anyio.run(measure, sets, args.repeats)

    def med(values: list[dict[str, float]], key: str) -> float:
        return statistics.median(v.get(key, 0.0) for v in values) * 1000

    print(
        f"medians over {args.repeats} repeats x the queries of each kind, in ms (first pass: cache emptied)"
    )
    header = ["total", "plain", "above"] + [s for s, _ in STAGES]
    print(f"{'set / kind':32}" + "".join(f"{h:>9}" for h in header) + f"{'text B':>9}")
    for (set_name, kind), values in rows.items():
        cells = [med(values, "total"), med(values, "plain")]
        cells.append(statistics.median((v["total"] - v["plain"]) * 1000 for v in values))
        cells += [med(values, s) for s, _ in STAGES]
        label = f"{set_name[:4]} {kind}"
        print(f"{label:32}" + "".join(f"{c:>9.2f}" for c in cells) + f"{med(values, 'bytes') / 1000:>9.0f}")
    every = [v for values in rows.values() for v in values]
    print(
        f"\nall calls: median total {med(every, 'total'):.2f} ms, plain DuckDB {med(every, 'plain'):.2f} ms, "
        f"above it {statistics.median((v['total'] - v['plain']) * 1000 for v in every):.2f} ms"
    )
    for stage, label in STAGES:
        print(f"  {stage:9} {med(every, stage):7.2f} ms  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
