"""From stored pixel values to 8-bit display pixels, and from pixels to a PNG or JPEG within bounds.

- CT: Hounsfield units (rescale slope/intercept) through a window: a named preset chosen from the
  body part, else the file's own WindowCenter/Width, else soft tissue; `window=` overrides.
- MR, PT and anything without a defined display: percentile scaling (PT as inverted grey, the way
  nuclear medicine is read: high uptake dark).
- CR, DX, MG, US, XA, RF, IO, PX: as stored (the file's VOI window when it has one), MONOCHROME1
  inverted, colour kept.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from idc_mcp.preview.windows import PRESETS, Window, parse_window

__all__ = ["PRESETS", "Window", "parse_window"]  # re-exported: windows are named here for callers

MAX_SIDE = 1024
MAX_BYTES = 1_000_000

# Body parts (BodyPartExamined, upper case, substring) whose usual reading window is not soft tissue.
_BODY_PART_PRESET = (
    (("LUNG", "CHEST", "THORAX"), "lung"),
    (("HEAD", "BRAIN", "SKULL"), "brain"),
)
AS_STORED = {"CR", "DX", "MG", "US", "XA", "RF", "IO", "PX", "OP", "XC", "SC", "ES", "GM"}


def _first(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value[0] if hasattr(value, "__len__") and not isinstance(value, str) else value)  # type: ignore[index]
    except (TypeError, ValueError, IndexError):
        return None


def file_window(ds: Dataset) -> tuple[float, float] | None:
    """The first WindowCenter/Width of the file (top level or shared functional groups)."""
    holders = [ds]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        holders += list(shared[0].get("FrameVOILUTSequence") or [])
    for holder in holders:
        c, w = _first(holder.get("WindowCenter")), _first(holder.get("WindowWidth"))
        if c is not None and w and w > 0:
            return c, w
    return None


def ct_window(ds: Dataset, body_part: str | None, asked: str | None) -> Window:
    if asked:
        return parse_window(asked)
    part = (body_part or str(ds.get("BodyPartExamined", "")) or "").upper()
    for words, preset in _BODY_PART_PRESET:
        if part and any(w in part for w in words):
            c, w = PRESETS[preset]
            return Window(c, w, f"{preset} preset for BodyPartExamined {part}")
    own = file_window(ds)
    if own:
        return Window(own[0], own[1], "the file's WindowCenter/WindowWidth")
    c, w = PRESETS["soft_tissue"]
    return Window(c, w, "soft_tissue preset (no body part or window in the file)")


def rescaled(ds: Dataset, arr: np.ndarray) -> np.ndarray:
    """Stored values to modality units (HU for CT) with the file's rescale slope and intercept."""
    from pydicom.pixels import apply_rescale

    try:
        return np.asarray(apply_rescale(arr, ds), dtype=np.float64)
    except (ValueError, TypeError, AttributeError):
        return arr.astype(np.float64)


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """Linear window: center - width/2 -> 0, center + width/2 -> 255."""
    low = window.center - window.width / 2
    scaled = (values - low) / window.width * 255.0
    return np.rint(np.clip(scaled, 0, 255)).astype(np.uint8)


def percentile_range(
    values: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5
) -> tuple[float, float] | None:
    """The values at two percentiles (min and max when they coincide); None for an empty image."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    low, high = (float(v) for v in np.percentile(finite, [low_pct, high_pct]))
    if high <= low:
        low, high = float(finite.min()), float(finite.max())
    return low, high


def percentile_scale(
    values: np.ndarray,
    low_pct: float = 0.5,
    high_pct: float = 99.5,
    fixed: tuple[float, float] | None = None,
) -> tuple[np.ndarray, str]:
    """Linear scaling between two percentiles of this image, or of a `fixed` range (a montage shares
    one range, so the slices compare)."""
    found = fixed or percentile_range(values, low_pct, high_pct)
    if found is None:
        return np.zeros(values.shape, np.uint8), "empty image"
    low, high = found
    if high <= low:
        return np.zeros(values.shape, np.uint8), f"constant image ({low:g})"
    scaled = (values - low) / (high - low) * 255.0
    return (
        np.rint(np.clip(scaled, 0, 255)).astype(np.uint8),
        f"percentiles {low_pct:g}-{high_pct:g}{' of all slices shown' if fixed else ''} "
        f"({low:g} to {high:g} in modality units)",
    )


def uses_percentiles(modality: str, window: str | None, arr: np.ndarray) -> bool:
    return arr.ndim == 2 and not window and modality.upper() not in AS_STORED | {"CT"}


def to_display(
    ds: Dataset,
    arr: np.ndarray,
    modality: str,
    body_part: str | None,
    window: str | None,
    shared_range: tuple[float, float] | None = None,
) -> tuple[np.ndarray, str]:
    """One frame (rows x columns, or rows x columns x 3) as uint8 display pixels, and how it was scaled."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if arr.ndim == 3:  # colour: kept (pydicom already converted YBR to RGB)
        if arr.dtype == np.uint8:
            return arr, f"colour as stored ({photometric})"
        grey, how = percentile_scale(arr.astype(np.float64), 0.0, 100.0)
        return grey, f"colour scaled to 8 bits, {how}"
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        rgb = apply_color_lut(arr, ds)
        return (rgb / max(1, rgb.max()) * 255).astype(np.uint8), "palette colour"
    modality = modality.upper()
    if modality == "CT":
        chosen = ct_window(ds, body_part, window)
        out, how = apply_window(rescaled(ds, arr), chosen), f"window {chosen.describe()}"
    elif window:
        chosen = parse_window(window)
        out, how = apply_window(rescaled(ds, arr), chosen), f"window {chosen.describe()}"
    elif modality in AS_STORED:
        out, how = _as_stored(ds, arr)
    else:
        out, how = percentile_scale(rescaled(ds, arr), fixed=shared_range)
    if photometric == "MONOCHROME1":
        out, how = 255 - out, how + ", MONOCHROME1 inverted"
    if modality == "PT" and not window:
        out, how = 255 - out, how + ", inverted grey (high uptake dark)"
    return out, how


def _as_stored(ds: Dataset, arr: np.ndarray) -> tuple[np.ndarray, str]:
    values = rescaled(ds, arr)
    own = file_window(ds)
    if own:
        return apply_window(values, Window(own[0], own[1], "")), f"the file's window {own[0]:g}/{own[1]:g}"
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, np.uint8), f"constant image ({low:g})"
    return np.rint((values - low) / (high - low) * 255).astype(
        np.uint8
    ), f"as stored, full range {low:g}-{high:g}"


def decimated(arr: np.ndarray, max_side: int = 2 * MAX_SIDE) -> np.ndarray:
    """Every n-th row and column of a frame much larger than the preview, before any float copy of it
    (a 4,000 x 5,000 mammogram would otherwise cost 160 MB as float64)."""
    step = -(-max(arr.shape[:2]) // max_side)
    return arr[::step, ::step] if step > 1 else arr


def to_image(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(pixels, "RGB" if pixels.ndim == 3 else "L")


def fit(image: Image.Image, max_side: int = MAX_SIDE) -> Image.Image:
    """At most `max_side` pixels on the long side (never enlarged)."""
    if max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def encode(image: Image.Image, max_bytes: int = MAX_BYTES) -> tuple[bytes, str, tuple[int, int]]:
    """PNG when it fits in `max_bytes`, else JPEG at falling quality, shrinking if even that is too big.
    Returns the bytes, their MIME type and the final width and height."""
    image = fit(image)
    while True:
        buf = io.BytesIO()
        # zlib level 3: ~10% larger than optimize=True and 3-5x faster (a viewer steps slice by slice)
        image.save(buf, "PNG", compress_level=3)
        if buf.tell() <= max_bytes:
            return buf.getvalue(), "image/png", image.size
        for quality in (90, 80, 70):
            buf = io.BytesIO()
            image.convert("RGB" if image.mode == "RGB" else "L").save(buf, "JPEG", quality=quality)
            if buf.tell() <= max_bytes:
                return buf.getvalue(), "image/jpeg", image.size
        image = image.resize((max(1, image.width * 3 // 4), max(1, image.height * 3 // 4)))
