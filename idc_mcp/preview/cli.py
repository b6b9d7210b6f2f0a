"""`idc-mcp preview SERIES_UID -o preview.png`: the preview tool at a terminal (summary on stdout)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from idc_mcp.files import atomic_write

if TYPE_CHECKING:
    from idc_mcp.catalog.database import Catalog
from idc_mcp.preview.errors import PreviewError
from idc_mcp.preview.models import DEFAULT_SLICES, MAX_SLICES


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "preview",
        help="save a preview image of one IDC series (fetches only what the picture needs)",
        description="Make a PNG (or JPEG, when a PNG would pass 1 MB) of a series: the middle slice, a "
        "montage, a slide thumbnail or a segmentation over its image. Prints what was shown and how many "
        "bytes were fetched.",
    )
    p.add_argument("series_uid", metavar="SERIES_UID", help="a SeriesInstanceUID")
    p.add_argument("-o", "--output", default="preview.png", help="image file to write (default preview.png)")
    p.add_argument(
        "--kind",
        choices=["auto", "slice", "montage"],
        default="auto",
        help="auto (default: what suits the series), slice (the middle one) or montage (--slices of them)",
    )
    p.add_argument(
        "--window", help="CT window: lung, mediastinum, soft_tissue, bone, brain or 'center,width'"
    )
    p.add_argument("--slices", type=int, default=DEFAULT_SLICES, help=f"montage slices (2-{MAX_SLICES})")
    p.add_argument("--s3-endpoint-url", default=argparse.SUPPRESS, help="overrides IDC_MCP_S3_ENDPOINT_URL")
    p.set_defaults(func=run)


def _write(path: Path, data: bytes) -> None:
    """Atomically: a reader never sees half an image under the final name."""
    with atomic_write(path, binary=True) as out:
        out.write(data)


def _print_viewer_link(catalog: Catalog, series_uid: str) -> None:
    """The browser link the error points to (the MCP tool names get_viewer_url instead)."""
    from idc_mcp.tools.viewers import get_viewer_url

    try:
        links = get_viewer_url(catalog, series_uid, None, "auto")
    except ValueError:
        return  # not a series of the index: the error said so
    for link in links.links:
        print(f"view it in the browser: {link.url}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from idc_mcp.catalog.database import Catalog
    from idc_mcp.preview.runner import PreviewWorkers

    settings = args.settings  # made once by the command line from the environment and its flags
    output = Path(args.output).expanduser()
    if not output.parent.is_dir():
        print(
            f"error: the folder of {str(output)!r} does not exist; create it or choose another -o.",
            file=sys.stderr,
        )
        return 1
    try:
        catalog = Catalog(settings)
        # In a worker process, under the preview deadline and memory cap, as the server makes it.
        made = PreviewWorkers(settings.preview_timeout_s, spare=False).make(
            catalog, settings.s3_endpoint_url, settings.cache_dir / "previews",
            args.series_uid, args.kind, args.window, args.slices,
        )  # fmt: skip
    except PreviewError as exc:
        print(f"error: {args.terms(str(exc))}", file=sys.stderr)
        if "get_viewer_url" in str(exc):
            _print_viewer_link(catalog, args.series_uid)
        return 1
    _write(output, made.image)
    suffix = {"image/png": ".png", "image/jpeg": ".jpg"}[made.mime_type]
    if output.suffix.lower() not in ({suffix, ".jpeg"} if suffix == ".jpg" else {suffix}):
        print(f"note: the image is {made.mime_type}; {output} holds it despite its name.", file=sys.stderr)
    print(made.summary())
    print(f"Saved to {output}")
    return 0
