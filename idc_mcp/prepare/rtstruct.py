"""RTSTRUCT -> one mask per ROI on the referenced image's grid, named by ROI name.

Each CLOSED_PLANAR contour is taken from patient coordinates (LPS) to the image's voxel indices through
the inverse of its NIfTI affine; the axis along which the contour is flat is its slice, and the polygon is
filled on that slice by scikit-image (`draw.polygon`: voxels whose centres lie inside). Several contours
of one ROI on one slice combine by exclusive or, so an inner contour cuts a hole (the common reading of
the standard). A contour that does not lie on a slice of the image is reported, not smeared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from idc_mcp.prepare.errors import ConversionFailed
from idc_mcp.prepare.grid import Grid

PLANE_TOLERANCE = 0.25  # of a voxel: how far off a slice a contour's points may lie


@dataclass
class RoiMask:
    number: int
    name: str
    mask: np.ndarray
    contours: int
    skipped: int = 0  # contours off the image's slices or not closed planar


@dataclass
class RoiMasks:
    rois: list[RoiMask] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def rtstruct_to_masks(path: Path, grid: Grid) -> RoiMasks:
    import pydicom
    from skimage.draw import polygon

    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:
        raise ConversionFailed(f"pydicom could not read the RTSTRUCT: {exc}") from exc
    names = {int(r.ROINumber): str(r.ROIName) for r in getattr(ds, "StructureSetROISequence", [])}
    out = RoiMasks()
    for item in getattr(ds, "ROIContourSequence", []):
        number = int(item.ReferencedROINumber)
        roi = RoiMask(number, names.get(number, f"roi{number}"), np.zeros(grid.shape, np.uint8), 0)
        for contour in getattr(item, "ContourSequence", []):
            kind = str(getattr(contour, "ContourGeometricType", ""))
            points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
            if kind != "CLOSED_PLANAR" or len(points) < 3:
                roi.skipped += 1
                continue
            ijk = grid.voxel_of_lps(points)
            spread = ijk.max(axis=0) - ijk.min(axis=0)
            axis = int(np.argmin(spread))  # the contour is flat along its slice axis
            level = float(np.mean(ijk[:, axis]))
            index = int(round(level))
            if spread[axis] > 2 * PLANE_TOLERANCE or abs(level - index) > PLANE_TOLERANCE:
                roi.skipped += 1
                continue
            if not 0 <= index < grid.shape[axis]:
                roi.skipped += 1
                continue
            a, b = [d for d in range(3) if d != axis]
            rr, cc = polygon(ijk[:, a], ijk[:, b], shape=(grid.shape[a], grid.shape[b]))
            plane = np.zeros((grid.shape[a], grid.shape[b]), np.uint8)
            plane[rr, cc] = 1
            view = np.moveaxis(roi.mask, axis, 0)[index]  # a view: writes go to roi.mask
            view ^= plane
            roi.contours += 1
        if roi.skipped:
            out.notes.append(
                f"ROI {roi.name!r}: {roi.skipped} contour(s) not closed planar or off the image's "
                "slices, left out"
            )
        out.rois.append(roi)
    if not out.rois:
        raise ConversionFailed("the RTSTRUCT has no ROI contours")
    return out
