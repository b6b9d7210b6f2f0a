"""Previews made in a killable worker process, under a deadline and a memory cap, as queries run.

A preview decodes pixels a stranger may have written: the header checks (`bounds`) refuse what a file
declares, and this runner bounds what it does anyway. Each preview runs in its own child process
(`preview.worker`, started with the machinery the query worker uses: `idc_mcp.child_process`); the
server keeps the bounds while it waits:

- deadline: a preview call that has not answered `deadline_s` after it started is killed (with its
  worker) and refused;
- memory: the server samples the resident memory of every preview worker every 10 ms; when together
  they hold more than `memory_bytes`, the largest is killed and its call refused. The worker also caps
  its own address space, so one allocation too large to be sampled in time fails inside it;
- cancellation: a cancelled call (an MCP cancel, an HTTP client that went away) kills its worker at
  once: no work goes on for a caller who left.

At most `max_workers` previews run at once; more wait here (cancellable, within their deadline). Once
a preview has been asked for, one spare worker is kept started (its libraries loaded, 99 MiB), so
the next preview does not wait 1-3 s for a Python process to start. The server process never loads
numpy, pydicom or Pillow for a preview.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from idc_mcp import child_process
from idc_mcp.cancellation import cancelled, on_cancel
from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.memo import Memo
from idc_mcp.preview import bounds
from idc_mcp.preview.errors import PreviewError
from idc_mcp.preview.models import DEFAULT_SLICES, Kind, Preview
from idc_mcp.preview.request import Request, prepare
from idc_mcp.preview.series import find_series_quietly

log = logging.getLogger(__name__)

WATCH_S = 0.01  # how often a running preview's deadline, memory and cancellation are checked
ADDRESS_SPACE_FACTOR = 2  # a worker's RLIMIT_AS allowance, as a multiple of the memory cap
STACKS_BYTES = 16 * 2**20  # sorted slices kept for the next worker, pickled (~100 KB a 200-slice series)


class PreviewCancelled(PreviewError):
    """The call that asked for this preview was cancelled; its worker was stopped."""


class PreviewWorkers:
    """Runs each preview in a worker process and holds every worker to the deadline and memory cap."""

    def __init__(
        self,
        deadline_s: float = bounds.DEADLINE_S,
        memory_bytes: int = bounds.WORKER_MEMORY_BYTES,
        max_workers: int = bounds.MAX_WORKERS,
        spare: bool = True,
    ) -> None:
        self.deadline_s = deadline_s
        self.memory_bytes = memory_bytes
        self._slots = threading.BoundedSemaphore(max_workers)
        self._lock = threading.Lock()
        self._resident: dict[int, int] = {}  # pid -> bytes, of the workers running now
        self._spare: tuple[Any, Any] | None = None  # a started worker waiting for its request
        self._endpoint: str | None = None  # of the last preview: the spare's client is built for it
        self.keep_spare = spare
        self._closed = False  # False for one preview (the command line): no worker started ahead
        self.started = 0  # workers started (tests, benchmarks)
        self.last_pid: int | None = None
        # Each series' slices as a worker sorted them (pickled by the worker, opaque here), for the next
        # worker showing it: a slider step then reads one frame, not every header of the series again.
        self._stacks: Memo[bytes] = Memo(STACKS_BYTES, getsizeof=len)

    def make(
        self,
        catalog: Catalog,
        endpoint: str,
        cache_dir: Path | None,
        series_uid: str,
        kind: Kind = "auto",
        window: str | None = None,
        slices: int = DEFAULT_SLICES,
        cancel: threading.Event | None = None,
        cohort: str | None = None,
        cohort_root: Path | None = None,
        at: int | str | None = None,
    ) -> Preview:
        """The preview of a series: checked and looked up here, drawn in a worker, cached here. Setting
        `cancel` (or cancelling the current call) kills the worker at once. `cohort`, `at`: as in
        `service.make_preview`."""
        started = time.monotonic()
        request = prepare(
            catalog, endpoint, cache_dir, series_uid, kind, window, slices, cohort, cohort_root, at
        )
        if isinstance(request, Preview):
            return request
        image, mime, info = self.run(request, lambda uid: find_series_quietly(catalog, uid), started, cancel)
        return request.finish(image, mime, info)

    def run(
        self,
        request: Request,
        lookup: Any,
        started: float | None = None,
        cancel: threading.Event | None = None,
    ) -> tuple[bytes, str, dict]:  # type: ignore[type-arg]
        """(image, MIME type, facts) of a checked request, drawn in a worker process."""
        deadline = (started if started is not None else time.monotonic()) + self.deadline_s
        stop = cancel if cancel is not None else threading.Event()
        with on_cancel(stop.set):
            while not self._slots.acquire(timeout=0.1):
                self._check_waiting(stop, deadline)
            try:
                return self._run(request, lookup, deadline, stop)
            finally:
                self._slots.release()

    def _check_waiting(self, stop: threading.Event, deadline: float) -> None:
        if stop.is_set() or cancelled():
            raise PreviewCancelled("the preview was stopped: the client went away")
        if time.monotonic() > deadline:
            raise PreviewError(
                f"The preview waited {self.deadline_s:g} s for a free preview worker (the server is busy "
                "with other previews) and was given up. Retry in a moment."
            )

    def _spawn(self) -> tuple[Any, Any]:
        start = {
            "endpoint": self._endpoint,  # its S3 client is built before a preview waits for it
            "address_space_bytes": ADDRESS_SPACE_FACTOR * self.memory_bytes,
            "log_level": logging.getLogger("idc_mcp").getEffectiveLevel(),
        }
        # One thread per library pool: threads would each reserve memory under the address-space cap.
        env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        popen, conn = child_process.spawn("idc_mcp.preview.worker", start, env)
        with self._lock:
            self.started += 1
        return popen, conn

    def _take_worker(self) -> tuple[Any, Any]:
        """The spare worker (its libraries already loaded) if there is one, else a new one; a new spare
        is then started in the background, so the next preview does not wait for Python to start."""
        with self._lock:
            self._closed = False  # a preview is asked for: the server is serving
            spare, self._spare = self._spare, None
        if spare is None or spare[0].poll() is not None:
            if spare is not None:
                spare[1].close()
            spare = self._spawn()
        if self.keep_spare and not self._closed:
            threading.Thread(target=self._start_spare, name="preview-spare", daemon=True).start()
        return spare

    def _start_spare(self) -> None:
        try:
            worker = self._spawn()
        except child_process.SpawnFailed:
            return
        with self._lock:
            if self._spare is None and not self._closed:
                self._spare, worker = worker, None
        if worker is not None:  # another thread started one first
            child_process.kill(worker[0])
            worker[1].close()

    def close(self) -> None:
        """Stop the spare worker, and start none until the next preview (running previews end on their
        own)."""
        with self._lock:
            self._closed = True
            spare, self._spare = self._spare, None
        if spare is not None:
            child_process.kill(spare[0])
            spare[1].close()

    def _run(self, request: Request, lookup: Any, deadline: float, stop: threading.Event) -> tuple:  # type: ignore[type-arg]
        series = (request.endpoint, request.row.bucket, request.row.crdc_series_uuid)
        job = {
            "row": request.row,
            "endpoint": request.endpoint,
            "kind": request.kind,
            "window": request.window,
            "slices": request.slices,
            "at": request.at,
            "stacks": self._stacks.get(series),
        }
        self._endpoint = request.endpoint
        try:
            popen, conn = self._take_worker()
        except child_process.SpawnFailed as exc:
            raise PreviewError(f"The preview worker did not start ({exc}). Retry in a moment.") from exc
        self.last_pid = popen.pid
        statm = Path(f"/proc/{popen.pid}/statm")
        page = child_process.page_size()
        reason = None
        sent = False
        try:
            while True:
                if stop.is_set() or cancelled():
                    reason = "cancelled"
                elif time.monotonic() > deadline:
                    reason = "deadline"
                elif self._over_memory(popen.pid, child_process.resident_bytes(statm, page)):
                    reason = "memory"
                if reason:
                    log.warning("stopping preview worker %s: %s", popen.pid, reason)
                    child_process.kill(popen)
                    raise self._stopped(reason)
                if not conn.poll(WATCH_S):
                    continue
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    code = popen.wait()
                    raise PreviewError(
                        f"The preview worker stopped unexpectedly (exit status {code}): the object may be "
                        "damaged or need more memory than a preview may use. Look at it with "
                        "get_viewer_url() instead."
                    ) from None
                if message[0] == "ready" and not sent:
                    conn.send(job)
                    sent = True
                elif message[0] == "lookup":
                    conn.send(lookup(message[1]))
                elif message[0] == "done":
                    if message[4]:
                        self._stacks.put(series, message[4])
                    return message[1], message[2], message[3]
                elif message[0] == "refused":
                    raise PreviewError(message[1])
                elif message[0] == "memory":
                    raise self._stopped("memory")
                else:
                    raise PreviewError(f"The preview failed in its worker ({message[1:]}).")
        finally:
            with self._lock:
                self._resident.pop(popen.pid, None)
            child_process.kill(popen)
            conn.close()

    def _over_memory(self, pid: int, rss: int) -> bool:
        """Whether the preview workers together hold more than the cap and this one is the largest."""
        with self._lock:
            self._resident[pid] = rss
            total = sum(self._resident.values())
            return total > self.memory_bytes and rss >= max(self._resident.values())

    def _stopped(self, reason: str) -> PreviewError:
        if reason == "cancelled":
            return PreviewCancelled("the preview was stopped: the client went away")
        if reason == "deadline":
            return PreviewError(
                f"The preview took longer than {self.deadline_s:g} s (the preview deadline) and was "
                "stopped. Retry later (the store may be slow), ask for one slice (kind='auto'), or look "
                "at the series with get_viewer_url()."
            )
        return PreviewError(
            f"The preview needed more than the {self.memory_bytes // 2**20} MiB of memory a preview may "
            "use, and was stopped: its pixels decode larger than the object's header says, or it is too "
            "large to preview. Look at it with get_viewer_url() instead, or download it."
        )
