"""Slide microscopy (SM): a thumbnail from the lowest-resolution level of the pyramid.

Each level of a DICOM whole-slide image is one instance whose frames are tiles of its total pixel
matrix. The level with the smallest matrix is chosen from the headers (label and overview images are
left out), fetched alone, and its tiles are assembled: in TILED_FULL order (row by row) or at the
positions a TILED_SPARSE level gives per frame. Only the tiles that cover the level's matrix are
decoded, one at a time (never every frame a header declares). The full-resolution level is never read
past its header.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from pydicom.dataset import Dataset

from idc_mcp.preview.errors import PreviewError
from idc_mcp.preview.headers import Header

MAX_LEVEL_PIXELS = 16_000_000  # 4,000 x 4,000: the smallest level of a real pyramid is far below


def pyramid_levels(headers: list[Header]) -> list[Header]:
    """The levels of the pyramid (VOLUME or THUMBNAIL images with a total pixel matrix), largest first."""
    levels = [
        h
        for h in headers
        if h.total_rows
        and h.total_columns
        and not {"LABEL", "OVERVIEW"} & set(h.image_type)
        and (len(h.image_type) < 3 or h.image_type[2] in ("VOLUME", "THUMBNAIL"))
    ]
    return sorted(levels, key=lambda h: -(h.total_rows or 0) * (h.total_columns or 0))


def smallest_level(headers: list[Header]) -> Header:
    levels = pyramid_levels(headers)
    if not levels:
        raise PreviewError(
            "This slide microscopy series has no pyramid level with TotalPixelMatrixRows/Columns "
            "(only label or overview images?). Open it with get_viewer_url(viewer='slim') instead."
        )
    level = levels[-1]
    pixels = (level.total_rows or 0) * (level.total_columns or 0)
    if pixels > MAX_LEVEL_PIXELS:
        raise PreviewError(
            f"The smallest level of this slide is {level.total_columns:,} x {level.total_rows:,} pixels, "
            "too large for a thumbnail (the series has no low-resolution level). Open it with "
            "get_viewer_url(viewer='slim') instead."
        )
    return level


def needed_tiles(ds: Dataset) -> list[tuple[int, int, int]]:
    """(frame, row, column) of the tiles that cover the level's matrix, ascending by frame, each
    position once: frames past them (other focal planes or optical paths, or tiles a header declares
    beyond its matrix) are never decoded. Row and column are 0-based, in the total pixel matrix."""
    rows, columns = int(ds.Rows), int(ds.Columns)
    total_rows, total_cols = int(ds.TotalPixelMatrixRows), int(ds.TotalPixelMatrixColumns)
    frames = int(ds.get("NumberOfFrames") or 1)
    across, down = math.ceil(total_cols / columns), math.ceil(total_rows / rows)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if str(ds.get("DimensionOrganizationType", "")).upper() == "TILED_FULL" or not per_frame:
        # Row by row; the first across x down frames cover the matrix (then come further planes).
        return [(i, (i // across) * rows, (i % across) * columns) for i in range(min(frames, across * down))]
    picked: list[tuple[int, int, int]] = []
    seen: set[tuple[int, int]] = set()
    for i, item in enumerate(per_frame[:frames]):
        try:
            plane = item.PlanePositionSlideSequence[0]
            r = int(plane.RowPositionInTotalImagePixelMatrix) - 1
            c = int(plane.ColumnPositionInTotalImagePixelMatrix) - 1
        except (AttributeError, IndexError, TypeError, ValueError):
            continue
        if (r, c) in seen or not (0 <= r < total_rows and 0 <= c < total_cols):
            continue  # another focal plane or optical path of a tile already placed, or outside
        seen.add((r, c))
        picked.append((i, r, c))
        if len(picked) == across * down:
            break
    return picked


def assemble(ds: Dataset, tiles: list[tuple[int, int, int]], frames: Iterable[np.ndarray]) -> np.ndarray:
    """The level's total pixel matrix from the decoded `frames` of `tiles` (as `needed_tiles` gives)."""
    total_rows, total_cols = int(ds.TotalPixelMatrixRows), int(ds.TotalPixelMatrixColumns)
    samples = int(ds.get("SamplesPerPixel", 1))
    canvas: np.ndarray | None = None
    for (_, r, c), tile in zip(tiles, frames, strict=False):
        if tile.ndim == (3 if samples == 1 else 4):
            tile = tile[0]
        if canvas is None:
            canvas = np.full(
                (total_rows, total_cols, *tile.shape[2:]), 255 if tile.dtype == np.uint8 else 0, tile.dtype
            )
        h, w = min(tile.shape[0], total_rows - r), min(tile.shape[1], total_cols - c)
        canvas[r : r + h, c : c + w] = tile[:h, :w]
    if canvas is None:
        raise PreviewError(
            "This slide level has no tile inside its total pixel matrix. Open it with "
            "get_viewer_url(viewer='slim') instead."
        )
    return canvas
