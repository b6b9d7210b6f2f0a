"""estimate_size: figures against the parquet; free space checked inside the download root only."""

import shutil

import pytest

from idc_mcp.files import PathRefused
from idc_mcp.tools.selection import Selection
from idc_mcp.tools.sizes import estimate_size
from tests.parquet import truth

SQL = "SELECT SeriesInstanceUID FROM index WHERE Modality = 'MR' AND BodyPartExamined = 'BREAST'"


def test_totals_and_per_collection_match_the_parquet(catalog):
    est = estimate_size(catalog, Selection(sql=SQL))
    rows = truth(
        "SELECT collection_id, count(*), sum(instanceCount), sum(series_size_MB) FROM {index} "
        "WHERE Modality = 'MR' AND BodyPartExamined = 'BREAST' GROUP BY 1"
    )
    assert est.series_count == sum(r[1] for r in rows)
    assert est.instance_count == sum(r[2] for r in rows)
    assert est.total_size_MB == pytest.approx(sum(r[3] for r in rows), abs=0.01)
    assert est.total_size_GB == pytest.approx(sum(r[3] for r in rows) / 1000, abs=0.001)
    got = {c.collection_id: c for c in est.per_collection}
    for collection, n, instances, mb in rows:
        assert (got[collection].series_count, got[collection].instance_count) == (n, instances)
        assert got[collection].total_size_MB == pytest.approx(mb, abs=0.01)
    sizes = [c.total_size_MB for c in est.per_collection]
    assert sizes == sorted(sizes, reverse=True)
    assert est.disk is None


def test_free_space_is_reported_for_a_folder_inside_the_root(catalog, tmp_path):
    est = estimate_size(catalog, Selection(collection_ids=["4d_lung"]), "lung/ct", tmp_path)
    assert est.disk is not None
    assert est.disk.download_dir == str((tmp_path / "lung" / "ct").resolve())
    assert est.disk.exists is False
    free = shutil.disk_usage(tmp_path).free / 1e6
    assert est.disk.free_MB == pytest.approx(free, rel=0.01)
    assert est.disk.fits is (est.total_size_MB <= est.disk.free_MB)
    assert est.disk.shortfall_MB == pytest.approx(max(0.0, est.total_size_MB - est.disk.free_MB), abs=0.01)


@pytest.mark.parametrize("escape", ["../elsewhere", "/etc", "a/../../b"])
def test_download_dir_outside_the_root_is_refused(catalog, tmp_path, escape):
    with pytest.raises(PathRefused):
        estimate_size(catalog, Selection(collection_ids=["4d_lung"]), escape, tmp_path / "root")


def test_download_dir_symlink_escape_is_refused(catalog, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(PathRefused, match="outside the download root"):
        estimate_size(catalog, Selection(collection_ids=["4d_lung"]), "link/x", root)


def test_original_and_derived_series_are_counted_apart(catalog):
    # lidc_idri: most of its series are analysis results (SEG/SR) made from a few original CT series.
    est = estimate_size(catalog, Selection(collection_ids=["lidc_idri"]))
    ((total, derived, modalities),) = truth(
        "SELECT count(*), count(*) FILTER (WHERE analysis_result_id IS NOT NULL), "
        "list(DISTINCT Modality ORDER BY Modality) FILTER (WHERE analysis_result_id IS NOT NULL) "
        "FROM {index} WHERE collection_id = 'lidc_idri'"
    )
    assert (est.series_count, est.derived_series, est.original_series) == (total, derived, total - derived)
    assert est.derived_modalities == modalities
    assert est.per_collection[0].derived_series == derived
    assert f"{total - derived:,} original, {derived:,} derived" in est.summary
    assert "1 GB = 1000 MB" in est.summary
