"""The part of a preview made before any byte of the series moves, and after the picture is made: the
arguments checked, the series looked up, the cache asked and filled. Light (no numpy, pydicom or
Pillow): it runs in the server process, while the picture is made in the preview worker
(`preview.runner`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idc_mcp.catalog.database import Catalog
from idc_mcp.preview.cache import PreviewCache
from idc_mcp.preview.errors import PreviewError
from idc_mcp.preview.models import DEFAULT_SLICES, MAX_SLICES, Kind, Preview, PreviewInfo
from idc_mcp.preview.series import SeriesRow, find_member, find_series
from idc_mcp.preview.windows import parse_window

MAX_SLICE_INDEX = 1 << 20  # more slices than any series has
# Modalities whose objects hold no image pixels: a preview of them has nothing to draw.
NO_PIXELS = {"SR", "RTSTRUCT", "RTPLAN", "RTRECORD", "KO", "PR", "ANN", "REG", "FID", "RWV", "DOC", "PLAN"}


@dataclass(frozen=True)
class Request:
    """A preview to make: the series' index row and the arguments, all checked."""

    row: SeriesRow
    endpoint: str
    kind: Kind
    window: str | None
    slices: int
    cache: PreviewCache | None
    key: str
    at: int | str | None = None  # the slice of a single-slice preview (None: the middle one)

    def finish(self, image: bytes, mime_type: str, info: dict[str, Any]) -> Preview:
        """The preview made from the picture and its facts, stored in the cache."""
        result = Preview(image, mime_type, PreviewInfo.model_validate(info))
        if self.cache:
            self.cache.put(
                self.key, image, {"mime_type": mime_type, "info": result.info.model_dump(mode="json")}
            )
        return result


def prepare(
    catalog: Catalog,
    endpoint: str,
    cache_dir: Path | None,
    series_uid: str,
    kind: Kind = "auto",
    window: str | None = None,
    slices: int = DEFAULT_SLICES,
    cohort: str | None = None,
    cohort_root: Path | None = None,
    at: int | str | None = None,
) -> Request | Preview:
    """The checked request, or the finished preview when the cache holds it; bad arguments are refused.

    A `cohort` member is looked up at its saved version; `at` picks one slice (index or SOPInstanceUID)."""
    if kind not in ("auto", "slice", "montage"):
        raise PreviewError(f"kind {kind!r} is not one of 'auto', 'slice', 'montage'.")
    if not 2 <= slices <= MAX_SLICES:
        raise PreviewError(f"slices={slices} is out of range: give 2 to {MAX_SLICES} slices for a montage.")
    if window:
        parse_window(window)  # refuse a bad window before any byte moves
    if at is not None and kind == "montage":
        raise PreviewError("A montage shows evenly spaced slices: pick one slice with kind='slice' instead.")
    if isinstance(at, int) and not 0 <= at < MAX_SLICE_INDEX:
        raise PreviewError(f"Slice index {at} is out of range: give 0 (the first slice) or more.")
    row = (
        find_member(catalog, series_uid, cohort, cohort_root) if cohort else find_series(catalog, series_uid)
    )
    modality = row.modality.upper()
    if at is not None and modality in ("SM", "SEG"):
        raise PreviewError(
            f"A {modality} preview has one picture: pick slices of image series only (omit the slice)."
        )
    if modality in NO_PIXELS:
        raise PreviewError(
            f"Series {row.series_uid} is {modality}: it holds no image pixels to preview. Preview the image "
            'series it refers to (same StudyInstanceUID, e.g. query("SELECT SeriesInstanceUID, Modality FROM '
            f"index WHERE StudyInstanceUID = '{row.study_uid}'\")), or open it with get_viewer_url()."
        )
    if modality == "SM" and kind == "montage":
        raise PreviewError(
            "kind='montage' is for cross-sectional series; a slide gives one thumbnail: use kind='auto'."
        )
    if modality == "SEG" and kind == "montage":
        raise PreviewError(
            "kind='montage' is for image series; a SEG preview shows its largest slice over the "
            "referenced image: use kind='auto' (the reply names the referenced series, which can be "
            "given a montage)."
        )
    cache = PreviewCache(cache_dir) if cache_dir else None
    key = PreviewCache.key(
        endpoint=endpoint, bucket=row.bucket, uuid=row.crdc_series_uuid, series=row.series_uid,
        kind=kind, window=window, slices=slices if kind == "montage" else None,
        **({"at": at} if at is not None else {}),
    )  # fmt: skip
    if cache and (hit := cache.get(key)):
        data, stored = hit
        info = PreviewInfo.model_validate(
            {**stored["info"], "cached": True, "bytes_fetched": 0, "requests": 0}
        )
        return Preview(data, stored["mime_type"], info)
    return Request(row, endpoint, kind, window, slices, cache, key, at)
