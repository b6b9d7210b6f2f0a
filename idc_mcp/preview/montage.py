"""Several display images in one labelled grid, and a legend strip for overlays."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw, ImageFont

from idc_mcp.preview.render import MAX_SIDE

LABEL_HEIGHT = 14


def grid(tiles: list[Image.Image], labels: list[str], max_side: int = MAX_SIDE) -> Image.Image:
    """Tiles left to right, top to bottom in the given order, each with its label above it."""
    if not tiles:
        raise ValueError("no tiles")
    columns = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    aspect = max(t.width for t in tiles) / max(1, max(t.height for t in tiles))
    # Cells as large as the sheet allows, but never larger than the images (they are not enlarged).
    cell_w = max(
        16,
        min(
            max_side // columns, int((max_side // rows - LABEL_HEIGHT) * aspect), max(t.width for t in tiles)
        ),
    )
    cell_h = max(16, int(cell_w / aspect))
    mode = "RGB" if any(t.mode == "RGB" for t in tiles) else "L"
    sheet = Image.new(mode, (columns * cell_w, rows * (cell_h + LABEL_HEIGHT)), 0)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    white = (255, 255, 255) if mode == "RGB" else 255
    for i, (tile, label) in enumerate(zip(tiles, labels, strict=True)):
        r, c = divmod(i, columns)
        x, y = c * cell_w, r * (cell_h + LABEL_HEIGHT)
        fitted = tile.convert(mode).copy()
        fitted.thumbnail((cell_w, cell_h), Image.Resampling.LANCZOS)
        sheet.paste(
            fitted, (x + (cell_w - fitted.width) // 2, y + LABEL_HEIGHT + (cell_h - fitted.height) // 2)
        )
        draw.text((x + 2, y + 1), label, fill=white, font=font)
    return sheet


def with_legend(image: Image.Image, entries: list[tuple[str, tuple[int, int, int]]]) -> Image.Image:
    """The image with a strip below it: one coloured square and label per entry."""
    font = ImageFont.load_default()
    line = 16
    shown = entries[:20]
    extra = len(entries) - len(shown)
    height = line * (len(shown) + (1 if extra else 0)) + 4
    out = Image.new("RGB", (image.width, image.height + height), (0, 0, 0))
    out.paste(image.convert("RGB"), (0, 0))
    draw = ImageDraw.Draw(out)
    for i, (label, colour) in enumerate(shown):
        y = image.height + 2 + i * line
        draw.rectangle((4, y + 2, 14, y + 12), fill=colour)
        draw.text((20, y), label, fill=(255, 255, 255), font=font)
    if extra:
        draw.text(
            (20, image.height + 2 + len(shown) * line),
            f"... and {extra} more segments",
            fill=(255, 255, 255),
            font=font,
        )
    return out
