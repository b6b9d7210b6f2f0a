"""Analysis-ready data from a selection: NIfTI volumes (dcm2niix), label maps from SEG and RTSTRUCT on
their image's grid, SR TID 1500 measurement tables, training layouts (plain, nnU-Net v2, MONAI) and a
dataset card. Sits on `download/` for the bytes and `files.py` for atomic writes.

`models` and `errors` are light; the engine and the converters load on first use (PEP 562), so that
publishing the tool imports none of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from idc_mcp.prepare.errors import ConversionFailed, MissingConverters, PrepareCancelled, PrepareError
from idc_mcp.prepare.models import Layout, PrepareResult

if TYPE_CHECKING:
    from idc_mcp.prepare.engine import PrepareCounter, Request
    from idc_mcp.prepare.service import run_prepare

_LAZY = {"PrepareCounter": "engine", "Request": "engine", "run_prepare": "service"}

__all__ = [
    "ConversionFailed",
    "Layout",
    "MissingConverters",
    "PrepareCancelled",
    "PrepareError",
    "PrepareResult",
    "PrepareCounter",
    "Request",
    "run_prepare",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
