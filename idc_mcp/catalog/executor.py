"""The killable executor: every catalog query runs in a worker process with hard bounds on time and memory.

DuckDB's interrupt and `memory_limit` do not cover everything a query can call (string intermediates,
result conversion, functions that never check for interrupts). So the connection lives in a child
process (`catalog.worker`) whose address space is capped, and the server keeps the deadline:

- memory: the server samples the worker's resident memory every 10 ms and kills it above its limit
  (`IDC_MCP_WORKER_MEMORY`); the worker also caps its own address space, so one allocation too big
  to be sampled in time fails inside DuckDB with an out-of-memory error for that query only. A
  worker left holding much memory after a query is replaced once it is idle, so memory goes back.
- time: the worker interrupts a query at its timeout; if it has not answered `GRACE_S` later, the
  server kills the worker. That query gets a timeout error; the other queries in flight on that
  worker run again on a fresh one (they are read-only), so one hostile query never fails the others.
- cancellation: a cancelled call (an MCP cancel, an HTTP client that went away) interrupts its
  query in the worker, and kills the worker if that does not stop it.

The server process itself never imports DuckDB. Results come back as pickled rows over a local
socket pair (`multiprocessing.connection` framing); the worker inherits its end and nothing else.
"""

from __future__ import annotations

import itertools
import logging
import pickle
import subprocess
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from idc_mcp import child_process
from idc_mcp.cancellation import cancelled, on_cancel
from idc_mcp.catalog.location import catalog_file
from idc_mcp.config import Settings
from idc_mcp.errors import AssistantError

log = logging.getLogger(__name__)

GRACE_S = 2.0  # after its timeout, how long a query may take to stop before its worker is killed
START_TIMEOUT_S = 600.0  # a first-ever start builds the catalog before the worker reports ready
# A worker whose resident memory stays above this after its queries ended is replaced when idle.
RECYCLE_RSS_BYTES = 400 * 2**20
# A query in flight when another query's worker was killed runs again, at most this many times.
MAX_INNOCENT_RETRIES = 3
# Queries running at once in the worker (its thread pool); more wait in the server. On 2 cores more
# lanes add no throughput, and each concurrent query shares DuckDB's memory_limit: 4 leaves lanes for
# good queries while a slow one runs, without making concurrent good queries run out of memory.
MAX_CONCURRENT = 4
WATCH_S = 0.01  # how often deadlines and the worker's resident memory are checked while queries run
IDLE_WATCH_S = 0.5  # how often an idle worker is looked at (a query wakes the watch at once)
ADDRESS_SPACE_FACTOR = 3  # the worker's RLIMIT_AS allowance, as a multiple of its resident-memory limit


class ExecutorError(AssistantError):
    """Base of the errors a query can end with in the executor (each message is for the assistant)."""


class QueryStopped(ExecutorError):
    """A run-time bound stopped the query (its time or the worker's memory): the same query may pass at
    a quieter moment, so its answer is never kept; narrowing it is the lasting fix."""


class QueryTimeout(QueryStopped):
    """A query ran longer than the allowed time and was interrupted."""


class MemoryExceeded(QueryStopped):
    """A query needed more memory than the worker may use; it was stopped (the worker replaced if need be)."""


class ResultTooLarge(ExecutorError):
    """A result holds more nested data than the server converts (a size refusal: the same query gets it
    every time)."""


class QueryCancelled(ExecutorError):
    """The call that asked for this query was cancelled (the client went away)."""


class QueryFailed(ExecutorError):
    """DuckDB refused or failed the query; `kind` is DuckDB's exception name (e.g. BinderException)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class WorkerUnavailable(ExecutorError):
    """The worker could not be started (the message says why)."""


# -- the worker process ------------------------------------------------------------------------------
@dataclass
class _Request:
    id: int
    sql: str
    params: list[Any] | None
    timeout_s: float
    future: Future[tuple[Any, ...]] = field(default_factory=Future)
    deadline: float = 0.0
    retries: int = 0
    sent_to: _Process | None = None
    # Why its worker was killed because of it ("deadline", "cancelled"), if it was.
    killed_for: str | None = None


class _Process:
    """One worker process and its connection (a socket pair: the worker inherits one end)."""

    def __init__(self, settings: Settings, files: dict[str, Path], address_space_bytes: int) -> None:
        start = {
            # What the worker needs to open the catalog, as plain values (it does not import pydantic).
            "opening": {
                "catalog": str(catalog_file(settings)),
                "threads": settings.threads,
                "memory_limit": settings.memory_limit,
            },
            "files": {name: str(p) for name, p in files.items()},
            "address_space_bytes": address_space_bytes,
            "threads": MAX_CONCURRENT,
            "log_level": logging.getLogger("idc_mcp").getEffectiveLevel(),
        }
        try:
            self.popen, self.conn = child_process.spawn("idc_mcp.catalog.worker", start)
        except child_process.SpawnFailed as exc:
            raise WorkerUnavailable(f"the query worker did not start: {exc}") from exc
        self.send_lock = threading.Lock()
        self.pending: dict[int, _Request] = {}
        self.busy = threading.Event()  # set when a query is sent: wakes the watch of an idle worker
        self.dead = False
        self.exhausted = False
        self.rss = 0

    def send(self, message: tuple[Any, ...]) -> None:
        with self.send_lock:
            self.conn.send(message)

    def kill(self) -> None:
        child_process.kill(self.popen)


class Executor:
    """Runs SQL in a worker process, replacing the worker when it breaches a bound or dies."""

    def __init__(self, settings: Settings, files: dict[str, Path], memory_limit_bytes: int) -> None:
        self.settings = settings
        self.files = dict(files)
        self.memory_limit_bytes = memory_limit_bytes
        # The worker's own address-space cap: a backstop for one allocation too big to be sampled.
        self.address_space_bytes = ADDRESS_SPACE_FACTOR * memory_limit_bytes
        self.facts: dict[str, Any] = {}
        # Set while the first worker answers from the bundled parquet and builds the catalog file: the
        # catalog is not ready until that worker says "built" (issue 22: the log said "ready" too early).
        self.building_since: float | None = None
        self.restarts = 0
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._process: _Process | None = None
        self._closed = False
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)
        self._start()

    # -- life cycle ----------------------------------------------------------------------------------
    def _start(self) -> _Process:
        process = _Process(self.settings, self.files, self.address_space_bytes)
        try:
            first = process.conn.recv()
        except (EOFError, OSError) as exc:
            process.kill()
            raise WorkerUnavailable("the query worker exited while opening the catalog") from exc
        if first[0] != "ready":
            process.kill()
            raise WorkerUnavailable(f"opening the IDC catalog failed: {first[1]}")
        self.facts, process.rss = first[1], first[2]
        if self.facts.get("provisional") and self.building_since is None:
            self.building_since = time.monotonic()
        self._process = process
        threading.Thread(target=self._read, args=(process,), name="catalog-reader", daemon=True).start()
        threading.Thread(target=self._watch, args=(process,), name="catalog-watchdog", daemon=True).start()
        return process

    def _current(self) -> _Process:
        with self._lock:
            if self._closed:
                raise WorkerUnavailable("the catalog was closed")
            if self._process is not None and self._process.exhausted and not self._process.pending:
                old, self._process = self._process, None
                self._retire(old)
            if self._process is None or self._process.dead:
                self.restarts += 1
                self._start()
            assert self._process is not None
            return self._process

    def restart(self, files: dict[str, Path]) -> None:
        """Start a worker with these index files attached (the caller made sure no query runs)."""
        with self._lock:
            self.files = dict(files)
            old, self._process = self._process, None
            if old is not None:
                self._retire(old)
            self._start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            old, self._process = self._process, None
        if old is not None:
            self._retire(old)

    def _retire(self, process: _Process) -> None:
        """Stop a worker politely (it finishes nothing: no query is in flight when this is called)."""
        process.dead = True
        try:
            process.send(("stop",))
        except (OSError, ValueError):
            pass
        try:
            process.popen.wait(2)
        except subprocess.TimeoutExpired:
            pass
        process.kill()
        process.conn.close()
        self._fail_pending(process)

    # -- running -------------------------------------------------------------------------------------
    def run(self, sql: str, params: list[Any] | None, timeout_s: float) -> tuple[Any, ...]:
        """(columns, types, rows, elapsed_s) of one query, or one of this module's errors."""
        if cancelled():
            raise QueryCancelled("the query was stopped: the client went away")
        # At most MAX_CONCURRENT queries are in the worker, so each one's deadline runs from when it
        # starts there; the others wait here (still cancellable).
        while not self._slots.acquire(timeout=0.1):
            if cancelled():
                raise QueryCancelled("the query was stopped: the client went away")
        request = _Request(next(self._ids), sql, params, timeout_s)
        try:
            # The caller went away (idc_mcp.cancellation): stop the query now, not at its timeout.
            with on_cancel(lambda: self.cancel(request.id)):
                self._submit(request)
                return request.future.result()
        finally:
            self._slots.release()

    def _submit(self, request: _Request) -> None:
        while True:
            process = self._current()
            request.deadline = time.monotonic() + request.timeout_s + GRACE_S
            with self._lock:
                if process.dead:
                    continue
                process.pending[request.id] = request
                request.sent_to = process
            process.busy.set()
            try:
                process.send(("execute", request.id, request.sql, request.params, request.timeout_s))
                return
            except (OSError, ValueError):
                with self._lock:
                    process.pending.pop(request.id, None)
                self._died(process)

    def cancel(self, request_id: int) -> None:
        """Interrupt a query in its worker; kill the worker if it has not stopped within GRACE_S."""
        with self._lock:
            process = self._process
            request = process.pending.get(request_id) if process else None
        if process is None or request is None:
            return
        log.info("cancelling query %s", request_id)
        try:
            process.send(("cancel", request_id))
        except (OSError, ValueError):
            return
        request.deadline = min(request.deadline, time.monotonic() + GRACE_S)
        request.killed_for = request.killed_for or "cancelled"

    def _read(self, process: _Process) -> None:
        """Hand each reply to the call waiting for it; when the worker dies, deal with what was in flight."""
        while True:
            try:
                reply = pickle.loads(process.conn.recv_bytes())
            except (EOFError, OSError):
                break
            request_id, status, payload, rss = reply
            process.rss = rss
            if status == "built":  # it answered from the parquet while the catalog file was built
                if self.building_since is not None:
                    log.info(
                        "catalog ready: built in %.1f s; the next queries run on it",
                        time.monotonic() - self.building_since,
                    )
                    self.building_since = None
                process.exhausted = True  # replaced (by a worker on the file) once no query runs
                self._recycle_if_idle(process, "to move to the catalog just built")
                continue
            with self._lock:
                request = process.pending.pop(request_id, None)
                crowded = bool(process.pending)
            if status == "memory" and ("bad allocation" in payload or "did not fit" in payload):
                process.exhausted = True  # its address space ran out (not DuckDB's limit): replace it
            if request is not None and status == "memory" and crowded and request.retries == 0:
                # DuckDB's memory_limit is shared by the queries running beside it: try it once more.
                request.retries += 1
                threading.Thread(target=self._resubmit, args=(request,), daemon=True).start()
            elif request is not None:
                _resolve(request, status, payload)
            if process.exhausted or rss > RECYCLE_RSS_BYTES:
                self._recycle_if_idle(process)
        self._died(process)

    def _recycle_if_idle(self, process: _Process, why: str | None = None) -> None:
        with self._lock:
            if process.pending or process is not self._process:
                return
            why = why or f"it holds {process.rss >> 20} MiB after its queries"
            log.info("replacing the query worker: %s", why)
            self._process = None
        self._retire(process)

    def _watch(self, process: _Process) -> None:
        """Kill the worker when a query outlives its deadline or the worker's resident memory its limit.

        Sampled every WATCH_S: memory grows at most a few hundred MB per second (page faults, copying),
        so the worker ends within tens of MB of its limit. The address-space cap the worker sets on
        itself stops a single allocation too large to be sampled in time.
        """
        statm = Path(f"/proc/{process.popen.pid}/statm")
        page = child_process.page_size()
        while not process.dead:
            if not process.pending:
                # Idle: nothing to time or to stop. Sleep until a query is sent (cleared, then looked at
                # again, so that a query sent in between is not missed).
                process.busy.clear()
                if not process.pending:
                    process.busy.wait(IDLE_WATCH_S)
                    if process.popen.poll() is not None:
                        return
                    continue
            time.sleep(WATCH_S)
            if process.popen.poll() is not None:
                return
            now = time.monotonic()
            with self._lock:
                pending = list(process.pending.values())
            late = [r for r in pending if r.deadline < now]
            rss = child_process.resident_bytes(statm, page)
            if late:
                for request in late:
                    request.killed_for = request.killed_for or "deadline"
                log.warning("killing the query worker: %d query(ies) did not stop in time", len(late))
            elif rss > self.memory_limit_bytes and pending:
                for request in pending:
                    request.killed_for = request.killed_for or "memory"
                log.warning(
                    "killing the query worker: %d MiB resident, over its %d MiB limit (%d query(ies))",
                    rss >> 20,
                    self.memory_limit_bytes >> 20,
                    len(pending),
                )
            else:
                continue
            process.kill()
            return

    def _died(self, process: _Process) -> None:
        """The worker is gone: fail the queries it was killed for, run the others again elsewhere."""
        with self._lock:
            if process.dead and not process.pending:
                return
            process.dead = True
            if self._process is process:
                self._process = None
            pending = list(process.pending.values())
            process.pending.clear()
        process.kill()
        try:
            process.conn.close()
        except OSError:
            pass
        explained = any(r.killed_for for r in pending)
        memory_suspects = sum(r.killed_for == "memory" for r in pending)
        for request in pending:
            if request.killed_for == "memory" and (memory_suspects == 1 or request.retries > 0):
                request.future.set_exception(
                    MemoryExceeded(
                        f"the query needed more than the {self.memory_limit_bytes >> 20} MiB of memory the "
                        "query worker may hold, and was stopped"
                    )
                )
            elif request.killed_for == "memory":
                # Several queries shared the worker when it outgrew its limit: each runs once more.
                request.killed_for = None
                request.retries += 1
                threading.Thread(target=self._resubmit, args=(request,), daemon=True).start()
            elif request.killed_for == "cancelled":
                request.future.set_exception(QueryCancelled("the query was stopped: the client went away"))
            elif request.killed_for == "deadline":
                request.future.set_exception(
                    QueryTimeout(f"the query took longer than {request.timeout_s:g} s and was stopped")
                )
            elif request.retries < (MAX_INNOCENT_RETRIES if explained else 1):
                # Innocent (another query got the worker killed), or the first unexplained crash: again.
                request.retries += 1
                threading.Thread(target=self._resubmit, args=(request,), daemon=True).start()
            else:
                request.future.set_exception(
                    MemoryExceeded(
                        "the query stopped the query worker twice (it most likely needed more "
                        f"memory than the {self.memory_limit_bytes >> 20} MiB the worker may hold) "
                        "and was not run again"
                    )
                )

    def _resubmit(self, request: _Request) -> None:
        try:
            self._submit(request)
        except ExecutorError as exc:
            request.future.set_exception(exc)

    def _fail_pending(self, process: _Process) -> None:
        with self._lock:
            pending = list(process.pending.values())
            process.pending.clear()
        for request in pending:
            request.future.set_exception(WorkerUnavailable("the query worker was stopped"))

    # -- observability (benchmarks, tests) ----------------------------------------------------------
    @property
    def pid(self) -> int | None:
        process = self._process
        return process.popen.pid if process is not None and not process.dead else None


def _resolve(request: _Request, status: str, payload: Any) -> None:
    if request.future.done():
        return
    if status == "ok":
        request.future.set_result(payload)
    elif status == "timeout":
        request.future.set_exception(
            QueryTimeout(f"the query took longer than {request.timeout_s:g} s and was stopped")
        )
    elif status == "cancelled":
        request.future.set_exception(QueryCancelled("the query was stopped: the client went away"))
    elif status == "too_large":
        request.future.set_exception(ResultTooLarge(payload))
    elif status == "memory":
        request.future.set_exception(
            MemoryExceeded(f"the query needed more memory than the server allows ({payload})")
        )
    elif status == "duckdb":
        kind, message = payload
        request.future.set_exception(QueryFailed(kind, message))
    else:
        request.future.set_exception(QueryFailed("InternalError", str(payload)))
