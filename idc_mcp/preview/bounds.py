"""What a preview may cost, decided from the headers before any pixel is decoded (docs/previews.md).

A file's declared sizes are not trusted: a 16 MB object can declare a 23,000 x 23,000 image, a
deflated one can inflate a thousandfold, a 16 x 16 image can declare 2^31 - 1 frames. So the decoded
size (frames x rows x columns x samples x bytes) of what a picture needs is computed from the header
and refused above these bounds, with the reason and what to do instead. Whatever slips past them (a
codestream larger than its header says) meets the preview worker's memory cap and deadline
(`preview.runner`).
"""

from __future__ import annotations

from idc_mcp.preview.errors import PreviewError

MiB = 2**20
# One decoded frame (rows x columns x samples x bytes per sample): 64 MiB is e.g. 5,792 x 5,792 at
# 16 bits or 4,729 x 4,729 RGB; a mammogram (4,096 x 3,328 x 2 bytes, 26 MiB) fits.
MAX_FRAME_BYTES = 64 * MiB
# Every frame one picture decodes (a montage's slices, a slide level's tiles): 25 CT slices of 512 x 512
# take 12.5 MiB; 25 frames of 4,096 x 4,096 at 16 bits (800 MiB) do not.
MAX_PICTURE_BYTES = 512 * MiB
# NumberOfFrames a preview reads the header of (frame order lists hold one entry per frame).
MAX_FRAMES = 200_000
# A segmentation is read whole to find its largest slice: its stored size and its decoded pixel data.
MAX_SEG_BYTES = 256 * MiB
# Segments drawn over one slice (the largest on that slice; the legend says how many more there are).
MAX_SEGMENTS_DRAWN = 20
# A Deflated Explicit VR Little Endian object is inflated as it is read, never past this many bytes.
MAX_INFLATED_BYTES = MAX_SEG_BYTES + 64 * MiB
# The preview worker process (preview.runner): how long one preview may take, and the resident memory
# the preview workers may hold together before the largest is killed.
DEADLINE_S = 60.0
WORKER_MEMORY_BYTES = 512 * MiB
# Preview workers running at once; more previews wait for a free one (still cancellable).
MAX_WORKERS = 2

_ELSEWHERE = "Look at it with get_viewer_url() instead, or download it and open it in a DICOM viewer."


def frame_bytes(rows: int, columns: int, samples: int, bits_allocated: int) -> int:
    """Decoded bytes of one frame (1-bit frames as bits, the way they are stored)."""
    pixels = rows * columns * samples
    return (pixels + 7) // 8 if bits_allocated == 1 else pixels * max(1, -(-bits_allocated // 8))


def check_geometry(what: str, rows: int, columns: int, samples: int, bits_allocated: int, frames: int) -> int:
    """Refuse a header whose dimensions are missing or absurd; returns the decoded bytes of one frame."""
    if rows <= 0 or columns <= 0 or samples not in (1, 3, 4) or bits_allocated not in (1, 8, 16, 32, 64):
        raise PreviewError(
            f"{what} declares an image of {columns} x {rows} pixels, {samples} sample(s) of "
            f"{bits_allocated} bits: that is not an image a preview can read. {_ELSEWHERE}"
        )
    if frames <= 0 or frames > MAX_FRAMES:
        raise PreviewError(
            f"{what} declares NumberOfFrames = {frames:,}; previews read objects of 1 to {MAX_FRAMES:,} "
            f"frames. {_ELSEWHERE}"
        )
    one = frame_bytes(rows, columns, samples, bits_allocated)
    if one > MAX_FRAME_BYTES:
        raise PreviewError(
            f"{what} declares frames of {columns:,} x {rows:,} pixels x {samples} sample(s) x "
            f"{bits_allocated} bits = {one / MiB:,.0f} MiB decoded each; previews decode frames of at most "
            f"{MAX_FRAME_BYTES // MiB} MiB. {_ELSEWHERE}"
        )
    return one


def check_frames_fit(what: str, frames: int, one_frame: int, stored_bytes: int, encapsulated: bool) -> None:
    """Refuse a frame count the object cannot hold: native frames are stored in full; an encapsulated
    frame takes at least one 8-byte item header."""
    need = frames * 8 if encapsulated else frames * one_frame
    if need > stored_bytes:
        holds = stored_bytes // 8 if encapsulated else stored_bytes // max(1, one_frame)
        raise PreviewError(
            f"{what} declares {frames:,} frames, but its {stored_bytes:,} bytes can hold at most "
            f"{holds:,}: the header is wrong or the object is cut short. {_ELSEWHERE}"
        )


def check_picture(what: str, frames: int, total: int, hint: str) -> None:
    """Refuse a picture whose `frames` decode to more than MAX_PICTURE_BYTES (`total`) in all."""
    if total > MAX_PICTURE_BYTES:
        each = total / max(1, frames)
        fits = int(MAX_PICTURE_BYTES // max(1.0, each))
        raise PreviewError(
            f"{what} needs {frames:,} frames of {each / MiB:,.1f} MiB decoded ({total / MiB:,.0f} MiB in "
            f"all); previews decode at most {MAX_PICTURE_BYTES // MiB} MiB per picture ({fits:,} such "
            f"frames). {hint}"
        )
