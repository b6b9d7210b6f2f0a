"""A preview of one series: which bytes to fetch, what to draw, and the facts that go with the picture.

`render_series` lists the series' objects, reads only the headers sorting needs and only the instances
(or frames) shown, and returns an image of at most 1024 px and 1 MB with its facts. Every frame's
decoded size is checked against `bounds` from its header before it is decoded. The server runs it in
the preview worker (`preview.runner`); `make_preview` runs it here, between `request.prepare` (checks,
lookup, cache) and `Request.finish`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from idc_mcp.catalog.database import Catalog
from idc_mcp.config import DEFAULT_S3_ENDPOINT
from idc_mcp.preview import bounds, montage, pixels, render, seg, slide
from idc_mcp.preview import headers as hdr
from idc_mcp.preview.errors import PreviewError
from idc_mcp.preview.models import DEFAULT_SLICES, Kind, Preview, SegmentShown, ShownImage
from idc_mcp.preview.remote import RemoteObject, Store
from idc_mcp.preview.request import NO_PIXELS, prepare
from idc_mcp.preview.series import SeriesRow, find_series_quietly

__all__ = ["NO_PIXELS", "make_preview", "render_series"]
MAX_SEG_BYTES = bounds.MAX_SEG_BYTES  # a SEG is read whole to find its largest slice


def clear_caches() -> None:
    """Forget what is kept per series in this process (rows, listings, sorted headers): a benchmark
    timing a preview from scratch calls it before each run."""
    from idc_mcp.preview import remote, series

    series.forget_rows()
    remote.LISTINGS.clear()
    hdr.SERIES_HEADERS.clear()
    hdr.SERIES_STACKS.clear()


def _evenly(count: int, wanted: int) -> list[int]:
    return sorted({int(round(x)) for x in np.linspace(0, count - 1, min(wanted, count))})


def _hex(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def make_preview(
    catalog: Catalog,
    endpoint: str,
    cache_dir: Path | None,
    series_uid: str,
    kind: Kind = "auto",
    window: str | None = None,
    slices: int = DEFAULT_SLICES,
    cohort: str | None = None,
    cohort_root: Path | None = None,
    cancel: threading.Event | None = None,
    at: int | str | None = None,
) -> Preview:
    """A preview made in this process (tests, benchmarks); the server and the command line make it in
    the preview worker instead (`preview.runner`), under a deadline and a memory cap. Setting `cancel`
    (from another thread) stops it before its next request.

    `at` picks the slice of a single-slice preview: its 0-based index in anatomical order, or the
    SOPInstanceUID of the instance to show (None: the middle slice). The info says which slice was shown
    and how many there are (`slice_index`, `slice_count`), so a viewer can step through them."""
    request = prepare(catalog, endpoint, cache_dir, series_uid, kind, window, slices, cohort, cohort_root, at)
    if isinstance(request, Preview):
        return request
    image, mime, info = render_series(
        request.row,
        lambda uid: find_series_quietly(catalog, uid),
        endpoint,
        kind,
        window,
        slices,
        cancel,
        request.at,
    )
    return request.finish(image, mime, info)


Lookup = Callable[[str], SeriesRow | None]


def render_series(
    row: SeriesRow,
    lookup: Lookup,
    endpoint: str,
    kind: Kind,
    window: str | None,
    slices: int,
    cancel: threading.Event | None = None,
    at: int | str | None = None,
) -> tuple[bytes, str, dict[str, Any]]:
    """The picture of a checked request (`request.prepare`) as image bytes, MIME type and facts.

    `lookup` finds the index row of a series a SEG refers to (the worker asks the server for it)."""
    store = Store.open(endpoint, cancel)
    # Stepping through slices (a chosen `at`) lists a series once; a preview asked afresh lists it again.
    listed = store.list_series_once if at is not None else store.list_series
    objects = sorted(listed(row.bucket, row.prefix), key=lambda o: o.key)
    if not objects:
        mirror = (
            "retry later"
            if endpoint.rstrip("/") == DEFAULT_S3_ENDPOINT
            else "the mirror set by IDC_MCP_S3_ENDPOINT_URL lacks this series"
        )
        raise PreviewError(f"s3://{row.bucket}/{row.prefix} holds no objects at {endpoint}: {mirror}.")
    modality = row.modality.upper()
    if modality == "SM":
        image, info = _slide(row, store, objects)
    elif modality == "SEG":
        image, info = _segmentation(lookup, row, store, objects, window)
    else:
        image, info = _images(row, store, objects, kind, window, slices, at)
    data, mime, (width, height) = render.encode(image)
    info.update(
        image_format=mime, image_bytes=len(data), image_width=width, image_height=height,
        bytes_fetched=store.bytes_fetched, requests=store.requests,
    )  # fmt: skip
    return data, mime, info


def _base_info(row: SeriesRow, objects: list[RemoteObject]) -> dict:
    return {
        "series_uid": row.series_uid,
        "collection_id": row.collection_id,
        "modality": row.modality,
        "body_part": row.body_part,
        "series_description": row.description,
        "instances_in_series": len(objects),
        "series_bytes": sum(o.size for o in objects),
        "image_format": "",
        "image_width": 0,
        "image_height": 0,
        "image_bytes": 0,
        "bytes_fetched": 0,
        "requests": 0,
    }


def _chosen(count: int, at: int | str | None, uids: list[str]) -> int:
    """The index of the slice to show among `count` (`uids`: their SOPInstanceUIDs, or [] for frames)."""
    if at is None:
        return count // 2
    if isinstance(at, str):
        if at not in uids:
            raise PreviewError(f"Instance {at[:80]!r} is not an image of this series.")
        return uids.index(at)
    if at >= count:
        raise PreviewError(
            f"Slice index {at} is out of range: this series has {count} slices (0 to {count - 1})."
        )
    return at


def _images(
    row: SeriesRow,
    store: Store,
    objects: list[RemoteObject],
    kind: Kind,
    window: str | None,
    slices: int,
    at: int | str | None = None,
):  # type: ignore[no-untyped-def]
    stack = hdr.read_stack(store, objects)
    info = _base_info(row, objects)
    picks: list[tuple[hdr.Header, int | None, float | None]] = []  # (instance, frame, position)
    order = stack.note
    count = len(stack.headers)
    if count >= 2:
        uids = [h.sop_instance_uid for h in stack.headers]
        chosen = _evenly(count, slices) if kind == "montage" else [_chosen(count, at, uids)]
        for i in chosen:
            h = stack.headers[i]
            picks.append((h, h.frames // 2 if h.frames > 1 else None, stack.offsets[i]))
    else:
        h = stack.headers[0]
        h.frame_bytes()  # an absurd frame count is refused before the frames are listed
        if h.frames > 1:
            frames, offsets, order = hdr.frame_order(hdr.read_full_header(store, h.obj))
            count = len(frames)
            chosen = _evenly(count, slices) if kind == "montage" else [_chosen(count, at, [])]
            picks = [(h, frames[i], offsets[i]) for i in chosen]
        else:
            if kind == "montage":
                raise PreviewError(
                    "This series has a single image: a montage needs several; use kind='auto'."
                )
            chosen = [_chosen(1, at, [h.sop_instance_uid])]
            picks = [(h, None, stack.offsets[0])]
            order = None

    sizes = [h.frame_bytes() for h, _, _ in picks]  # refused here, before any pixel is decoded
    bounds.check_picture(
        "This montage" if kind == "montage" else "This slice",
        len(picks),
        sum(sizes),
        "Ask for fewer slices (slices=), or kind='auto' for one slice."
        if kind == "montage"
        else "Look at it with get_viewer_url() instead.",
    )
    # A montage cell is small: keep each decoded frame at no more than twice its side.
    keep_side = 2 * render.MAX_SIDE // (max(1, int(np.ceil(np.sqrt(len(picks))))) if kind == "montage" else 1)

    def decode(pick: tuple[hdr.Header, int | None, float | None]):  # type: ignore[no-untyped-def]
        ds, arr = pixels.read_frame(store, pick[0].obj, pick[1])
        if arr.ndim == 3 and int(ds.get("SamplesPerPixel", 1)) == 1:  # a single-frame read of 1 frame
            arr = arr[0]
        kept = np.array(render.decimated(arr, max(256, keep_side)))  # a copy: the full frame is freed
        del arr
        return ds, kept

    # Frames decoded at once: as many as fit in a quarter of the worker's memory (3x a frame each).
    lanes = max(1, min(8, len(picks), bounds.WORKER_MEMORY_BYTES // 4 // max(1, 3 * max(sizes))))
    with ThreadPoolExecutor(max_workers=lanes) as pool:
        decoded = list(pool.map(decode, picks))
    shared = None
    if len(decoded) > 1 and all(render.uses_percentiles(row.modality, window, a) for _, a in decoded):
        # One range for every slice of a montage, so that their brightness compares.
        shared = render.percentile_range(np.concatenate([render.rescaled(d, a).ravel() for d, a in decoded]))
    shown = [render.to_display(d, a, row.modality, row.body_part, window, shared) for d, a in decoded]
    middle = len(decoded) // 2
    ds0, arr0, how0 = decoded[middle][0], decoded[middle][1], shown[middle][1]
    tiles = [render.to_image(pixels_) for pixels_, _ in shown]
    if kind == "montage":
        labels = [
            f"{n + 1}: "
            + (
                f"{pos:.1f} mm"
                if pos is not None
                else f"frame {frame}"
                if frame is not None
                else h.obj.key[-8:]
            )
            for n, (h, frame, pos) in enumerate(picks)
        ]
        image = montage.grid(tiles, labels)
    else:
        image = tiles[0]
    spacing = pixels.pixel_spacing(ds0)
    info.update(
        preview="montage" if kind == "montage" else "slice",
        source_size=f"{ds0.get('Columns', arr0.shape[1])} x {ds0.get('Rows', arr0.shape[0])}",
        pixel_spacing_mm=list(spacing) if spacing else None,
        scaling=how0 if len({how for _, how in shown}) == 1 else f"{how0} (middle image; each scaled alone)",
        order=order,
        slice_index=None if kind == "montage" else chosen[0],
        slice_count=count,
        shown=[
            ShownImage(
                sop_instance_uid=h.sop_instance_uid, object_key=h.obj.key, frame=frame, position_mm=pos
            )
            for h, frame, pos in picks
        ],
    )
    return image, info


def _slide(row: SeriesRow, store: Store, objects: list[RemoteObject]):  # type: ignore[no-untyped-def]
    heads = hdr.read_headers(store, objects, hdr.SLIDE_TAGS)
    level = slide.smallest_level(heads)
    levels = slide.pyramid_levels(heads)
    tile_bytes = level.frame_bytes()  # refused here, before any pixel is decoded
    ds = pixels.read_dataset(store, level.obj)
    tiles = slide.needed_tiles(ds)
    bounds.check_picture(
        "This slide level", len(tiles), len(tiles) * tile_bytes, "Open it with get_viewer_url(viewer='slim')."
    )
    matrix = slide.assemble(ds, tiles, pixels.iter_frames(ds, [t[0] for t in tiles]))
    shown, how = (
        (matrix, "colour as stored") if matrix.ndim == 3 else render.percentile_scale(matrix.astype(float))
    )
    info = _base_info(row, objects)
    full = levels[0]
    spacing = pixels.pixel_spacing(ds)
    info.update(
        preview="slide_thumbnail",
        source_size=f"{level.total_columns} x {level.total_rows}",
        pixel_spacing_mm=list(spacing) if spacing else None,
        scaling=how,
        shown=[ShownImage(sop_instance_uid=level.sop_instance_uid, object_key=level.obj.key)],
        notes=[
            f"Pyramid of {len(levels)} levels; full resolution {full.total_columns:,} x {full.total_rows:,} "
            f"pixels (not read); this level has {int(ds.get('NumberOfFrames') or 1)} tiles "
            f"({str(ds.get('DimensionOrganizationType', 'TILED_FULL'))}), of which the {len(tiles)} that "
            "cover its matrix were decoded."
        ],
    )
    return render.to_image(shown), info


def _segmentation(
    lookup: Lookup, row: SeriesRow, store: Store, objects: list[RemoteObject], window: str | None
):  # type: ignore[no-untyped-def]
    notes = []
    seg_obj = max(objects, key=lambda o: o.size)
    if len(objects) > 1:
        notes.append(f"The series has {len(objects)} SEG instances; the largest is shown.")
    if seg_obj.size > MAX_SEG_BYTES:
        raise PreviewError(
            f"This segmentation object is {seg_obj.size / 2**20:,.0f} MiB; previews read at most "
            f"{MAX_SEG_BYTES // 2**20} MiB to find the slice to show. Open it with get_viewer_url() "
            "instead, or preview its referenced image series."
        )
    head = hdr.read_header(store, seg_obj)
    decoded = head.frames * head.frame_bytes()  # absurd dimensions and frame counts refused here
    if decoded > MAX_SEG_BYTES:
        raise PreviewError(
            f"This segmentation declares {head.frames:,} frames of {head.columns:,} x {head.rows:,} pixels: "
            f"{decoded / 2**20:,.0f} MiB of pixel data once decoded; previews read at most "
            f"{MAX_SEG_BYTES // 2**20} MiB to find the slice to show. Open it with get_viewer_url() "
            "instead, or preview its referenced image series."
        )
    ds = pixels.read_dataset(store, seg_obj)
    areas = seg.frame_areas(ds)
    pick, numbers = seg.largest_slice(ds, areas)
    segments = seg.segments(ds)
    ref_uids = seg.referenced_series_uids(ds)
    ref_row = next((r for uid in ref_uids if (r := lookup(uid))), None)
    if ref_row is None:
        raise PreviewError(
            "The segmentation's referenced series "
            + (", ".join(ref_uids) if ref_uids else "(none given in ReferencedSeriesSequence)")
            + " is not in the IDC index, so there is no image to draw it over. Open it with get_viewer_url()."
        )
    ref_objects = sorted(store.list_series(ref_row.bucket, ref_row.prefix), key=lambda o: o.key)
    target = None
    if pick.source_uid:
        target = hdr.find_header(store, ref_objects, lambda h: h.sop_instance_uid == pick.source_uid)
    if target is None and pick.position is not None:
        heads = hdr.read_headers(store, ref_objects)  # headers already read cost nothing again
        with_normal = [h for h in heads if h.position is not None and h.normal is not None]
        if with_normal:
            normal = with_normal[0].normal
            want = float(np.dot(pick.position, normal))  # type: ignore[arg-type]
            target = min(with_normal, key=lambda h: abs(float(np.dot(h.position, normal)) - want))  # type: ignore[arg-type]
            notes.append("The source slice was matched by position along the slice normal.")
    if target is None:
        raise PreviewError(
            f"The slice with the largest mask (source {pick.source_uid or 'unknown'}) was not found in the "
            f"referenced series {ref_row.series_uid}. Open the segmentation with get_viewer_url()."
        )
    if target.frames > 1:
        raise PreviewError(
            "The referenced image is a multi-frame instance; drawing a SEG over one of its frames is not "
            "supported yet. Preview the referenced series itself, or use get_viewer_url()."
        )
    target.frame_bytes()  # refused here, before any pixel is decoded
    img_ds, arr = pixels.read_frame(store, target.obj, None)
    base, how = render.to_display(img_ds, arr, ref_row.modality, ref_row.body_part, window)
    labelmap = str(ds.get("SegmentationType", "")).upper() == "LABELMAP"
    limit = bounds.MAX_SEGMENTS_DRAWN
    drawn_frames = seg.drawn_frames(pick, areas, limit)  # the largest masks, one frame decoded at a time
    masks = zip(drawn_frames, pixels.iter_frames(ds, drawn_frames), strict=True)
    drawn, shown_segments, left_out = seg.overlay(
        base, masks, numbers, segments, seg.threshold_of(ds), labelmap, limit
    )
    left_out += sum(1 for i in pick.frames if areas[i] > 0) - len(drawn_frames)
    if left_out:
        notes.append(
            f"{left_out:,} more segment mask(s) on this slice were not drawn: a preview draws the "
            f"{limit} largest. Open the segmentation with get_viewer_url() to see every segment."
        )
    image = montage.with_legend(
        render.to_image(drawn), [(f"{s.number}: {s.label}", s.colour) for s in shown_segments]
    )
    info = _base_info(row, objects)
    info["series_bytes"] += sum(o.size for o in ref_objects)
    spacing = pixels.pixel_spacing(img_ds)
    info.update(
        preview="seg_overlay",
        source_size=f"{arr.shape[1]} x {arr.shape[0]}",
        pixel_spacing_mm=list(spacing) if spacing else None,
        scaling=how,
        shown=[
            ShownImage(sop_instance_uid=str(ds.get("SOPInstanceUID", "")), object_key=seg_obj.key),
            ShownImage(sop_instance_uid=target.sop_instance_uid, object_key=target.obj.key),
        ],
        referenced_series_uid=ref_row.series_uid,
        segments=[
            SegmentShown(number=s.number, label=s.label, colour=_hex(s.colour)) for s in shown_segments
        ],
        notes=notes
        + [f"Mask area on this slice: {pick.area:,} pixels over {len(pick.frames)} segment frame(s)."],
    )
    return image, info
