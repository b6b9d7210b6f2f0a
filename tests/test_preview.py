"""Previews as a spec: what each kind of series looks like, which bytes move, and what is refused.

Every series lives on a local moto S3 server with synthetic objects of known pixels under the S3
prefix of a real series of the index (tests/preview_fixture.py).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from idc_mcp.preview import PreviewError
from idc_mcp.preview.cache import PreviewCache
from idc_mcp.preview.remote import HEADER_BUFFER
from idc_mcp.preview.service import make_preview
from tests.preview_fixture import CT_DZ, CT_SLICES, CT_Z0, QUADRANTS, STRIPES_HU


def preview(catalog, mirror, name, tmp_path=None, **kwargs):  # type: ignore[no-untyped-def]
    return make_preview(catalog, mirror.endpoint, tmp_path, mirror.cases[name].uid, **kwargs)


def pixels(result) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.asarray(Image.open(io.BytesIO(result.image)))


def stripe_greys(image: np.ndarray, row: int = 128) -> list[int]:
    """The grey level at the centre of each of the eight 32-pixel HU stripes."""
    return [int(image[row, 16 + 32 * i]) for i in range(len(STRIPES_HU))]


def test_ct_window_from_body_part_maps_known_hu_to_known_grey(catalog, preview_mirror):
    # BodyPartExamined CHEST -> lung window (center -600, width 1500): grey = (HU + 1350) / 1500 * 255,
    # rounded half to even.
    result = preview(catalog, preview_mirror, "ct")
    assert result.mime_type == "image/png" and result.info.preview == "slice"
    assert "lung preset" in result.info.scaling
    assert STRIPES_HU == [-1024, -800, -600, -160, 40, 150, 240, 1000]
    assert stripe_greys(pixels(result)) == [55, 94, 128, 202, 236, 255, 255, 255]


def test_window_argument_overrides_the_preset(catalog, preview_mirror):
    # soft tissue (40, 400): -160 HU -> 0, 40 -> 128, 150 -> 198, 240 and above -> 255.
    result = preview(catalog, preview_mirror, "ct", window="soft_tissue")
    assert stripe_greys(pixels(result)) == [0, 0, 0, 0, 128, 198, 255, 255]
    explicit = preview(catalog, preview_mirror, "ct", window="40,400")
    assert stripe_greys(pixels(explicit)) == [0, 0, 0, 0, 128, 198, 255, 255]


def test_ct_middle_slice_comes_from_geometry_and_only_headers_plus_one_slice_move(catalog, preview_mirror):
    case = preview_mirror.cases["ct"]
    result = preview(catalog, preview_mirror, "ct")
    [shown] = result.info.shown
    middle = CT_SLICES // 2
    assert shown.sop_instance_uid == case.facts["uid_of_slice"][middle]
    assert shown.position_mm == pytest.approx(CT_Z0 + middle * CT_DZ)
    slice_bytes = len(case.objects[shown.object_key])
    # One header read per instance, then the chosen slice: never the whole series.
    assert result.info.bytes_fetched <= CT_SLICES * HEADER_BUFFER + slice_bytes
    assert result.info.bytes_fetched < case.size / 2
    assert result.info.series_bytes == case.size


def test_montage_follows_position_along_the_normal_not_names_or_instance_numbers(catalog, preview_mirror):
    # Object names are random UUIDs and InstanceNumbers are shuffled: only positions give the order.
    case = preview_mirror.cases["ct"]
    result = preview(catalog, preview_mirror, "ct", kind="montage", slices=5, window="400,800")
    positions = [s.position_mm for s in result.info.shown]
    assert positions == [CT_Z0 + k * CT_DZ for k in (0, 2, 4, 6, 8)]
    assert [case.facts["z_of_key"][s.object_key] for s in result.info.shown] == positions
    # Each slice's corner block holds 100 * k HU: with window (400, 800) its grey rises tile by tile.
    image = pixels(result)
    assert image.shape == (2 * (256 + 14), 3 * 256)  # 5 tiles -> 3 columns, 2 rows, each under a 14 px label
    greys = []
    for i in range(5):
        r, c = divmod(i, 3)
        greys.append(int(image[r * (256 + 14) + 14 + 16, c * 256 + 16]))
    assert greys == [round(k * 100 / 800 * 255) for k in (0, 2, 4, 6, 8)]
    assert result.info.order and "slice normal" in result.info.order


def test_mr_is_scaled_by_percentiles(catalog, preview_mirror):
    result = preview(catalog, preview_mirror, "mr")
    image = pixels(result)
    assert "percentiles" in result.info.scaling
    assert image.min() == 0 and image.max() == 255
    diagonal = image[np.arange(128), np.arange(128)].astype(int)
    assert np.all(np.diff(diagonal) >= 0)  # the ramp stays a ramp


def test_pt_is_inverted_grey_so_the_hot_lesion_is_dark(catalog, preview_mirror):
    result = preview(catalog, preview_mirror, "pt")
    image = pixels(result)
    assert "inverted grey" in result.info.scaling
    assert image[60, 60] == 0 and image[5, 5] == 255


def test_mg_monochrome1_is_inverted(catalog, preview_mirror):
    # MONOCHROME1: the lowest stored value is white, the highest black.
    result = preview(catalog, preview_mirror, "mg")
    image = pixels(result)
    assert "MONOCHROME1 inverted" in result.info.scaling
    assert image[120, 70] == 0 and image[10, 10] == 255
    assert result.info.pixel_spacing_mm == [0.1, 0.1]


def test_us_rgb_multiframe_shows_the_middle_frame_read_by_range(catalog, preview_mirror):
    case = preview_mirror.cases["us"]
    result = preview(catalog, preview_mirror, "us")
    image = pixels(result)
    assert image.shape == (256, 256, 3)
    assert tuple(image[100, 100]) == (20 * 6, 255 - 20 * 6, 10)  # frame 20 of 40 is (6k, 255-6k, 10)
    assert result.info.shown[0].frame == 20
    [size] = [len(b) for b in case.objects.values()]
    assert result.info.bytes_fetched < size / 10  # one 196 KB frame of a 7.9 MB cine loop


@pytest.mark.parametrize("name", ["sm_full", "sm_sparse"])
def test_slide_thumbnail_assembles_the_smallest_level_and_never_reads_full_resolution(
    catalog, preview_mirror, name
):
    case = preview_mirror.cases[name]
    result = preview(catalog, preview_mirror, name)
    assert result.info.preview == "slide_thumbnail"
    assert result.info.shown[0].object_key == case.facts["smallest_level_key"]
    assert result.info.source_size == "128 x 128"
    image = pixels(result).astype(int)
    assert image.shape == (128, 128, 3)
    for (r, c), colour in zip([(0, 0), (0, 1), (1, 0), (1, 1)], QUADRANTS, strict=True):
        centre = image[r * 64 + 32, c * 64 + 32]
        assert np.abs(centre - np.array(colour)).max() <= 8, (r, c, centre, colour)
    full_level = len(case.objects[case.facts["full_level_key"]])
    assert result.info.bytes_fetched < full_level  # headers of 4 instances + the small level only


@pytest.mark.parametrize("name", ["seg", "seg_fractional", "seg_labelmap", "seg_positions"])
def test_seg_colour_lands_on_the_mask_over_the_slice_where_it_is_largest(catalog, preview_mirror, name):
    # BINARY (bit-packed, counted on the packed bytes), FRACTIONAL (8-bit, decoded frame by frame) and
    # LABELMAP (segment numbers as values) draw the same picture; without source references the slice
    # is found by its position along the normal.
    case = preview_mirror.cases[name]
    result = preview(catalog, preview_mirror, name)
    info = result.info
    assert info.preview == "seg_overlay"
    assert info.referenced_series_uid == case.facts["referenced_series_uid"]
    assert info.shown[1].sop_instance_uid == case.facts["largest_source_uid"]  # slice 6, not slice 2
    assert [s.label.split(" ")[0] for s in info.segments] == ["Tumour", "Node"]
    image = pixels(result).astype(int)
    tumour = np.array([int(info.segments[0].colour[i : i + 2], 16) for i in (1, 3, 5)])
    # Inside segment 1 (rows/cols 100-159) over the 40 HU stripe (lung window grey 236): half and half.
    assert np.abs(image[130, 130] - np.rint((np.array([236] * 3) + tumour) / 2)).max() <= 1
    # Outside every mask: untouched grey (the -800 HU stripe, grey 94).
    assert tuple(image[130, 40]) == (94, 94, 94)
    assert image.shape[0] > 256  # the legend strip under the slice
    # The SEG, the referenced series' headers and one CT slice: not the CT series.
    ct = preview_mirror.cases["ct"]
    assert info.bytes_fetched < case.size + CT_SLICES * HEADER_BUFFER + max(map(len, ct.objects.values())) + 1


@pytest.mark.parametrize("codec", ["rle", "jpegls", "j2k", "jpeg_lossless"])
def test_lossless_codecs_decode_to_the_exact_pixels(catalog, preview_mirror, codec):
    result = preview(catalog, preview_mirror, f"codec_{codec}")
    assert stripe_greys(pixels(result)) == [55, 94, 128, 202, 236, 255, 255, 255]


@pytest.mark.parametrize("codec", ["jpeg_baseline", "jpeg_extended"])
def test_lossy_jpeg_decodes_within_its_loss(catalog, preview_mirror, codec):
    result = preview(catalog, preview_mirror, f"codec_{codec}")
    greys = stripe_greys(pixels(result))
    assert all(abs(g - e) <= 6 for g, e in zip(greys, [55, 94, 128, 202, 236, 255, 255, 255], strict=True))


def test_undecodable_transfer_syntax_is_named_in_the_error(catalog, preview_mirror):
    with pytest.raises(PreviewError, match=r"HEVC.*1\.2\.840\.10008\.1\.2\.4\.107.*get_viewer_url"):
        preview(catalog, preview_mirror, "codec_hevc")


def test_a_series_without_pixels_is_refused_with_what_to_preview_instead(catalog, preview_mirror):
    with pytest.raises(PreviewError, match=r"RTSTRUCT: it holds no image pixels.*StudyInstanceUID"):
        preview(catalog, preview_mirror, "rtstruct")


def test_bad_arguments_are_refused_before_any_byte_moves(catalog, preview_mirror):
    with pytest.raises(PreviewError, match="not a DICOM UID"):
        make_preview(catalog, preview_mirror.endpoint, None, "../../etc/passwd")
    with pytest.raises(PreviewError, match="Unknown series_uid"):
        make_preview(catalog, preview_mirror.endpoint, None, "1.2.3.4.5.6.7.8.9")
    with pytest.raises(PreviewError, match="window 'lungs please' is not understood.*lung"):
        preview(catalog, preview_mirror, "ct", window="lungs please")
    with pytest.raises(PreviewError, match="single image: a montage needs several"):
        preview(catalog, preview_mirror, "mg", kind="montage")
    with pytest.raises(PreviewError, match="slide gives one thumbnail"):
        preview(catalog, preview_mirror, "sm_full", kind="montage")


def test_a_second_preview_comes_from_the_cache_without_fetching(catalog, preview_mirror, tmp_path):
    first = preview(catalog, preview_mirror, "pt", tmp_path)
    again = preview(catalog, preview_mirror, "pt", tmp_path)
    assert first.info.bytes_fetched > 0 and not first.info.cached
    assert again.info.cached and again.info.bytes_fetched == 0 and again.image == first.image
    other_window = preview(catalog, preview_mirror, "pt", tmp_path, window="0,1000")
    assert not other_window.info.cached  # the window is part of the key
    # Only the cache folder was written.
    assert {p.suffix for p in tmp_path.iterdir()} == {".img", ".json"}


def test_cache_stays_within_its_bound_dropping_the_least_recently_used(tmp_path):
    cache = PreviewCache(tmp_path, max_bytes=10_000, max_entries=3)
    for i in range(6):
        cache.put(f"k{i}", bytes(3000), {"n": i})
    entries, size = cache.size()
    assert entries <= 3 and size <= 10_000
    assert cache.get("k5") is not None and cache.get("k0") is None


def test_an_edited_cache_entry_is_not_served(tmp_path):
    cache = PreviewCache(tmp_path)
    cache.put("k", b"picture", {})
    (tmp_path / "k.img").write_bytes(b"tampered")
    assert cache.get("k") is None


@pytest.mark.parametrize("name", ["mr", "pt", "mg", "codec_rle", "codec_j2k"])
def test_bytes_fetched_are_the_headers_and_the_one_instance_shown(catalog, preview_mirror, name):
    case = preview_mirror.cases[name]
    result = preview(catalog, preview_mirror, name)
    [shown] = result.info.shown
    # Header bytes are reused when the shown instance is read, so this bound is generous.
    assert result.info.bytes_fetched <= len(case.objects) * HEADER_BUFFER + len(
        case.objects[shown.object_key]
    )
    if len(case.objects) > 1:
        assert result.info.bytes_fetched < case.size


def test_a_frame_far_larger_than_the_preview_is_thinned_before_scaling():
    from idc_mcp.preview.render import decimated

    frame = np.zeros((5000, 4000), np.uint16)
    assert max(decimated(frame).shape) <= 2048
    assert decimated(frame[:512, :512]).shape == (512, 512)  # small frames untouched


def test_montage_slices_share_one_scaling_so_their_brightness_compares(catalog, preview_mirror):
    # The MR slices hold the same ramp offset by 100 * k: scaled together, a later slice is brighter.
    result = preview(catalog, preview_mirror, "mr", kind="montage", slices=3)
    assert "of all slices shown" in result.info.scaling
    image = pixels(result)
    # 3 tiles of 128 px -> a 2 x 2 grid, each tile under a 14 px label.
    corner = [int(image[r * (128 + 14) + 14 + 5, c * 128 + 5]) for r, c in ((0, 0), (0, 1), (1, 0))]
    assert corner[0] < corner[1] < corner[2]


def test_transient_store_errors_are_retried(catalog, preview_mirror):
    from tests.s3_fixture import FaultProxy

    proxy = FaultProxy(preview_mirror.endpoint)
    try:
        proxy.fail_next(2)  # the listing and a header read get HTTP 500 once each, or the listing twice
        result = make_preview(catalog, proxy.endpoint, None, preview_mirror.cases["pt"].uid)
    finally:
        proxy.stop()
    assert proxy.failures_served == 2
    assert pixels(result)[60, 60] == 0  # the same picture as without faults


def test_a_store_that_stays_down_is_a_clear_error_not_a_traceback(catalog, preview_mirror):
    from tests.s3_fixture import FaultProxy

    proxy = FaultProxy(preview_mirror.endpoint)
    try:
        proxy.fail_next(1000)
        with pytest.raises(
            PreviewError, match=r"The S3 endpoint .* kept failing: .*HTTP 500.*after 4 attempts"
        ):
            make_preview(catalog, proxy.endpoint, None, preview_mirror.cases["pt"].uid)
    finally:
        proxy.stop()


def test_an_image_that_would_pass_1_mb_as_png_becomes_a_jpeg_within_bounds():
    from idc_mcp.preview.render import encode

    noise = np.random.default_rng(0).integers(0, 256, (2000, 3000, 3), np.uint8)
    data, mime, size = encode(Image.fromarray(noise, "RGB"))
    assert mime == "image/jpeg" and len(data) <= 1_000_000 and max(size) <= 1024
    assert Image.open(io.BytesIO(data)).size == size
