"""Benchmark against IDC's official server (IDC-REST-MCP): every ratio of docs/performance.md from one run.

    .venv/bin/python benchmarks/bench_peer.py --peer-command /tmp/peer/venv/bin/idc-mcp --downloads 7
    .venv/bin/python benchmarks/bench_peer.py            # no peer: our figures only, no ratios

The peer is not published as a package: clone github.com/ImagingDataCommons/IDC-REST-MCP into a
temporary folder, `python -m venv /tmp/peer/venv && /tmp/peer/venv/bin/pip install <clone>`, and pass
its `idc-mcp` here (it runs with IDC_API_INCLUDE_INDICES=none; tool `run_sql`). Never commit its code.

Over MCP stdio, alternating our server and the peer, `--starts` server starts each (this machine is
noisy: medians of alternated runs): cold start to first answer (spawn -> initialize -> first query
answered), the median of the six typical queries on their first pass, and on a second pass (the same
queries again). Then, ours only: peak RSS of our whole process tree (server + query worker) through
the workload with diagnostics, the first-ever start with an empty cache folder, and streamable HTTP
with `--clients` concurrent clients x `--calls` mixed calls (good, flawed and hostile SQL,
describe_table, check_licenses), against a trivial call (`SELECT 1`) under the same load, and the
latency of good queries while a slow hostile query runs. `--downloads ROUNDS` adds bench_download.py's
throughput against the bare s5cmd binary on a local S3 mirror (the peer has no download engine).
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import psutil
from mcp import Client
from mcp.client.stdio import StdioServerParameters

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from measure import MIB, OutOfProcessSampler, TreeSampler, plain_duckdb_runs  # noqa: E402

sys.path.insert(0, str(ROOT))
from workload import HELD_BACK, KIND_NAMES, KINDS, WORKLOAD  # noqa: E402

from idc_mcp.catalog.build import ensure_catalog_file  # noqa: E402
from idc_mcp.config import load_settings  # noqa: E402

TYPICAL = WORKLOAD[:6]  # the six typical queries (docs/performance.md)
# Issue 26: everyday queries by kind, the tuned set and the held-back one: (set, kind, sql).
BY_KIND = [("tuned", kind, sql) for kind, queries in KINDS.items() for sql in queries] + [
    ("held back", kind, sql) for kind, queries in HELD_BACK.items() for sql in queries
]
# Replies that repair mistakes, measured for memory (the peer has no such diagnostics).
DIAGNOSED = [
    "SELECT SeriesInstanceUID FROM index WHERE Modality = 'MR' AND collection_id = 'TCGA-LUAD'",
    "SELECT cancer_types FROM index",
    "SELECT count(*) FROM index WHERE Manufacturer = 'GE'",
    "SELECT * FROM index WHERE BodyPartExamined = 'LUNGS' AND Modality = 'CT'",
]
FLAWED = [
    "SELECT PatientAge FROM index WHERE PatientSex = 'Male' LIMIT 5",
    "SELECT cancer_type FROM collections_index",
    "SELECT * FROM idx LIMIT 3",
]
HOSTILE = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "COPY (SELECT 1) TO '/tmp/x.csv'",
    "SELECT length(string_agg(SeriesInstanceUID, ',')) FROM index",
    "SELECT lpad('a', 900000000, 'x')",
]
SLOW_HOSTILE = "SELECT count(*) FROM index a, index b"


# ---------------------------------------------------------------- one stdio session
def _ours(cache_dir: Path | None = None) -> StdioServerParameters:
    env = dict(os.environ)
    if cache_dir is not None:
        env["IDC_MCP_CACHE_DIR"] = str(cache_dir)
    return StdioServerParameters(command=sys.executable, args=["-m", "idc_mcp"], env=env, cwd=str(ROOT))


def _peer(command: str) -> StdioServerParameters:
    env = dict(os.environ, IDC_API_INCLUDE_INDICES="none")
    parts = command.split()
    return StdioServerParameters(command=parts[0], args=parts[1:], env=env, cwd=tempfile.gettempdir())


async def _call(client: Client, tool: str, sql: str) -> float:
    started = time.perf_counter()
    result = await client.call_tool(tool, {"sql": sql, "max_rows": 100})
    elapsed = time.perf_counter() - started
    if result.is_error:
        raise RuntimeError(f"{tool} failed on {sql[:60]}: {result.content[0]}")
    return elapsed


async def stdio_session(params: StdioServerParameters, tool: str, diagnosed: bool = False) -> dict[str, Any]:
    """Cold start to first answer, then two passes of the typical queries; peak RSS of the tree."""
    with OutOfProcessSampler() as sampler:
        started = time.perf_counter()
        async with Client(params, mode="legacy", read_timeout_seconds=900) as client:
            await _call(client, tool, TYPICAL[0][1])
            first_answer = time.perf_counter() - started
            first = [await _call(client, tool, sql) for _, sql in TYPICAL[1:]]
            # The first query's first pass is the cold-start answer itself: time it apart from that.
            again = [await _call(client, tool, sql) for _, sql in TYPICAL]
            kinds_first = [await _call(client, tool, sql) for s, _, sql in BY_KIND if s == "tuned"]
            peak_tuned = sampler.peak_tree / MIB  # the typical queries and the tuned kinds
            kinds_first += [await _call(client, tool, sql) for s, _, sql in BY_KIND if s != "tuned"]
            kinds_again = [await _call(client, tool, sql) for _, _, sql in BY_KIND]
            peak_tools = 0.0
            if diagnosed:
                for sql in DIAGNOSED:
                    await client.call_tool(tool, {"sql": sql, "max_rows": 100})
            peak_workload = sampler.peak_tree / MIB
            if diagnosed:
                await client.call_tool("check_licenses", {"collection_ids": ["tcga_luad", "rider_pilot"]})
                await client.call_tool("describe_table", {"table": "index"})
                peak_tools = sampler.peak_tree / MIB
    return {
        "first_answer_s": first_answer,
        "first_pass": first,
        "again": again,
        "kinds_first": kinds_first,
        "kinds_again": kinds_again,
        "peak_tree_mib": peak_workload,
        "peak_tuned_mib": peak_tuned,
        "peak_with_describe_mib": peak_tools,
    }


def compile_ours() -> None:
    """Write our package's bytecode, as `pip install` does for a user (the peer's venv has it).

    Run from a checkout with PYTHONDONTWRITEBYTECODE set (as on this machine), every start would
    otherwise compile ~100 modules from source: ~75 ms that no installed copy pays."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "idc_mcp")],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def sdk_import_s(python: str, module: str) -> float:
    """Wall time of a fresh interpreter that only imports the MCP SDK's server module: the floor of
    any server's cold start on that SDK."""
    started = time.perf_counter()
    subprocess.run([python, "-c", f"import {module}"], check=True, cwd=tempfile.gettempdir())
    return time.perf_counter() - started


# ---------------------------------------------------------------- streamable HTTP under load
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mixed_calls(rng: random.Random, n: int) -> list[tuple[str, dict[str, Any], bool]]:
    """(tool, arguments, must succeed) drawn from good, flawed and hostile SQL and two other tools."""
    kinds = (
        [("query", {"sql": sql, "max_rows": 100}, True) for _, sql in WORKLOAD]
        + [("query", {"sql": sql, "max_rows": 20}, False) for sql in FLAWED + DIAGNOSED]
        + [("query", {"sql": sql}, False) for sql in HOSTILE]
        + [
            ("describe_table", {"table": "index"}, True),
            ("describe_table", {"table": "collections_index"}, True),
        ]
        + [("check_licenses", {"collection_ids": ["tcga_luad"]}, True)]
        + [
            (
                "check_licenses",
                {"collection_ids": ["tcga_brca", "rider_pilot"], "analysis_results": "exclude"},
                True,
            )
        ]
    )
    return [rng.choice(kinds) for _ in range(n)]


async def _client(url: str, calls: list[tuple[str, dict[str, Any], bool]], out: dict[str, list[Any]]) -> None:
    try:
        async with Client(url, mode="legacy", read_timeout_seconds=120) as client:
            for tool, arguments, must_succeed in calls:
                started = time.perf_counter()
                try:
                    result = await client.call_tool(tool, arguments)
                except Exception as exc:  # noqa: BLE001 - a transport failure is what we count
                    out["failures"].append(f"{tool}: {type(exc).__name__}: {exc}"[:200])
                    continue
                out["latency"].append(time.perf_counter() - started)
                out.setdefault("by_kind", []).append((_kind(tool, arguments), out["latency"][-1]))
                if must_succeed and result.is_error:
                    out["failures"].append(f"{tool} {arguments}: {result.content[0]}"[:200])
    except Exception as exc:  # noqa: BLE001
        out["failures"].append(f"session: {type(exc).__name__}: {exc}"[:200])


def _kind(tool: str, arguments: dict[str, Any]) -> str:
    if tool != "query":
        return tool
    sql = arguments.get("sql", "")
    for label, group in (("good SQL", [q for _, q in WORKLOAD]), ("flawed SQL", FLAWED + DIAGNOSED)):
        if sql in group:
            return f"query, {label}"
    return "query, hostile SQL" if sql in HOSTILE else "query"


async def _load(url: str, clients: int, calls: int, trivial: bool, seed: int) -> dict[str, list[Any]]:
    rng = random.Random(seed)
    out: dict[str, list[Any]] = {"latency": [], "failures": []}
    async with anyio.create_task_group() as group:
        for _ in range(clients):
            plan = (
                [("query", {"sql": "SELECT 1 AS one"}, True)] * calls if trivial else _mixed_calls(rng, calls)
            )
            group.start_soon(_client, url, plan, out)
    return out


async def _stall_check(url: str, timeout_s: float) -> dict[str, Any]:
    """Latency of good queries from one client while another runs a slow hostile query."""
    good: list[float] = []
    async with (
        Client(url, mode="legacy", read_timeout_seconds=120) as hostile,
        Client(url, mode="legacy", read_timeout_seconds=120) as other,
    ):
        for _, sql in TYPICAL:  # warm: the same queries answered once before
            await other.call_tool("query", {"sql": sql})
        baseline = []
        for _, sql in TYPICAL:
            started = time.perf_counter()
            await other.call_tool("query", {"sql": sql + " "})  # a new text: not the cached reply
            baseline.append(time.perf_counter() - started)
        slow_done = anyio.Event()
        slow_elapsed: list[float] = []

        async def run_slow() -> None:
            started = time.perf_counter()
            await hostile.call_tool("query", {"sql": SLOW_HOSTILE})
            slow_elapsed.append(time.perf_counter() - started)
            slow_done.set()

        async with anyio.create_task_group() as group:
            group.start_soon(run_slow)
            await anyio.sleep(0.5)
            while not slow_done.is_set():
                for i, (_, sql) in enumerate(TYPICAL):
                    started = time.perf_counter()
                    await other.call_tool("query", {"sql": sql + " " * (2 + i + len(good))})
                    good.append(time.perf_counter() - started)
                    if slow_done.is_set():
                        break
    return {"baseline": baseline, "during": good, "slow_s": slow_elapsed[0] if slow_elapsed else None}


def http_phase(clients: int, calls: int, timeout_s: float) -> dict[str, Any]:
    port = _free_port()
    env = dict(os.environ, IDC_MCP_QUERY_TIMEOUT=str(timeout_s))
    audit = Path(tempfile.mkdtemp(prefix="idc-mcp-bench-")) / "audit.jsonl"
    # All clients are one caller ('anonymous') to the team server's per-caller limits: lift them, the
    # load is the point here. The audit log goes to a temporary file, not the user's cache.
    limits = ["--max-concurrent", str(clients * 2), "--calls-per-minute", str(clients * calls * 10)]
    limits += ["--max-sessions", str(clients * 2)]  # per token: one caller holds all the sessions here
    proc = subprocess.Popen(
        [sys.executable, "-m", "idc_mcp", "--transport", "streamable-http", "--port", str(port), *limits]
        + ["--audit-log", str(audit)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        anyio.run(_load, url, 2, 3, False, 0)  # the catalog open and first queries out of the way
        with TreeSampler() as sampler:
            floor = anyio.run(_load, url, clients, calls, True, 1)
            mixed = anyio.run(_load, url, clients, calls, False, 2)
            stall = anyio.run(_stall_check, url, timeout_s)
        server_tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        rss_after = sum(p.memory_info().rss for p in server_tree) / MIB
    finally:
        proc.kill()
        proc.wait(30)
    return {
        "floor": floor,
        "mixed": mixed,
        "stall": stall,
        "peak_tree_mib": sampler.peak_tree / MIB,
        "rss_after_mib": rss_after,
    }


# ---------------------------------------------------------------- queries by kind (issue 26)
def plain_duckdb_s(sqls: list[str], starts: int) -> list[float]:
    """Each query's first run on a plain DuckDB connection (`measure.plain_duckdb_runs`), in a fresh
    process per start and after the typical queries, as a server session meets it. Median over `starts`."""
    runs = [plain_duckdb_runs([sql for _, sql in TYPICAL], sqls) for _ in range(starts)]
    return [statistics.median(run[i][0] for run in runs) for i in range(len(sqls))]


def kinds_report(ours_runs: list[dict[str, Any]], peer_runs: list[dict[str, Any]]) -> None:
    """Per kind of query, tuned and held-back sets apart: first pass and repeat, ours vs the peer."""

    def per_query(runs: list[dict[str, Any]], key: str) -> list[float]:
        return [statistics.median(r[key][i] for r in runs) for i in range(len(BY_KIND))]

    plain = plain_duckdb_s([sql for _, _, sql in BY_KIND], max(3, len(ours_runs)))
    ours_first, ours_again = per_query(ours_runs, "kinds_first"), per_query(ours_runs, "kinds_again")
    peer_first = per_query(peer_runs, "kinds_first") if peer_runs else None
    peer_again = per_query(peer_runs, "kinds_again") if peer_runs else None
    for set_name in ("tuned", "held back"):
        rows = [i for i, (s, _, _) in enumerate(BY_KIND) if s == set_name]
        print(
            f"\n== queries by kind, {set_name} set ({len(rows)} queries; medians over starts, then over the "
            "kind's queries) =="
        )
        print(f"{'kind':24} {'plain DuckDB':>13} {'ours':>10} {'peer':>10} {'first':>7} {'again':>7}")
        ratios_first, ratios_again = [], []
        for kind in KINDS:
            idx = [i for i in rows if BY_KIND[i][1] == kind]

            def med(values: list[float], idx: list[int] = idx) -> float:
                return statistics.median(values[i] for i in idx)

            line = f"{kind:24} {_ms(med(plain)):>13} {_ms(med(ours_first)):>10}"
            if peer_first and peer_again:
                first = med(ours_first) / med(peer_first)
                again = med(ours_again) / med(peer_again)
                ratios_first.append(first)
                ratios_again.append(again)
                line += f" {_ms(med(peer_first)):>10} {first:>6.2f}x {again:>6.2f}x"
            print(line)
        above = statistics.median(ours_first[i] - plain[i] for i in rows)
        print(
            f"fixed cost per call, ours above plain DuckDB (median over queries): {_ms(above)} (<= 1 ms "
            f"{_verdict(above <= 0.001)})"
        )
        if peer_first and ratios_first:
            peer_above = statistics.median(peer_first[i] - plain[i] for i in rows)
            print(
                f"  the peer above plain DuckDB: {_ms(peer_above)}; ours above the peer's: "
                f"{_ms(above - peer_above)}"
            )
            worst = max(ratios_first)
            print(
                f"first pass ours / peer, median over kinds {statistics.median(ratios_first):.2f}x "
                f"(<= 0.9x {_verdict(statistics.median(ratios_first) <= 0.9)}), slowest kind {worst:.2f}x "
                f"(<= 1.0x {_verdict(worst <= 1.0)}); repeats median {statistics.median(ratios_again):.2f}x "
                f"(<= 0.3x {_verdict(statistics.median(ratios_again) <= 0.3)})"
            )
    for kind, label in KIND_NAMES.items():
        print(f"  {kind}: {label}")


# ---------------------------------------------------------------- report
def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def _q(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def stdio_report(args: argparse.Namespace, peer: str | None) -> None:
    """Over MCP stdio, alternated starts: cold start, the typical queries, memory, the queries by kind."""
    ours_runs: list[dict[str, Any]] = []
    peer_runs: list[dict[str, Any]] = []
    sdk_ours: list[float] = []
    sdk_peer: list[float] = []
    if peer:  # the peer builds its own database on its very first start: not counted
        anyio.run(stdio_session, _peer(peer), "run_sql")
    anyio.run(stdio_session, _ours(), "query")  # ours likewise (catalog cached afterwards)
    # On a first-ever start that session answered from the parquet while the catalog file was built in
    # the background; the build outlives the session: wait for it, or the measured starts share the
    # cores with it (and their tree includes it).
    ensure_catalog_file(load_settings())
    for start in range(args.starts):
        ours_runs.append(anyio.run(stdio_session, _ours(), "query", start == 0))
        sdk_ours.append(sdk_import_s(sys.executable, "mcp.server.mcpserver"))
        if peer:
            peer_runs.append(anyio.run(stdio_session, _peer(peer), "run_sql"))
            # The peer pins mcp 1.x, whose server module is mcp.server.fastmcp.
            sdk_peer.append(sdk_import_s(str(Path(peer.split()[0]).parent / "python"), "mcp.server.fastmcp"))

    def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
        return {
            "cold": statistics.median(r["first_answer_s"] for r in runs),
            "first": statistics.median(t for r in runs for t in r["first_pass"]),
            "again": statistics.median(t for r in runs for t in r["again"]),
            "rss": max(r["peak_tree_mib"] for r in runs),
        }

    ours = summary(ours_runs)
    print(f"\n== stdio, {args.starts} alternated starts per side (medians) ==")
    print(f"{'':34} {'idc-mcp':>12} {'IDC-REST-MCP':>14} {'ratio':>7}  target")
    rows = [
        ("cold start to first answer", "cold", 0.8, lambda v: f"{v:.2f} s"),
        ("median query, first pass", "first", 0.7, _ms),
        ("median query, same queries again", "again", 0.3, _ms),
    ]
    other = summary(peer_runs) if peer_runs else None
    for label, key, target, fmt in rows:
        if other:
            ratio = ours[key] / other[key]
            print(
                f"{label:34} {fmt(ours[key]):>12} {fmt(other[key]):>14} {ratio:>6.2f}x  <= {target}x "
                f"{_verdict(ratio <= target)}"
            )
        else:
            print(f"{label:34} {fmt(ours[key]):>12} {'-':>14}")
        if key == "cold":
            # What each side adds to its SDK's import (the SDKs differ: ours mcp 2.x, the peer mcp 1.x).
            sdk = statistics.median(sdk_ours)
            peer_sdk = f"{statistics.median(sdk_peer):.2f} s" if sdk_peer else "-"
            print(f"{'  the MCP SDK import alone':34} {sdk:>10.2f} s {peer_sdk:>14}")
            added = ours["cold"] - sdk
            peer_added = f"{other['cold'] - statistics.median(sdk_peer):.2f} s" if other and sdk_peer else "-"
            print(f"{'  cold start minus the SDK import':34} {added:>10.2f} s {peer_added:>14}")
    peer_rss = f"{other['rss']:.0f} MiB" if other else "-"
    print(
        f"{'peak RSS, whole tree (+diagnostics)':34} {ours['rss']:>8.0f} MiB {peer_rss:>14}   "
        f"<= 300 MiB {_verdict(ours['rss'] <= 300)}"
    )
    tuned = max(r["peak_tuned_mib"] for r in ours_runs)
    peer_tuned = f"{max(r['peak_tuned_mib'] for r in peer_runs):.0f} MiB" if peer_runs else "-"
    print(f"{'  of which typical + tuned kinds':34} {tuned:>8.0f} MiB {peer_tuned:>14}")
    described = max(r["peak_with_describe_mib"] for r in ours_runs)
    print(f"{'  then check_licenses, describe_table':34} {described:>8.0f} MiB")

    kinds_report(ours_runs, peer_runs)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--peer-command", help="the peer's idc-mcp command (skipped when absent)")
    parser.add_argument("--starts", type=int, default=3, help="server starts per side, alternating")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--http-timeout", type=float, default=20.0, help="query timeout of the HTTP server")
    parser.add_argument("--skip-first-ever", action="store_true")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-stdio", action="store_true", help="only the first-ever start and HTTP")
    parser.add_argument(
        "--downloads",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="also run bench_download.py (ours vs the bare s5cmd binary) with this many rounds",
    )
    args = parser.parse_args()
    peer = args.peer_command
    if peer and not Path(peer.split()[0]).exists():
        print(f"peer command not found ({peer}): peer skipped")
        peer = None

    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; typical queries: {len(TYPICAL)}")
    compile_ours()
    if not args.skip_stdio:
        stdio_report(args, peer)

    if not args.skip_first_ever:
        with tempfile.TemporaryDirectory(prefix="idc-mcp-first-ever-") as empty:
            first_ever = anyio.run(stdio_session, _ours(Path(empty)), "query")
        fe = first_ever["first_answer_s"]
        print(f"{'first-ever start (empty cache)':34} {fe:>10.2f} s {'-':>14}   <= 5 s {_verdict(fe <= 5)}")

    if not args.skip_http:
        http = http_phase(args.clients, args.calls, args.http_timeout)
        floor, mixed, stall = http["floor"]["latency"], http["mixed"]["latency"], http["stall"]
        failures = http["floor"]["failures"] + http["mixed"]["failures"]
        p50_floor, p50, p99 = _q(floor, 0.5), _q(mixed, 0.5), _q(mixed, 0.99)
        print(f"\n== streamable HTTP, {args.clients} clients x {args.calls} calls ==")
        print(
            f"trivial calls (SELECT 1): p50 {_ms(p50_floor)}, p99 {_ms(_q(floor, 0.99))}, {len(floor)} calls"
        )
        print(f"mixed calls: p50 {_ms(p50)}, p99 {_ms(p99)}, {len(mixed)} calls, {len(failures)} failures")
        for failure in failures[:5]:
            print(f"  failure: {failure}")
        kinds: dict[str, list[float]] = {}
        for kind, seconds in http["mixed"].get("by_kind", []):
            kinds.setdefault(kind, []).append(seconds)
        for kind, values in sorted(kinds.items()):
            print(f"  {kind}: {len(values)} calls, p50 {_ms(_q(values, 0.5))}, p99 {_ms(_q(values, 0.99))}")
        print(f"  p50 / trivial p50 = {p50 / p50_floor:.2f}x (<= 1.5x {_verdict(p50 / p50_floor <= 1.5)})")
        print(
            f"  p99 {_ms(p99)} (<= 2 s {_verdict(p99 <= 2)}); "
            f"failures {len(failures)} (0 {_verdict(not failures)})"
        )
        print(
            f"  peak RSS of the server tree {http['peak_tree_mib']:.0f} MiB (< 1 GiB "
            f"{_verdict(http['peak_tree_mib'] < 1024)}); after the load {http['rss_after_mib']:.0f} MiB"
        )
        during = stall["during"]
        if during:
            print(
                f"good queries while a slow hostile query ran ({stall['slow_s']:.1f} s): median "
                f"{_ms(statistics.median(during))}, max {_ms(max(during))} over {len(during)} calls "
                f"(same queries before it: median {_ms(statistics.median(stall['baseline']))})"
            )
    if args.downloads:
        # Download throughput against the bare s5cmd binary (the peer has no download engine).
        print(
            f"\n== downloads: ours vs the bare s5cmd binary, {args.downloads} alternated rounds ==",
            flush=True,
        )
        command = [sys.executable, str(HERE / "bench_download.py"), "--rounds", str(args.downloads)]
        subprocess.run([*command, "--skip-idc-index"], check=True, cwd=ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
