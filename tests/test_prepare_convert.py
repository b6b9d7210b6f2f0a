"""The converters of prepare_dataset, on synthetic DICOM whose every voxel is known: volumes (dcm2niix),
SEG label maps and RTSTRUCT masks on the image grid, SR TID 1500 tables. Geometry is checked through the
NIfTI affine at known patient coordinates, never by shapes alone."""

from __future__ import annotations

import threading
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from idc_mcp.prepare import images
from idc_mcp.prepare.errors import ConversionFailed
from idc_mcp.prepare.grid import image_grid, write_on_grid
from idc_mcp.prepare.measurements import sr_rows, table_parquet
from idc_mcp.prepare.rtstruct import rtstruct_to_masks
from idc_mcp.prepare.segmentations import seg_to_labels
from tests import prepare_fixture as f

GEOMETRIES = {
    "axial": f.axial(),
    "feet_first": f.feet_first(),
    "oblique": f.oblique(),
    "uneven_spacing": f.uneven(),
}


def convert(tmp_path: Path, datasets) -> Path:  # type: ignore[no-untyped-def]
    """Write the series in shuffled file order, convert it, return its one volume."""
    f.write_series(tmp_path / "dicom", datasets)
    out = tmp_path / "out"
    out.mkdir()
    volumes = images.run_dcm2niix(tmp_path / "dicom", out, threading.Event())
    assert len(volumes) == 1, [v.nifti.name for v in volumes]
    return volumes[0].nifti


@pytest.mark.parametrize("name", GEOMETRIES)
def test_every_voxel_at_its_patient_coordinate_holds_its_value(tmp_path, name):
    # LPS (DICOM) -> RAS (NIfTI) and the slice order are handled by dcm2niix; checked voxel by voxel.
    g = GEOMETRIES[name]
    image = nib.load(convert(tmp_path, f.make_ct(g)))
    for k in range(len(g.positions)):
        for r in range(f.ROWS):
            for c in range(f.COLS):
                assert f.nifti_value_at(image, f.pixel_lps(g, k, r, c)) == f.voxel_value(k, r, c), (k, r, c)


def test_uneven_slices_keep_only_the_equalized_volume_and_say_so(tmp_path):
    f.write_series(tmp_path / "dicom", f.make_ct(f.uneven()))
    (tmp_path / "out").mkdir()
    volumes = images.run_dcm2niix(tmp_path / "dicom", tmp_path / "out", threading.Event())
    assert [v.equalized for v in volumes] == [True]
    assert "unevenly spaced" in volumes[0].sidecar.read_text()


def test_a_series_that_is_not_dicom_fails_with_the_converters_reason(tmp_path):
    (tmp_path / "dicom").mkdir()
    (tmp_path / "dicom" / "x.dcm").write_bytes(b"not dicom" * 100)
    (tmp_path / "out").mkdir()
    with pytest.raises(ConversionFailed, match="dcm2niix"):
        images.run_dcm2niix(tmp_path / "dicom", tmp_path / "out", threading.Event())


def _labels_on_grid(tmp_path: Path, g: f.Geometry, mask: np.ndarray, labels, kind="BINARY"):  # type: ignore[no-untyped-def]
    ct = f.make_ct(g)
    grid = image_grid(convert(tmp_path, ct))
    seg_path = tmp_path / "seg.dcm"
    seg_path.write_bytes(f.save(f.make_seg(ct, mask, labels, kind)))
    out = seg_to_labels(seg_path, grid)
    written = {}
    for suffix, make in out.arrays.items():
        path = tmp_path / f"label{suffix}.nii.gz"
        array, slope = make()
        write_on_grid(array, grid, path, slope)
        written[suffix] = nib.load(path)
    return grid, out, written


@pytest.mark.parametrize("name", ["feet_first", "oblique"])
def test_seg_labels_sit_at_exactly_their_voxels_on_the_image_grid(tmp_path, name):
    g = GEOMETRIES[name]
    mask = np.zeros((len(g.positions), f.ROWS, f.COLS), np.uint8)
    mask[2, 3:7, 4:12] = 1
    mask[5, 10:14, 15:20] = 2
    grid, out, written = _labels_on_grid(tmp_path, g, mask, ["Tumour", "Node"])
    label = written[""]
    assert label.shape == grid.shape and np.allclose(label.affine, grid.affine)
    for k in range(len(g.positions)):
        for r in range(f.ROWS):
            for c in range(f.COLS):
                assert f.nifti_value_at(label, f.pixel_lps(g, k, r, c)) == mask[k, r, c], (k, r, c)
    assert [(e["value"], e["label"]) for e in out.labels] == [(1, "Tumour"), (2, "Node")]
    assert out.labels[0]["property_type"]["meaning"] == "Connective tissue" and not out.overlapping


def test_a_seg_over_some_slices_gives_a_full_size_label_map(tmp_path):
    g = f.axial(n=10)
    mask = np.zeros((10, f.ROWS, f.COLS), np.uint8)
    mask[7, 1:3, 1:3] = 1  # one frame only: the SEG names one of ten slices
    grid, _, written = _labels_on_grid(tmp_path, g, mask, ["Tumour"])
    label = written[""]
    assert label.shape == grid.shape == (f.COLS, f.ROWS, 10)
    assert int(np.asarray(label.dataobj).sum()) == 4
    assert (
        f.nifti_value_at(label, f.pixel_lps(g, 7, 1, 2)) == 1
        and f.nifti_value_at(label, f.pixel_lps(g, 6, 1, 2)) == 0
    )


def test_overlapping_segments_are_one_file_per_segment_and_lose_nothing(tmp_path):
    g = f.axial()
    planes = np.zeros((len(g.positions), f.ROWS, f.COLS, 2), np.uint8)
    planes[3, 2:8, 2:8, 0] = 1
    planes[3, 5:10, 5:10, 1] = 1  # overlaps the first at rows/columns 5-7
    _, out, written = _labels_on_grid(tmp_path, g, planes, ["Organ", "Lesion"])
    assert out.overlapping and set(written) == {"_seg1", "_seg2"}
    for n, img in ((0, written["_seg1"]), (1, written["_seg2"])):
        for r in range(f.ROWS):
            for c in range(f.COLS):
                assert f.nifti_value_at(img, f.pixel_lps(g, 3, r, c)) == planes[3, r, c, n]


def test_fractional_segments_keep_their_fractions(tmp_path):
    g = f.axial()
    planes = np.zeros((len(g.positions), f.ROWS, f.COLS, 1), np.float32)
    planes[1, 4:6, 4:6, 0] = 0.5
    _, out, written = _labels_on_grid(tmp_path, g, planes, ["Probability"], kind="FRACTIONAL")
    assert out.overlapping
    assert f.nifti_value_at(written["_seg1"], f.pixel_lps(g, 1, 4, 5)) == pytest.approx(0.5, abs=0.01)


def test_a_seg_on_another_grid_is_refused_not_resampled(tmp_path):
    other = f.make_ct(
        f.Geometry((1, 0, 0), (0, 1, 0), (0.5, 0.5), [(-8.0, -6.0, -10.0 + 2.5 * k) for k in range(8)])
    )
    ct = f.make_ct(f.axial())
    grid = image_grid(convert(tmp_path, ct))
    mask = np.zeros((8, f.ROWS, f.COLS), np.uint8)
    mask[1, 1:4, 1:4] = 1
    seg = tmp_path / "seg.dcm"
    seg.write_bytes(f.save(f.make_seg(other, mask, ["Tumour"])))
    with pytest.raises(ConversionFailed, match="voxel grid"):
        seg_to_labels(seg, grid)


@pytest.mark.parametrize("name", ["axial", "feet_first"])
def test_rtstruct_square_matches_within_one_voxel_at_its_border(tmp_path, name):
    g = GEOMETRIES[name]
    ct = f.make_ct(g)
    grid = image_grid(convert(tmp_path, ct))
    k, z = 3, g.positions[3][2]
    x0, x1, y0, y1 = -6.3, 2.9, -3.1, 5.2
    square = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]])
    path = tmp_path / "rt.dcm"
    path.write_bytes(f.save(f.make_rtstruct(ct, {"GTV": [square]})))
    masks = rtstruct_to_masks(path, grid)
    (roi,) = masks.rois
    assert roi.name == "GTV" and roi.contours == 1
    write_on_grid(roi.mask, grid, tmp_path / "gtv.nii.gz")
    img = nib.load(tmp_path / "gtv.nii.gz")
    for kk in range(len(g.positions)):
        for r in range(f.ROWS):
            for c in range(f.COLS):
                x, y, _ = f.pixel_lps(g, kk, r, c)
                got = f.nifti_value_at(img, f.pixel_lps(g, kk, r, c))
                inside = kk == k and x0 < x < x1 and y0 < y < y1
                border = kk == k and min(abs(x - x0), abs(x - x1), abs(y - y0), abs(y - y1)) <= max(g.spacing)
                assert got == inside or border, (kk, r, c, got)


def test_sr_tid1500_table_has_exactly_its_measurements(tmp_path):
    ct = f.make_ct(f.axial())
    path = tmp_path / "sr.dcm"
    wanted = [("Long axis", 12.5, "mm"), ("Volume", 830.25, "mm3"), ("Mean density", -120.0, "[hnsf'U]")]
    path.write_bytes(f.save(f.make_sr(ct, wanted)))
    rows = sr_rows(path)
    assert [(r["measurement"], r["value"], r["unit"]) for r in rows] == wanted
    assert {r["tracking_identifier"] for r in rows} == {"lesion 1"}
    assert {(r["finding_type"], r["finding_site"]) for r in rows} == {("Nodule", "Lung")}
    import io

    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(table_parquet(rows)))
    assert table.column("value").to_pylist() == [12.5, 830.25, -120.0]


def test_an_sr_that_is_not_tid1500_is_reported_not_guessed(tmp_path):
    ds = f.make_sr(f.make_ct(f.axial()), [("Long axis", 1.0, "mm")])
    ds.ContentTemplateSequence[0].TemplateIdentifier = "2000"
    path = tmp_path / "sr.dcm"
    path.write_bytes(f.save(ds))
    with pytest.raises(ConversionFailed, match="not a TID 1500"):
        sr_rows(path)
