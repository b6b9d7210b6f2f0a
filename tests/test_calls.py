"""The one call runner (idc_mcp/calls.py): every tool's work runs in a thread that a cancelled call stops,
progress reaches the client without ever stopping the work, and only our own errors reach the assistant.

Each kind of call is cancelled here or beside its tool's other tests: query and preview_series here;
download (test_download_tool), fetch_index (test_attacks_fetch_index), bigquery_query (test_bigquery_tool).
"""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import Context

from idc_mcp import calls
from idc_mcp.catalog.database import Catalog, QueryCancelled
from idc_mcp.errors import AssistantError
from tests.servers import server_from_environment

pytestmark = pytest.mark.anyio


class Ended:
    """Wraps a module's function: records how each call of it ended, and when."""

    def __init__(self, module: Any, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started = threading.Event()
        self.ended = threading.Event()
        self.errors: list[BaseException] = []
        original = getattr(module, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            self.started.set()
            try:
                return original(*args, **kwargs)
            except BaseException as exc:
                self.errors.append(exc)
                raise
            finally:
                self.ended.set()

        monkeypatch.setattr(module, name, wrapped)


async def cancel_once(client: Client, started: threading.Event, tool: str, arguments: dict[str, Any]) -> list:
    """Call `tool`, cancel the call once its work started; return the replies (none: it was cancelled)."""
    replies: list = []

    async def call() -> None:
        replies.append(await client.call_tool(tool, arguments))

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        assert await anyio.to_thread.run_sync(started.wait, 60), f"{tool} never started its work"
        group.cancel_scope.cancel()
    return replies


# ------------------------------------------------------------------------ each kind of call stops
async def test_a_cancelled_query_stops_in_the_worker_long_before_its_timeout(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from idc_mcp.tools import query

    monkeypatch.setenv("IDC_MCP_QUERY_TIMEOUT", "600")
    run = Ended(query, "run_query", monkeypatch)
    server = server_from_environment()
    async with Client(server) as client:
        sql = "SELECT count(*) AS n FROM index a, index b, index c"
        assert await cancel_once(client, run.started, "query", {"sql": sql}) == []
        # The work ends with the catalog's "cancelled" error (a 600 s cross join would still be running).
        assert await anyio.to_thread.run_sync(run.ended.wait, 60), "the cancelled query kept running"
        assert run.errors and isinstance(run.errors[0], QueryCancelled), run.errors
        after = await client.call_tool("query", {"sql": "SELECT 1 AS ok"})
        assert not after.is_error and after.structured_content["rows"] == [{"ok": 1}]


async def test_a_cancelled_preview_stops_before_its_next_request(
    preview_mirror, fault_proxy_for_previews, catalog: Catalog, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: the preview ran in a bare thread, so a cancelled call went on fetching every slice.
    # It now runs in a preview worker process, which the cancelled call kills.
    from idc_mcp.preview.runner import PreviewCancelled, PreviewWorkers

    proxy = fault_proxy_for_previews
    proxy.rate_bytes_per_s = 50_000  # each slice takes a while: the call is cancelled mid-way
    monkeypatch.setenv("IDC_MCP_S3_ENDPOINT_URL", proxy.endpoint)
    monkeypatch.setenv("IDC_MCP_CACHE_DIR", str(tmp_path / "cache"))
    catalog.installed_tables()
    made = Ended(PreviewWorkers, "make", monkeypatch)
    first_request = threading.Event()

    def watch_the_store() -> None:  # the worker's first request (its listing) reached the store
        while not first_request.is_set() and not made.ended.is_set():
            if proxy.requests:
                first_request.set()
            made.ended.wait(0.01)

    threading.Thread(target=watch_the_store, daemon=True).start()
    arguments = {"series_uid": preview_mirror.cases["ct"].uid, "kind": "montage", "slices": 8}
    async with Client(server_from_environment()) as client:
        assert await cancel_once(client, first_request, "preview_series", arguments) == []
    assert await anyio.to_thread.run_sync(made.ended.wait, 60), "the cancelled preview kept running"
    assert made.errors and isinstance(made.errors[0], PreviewCancelled), made.errors
    # Not every slice's pixels were fetched: the worker was killed mid-way (header reads are parallel
    # and small, so counting requests says nothing; the bytes the store sent do).
    assert proxy.body_bytes_sent < preview_mirror.cases["ct"].size / 2


@pytest.fixture
def fault_proxy_for_previews(preview_mirror):
    from tests.s3_fixture import FaultProxy

    proxy = FaultProxy(preview_mirror.endpoint)
    yield proxy
    if not proxy.dead.is_set():
        proxy.stop()


# ------------------------------------------------------------------------ the runner's contract
def server_with_tool(fn: Any) -> Any:
    server = server_from_environment()
    server.add_tool(fn)
    return server


async def test_a_call_waiting_for_its_work_returns_only_once_the_work_cleaned_up() -> None:
    started, cleaned_up = threading.Event(), threading.Event()

    def work(call: calls.Call) -> str:
        started.set()
        assert call.cancel.wait(30), "cancellation never reached the work"
        cleaned_up.set()  # stands for removing temporaries
        raise AssistantError("stopped")

    async def slow(ctx: Context) -> str:
        """A test tool."""
        return await calls.run_call(ctx, work, wait_for_stop=True)

    async with Client(server_with_tool(slow)) as client:
        replies = await cancel_once(client, started, "slow", {})
        # The call only ended once the work had returned, i.e. after its cleanup.
        assert cleaned_up.is_set() and replies == []


@pytest.mark.parametrize("reports_progress", [True, False], ids=["with progress", "without (a query)"])
async def test_a_call_that_does_not_wait_returns_at_once_and_tells_its_work_to_stop(
    reports_progress: bool,
) -> None:
    started, release, stopped = threading.Event(), threading.Event(), threading.Event()

    def work(call: calls.Call) -> str:
        started.set()
        call.cancel.wait(30)
        release.wait(30)  # still busy when the call returns
        stopped.set()
        return "late"

    async def slow(ctx: Context) -> str:
        """A test tool."""
        return await calls.run_call(ctx, work, reports_progress=reports_progress)

    async with Client(server_with_tool(slow)) as client:
        assert await cancel_once(client, started, "slow", {}) == []
        assert not stopped.is_set()  # the call did not wait for the work
        release.set()
        assert await anyio.to_thread.run_sync(stopped.wait, 30)


async def test_progress_goes_out_at_once_then_throttled_then_the_last_value() -> None:
    def work(call: calls.Call) -> str:
        for done in range(1, 100_001):
            call.report(done, 100_000, "counting")
        return "done"

    async def count(ctx: Context) -> str:
        """A test tool."""
        return await calls.run_call(ctx, work)

    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with Client(server_with_tool(count)) as client:
        result = await client.call_tool("count", {}, progress_callback=on_progress)
    assert not result.is_error
    assert seen and seen[-1] == (100_000, 100_000, "counting")
    assert len(seen) < 100  # a hundred thousand reports, a handful of notifications
    assert [p for p, _, _ in seen] == sorted(p for p, _, _ in seen)


async def test_a_client_that_stops_listening_to_progress_never_stops_the_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise anyio.BrokenResourceError("the client went away")

    monkeypatch.setattr(Context, "report_progress", broken)

    def work(call: calls.Call) -> str:
        call.report(1, 2, "half")
        return "finished"

    async def busy(ctx: Context) -> str:
        """A test tool."""
        return await calls.run_call(ctx, work)

    async with Client(server_with_tool(busy)) as client:
        result = await client.call_tool("busy", {})
    assert not result.is_error and "finished" in result.content[0].text


async def test_our_errors_reach_the_assistant_and_others_stay_masked() -> None:
    async def ours(ctx: Context) -> str:
        """A test tool."""
        return await calls.run_call(ctx, lambda call: (_ for _ in ()).throw(AssistantError("use x instead")))

    async def bug(ctx: Context) -> str:
        """A test tool."""
        return await calls.run_call(ctx, lambda call: (_ for _ in ()).throw(KeyError("/secret/path")))

    server = server_with_tool(ours)
    server.add_tool(bug)
    async with Client(server) as client:
        mine = await client.call_tool("ours", {})
        other = await client.call_tool("bug", {})
    assert mine.is_error and "use x instead" in mine.content[0].text
    assert other.is_error and "/secret/path" not in other.content[0].text
