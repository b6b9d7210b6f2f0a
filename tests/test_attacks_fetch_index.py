"""Attacks on fetch_index through a hostile index mirror (IDC_MCP_INDEX_BASE_URL on a loopback server that
trickles one byte at a time), each named for what it stops: the whole fetch has a deadline, a cancelled
call stops its transfer, and a call waiting for another fetch of the same index gives up with a clear
message.
"""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import pytest
from mcp import Client

from idc_mcp.catalog.database import Catalog
from idc_mcp.config import load_settings
from idc_mcp.indices import fetch
from tests.index_server import IndexServer, Route, SyntheticIndices, cache_with_catalog, serve_indices
from tests.servers import server_with


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, built_catalog: Path) -> Path:
    cache = cache_with_catalog(tmp_path / "cache", built_catalog)
    monkeypatch.setenv("IDC_MCP_CACHE_DIR", str(cache))
    monkeypatch.setenv("IDC_MCP_FETCH_TIMEOUT", "5")  # per read: a trickle never trips it
    monkeypatch.delenv("IDC_MCP_INDEX_DIR", raising=False)
    return cache


@pytest.fixture
def server(env: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with serve_indices() as srv:
        monkeypatch.setenv("IDC_MCP_INDEX_BASE_URL", srv.base + "/release")
        yield srv


SLOW_BODY = b"x" * 400  # trickled at 20 bytes/s it would take 20 s: without the fixes a test fails, not hangs


def publish(srv: IndexServer, data: SyntheticIndices, name: str, **route: object) -> Route:
    srv.add_file(f"release/{name}.parquet", data[name].read_bytes())
    served = srv.routes[f"/release/{name}.parquet"]
    if route:
        body = SLOW_BODY if "trickle_every_s" in route else served.body
        served = Route(body=body, **route)  # type: ignore[arg-type]
        srv.routes[f"/release/{name}.parquet"] = served
    return served


def test_a_trickling_mirror_is_cut_at_the_whole_fetch_deadline(
    server, synthetic_files, make_catalog, monkeypatch
):
    route = publish(server, synthetic_files, "sm_index", trickle_every_s=0.05)
    monkeypatch.setenv("IDC_MCP_FETCH_DEADLINE", "1")
    catalog = make_catalog()
    with pytest.raises(fetch.IndexFetchError, match=r"did not finish within 1 s.*IDC_MCP_FETCH_DEADLINE"):
        fetch.fetch_index(catalog, "sm_index")
    assert route.ended.wait(30) and route.sent < len(route.body)
    assert not catalog.is_installed("sm_index")
    # Nothing was cached and the lock is free: a good mirror now installs the index.
    publish(server, synthetic_files, "sm_index")
    assert fetch.fetch_index(catalog, "sm_index").status == "fetched"


def test_a_call_waiting_for_another_fetch_gives_up_with_a_clear_message(
    server, synthetic_files, make_catalog, monkeypatch
):
    gate, requested = threading.Event(), threading.Event()
    publish(server, synthetic_files, "sm_index", gate=gate, requested=requested)
    first_catalog = make_catalog()
    outcome: list[object] = []
    first = threading.Thread(
        target=lambda: outcome.append(fetch.fetch_index(first_catalog, "sm_index").status)
    )
    first.start()
    try:
        assert requested.wait(10)
        monkeypatch.setenv("IDC_MCP_FETCH_TIMEOUT", "0.3")  # how long the second call waits
        second_catalog = make_catalog()
        waited: list[BaseException] = []

        def second_call() -> None:
            try:
                fetch.fetch_index(second_catalog, "sm_index")
            except fetch.IndexFetchError as exc:
                waited.append(exc)

        second = threading.Thread(target=second_call)
        second.start()
        second.join(30)  # a bound for the test only: without the fix this call never returns
        assert not second.is_alive() and len(waited) == 1
        assert "Another fetch of sm_index" in str(waited[0]) and "call fetch_index" in str(waited[0])
    finally:
        gate.set()
        first.join(30)
    assert outcome == ["fetched"]


@pytest.mark.anyio
async def test_cancelling_fetch_index_stops_its_transfer(server, synthetic_files, monkeypatch):
    requested = threading.Event()
    route = publish(server, synthetic_files, "sm_index", trickle_every_s=0.05, requested=requested)
    catalog = Catalog(load_settings())
    async with Client(server_with(catalog.settings, catalog)) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "fetch_index", {"name": "sm_index"})
            await anyio.to_thread.run_sync(requested.wait, 10)
            tg.cancel_scope.cancel()
    # The server side stopped the transfer (its connection was shut), long before the body was sent.
    assert await anyio.to_thread.run_sync(route.ended.wait, 30)
    assert route.sent < len(route.body)
    catalog.close()
