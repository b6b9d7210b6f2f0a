"""Slide microscopy (SM): a thumbnail from the lowest-resolution level of the pyramid.

Each level of a DICOM whole-slide image is one instance whose frames are tiles of its total pixel
matrix. The level with the smallest matrix is chosen from the headers (label and overview images are
left out), fetched alone, and its tiles are assembled: in TILED_FULL order (row by row) or at the
positions a TILED_SPARSE level gives per frame. The full-resolution level is never read past its
header.
"""

from __future__ import annotations

import math

import numpy as np
from pydicom.dataset import Dataset

from idc_mcp.preview.errors import PreviewError
from idc_mcp.preview.headers import Header

MAX_LEVEL_PIXELS = 64_000_000  # ~8,000 x 8,000: the smallest level of a real pyramid is far below


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


def _tile_positions(ds: Dataset, frames: int) -> list[tuple[int, int]]:
    """(row, column) of each frame's top-left corner in the total pixel matrix, 0-based."""
    rows, columns = int(ds.Rows), int(ds.Columns)
    if str(ds.get("DimensionOrganizationType", "")).upper() == "TILED_FULL" or not ds.get(
        "PerFrameFunctionalGroupsSequence"
    ):
        across = math.ceil(int(ds.TotalPixelMatrixColumns) / columns)
        down = math.ceil(int(ds.TotalPixelMatrixRows) / rows)
        return [((i // across % down) * rows, (i % across) * columns) for i in range(frames)]
    positions = []
    for item in ds.PerFrameFunctionalGroupsSequence:
        plane = item.PlanePositionSlideSequence[0]
        positions.append(
            (
                int(plane.RowPositionInTotalImagePixelMatrix) - 1,
                int(plane.ColumnPositionInTotalImagePixelMatrix) - 1,
            )
        )
    return positions


def assemble(ds: Dataset, tiles: np.ndarray) -> np.ndarray:
    """The level's total pixel matrix from its tiles (frames x rows x columns [x samples])."""
    if tiles.ndim == (2 if int(ds.get("SamplesPerPixel", 1)) == 1 else 3):
        tiles = tiles[np.newaxis]
    total_rows, total_cols = int(ds.TotalPixelMatrixRows), int(ds.TotalPixelMatrixColumns)
    canvas = np.full(
        (total_rows, total_cols, *tiles.shape[3:]), 255 if tiles.dtype == np.uint8 else 0, tiles.dtype
    )
    filled = set()
    positions = _tile_positions(ds, len(tiles))
    for tile, (r, c) in zip(tiles, positions, strict=False):
        if (r, c) in filled or r >= total_rows or c >= total_cols:
            continue  # another focal plane or optical path of a tile already placed
        filled.add((r, c))
        h, w = min(tile.shape[0], total_rows - r), min(tile.shape[1], total_cols - c)
        canvas[r : r + h, c : c + w] = tile[:h, :w]
    return canvas
