"""Confined, verified, resumable downloads of IDC series from the public S3 buckets."""

from idc_mcp.download.engine import DownloadCancelled, DownloadError, Options, Progress
from idc_mcp.download.plan import DEFAULT_TEMPLATE, TemplateError
from idc_mcp.download.service import DownloadResult, download_async, run_download

__all__ = [
    "DEFAULT_TEMPLATE",
    "DownloadCancelled",
    "DownloadError",
    "DownloadResult",
    "Options",
    "Progress",
    "TemplateError",
    "download_async",
    "run_download",
]
