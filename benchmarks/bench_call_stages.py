"""Where one `query` call's time goes, stage by stage, for each kind of everyday query (issue 26).

    .venv/bin/python benchmarks/bench_call_stages.py --stdio [--repeats 3] [--set kinds|held_back|both]
    .venv/bin/python benchmarks/bench_call_stages.py [--repeats 7]          # in memory, one process

Each stage is timed by wrapping the function that does it:

- validate: sqlglot parse, the checks, the regenerated SQL (`tools.query.validate_for`);
- duckdb: DuckDB in the query worker, execute + fetch (the worker's own clock), for every catalog query
  of the call (the diagnostics' too); handoff: the rest of `Catalog.execute`, i.e. pickling, the socket
  pair and the threads on both sides;
- convert, diagnose, model: rows made JSON-safe and bounded, the diagnostics run on success, the reply;
- run_call: `calls.run_call` around the work (the thread hop, the progress pump);
- sdk_out: the SDK's output check and serialisation of the reply (`FuncMetadata.convert_result`);
- server: all of `IdcServer.call_tool`; with --stdio also transport (the line read to call_tool, and
  call_tool's end to the reply written) and the client's whole call.

--stdio (what the issue measures) runs the server as a real child over pipes, as an MCP client does; the
in-memory mode puts client and server in one process (their CPU adds up: slower, but steadier). Every
call is a first pass for the result cache: `max_rows` changes with each repeat. The first repeat is also
the first time the server sees the query (cold DuckDB, diagnostics' first look at a column).

The baseline: the same SQL on a plain DuckDB connection to the same catalog file, same thread count,
first pass in a fresh process (as the server's worker sees it): "above" is what a call costs beyond it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
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

from measure import plain_duckdb_runs  # noqa: E402
from workload import HELD_BACK, KINDS, WORKLOAD  # noqa: E402

WARM = [sql for _, sql in WORKLOAD[:6]]  # the typical queries, asked before the plan
STAGES = ["validate", "handoff", "duckdb", "convert", "diagnose", "model", "run_call", "sdk_out"]


class Stages:
    """Wraps the functions a call goes through and adds up their times for the current call."""

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


def instrument(stages: Stages, records: list[dict[str, Any]]) -> None:
    """Time every stage of a `query` call; each call's times are appended to `records`."""
    from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata

    from idc_mcp import app, calls, server
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
    call_tool = app.IdcServer.call_tool

    async def timed_call(self: Any, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        stages.times.clear()
        started = time.perf_counter()
        try:
            return await call_tool(self, name, arguments, context)
        finally:
            record = dict(stages.times)
            record.update(server=time.perf_counter() - started, entered=started, sql=arguments.get("sql"))
            record["handoff"] = record.get("execute", 0.0) - record.get("duckdb", 0.0)
            record["run_call"] = record.get("run_call_total", 0.0) - record.get("work", 0.0)
            records.append(record)

    app.IdcServer.call_tool = timed_call  # type: ignore[method-assign]


def serve_instrumented(out: str) -> None:
    """The server over stdio, instrumented; its records (and when each line came and each reply went)
    are written to `out` when it stops."""
    import atexit

    from idc_mcp.serve import stdio_pipes

    records: list[dict[str, Any]] = []
    marks: dict[str, list[float]] = {"received": [], "sent": []}
    instrument(Stages(), records)
    next_line, flush = stdio_pipes._Lines.__anext__, stdio_pipes._Out.flush

    async def received(self: Any) -> str:
        line = await next_line(self)
        marks["received"].append(time.perf_counter())
        return line

    async def sent(self: Any) -> None:
        await flush(self)
        marks["sent"].append(time.perf_counter())

    stdio_pipes._Lines.__anext__ = received  # type: ignore[method-assign]
    stdio_pipes._Out.flush = sent  # type: ignore[method-assign]

    def dump() -> None:
        Path(out).write_text(json.dumps({"records": records, "marks": marks}))

    atexit.register(dump)
    from idc_mcp.cli import main

    main([])


def _plan(sets: dict[str, dict[str, list[str]]]) -> list[tuple[str, str, str]]:
    return [(s, kind, sql) for s, kinds in sets.items() for kind, sqls in kinds.items() for sql in sqls]


async def _drive(client: Client, plan: list[tuple[str, str, str]], repeats: int) -> list[dict[str, Any]]:
    calls = []
    await client.call_tool("query", {"sql": "SELECT 1 AS warm"})
    for sql in WARM:  # what a session usually asked first
        await client.call_tool("query", {"sql": sql})
    for repeat in range(repeats):
        for set_name, kind, sql in plan:
            started = time.perf_counter()
            result = await client.call_tool("query", {"sql": sql, "max_rows": 100 - repeat})
            elapsed = time.perf_counter() - started
            if result.is_error:
                raise SystemExit(f"{sql}: {result.content[0]}")
            calls.append({"set": set_name, "kind": kind, "sql": sql, "repeat": repeat, "client": elapsed})
    return calls


def _join(calls: list[dict[str, Any]], records: list[dict[str, Any]], marks: dict[str, list[float]]) -> None:
    """Attach each call's server-side record (in order: the plan's calls are the last ones made)."""
    import bisect

    mine = records[-len(calls) :]
    received, sent = sorted(marks.get("received", [])), sorted(marks.get("sent", []))
    for call, record in zip(calls, mine, strict=True):
        call.update(record)
        if received and sent:
            entered, left = record["entered"], record["entered"] + record["server"]
            call["transport"] = (entered - received[bisect.bisect_right(received, entered) - 1]) + (
                sent[bisect.bisect_left(sent, left)] - left
            )


async def measure_stdio(plan: list[tuple[str, str, str]], repeats: int) -> list[dict[str, Any]]:
    from mcp.client.stdio import StdioServerParameters

    with tempfile.TemporaryDirectory(prefix="idc-mcp-stages-") as folder:
        out = str(Path(folder) / "records.json")
        params = StdioServerParameters(
            command=sys.executable,
            args=[str(Path(__file__).resolve()), "--serve-instrumented", out],
            env=dict(os.environ),
            cwd=str(ROOT),
        )
        async with Client(params, mode="legacy", read_timeout_seconds=900) as client:
            calls = await _drive(client, plan, repeats)
        for _ in range(100):  # the server writes its records as it exits
            if Path(out).is_file():
                break
            await anyio.sleep(0.05)
        found = json.loads(Path(out).read_text())
    _join(calls, found["records"], found["marks"])
    return calls


async def measure_in_memory(plan: list[tuple[str, str, str]], repeats: int) -> list[dict[str, Any]]:
    from idc_mcp.app import create_server
    from idc_mcp.config import load_settings

    records: list[dict[str, Any]] = []
    instrument(Stages(), records)
    async with Client(create_server(load_settings())) as client:
        calls = await _drive(client, plan, repeats)
    _join(calls, records, {})
    return calls


def report(calls: list[dict[str, Any]], plain: dict[str, tuple[float, float]], stdio: bool) -> None:
    columns = ["client", "plain", "above", "server"] + (["transport"] if stdio else []) + STAGES

    def base(call: dict[str, Any]) -> float:
        return plain[call["sql"]][0 if call["repeat"] == 0 else 1]  # first run, or DuckDB warm

    def med(values: list[dict[str, Any]], key: str) -> float:
        if key == "plain":
            return statistics.median(base(v) for v in values) * 1000
        if key == "above":
            return statistics.median(v["client"] - base(v) for v in values) * 1000
        return statistics.median(v.get(key, 0.0) for v in values) * 1000

    for label, chosen in (("first time seen", [c for c in calls if c["repeat"] == 0]), ("again", calls)):
        if label == "again":
            chosen = [c for c in calls if c["repeat"] > 0]
        if not chosen:
            continue
        print(f"\n== {label}: medians in ms ({'stdio' if stdio else 'in memory'}) ==")
        print(f"{'set / kind':30}" + "".join(f"{c:>10}" for c in columns))
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for call in chosen:
            groups[(call["set"], call["kind"])].append(call)
        for (set_name, kind), values in groups.items():
            cells = "".join(f"{med(values, c):>10.2f}" for c in columns)
            print(f"{set_name[:4] + ' ' + kind:30}{cells}")
        print(f"{'all':30}" + "".join(f"{med(chosen, c):>10.2f}" for c in columns))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--stdio", action="store_true", help="the server as a child over pipes (as a client runs it)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", choices=["kinds", "held_back", "both"], default="both")
    parser.add_argument("--serve-instrumented", metavar="OUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_instrumented:
        serve_instrumented(args.serve_instrumented)
        return 0
    sets = {"kinds": KINDS, "held_back": HELD_BACK}
    if args.set != "both":
        sets = {args.set: sets[args.set]}
    plan = _plan(sets)
    print(
        f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; {len(plan)} queries x {args.repeats}"
    )
    calls = anyio.run(measure_stdio if args.stdio else measure_in_memory, plan, args.repeats)
    runs = plain_duckdb_runs(WARM, [sql for _, _, sql in plan])  # after what the session ran first
    plain = {sql: t for (_, _, sql), t in zip(plan, runs, strict=True)}
    report(calls, plain, args.stdio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
