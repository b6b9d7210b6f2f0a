"""Segmentations (SEG): the segments drawn in colour over the referenced image slice.

The slice shown is the one where the mask is largest (summed over segments). The frame's source image
comes from the SEG itself (DerivationImageSequence, else its position along the slice normal); the
referenced series is then located through the index and only that one instance is fetched.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset

from idc_mcp.preview.errors import PreviewError

PALETTE = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
]  # fmt: skip
ALPHA = 0.5


@dataclass
class Segment:
    number: int
    label: str
    colour: tuple[int, int, int]


@dataclass
class SlicePick:
    """The frames of the SEG that lie on the slice with the largest mask."""

    source_uid: str | None  # ReferencedSOPInstanceUID of the source image, when the SEG gives it
    position: tuple[float, float, float] | None
    frames: list[int] = field(default_factory=list)
    area: int = 0


def _cielab_to_rgb(value: object) -> tuple[int, int, int] | None:
    """DICOM's scaled CIELab (0-65535 each) to 8-bit sRGB (D65)."""
    try:
        l_raw, a_raw, b_raw = (float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    lum, a, b = l_raw / 65535 * 100, a_raw / 65535 * 255 - 128, b_raw / 65535 * 255 - 128
    fy = (lum + 16) / 116
    fx, fz = fy + a / 500, fy - b / 200

    def inv(t: float) -> float:
        return t**3 if t**3 > 0.008856 else (t - 16 / 116) / 7.787

    x, y, z = 0.95047 * inv(fx), 1.0 * inv(fy), 1.08883 * inv(fz)
    linear = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]]) @ [
        x,
        y,
        z,
    ]
    srgb = np.where(
        linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(np.clip(linear, 0, None), 1 / 2.4) - 0.055
    )
    r, g, bl = (int(round(float(np.clip(c, 0, 1)) * 255)) for c in srgb)
    return r, g, bl


def segments(ds: Dataset) -> dict[int, Segment]:
    found: dict[int, Segment] = {}
    for i, item in enumerate(ds.get("SegmentSequence") or []):
        number = int(item.get("SegmentNumber", i + 1))
        label = str(item.get("SegmentLabel", "") or "")
        prop = item.get("SegmentedPropertyTypeCodeSequence")
        meaning = str(prop[0].get("CodeMeaning", "")) if prop else ""
        if meaning and meaning.lower() != label.lower():
            label = f"{label} ({meaning})" if label else meaning
        colour = _cielab_to_rgb(item.get("RecommendedDisplayCIELabValue")) or PALETTE[i % len(PALETTE)]
        found[number] = Segment(number, label[:60] or f"segment {number}", colour)
    return found


def _frame_facts(ds: Dataset, index: int) -> tuple[int, str | None, tuple[float, float, float] | None]:
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    item = per_frame[index] if per_frame and index < len(per_frame) else Dataset()
    ident = item.get("SegmentIdentificationSequence")
    number = int(ident[0].ReferencedSegmentNumber) if ident else 1
    source = None
    for derivation in item.get("DerivationImageSequence") or []:
        for src in derivation.get("SourceImageSequence") or []:
            source = str(src.get("ReferencedSOPInstanceUID", "")) or source
    plane = item.get("PlanePositionSequence")
    position = None
    if plane and plane[0].get("ImagePositionPatient"):
        position = tuple(float(v) for v in plane[0].ImagePositionPatient)
    return number, source, position  # type: ignore[return-value]


def largest_slice(ds: Dataset, masks: np.ndarray) -> tuple[SlicePick, dict[int, int]]:
    """The slice whose frames hold the most mask pixels, and each frame's segment number."""
    if masks.ndim == 2:
        masks = masks[np.newaxis]
    fractional = str(ds.get("SegmentationType", "BINARY")).upper() == "FRACTIONAL"
    threshold = int(ds.get("MaximumFractionalValue", 255)) / 2 if fractional else 0
    picks: dict[object, SlicePick] = defaultdict(lambda: SlicePick(None, None))
    numbers: dict[int, int] = {}
    for i in range(len(masks)):
        number, source, position = _frame_facts(ds, i)
        numbers[i] = number
        key = source or (tuple(round(v, 2) for v in position) if position else i)
        pick = picks[key]
        pick.source_uid, pick.position = source, position
        pick.frames.append(i)
        pick.area += int(np.count_nonzero(masks[i] > threshold))
    best = max(picks.values(), key=lambda p: p.area)
    if best.area == 0:
        raise PreviewError(
            "This segmentation has no foreground pixel in any frame: there is nothing to draw."
        )
    return best, numbers


def referenced_series_uids(ds: Dataset) -> list[str]:
    return [
        str(item.SeriesInstanceUID)
        for item in ds.get("ReferencedSeriesSequence") or []
        if "SeriesInstanceUID" in item
    ]


def overlay(
    base: np.ndarray,
    masks: np.ndarray,
    pick: SlicePick,
    numbers: dict[int, int],
    segs: dict[int, Segment],
    threshold: float,
) -> tuple[np.ndarray, list[Segment]]:
    """The base slice (grey or RGB uint8) with each segment's mask blended in its colour."""
    rgb = (
        np.repeat(base[..., np.newaxis], 3, axis=2).astype(np.float64)
        if base.ndim == 2
        else base.astype(np.float64)
    )
    shown = []
    for i in pick.frames:
        mask = masks[i] > threshold
        if not mask.any():
            continue
        if mask.shape != rgb.shape[:2]:
            from PIL import Image

            mask = (
                np.asarray(
                    Image.fromarray(mask.astype(np.uint8) * 255).resize(
                        rgb.shape[1::-1], Image.Resampling.NEAREST
                    )
                )
                > 0
            )
        seg = segs.get(numbers[i]) or Segment(
            numbers[i], f"segment {numbers[i]}", PALETTE[numbers[i] % len(PALETTE)]
        )
        rgb[mask] = (1 - ALPHA) * rgb[mask] + ALPHA * np.array(seg.colour)
        if seg not in shown:
            shown.append(seg)
    return np.rint(rgb).astype(np.uint8), shown
