"""Benchmark: this server (real MCP client over stdio) vs idc-index's `IDCClient().sql_query`.

    .venv/bin/python benchmarks/bench_query.py                            # everything (10-15 min)
    .venv/bin/python benchmarks/bench_query.py --skip-peer --skip-layouts # only our server (~1 min)

idc-index runs only the first 6 queries once (--peer-queries, --peer-reps): it loads the whole index
into pandas at start and re-registers it on every query, 10-60 s each on a small machine.

Prints cold start to first answer (catalog cached, and first-ever start with an empty cache folder),
median and warm-median query latency, peak RSS of the server process tree, where the time of one call
goes (validation, DuckDB, diagnostics and reply shaping, MCP protocol), the storage layouts compared
on the same workload, and the ratios us/peer. Targets: >= 300x idc-index on median latency, >= 10x on
cold start, server peak RSS <= 300 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from measure import MIB, InProcess, TreeSampler  # noqa: E402
from workload import WORKLOAD  # noqa: E402


# ---------------------------------------------------------------- our server over stdio
def _server_params(cache_dir: Path | None, extra_args: list[str]) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if k.startswith("IDC_MCP_")}
    if cache_dir is not None:
        env["IDC_MCP_CACHE_DIR"] = str(cache_dir)
    return StdioServerParameters(
        command=sys.executable, args=["-m", "idc_mcp", *extra_args], env=env, cwd=str(ROOT)
    )


async def _timed_call(client: Client, sql: str) -> float:
    started = time.perf_counter()
    result = await client.call_tool("query", {"sql": sql, "max_rows": 100})
    elapsed = time.perf_counter() - started
    if result.is_error:
        raise RuntimeError(f"query failed: {result.content[0]}")
    return elapsed


async def run_ours(
    cache_dir: Path | None, reps: int, extra_args: list[str], probe: InProcess | None = None
) -> dict[str, Any]:
    """Spawn the server, time initialize / tools/list / first answer, then `reps` passes of the workload.

    With a probe, each call over stdio is followed by the same query run in this process with timers,
    so the two are measured under the same machine load and can be subtracted.
    """
    out: dict[str, Any] = {}
    pairs: list[tuple[str, float, dict[str, float]]] = []
    with TreeSampler() as sampler:
        started = time.perf_counter()
        async with Client(_server_params(cache_dir, extra_args), mode="legacy") as client:
            out["initialize_s"] = time.perf_counter() - started
            await client.list_tools()
            out["tools_list_s"] = time.perf_counter() - started
            await _timed_call(client, WORKLOAD[0][1])
            out["first_answer_s"] = time.perf_counter() - started
            passes: list[list[float]] = []
            for _ in range(reps):
                times = []
                for name, sql in WORKLOAD:
                    times.append(await _timed_call(client, sql))
                    if probe is not None:
                        with sampler.paused():
                            pairs.append((name, times[-1], probe.measure(sql)))
                passes.append(times)
    out["passes"] = passes
    out["pairs"] = pairs
    out["peak_server_mib"] = sampler.peak_server / MIB
    out["peak_build_mib"] = sampler.peak_build / MIB
    return out


def build_unsorted(target: Path) -> float:
    """Build the catalog file without the sort, in a child process; returns build seconds."""
    code = (
        "import sys; from pathlib import Path; import idc_mcp.catalog.build as c; c._SORT_KEYS = {}; "
        "c.build_catalog_file(Path(sys.argv[1]))"
    )
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(target)], check=True, cwd=ROOT)
    return time.perf_counter() - started


def run_layout(layout: str, target: str, reps: int) -> dict[str, Any]:
    """One worker process; its peak RSS sampled from here (ru_maxrss would count the forked parent)."""
    with TreeSampler() as sampler:
        done = subprocess.run(
            [sys.executable, str(HERE / "workers.py"), "layout", layout, target, str(reps)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "peak_mib": sampler.peak_tree / MIB}


def merge_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "open_first_s": min(r["open_first_s"] for r in runs),
        "passes": [p for r in runs for p in r["passes"]],
        "peak_mib": max(r["peak_mib"] for r in runs),
    }


def run_peer(names: list[str], reps: int) -> dict[str, Any]:
    with TreeSampler() as sampler:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "workers.py"), "peer", ",".join(names), str(reps)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        try:
            assert proc.stdout is not None
            first = None
            result: dict[str, Any] = {}
            for line in proc.stdout:
                event = json.loads(line)
                if event["event"] == "first_answer":
                    first = time.perf_counter() - started
                elif event["event"] == "done":
                    result = event
            proc.wait(timeout=60)
        finally:
            proc.kill()
    return {"first_answer_s": first, "passes": result["passes"], "peak_mib": sampler.peak_tree / MIB}


# ---------------------------------------------------------------- report
def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def latency_stats(passes: list[list[float]], first_k: int | None = None) -> tuple[float, float]:
    """(median over the first pass, median over the later passes = warm) of the first `first_k` queries.

    With a single pass, the warm median is the median of that pass.
    """
    k = first_k or len(passes[0])
    later = passes[1:] or passes
    return statistics.median(passes[0][:k]), statistics.median(t for p in later for t in p[:k])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=5, help="passes of the workload against our server")
    parser.add_argument("--peer-reps", type=int, default=1, help="passes against idc-index (slow)")
    parser.add_argument(
        "--peer-queries", type=int, default=6, help="how many workload queries idc-index runs (slow)"
    )
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--skip-layouts", action="store_true")
    parser.add_argument("--skip-first-ever", action="store_true", help="skip the empty-cache start")
    args = parser.parse_args()

    from idc_mcp.catalog.build import CATALOG_FILE
    from idc_mcp.config import load_settings

    settings = load_settings()
    cached_file = settings.version_cache_dir / CATALOG_FILE
    print(f"workload: {len(WORKLOAD)} queries; our server: {args.reps} passes over stdio (python -m idc_mcp)")
    print(f"cpus: {os.cpu_count()}, DuckDB threads {settings.threads}, memory {settings.memory_limit}\n")

    probe = InProcess()
    ours = anyio.run(run_ours, None, args.reps, [], probe)
    med, warm = latency_stats(ours["passes"])
    print("== our server, catalog cached ==")
    print(
        f"initialize {_s(ours['initialize_s'])}, tools/list {_s(ours['tools_list_s'])}, "
        f"first answer {_s(ours['first_answer_s'])}"
    )
    print(f"median query {_ms(med)}, warm median {_ms(warm)}, peak RSS {ours['peak_server_mib']:.0f} MiB")
    for i, (name, _) in enumerate(WORKLOAD):
        print(f"  {name:34s} " + "  ".join(f"{p[i] * 1000:7.1f}" for p in ours["passes"]) + "  ms")

    lazy = anyio.run(run_ours, None, 1, ["--lazy-catalog"])
    print(
        f"first query after the handshake waited {_s(ours['first_answer_s'] - ours['tools_list_s'])} "
        f"with the catalog opened in the background at start, "
        f"{_s(lazy['first_answer_s'] - lazy['tools_list_s'])} with --lazy-catalog"
    )

    first_ever: dict[str, Any] | None = None
    if not args.skip_first_ever:
        with tempfile.TemporaryDirectory(prefix="idc-mcp-bench-") as empty:
            first_ever = anyio.run(run_ours, Path(empty), 1, [])
        print("\n== our server, first-ever start (empty IDC_MCP_CACHE_DIR: builds the catalog) ==")
        print(
            f"initialize {_s(first_ever['initialize_s'])}, "
            f"first answer {_s(first_ever['first_answer_s'])}, "
            f"peak RSS server {first_ever['peak_server_mib']:.0f} MiB, "
            f"catalog build child {first_ever['peak_build_mib']:.0f} MiB"
        )

    print("\n== where a call's time goes (each stdio call paired with the same run_query in-process) ==")
    # Per query, the fastest of the passes for each part (the least disturbed by other load on the
    # machine), summed over the workload.
    best: dict[str, dict[str, float]] = {}
    for name, stdio, parts in ours["pairs"]:
        row = best.setdefault(name, {"stdio": stdio, **parts})
        for key, value in (("stdio", stdio), *parts.items()):
            row[key] = min(row[key], value)
    whole = sum(row["stdio"] for row in best.values())
    for label, part in (
        ("DuckDB execution (catalog.execute)", sum(r["execute"] for r in best.values())),
        ("validation (sqlguard.validate)", sum(r["validate"] for r in best.values())),
        (
            "rest of run_query (reply shaping)",
            sum(r["total"] - r["execute"] - r["validate"] for r in best.values()),
        ),
        (
            "MCP protocol + stdio (round trip - run_query)",
            sum(r["stdio"] - r["total"] for r in best.values()),
        ),
    ):
        print(f"  {label:48s} {_ms(part / len(best)):>10s} per call  {part / whole:6.1%}")
    wrong = "SELECT SeriesInstanceUID FROM index WHERE Modality = 'CTs' AND collection_id = 'tcga_luad'"
    probe.measure(wrong)
    diag = min((probe.measure(wrong) for _ in range(3)), key=lambda d: d["total"])
    print(
        f"  a zero-row query ({wrong!r}): {_ms(diag['total'])} in all: the query {_ms(diag['execute'])}, "
        f"validation {_ms(diag['validate'])}, diagnostics {_ms(diag['diagnostics'])} "
        f"({diag['notes']:.0f} notes)"
    )

    if not args.skip_layouts:
        print("\n== storage layouts, same workload, same DuckDB limits (worker process each) ==")
        with tempfile.TemporaryDirectory(prefix="idc-mcp-layout-") as tmp:
            unsorted = Path(tmp) / "unsorted.duckdb"
            build_s = build_unsorted(unsorted)
            targets = {
                "sorted table (current)": ("file", str(cached_file)),
                "unsorted table": ("file", str(unsorted)),
                "views over parquet": ("views", "-"),
            }
            # Alternate the layouts (A B C A B C) so that changes in machine load hit all of them.
            runs: dict[str, list[dict[str, Any]]] = {label: [] for label in targets}
            for _ in range(2):
                for label, (layout, target) in targets.items():
                    runs[label].append(run_layout(layout, target, args.reps))
            layouts = {label: merge_runs(r) for label, r in runs.items()}
            print(
                f"(unsorted file built in {build_s:.1f} s, {unsorted.stat().st_size / MIB:.0f} MiB; "
                f"sorted file {cached_file.stat().st_size / MIB:.0f} MiB)"
            )
        print(
            f"  {'layout':24s} {'open+1st':>10s} {'median':>10s} {'warm med':>10s} "
            f"{'workload, best':>15s} {'peak RSS':>9s}"
        )
        for label, res in layouts.items():
            m, w = latency_stats(res["passes"])
            best = sum(min(p[i] for p in res["passes"]) for i in range(len(WORKLOAD)))
            print(
                f"  {label:24s} {_ms(res['open_first_s']):>10s} {_ms(m):>10s} {_ms(w):>10s} "
                f"{_ms(best):>15s} {res['peak_mib']:6.0f} MiB"
            )
        print("  (workload, best: the fastest run of each query, summed; the least disturbed by other load)")
        for label, res in layouts.items():
            print(
                f"  {label:24s} "
                + " ".join(
                    f"{statistics.median(p[i] for p in res['passes']) * 1000:6.1f}"
                    for i in range(len(WORKLOAD))
                )
                + " ms per query"
            )

    if not args.skip_peer:
        names = [n for n, _ in WORKLOAD[: args.peer_queries]]
        print(f"\n== idc-index IDCClient().sql_query: {len(names)} queries x {args.peer_reps} pass(es) ==")
        peer = run_peer(names, args.peer_reps)
        pmed, pwarm = latency_stats(peer["passes"])
        omed, owarm = latency_stats(ours["passes"], len(names))
        print(
            f"first answer {_s(peer['first_answer_s'])}, median query {_ms(pmed)}, "
            f"warm median {_ms(pwarm)}, "
            f"peak RSS {peer['peak_mib']:.0f} MiB"
        )
        print("\n== ratios (idc-index / ours; higher is better for us) ==")
        print(f"  median query latency   {pmed / omed:8.0f}x   (same {len(names)} queries: ours {_ms(omed)})")
        print(f"  warm median latency    {pwarm / owarm:8.0f}x   (ours {_ms(owarm)})")
        print(f"  cold start, cached     {peer['first_answer_s'] / ours['first_answer_s']:8.1f}x")
        if first_ever:
            print(f"  cold start, first ever {peer['first_answer_s'] / first_ever['first_answer_s']:8.1f}x")
        print(f"  peak RSS               {peer['peak_mib'] / ours['peak_server_mib']:8.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
