"""prepare_dataset as the tool and the CLI see it: settings in, a pydantic result out (the call runner,
`calls.run_call`, runs it in a thread with cancellation and progress)."""

from __future__ import annotations

import threading
from pathlib import Path

from idc_mcp.catalog.database import Catalog
from idc_mcp.config import Settings
from idc_mcp.download.service import options_from
from idc_mcp.prepare.engine import PrepareCounter, Request, prepare
from idc_mcp.prepare.models import PrepareResult
from idc_mcp.tools.selection import Selection


def run_prepare(
    catalog: Catalog,
    settings: Settings,
    selection: Selection,
    request: Request,
    progress: PrepareCounter | None = None,
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


def progress_update(progress: PrepareCounter) -> tuple[int, int, str] | None:
    """The preparation's progress as an update for the call runner: (done, 1000, phase and counts)."""
    done, total, message = progress.snapshot()
    return (done, total, message) if progress.phase != "planning" else None
