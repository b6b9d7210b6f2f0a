"""prepare_dataset as the tool and the CLI see it: settings in, a pydantic result out; the async runner
reports progress about twice a second and turns cancellation of the call into the engine's cancel event,
waiting for the engine to clean up before the cancellation goes on."""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from idc_mcp.cancellation import run_in_thread
from idc_mcp.catalog.database import Catalog
from idc_mcp.config import Settings
from idc_mcp.download.service import options_from
from idc_mcp.prepare.engine import Progress, Request, prepare
from idc_mcp.prepare.models import PrepareResult
from idc_mcp.tools.selection import Selection

log = logging.getLogger(__name__)
PROGRESS_INTERVAL_S = 0.5
Report = Callable[[float, float | None, str | None], Awaitable[None]]


def run_prepare(
    catalog: Catalog,
    settings: Settings,
    selection: Selection,
    request: Request,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> PrepareResult:
    return prepare(
        catalog,
        selection,
        Path(settings.download_root),
        options_from(settings),
        settings.data_version,
        request,
        progress,
        cancel,
    )


async def prepare_async(
    work: Callable[[Progress, threading.Event], PrepareResult],
    report: Report | None,
    interval_s: float = PROGRESS_INTERVAL_S,
) -> PrepareResult:
    progress = Progress()
    last = -1

    async def send() -> None:
        nonlocal last
        done, total, message = progress.snapshot()
        if report is not None and done > last:
            last = done
            await report(done, total, message)

    async def pump() -> None:
        while True:
            await anyio.sleep(interval_s)
            try:
                await send()
            except Exception:  # a client that stops listening must not stop the work
                log.debug("progress report failed", exc_info=True)

    result = await run_in_thread(lambda cancel: work(progress, cancel), beside=pump)
    with anyio.CancelScope(shield=True):
        await send()
    return result
