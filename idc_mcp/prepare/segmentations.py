"""SEG -> label maps on exactly the grid of the referenced image's NIfTI (highdicom reads the SEG).

highdicom places each frame by its plane position (`Segmentation.get_volume`), then the volume is matched
to the image grid by permutations, flips, padding and cropping only (`Volume.match_geometry`): a SEG
whose frames do not fall on the image's voxels is refused with the reason, never resampled. A SEG that
covers only some slices gives a full-size label map (padded with background).

- BINARY segments that never overlap: one label map, voxel value = segment number.
- Overlapping BINARY segments, or FRACTIONAL ones: one file per segment (0/1, or the stored fraction as
  uint8 with the NIfTI scale 1/MaximumFractionalValue, so readers get 0-1), so nothing is lost.
- LABELMAP SEGs: one label map with their own values.
A JSON beside them maps each value (or file) to the segment's label and coded property category/type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from idc_mcp.prepare.errors import ConversionFailed
from idc_mcp.prepare.grid import LPS_FROM_RAS, Grid

TOLERANCE = 1e-3  # of a voxel, after the float32 rounding of NIfTI affines


@dataclass
class LabelOutput:
    """What one label series yields: arrays on the image grid, and the description of each value."""

    # file suffix ('' for the label map, '_seg<n>' per segment) -> makes (array, NIfTI slope or None)
    arrays: dict[str, Callable[[], tuple[np.ndarray, float | None]]]
    labels: list[dict[str, Any]]  # one per segment: value or file, label, property category and type
    overlapping: bool = False
    notes: list[str] = field(default_factory=list)


def _coded(code: Any) -> dict[str, str] | None:
    if code is None:
        return None
    return {"code": str(code.value), "scheme": str(code.scheme_designator), "meaning": str(code.meaning)}


def referenced_series(path: Path) -> str | None:
    """The image series a SEG or RTSTRUCT file refers to (its ReferencedSeriesSequence)."""
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    for item in getattr(ds, "ReferencedSeriesSequence", []):
        return str(item.SeriesInstanceUID)
    for frame in getattr(ds, "ReferencedFrameOfReferenceSequence", []):  # RTSTRUCT
        for study in getattr(frame, "RTReferencedStudySequence", []):
            for series in getattr(study, "RTReferencedSeriesSequence", []):
                return str(series.SeriesInstanceUID)
    return None


def seg_to_labels(path: Path, grid: Grid) -> LabelOutput:
    import highdicom as hd

    try:
        seg = hd.seg.segread(path)
    except Exception as exc:  # highdicom's reasons are ValueError, AttributeError, ...: all reported
        raise ConversionFailed(f"highdicom could not read the SEG: {exc}") from exc
    numbers = [int(n) for n in seg.segment_numbers]
    kind = str(seg.segmentation_type.value)
    labels = []
    for n in numbers:
        d = seg.get_segment_description(n)
        labels.append(
            {
                "value": n,
                "segment_number": n,
                "label": str(d.segment_label),
                "property_category": _coded(d.segmented_property_category),
                "property_type": _coded(d.segmented_property_type),
            }
        )
    target = hd.VolumeGeometry(LPS_FROM_RAS @ grid.affine, list(grid.shape), coordinate_system="PATIENT")
    try:
        volume = seg.get_volume(combine_segments=False, rescale_fractional=False)
    except (RuntimeError, ValueError) as exc:
        raise ConversionFailed(f"highdicom could not place the SEG's frames in a volume: {exc}") from exc
    # Everything is decided in the SEG's own extent (often a few slices); only each output is padded to
    # the image grid, one at a time.
    raw = np.asarray(volume.array)  # (slices, rows, columns, segment)
    geometry = volume.get_geometry()
    try:  # geometry only: refused here, before any array is made
        geometry.match_geometry(target, tol=TOLERANCE)
    except (RuntimeError, ValueError) as exc:
        raise ConversionFailed(
            f"the SEG's frames do not lie on the image's voxel grid ({exc}); a label map there would need "
            "resampling, which is not done"
        ) from exc

    def on_grid(array: np.ndarray) -> np.ndarray:
        try:
            matched = np.asarray(geometry.with_array(array).match_geometry(target, tol=TOLERANCE).array)
        except (RuntimeError, ValueError) as exc:
            raise ConversionFailed(
                f"the SEG's frames do not lie on the image's voxel grid ({exc}); a label map there would "
                "need resampling, which is not done"
            ) from exc
        if matched.shape[:3] != grid.shape:
            raise ConversionFailed(
                f"the SEG matched a grid of {matched.shape[:3]}, not the image's {grid.shape}"
            )
        return matched

    out = LabelOutput({}, labels)
    if kind == "FRACTIONAL":
        out.overlapping = True
        scale = float(getattr(seg, "MaximumFractionalValue", 0) or raw.max(initial=1) or 1)
        for i, n in enumerate(numbers):
            out.arrays[f"_seg{n}"] = _planes(on_grid, raw, i, 1.0 / scale)
            labels[i].pop("value")
            labels[i]["file_suffix"] = f"_seg{n}"
        out.notes.append("FRACTIONAL segments: one file per segment, voxel = fraction (0-1)")
        return out
    seen = np.zeros(raw.shape[:3], bool)
    for i in range(raw.shape[-1]):
        present = raw[..., i] > 0
        out.overlapping = out.overlapping or bool(np.any(seen & present))
        seen |= present
    del seen
    if out.overlapping:
        for i, n in enumerate(numbers):
            out.arrays[f"_seg{n}"] = _planes(on_grid, raw > 0, i, None)
            labels[i].pop("value")
            labels[i]["file_suffix"] = f"_seg{n}"
        out.notes.append("segments overlap: one file per segment (0/1) so that no voxel loses a label")
        return out
    dtype = np.uint8 if max(numbers, default=0) < 256 else np.uint16
    label_map = np.zeros(raw.shape[:3], dtype)
    for i, n in enumerate(numbers):
        label_map[raw[..., i] > 0] = n
    out.arrays[""] = lambda: (on_grid(label_map), None)
    return out


def _planes(
    on_grid: Callable[[np.ndarray], np.ndarray], raw: np.ndarray, i: int, slope: float | None
) -> Callable[[], tuple[np.ndarray, float | None]]:
    """One segment's plane, padded onto the image grid when called (so one full-size array at a time)."""
    return lambda: (on_grid(raw[..., i].astype(np.uint8)), slope)
