"""Measuring helpers for the benchmark: RSS of child processes, and run_query timed part by part."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psutil

MIB = 1024 * 1024


# ---------------------------------------------------------------- memory sampling
class TreeSampler:
    """Samples the RSS of every descendant of this process; peak per role (server, catalog build)."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.peak_server = 0
        self.peak_build = 0
        self.peak_tree = 0
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No sampling meanwhile: in-process timings must not compete with the sampler for the CPU."""
        self._running.clear()
        try:
            yield
        finally:
            self._running.set()

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._running.set()
        self._thread.join()

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            self._running.wait()
            total = 0
            for child in me.children(recursive=True):
                try:
                    rss = child.memory_info().rss
                    cmd = " ".join(child.cmdline())
                except psutil.Error:
                    continue
                total += rss
                if "idc_mcp.catalog.build_main" in cmd:
                    self.peak_build = max(self.peak_build, rss)
                elif "idc_mcp" in cmd:
                    self.peak_server = max(self.peak_server, rss)
            self.peak_tree = max(self.peak_tree, total)
            self._stop.wait(self.interval_s)


_SAMPLE_TREE = """
import select, sys, time, psutil
root, interval = int(sys.argv[1]), float(sys.argv[2])
me = psutil.Process()
parent = psutil.Process(root)
peak = 0
while True:
    total = 0
    for child in parent.children(recursive=True):
        if child.pid != me.pid:
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
    peak = max(peak, total)
    if select.select([sys.stdin], [], [], interval)[0]:
        asked = sys.stdin.readline().strip()
        print(peak, flush=True)
        if asked != "peak":
            break
"""


class OutOfProcessSampler:
    """Peak RSS of the whole tree under this process (server and its children), sampled by a separate
    process: a sampler thread here would hold the GIL beside the client that is timing the calls (every
    call measured through it was ~1 ms slower, for the peer too)."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self._proc: subprocess.Popen[str] | None = None
        self._last = 0

    def __enter__(self) -> OutOfProcessSampler:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _SAMPLE_TREE, str(os.getpid()), str(self.interval_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return self

    def _ask(self, word: str) -> int:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(word + "\n")
        proc.stdin.flush()
        self._last = int(proc.stdout.readline().strip() or 0)
        return self._last

    @property
    def peak_tree(self) -> int:
        """The peak so far (bytes); after the block, the peak of the whole block."""
        if self._proc is not None and self._proc.poll() is None:
            return self._ask("peak")
        return self._last

    def __exit__(self, *exc: object) -> None:
        self._ask("stop")
        assert self._proc is not None
        self._proc.wait(30)


_PLAIN_RUNS = """
import json, sys, time
import duckdb
catalog, threads, warm, sqls = json.loads(sys.stdin.read())
conn = duckdb.connect(catalog, read_only=True, config={"threads": threads})
for sql in warm:
    conn.execute(sql).fetchall()
out = [[], []]
for runs in out:
    for sql in sqls:
        started = time.perf_counter()
        conn.execute(sql).fetchall()
        runs.append(time.perf_counter() - started)
print(json.dumps(out))
"""


def plain_duckdb_runs(warm: list[str], sqls: list[str]) -> list[tuple[float, float]]:
    """Each of `sqls` on a plain DuckDB connection to our catalog file with our thread count (execute +
    fetch all rows), in a fresh process, after `warm` (what a server session ran before them): its first
    run, as a server's first pass meets it, and its second, DuckDB warm. The floor under any answer."""
    import json

    from idc_mcp.catalog.build import ensure_catalog_file
    from idc_mcp.config import load_settings

    settings = load_settings()
    payload = [str(ensure_catalog_file(settings)), settings.threads, warm, sqls]
    done = subprocess.run(
        [sys.executable, "-c", _PLAIN_RUNS],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=True,
    )
    first, second = json.loads(done.stdout)
    return list(zip(first, second, strict=True))


class InProcess:
    """run_query in this process, timing guard.validate and each catalog.execute inside it."""

    def __init__(self) -> None:
        from idc_mcp.catalog.database import Catalog
        from idc_mcp.sql import guard
        from idc_mcp.tools import query as query_mod

        self._run_query = query_mod.run_query
        self._catalog = Catalog()
        self._catalog.installed_tables()
        self._validate: list[float] = []
        self._execute: list[float] = []
        guard.validate = self._timed(guard.validate, self._validate)  # type: ignore[assignment]
        self._catalog.execute = self._timed(self._catalog.execute, self._execute)  # type: ignore[method-assign]

    @staticmethod
    def _timed(fn: Callable[..., Any], into: list[float]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                into.append(time.perf_counter() - t)

        return wrapper

    def measure(self, sql: str) -> dict[str, float]:
        """total, validate, execute (the query), diagnostics (later catalog calls), notes."""
        self._validate.clear()
        self._execute.clear()
        t = time.perf_counter()
        result = self._run_query(self._catalog, sql, 100)
        total = time.perf_counter() - t
        return {
            "total": total,
            "validate": sum(self._validate),
            "execute": self._execute[0] if self._execute else 0.0,
            "diagnostics": sum(self._execute[1:]),
            "notes": len(result.diagnostics),
        }
