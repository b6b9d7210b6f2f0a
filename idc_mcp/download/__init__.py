"""Confined, verified, resumable downloads of IDC series from the public S3 buckets.

`models` is light (the tool's result); the engine, planner and S3 client load on first use of the names
below (PEP 562), so that a server start that publishes the download tool does not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from idc_mcp.download.models import DownloadResult

if TYPE_CHECKING:
    from idc_mcp.download.engine import DownloadCancelled, DownloadError, Options, Progress
    from idc_mcp.download.plan import DEFAULT_TEMPLATE, TemplateError
    from idc_mcp.download.service import run_download

_LAZY = {
    "DownloadCancelled": "engine",
    "DownloadError": "engine",
    "Options": "engine",
    "Progress": "engine",
    "DEFAULT_TEMPLATE": "plan",
    "TemplateError": "plan",
    "run_download": "service",
}

__all__ = [
    "DEFAULT_TEMPLATE",
    "DownloadCancelled",
    "DownloadError",
    "DownloadResult",
    "Options",
    "Progress",
    "TemplateError",
    "run_download",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
