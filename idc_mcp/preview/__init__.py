"""See before you download: a series preview as an image (middle slice, montage, slide thumbnail or
segmentation overlay), made from as few bytes of the series as the picture needs.

Layers: runner (the server side: a killable worker process per preview, deadline, memory cap,
cancellation) -> request (checks, index row, cache; light) and worker (the child) -> service (what to
draw) -> headers, pixels, slide, seg, render, montage -> bounds (what a preview may decode, from the
header), inflate (deflated datasets, capped) -> remote (ranged S3 reads) and series (the index row).
`models`, `errors`, `bounds`, `windows`, `request` and `runner` are light; the heavy libraries (numpy,
pydicom, Pillow) load only in the preview worker (or with `service`, in process).
"""

from __future__ import annotations

from idc_mcp.preview.errors import PreviewError
from idc_mcp.preview.models import (
    DEFAULT_SLICES,
    MAX_SLICES,
    Kind,
    KindArg,
    Preview,
    PreviewInfo,
    SlicesArg,
    WindowArg,
)

__all__ = [
    "DEFAULT_SLICES",
    "MAX_SLICES",
    "Kind",
    "KindArg",
    "Preview",
    "PreviewError",
    "PreviewInfo",
    "SlicesArg",
    "WindowArg",
]
