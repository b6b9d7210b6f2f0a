"""CT windows by name or as 'center,width' (light: checked before a preview starts its worker)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from idc_mcp.preview.errors import PreviewError

# (center, width) in HU; the usual radiology presets.
PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "soft_tissue": (40.0, 400.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}
_PAIR = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*[,/ ]\s*(\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    source: str  # e.g. "lung preset (BodyPartExamined CHEST)"

    def describe(self) -> str:
        return f"center {self.center:g}, width {self.width:g} ({self.source})"


def parse_window(text: str) -> Window:
    """A preset name or 'center,width' (e.g. 'lung', '40,400')."""
    key = text.strip().lower().replace(" ", "_").replace("-", "_")
    if key in PRESETS:
        c, w = PRESETS[key]
        return Window(c, w, f"{key} preset, as asked")
    match = _PAIR.match(text)
    if match and float(match.group(2)) > 0:
        return Window(float(match.group(1)), float(match.group(2)), "as asked")
    raise PreviewError(
        f"window {text!r} is not understood. Give a preset ({', '.join(PRESETS)}) or 'center,width' "
        "in HU, e.g. '40,400'."
    )
