"""Segmentations (SEG): the segments drawn in colour over the referenced image slice.

The slice shown is the one where the mask is largest (summed over segments). The frame's source image
comes from the SEG itself (DerivationImageSequence, else its position along the slice normal); the
referenced series is then located through the index and only that one instance is fetched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
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


def threshold_of(ds: Dataset) -> float:
    """Foreground is > this value: half the maximum for FRACTIONAL segmentations, else any non-zero."""
    if str(ds.get("SegmentationType", "BINARY")).upper() == "FRACTIONAL":
        return int(ds.get("MaximumFractionalValue", 255)) / 2
    return 0


def frame_areas(ds: Dataset) -> np.ndarray:
    """Foreground pixels per frame, one frame in memory at a time (a SEG may hold thousands of frames).

    Bit-packed BINARY frames that start on a byte boundary are counted on the packed bytes directly.
    """
    frames = int(ds.get("NumberOfFrames") or 1)
    rows, columns = int(ds.Rows), int(ds.Columns)
    native = not ds.file_meta.TransferSyntaxUID.is_compressed
    if native and int(ds.BitsAllocated) == 1 and (rows * columns) % 8 == 0:
        packed = np.frombuffer(ds.PixelData, np.uint8)[: frames * rows * columns // 8].reshape(frames, -1)
        # A block of frames at a time: the per-byte counts never cost a second copy of the pixel data.
        block = max(1, (16 << 20) // max(1, packed.shape[1]))
        return np.concatenate(
            [
                np.bitwise_count(packed[i : i + block]).sum(axis=1, dtype=np.int64)
                for i in range(0, frames, block)
            ]
        )
    from pydicom.pixels import iter_pixels

    threshold = threshold_of(ds)
    return np.array([int(np.count_nonzero(f > threshold)) for f in iter_pixels(ds)], np.int64)


def frame(ds: Dataset, index: int) -> np.ndarray:
    """One decoded frame of the segmentation."""
    from pydicom.pixels import pixel_array

    return np.asarray(pixel_array(ds, index=index))


def largest_slice(ds: Dataset, areas: np.ndarray) -> tuple[SlicePick, dict[int, int]]:
    """The slice whose frames hold the most mask pixels, and each frame's segment number."""
    picks: dict[object, SlicePick] = defaultdict(lambda: SlicePick(None, None))
    numbers: dict[int, int] = {}
    for i in range(len(areas)):
        number, source, position = _frame_facts(ds, i)
        numbers[i] = number
        key = source or (tuple(round(v, 2) for v in position) if position else i)
        pick = picks[key]
        pick.source_uid, pick.position = source, position
        pick.frames.append(i)
        pick.area += int(areas[i])
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


def drawn_frames(pick: SlicePick, areas: np.ndarray, limit: int) -> list[int]:
    """The frames of the slice to draw: at most `limit`, those with the largest masks first."""
    with_mask = [i for i in pick.frames if areas[i] > 0]
    return sorted(sorted(with_mask, key=lambda i: -int(areas[i]))[:limit])


def overlay(
    base: np.ndarray,
    masks: Iterable[tuple[int, np.ndarray]],
    numbers: dict[int, int],
    segs: dict[int, Segment],
    threshold: float,
    labelmap: bool = False,
    limit: int = 20,
) -> tuple[np.ndarray, list[Segment], int]:
    """The base slice (grey or RGB uint8) with each segment's mask blended in its colour.

    `masks` yields (frame index, decoded frame), one at a time; in a LABELMAP segmentation a frame's
    values are the segment numbers (its `limit` largest are drawn), otherwise each frame is one segment
    (`numbers`). Returns the image, the segments drawn, and how many more the frames held."""
    rgb = (
        np.repeat(base[..., np.newaxis], 3, axis=2).astype(np.float32)
        if base.ndim == 2
        else base.astype(np.float32)
    )
    shown: list[Segment] = []
    left_out = 0
    for i, values in masks:
        if labelmap:
            counts = np.bincount(values.ravel().astype(np.int64)) if values.size else np.zeros(1, np.int64)
            present = [int(v) for v in np.flatnonzero(counts) if v > 0]
            present.sort(key=lambda v: -int(counts[v]))
            left_out += max(0, len(present) - limit)
            layers = [(v, values == v) for v in present[:limit]]
        else:
            layers = [(numbers[i], values > threshold)]
        for number, mask in layers:
            if not mask.any():
                continue
            if mask.shape != rgb.shape[:2]:
                mask = _resized(mask, rgb.shape[:2])
            seg = segs.get(number) or Segment(number, f"segment {number}", PALETTE[number % len(PALETTE)])
            rgb[mask] = (1 - ALPHA) * rgb[mask] + ALPHA * np.array(seg.colour, np.float32)
            if seg not in shown:
                shown.append(seg)
    return np.rint(rgb).astype(np.uint8), sorted(shown, key=lambda s: s.number), left_out


def _resized(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    image = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(image.resize((shape[1], shape[0]), Image.Resampling.NEAREST)) > 0
