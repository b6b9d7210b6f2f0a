"""What a preview returns: the picture and the facts that go with it (light: no numpy or pydicom)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, Field

Kind = Literal["auto", "slice", "montage"]
DEFAULT_SLICES = 9
MAX_SLICES = 25

# The preview tool's arguments (their descriptions are what the assistant reads).
KindArg = Annotated[
    Kind,
    Field(description="auto: middle slice, slide thumbnail or SEG overlay; montage: evenly spaced slices"),
]
WindowArg = Annotated[
    str | None, Field(description="CT window: lung, mediastinum, soft_tissue, bone, brain or 'center,width'")
]
SlicesArg = Annotated[int, Field(ge=2, le=MAX_SLICES, description="number of slices in a montage")]


class ShownImage(BaseModel):
    sop_instance_uid: str
    object_key: str
    frame: int | None = Field(None, description="0-based frame of a multi-frame instance")
    position_mm: float | None = Field(None, description="position along the slice normal")


class SegmentShown(BaseModel):
    number: int
    label: str
    colour: str = Field(description="#rrggbb")


class PreviewInfo(BaseModel):
    series_uid: str
    collection_id: str
    modality: str
    body_part: str | None
    series_description: str | None
    preview: Literal["slice", "montage", "slide_thumbnail", "seg_overlay"]
    image_format: str
    image_width: int
    image_height: int
    image_bytes: int
    source_size: str = Field(description="columns x rows of the shown source image (or slide level)")
    pixel_spacing_mm: list[float] | None = Field(None, description="row, column spacing of the source")
    scaling: str = Field(description="window or scaling used to map pixel values to grey levels")
    order: str | None = Field(None, description="how slices were ordered")
    shown: list[ShownImage]
    instances_in_series: int
    series_bytes: int = Field(description="bytes of every object listed for the preview")
    bytes_fetched: int = Field(description="bytes received to make this preview (0 when cached)")
    requests: int
    cached: bool = False
    referenced_series_uid: str | None = None
    segments: list[SegmentShown] = []
    notes: list[str] = []


@dataclass
class Preview:
    image: bytes
    mime_type: str
    info: PreviewInfo

    def summary(self) -> str:
        i = self.info
        what = {
            "slice": "middle slice"
            if not i.shown or i.shown[0].frame is None
            else f"middle frame (frame {i.shown[0].frame}, 0-based) of a multi-frame instance",
            "montage": f"montage of {len(i.shown)} slices in anatomical order",
            "slide_thumbnail": "thumbnail of the lowest-resolution pyramid level",
            "seg_overlay": "segments over the referenced slice with the largest mask",
        }[i.preview]
        spacing = (
            f", spacing {i.pixel_spacing_mm[0]:g} x {i.pixel_spacing_mm[1]:g} mm"
            if i.pixel_spacing_mm
            else ""
        )
        moved = (
            "served from the preview cache (0 bytes fetched)"
            if i.cached
            else f"fetched {i.bytes_fetched:,} bytes in {i.requests} requests of a "
            f"{i.series_bytes:,}-byte series "
            f"({i.bytes_fetched / max(1, i.series_bytes):.1%})"
        )
        lines = [
            f"{i.modality} series {i.series_uid} ({i.collection_id}, "
            f"{i.body_part or 'body part not given'}): {what}.",
            f"Source {i.source_size}{spacing}; {i.instances_in_series} instances; scaling: {i.scaling}.",
            f"Image {i.image_width}x{i.image_height} {i.image_format}, {i.image_bytes:,} bytes; {moved}.",
        ]
        if i.order:
            lines.append(f"Order: {i.order}.")
        if i.segments:
            lines.append(
                "Segments: " + "; ".join(f"{s.number} {s.label} ({s.colour})" for s in i.segments) + "."
            )
        if i.referenced_series_uid:
            lines.append(f"Referenced series: {i.referenced_series_uid}.")
        lines += i.notes
        return "\n".join(lines)
