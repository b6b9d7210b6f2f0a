"""A preview of one series: which bytes to fetch, what to draw, and the facts that go with the picture.

`make_preview` looks the series up in the index, lists its objects, reads only the headers sorting
needs and only the instances (or frames) shown, and returns an image of at most 1024 px and 1 MB with
a `PreviewInfo`. Finished previews are cached (bounded) under the cache folder.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from idc_mcp.catalog.database import Catalog
from idc_mcp.config import DEFAULT_S3_ENDPOINT
from idc_mcp.preview import headers as hdr
from idc_mcp.preview import montage, pixels, render, seg, slide
from idc_mcp.preview.cache import PreviewCache
from idc_mcp.preview.errors import PreviewError
from idc_mcp.preview.models import (
    DEFAULT_SLICES,
    MAX_SLICES,
    Kind,
    Preview,
    PreviewInfo,
    SegmentShown,
    ShownImage,
)
from idc_mcp.preview.remote import RemoteObject, Store
from idc_mcp.preview.series import SeriesRow, find_member, find_series, find_series_quietly

MAX_SLICE_INDEX = 1 << 20  # more slices than any series has
MAX_SEG_BYTES = 512 << 20  # a SEG is read whole to find its largest slice
# Modalities whose objects hold no image pixels: a preview of them has nothing to draw.
NO_PIXELS = {"SR", "RTSTRUCT", "RTPLAN", "RTRECORD", "KO", "PR", "ANN", "REG", "FID", "RWV", "DOC", "PLAN"}


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
    """A preview of one series; setting `cancel` (from another thread) stops it before its next request.

    `at` picks the slice of a single-slice preview: its 0-based index in anatomical order, or the
    SOPInstanceUID of the instance to show (None: the middle slice). The info says which slice was shown
    and how many there are (`slice_index`, `slice_count`), so a viewer can step through them."""
    if kind not in ("auto", "slice", "montage"):
        raise PreviewError(f"kind {kind!r} is not one of 'auto', 'slice', 'montage'.")
    if not 2 <= slices <= MAX_SLICES:
        raise PreviewError(f"slices={slices} is out of range: give 2 to {MAX_SLICES} slices for a montage.")
    if window:
        render.parse_window(window)  # refuse a bad window before any byte moves
    if at is not None and kind == "montage":
        raise PreviewError("A montage shows evenly spaced slices: pick one slice with kind='slice' instead.")
    if isinstance(at, int) and not 0 <= at < MAX_SLICE_INDEX:
        raise PreviewError(f"Slice index {at} is out of range: give 0 (the first slice) or more.")
    row = (
        find_member(catalog, series_uid, cohort, cohort_root) if cohort else find_series(catalog, series_uid)
    )
    modality = row.modality.upper()
    if modality in NO_PIXELS:
        raise PreviewError(
            f"Series {row.series_uid} is {modality}: it holds no image pixels to preview. Preview the image "
            'series it refers to (same StudyInstanceUID, e.g. query("SELECT SeriesInstanceUID, Modality FROM '
            f"index WHERE StudyInstanceUID = '{row.study_uid}'\")), or open it with get_viewer_url()."
        )
    cache = PreviewCache(cache_dir) if cache_dir else None
    key = PreviewCache.key(
        endpoint=endpoint, bucket=row.bucket, uuid=row.crdc_series_uuid, series=row.series_uid,
        kind=kind, window=window, slices=slices if kind == "montage" else None,
        **({"at": at} if at is not None else {}),
    )  # fmt: skip
    if cache and (hit := cache.get(key)):
        data, stored = hit
        info = PreviewInfo.model_validate(
            {**stored["info"], "cached": True, "bytes_fetched": 0, "requests": 0}
        )
        return Preview(data, stored["mime_type"], info)
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
    if at is not None and modality in ("SM", "SEG"):
        raise PreviewError(
            f"A {modality} preview has one picture: pick slices of image series only (omit the slice)."
        )
    if modality == "SM":
        if kind == "montage":
            raise PreviewError(
                "kind='montage' is for cross-sectional series; a slide gives one thumbnail: use kind='auto'."
            )
        image, info = _slide(row, store, objects)
    elif modality == "SEG":
        if kind == "montage":
            raise PreviewError(
                "kind='montage' is for image series; a SEG preview shows its largest slice over the "
                "referenced image: use kind='auto' (the reply names the referenced series, which can be "
                "given a montage)."
            )
        image, info = _segmentation(catalog, row, store, objects, window)
    else:
        image, info = _images(row, store, objects, kind, window, slices, at)
    data, mime, (width, height) = render.encode(image)
    info.update(
        image_format=mime, image_bytes=len(data), image_width=width, image_height=height,
        bytes_fetched=store.bytes_fetched, requests=store.requests,
    )  # fmt: skip
    result = Preview(data, mime, PreviewInfo.model_validate(info))
    if cache:
        cache.put(key, data, {"mime_type": mime, "info": result.info.model_dump(mode="json")})
    return result


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

    def decode(pick: tuple[hdr.Header, int | None, float | None]):  # type: ignore[no-untyped-def]
        ds, arr = pixels.read_frame(store, pick[0].obj, pick[1])
        if arr.ndim == 3 and int(ds.get("SamplesPerPixel", 1)) == 1:  # a single-frame read of 1 frame
            arr = arr[0]
        return ds, render.decimated(arr)

    with ThreadPoolExecutor(max_workers=min(8, len(picks))) as pool:
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
    ds, tiles = pixels.read_all(store, level.obj)
    matrix = slide.assemble(ds, tiles)
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
            f"({str(ds.get('DimensionOrganizationType', 'TILED_FULL'))})."
        ],
    )
    return render.to_image(shown), info


def _segmentation(
    catalog: Catalog, row: SeriesRow, store: Store, objects: list[RemoteObject], window: str | None
):  # type: ignore[no-untyped-def]
    notes = []
    seg_obj = max(objects, key=lambda o: o.size)
    if len(objects) > 1:
        notes.append(f"The series has {len(objects)} SEG instances; the largest is shown.")
    if seg_obj.size > MAX_SEG_BYTES:
        raise PreviewError(
            f"This segmentation object is {seg_obj.size / 1e6:,.0f} MB; previews read at most "
            f"{MAX_SEG_BYTES / 1e6:,.0f} MB to find the slice to show. Open it with get_viewer_url() "
            "instead, or preview its referenced image series."
        )
    ds = pixels.read_dataset(store, seg_obj)
    areas = seg.frame_areas(ds)
    pick, numbers = seg.largest_slice(ds, areas)
    segments = seg.segments(ds)
    ref_uids = seg.referenced_series_uids(ds)
    ref_row = next((r for uid in ref_uids if (r := find_series_quietly(catalog, uid))), None)
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
    img_ds, arr = pixels.read_frame(store, target.obj, None)
    base, how = render.to_display(img_ds, arr, ref_row.modality, ref_row.body_part, window)
    masks = {i: seg.frame(ds, i) for i in pick.frames}
    labelmap = str(ds.get("SegmentationType", "")).upper() == "LABELMAP"
    drawn, shown_segments = seg.overlay(base, masks, numbers, segments, seg.threshold_of(ds), labelmap)
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
