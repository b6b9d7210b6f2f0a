"""See before you download: a series preview as an image (middle slice, montage, slide thumbnail or
segmentation overlay), made from as few bytes of the series as the picture needs.

Layers: service (what to draw) -> headers, pixels, slide, seg, render, montage, cache -> remote (ranged
S3 reads over `idc_mcp.download.s3`) and series (the index row). `models` and `errors` are light; the
heavy libraries (numpy, pydicom, Pillow) load only with `service`, when a preview is made.
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
