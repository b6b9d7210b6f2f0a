"""export_manifest: content from the parquet; files only inside the download root, written atomically."""

import csv
import io
import os

import pytest

from idc_mcp.files import PathRefused
from idc_mcp.tools.manifest import MAX_INLINE_SERIES, ManifestError, export_manifest
from idc_mcp.tools.selection import Selection
from tests.parquet import truth

ENDPOINT = "https://s3.amazonaws.com"


@pytest.fixture(scope="module")
def patient():
    return truth("SELECT PatientID FROM {index} WHERE collection_id = 'nsclc_radiomics' ORDER BY 1 LIMIT 1")[
        0
    ][0]


def _export(catalog, selection, fmt="s5cmd", path=None, root=None):
    return export_manifest(catalog, selection, fmt, path, root, ENDPOINT)


def test_s5cmd_manifest_lists_every_series_folder(catalog, patient, tmp_path):
    result = _export(catalog, Selection(patient_ids=[patient]), root=tmp_path)
    urls = truth("SELECT series_aws_url FROM {index} WHERE PatientID = ?", [patient])
    lines = result.content.splitlines()
    commands = [line for line in lines if not line.startswith("#")]
    assert sorted(c.split()[1] for c in commands) == sorted(u for (u,) in urls)
    assert all(c.startswith("cp s3://") and "/* " in c for c in commands)
    assert any(ENDPOINT in line for line in lines if line.startswith("#"))
    assert result.endpoint_url == ENDPOINT and "--no-sign-request" in result.run_command
    assert result.series_count == len(urls)


def test_s5cmd_lines_copy_each_series_into_the_folder_download_would_use(catalog, patient, tmp_path):
    # Every `cp` line once copied into ".": the files of all series mixed in one folder.
    from idc_mcp.download.plan import DEFAULT_TEMPLATE, plan_series
    from idc_mcp.tools.selection import resolve_selection

    selection = Selection(patient_ids=[patient])
    result = _export(catalog, selection, root=tmp_path)
    plans = plan_series(catalog, resolve_selection(catalog, selection), DEFAULT_TEMPLATE)
    expected = {f"s3://{p.bucket}/{p.crdc_series_uuid}/*": f"{p.folder}/" for p in plans}
    got = dict(line.split()[1:] for line in result.content.splitlines() if line.startswith("cp "))
    assert got == expected and len(set(got.values())) == len(plans)  # one folder per series
    assert "dir_template=''" in result.summary and DEFAULT_TEMPLATE in result.summary


def test_dir_template_changes_the_layout_and_empty_means_one_folder(catalog, patient, tmp_path):
    flat = _export_with(catalog, patient, tmp_path, "")
    assert {line.split()[2] for line in flat.splitlines() if line.startswith("cp ")} == {"."}
    by_modality = _export_with(catalog, patient, tmp_path, "%Modality/%SeriesInstanceUID")
    folders = [line.split()[2] for line in by_modality.splitlines() if line.startswith("cp ")]
    assert all(
        f.count("/") == 2 and f.split("/")[0] in ("CT", "RTSTRUCT", "SEG", "SR", "PT") for f in folders
    )
    with pytest.raises(ManifestError, match="did you mean '%Modality'"):
        _export_with(catalog, patient, tmp_path, "%Modalty")


def test_a_destination_with_a_space_is_quoted_for_s5cmd():
    from idc_mcp.tools.manifest import CSV_COLUMNS, _destination

    row = tuple({"PatientID": "LUNG 1", "Modality": "CT"}.get(c, "x") for c in CSV_COLUMNS)
    assert _destination("%PatientID/%Modality", row) == "'LUNG 1/CT/'"
    assert _destination("%Modality", row) == "CT/"


def _export_with(catalog, patient, root, template):
    return export_manifest(
        catalog, Selection(patient_ids=[patient]), "s5cmd", None, root, ENDPOINT, template
    ).content


def test_csv_manifest_has_the_issue_columns_and_parquet_values(catalog, patient, tmp_path):
    result = _export(catalog, Selection(patient_ids=[patient]), "csv", root=tmp_path)
    rows = list(csv.DictReader(io.StringIO(result.content)))
    expected = truth(
        "SELECT SeriesInstanceUID, collection_id, StudyInstanceUID, Modality, license_short_name, "
        "series_size_MB, series_aws_url FROM {index} WHERE PatientID = ?",
        [patient],
    )
    by_uid = {r["SeriesInstanceUID"]: r for r in rows}
    assert set(by_uid) == {e[0] for e in expected}
    for uid, collection, study, modality, license_name, size, url in expected:
        row = by_uid[uid]
        assert (row["collection_id"], row["PatientID"], row["StudyInstanceUID"]) == (
            collection,
            patient,
            study,
        )
        assert (row["Modality"], row["license_short_name"], row["series_aws_url"]) == (
            modality,
            license_name,
            url,
        )
        assert float(row["series_size_MB"]) == pytest.approx(size)


def test_large_manifest_without_path_is_refused_with_its_size(catalog, tmp_path):
    (n,) = truth("SELECT count(*) FROM {index} WHERE collection_id = '4d_lung'")[0]
    assert n > MAX_INLINE_SERIES
    with pytest.raises(ManifestError, match=f"{n:,} series.*path="):
        _export(catalog, Selection(collection_ids=["4d_lung"]), root=tmp_path)


def test_manifest_is_written_inside_the_root(catalog, tmp_path):
    result = _export(catalog, Selection(collection_ids=["4d_lung"]), path="manifests/lung.txt", root=tmp_path)
    target = tmp_path / "manifests" / "lung.txt"
    assert result.path == str(target.resolve()) and result.content is None
    (n,) = truth("SELECT count(*) FROM {index} WHERE collection_id = '4d_lung'")[0]
    assert sum(1 for line in target.read_text().splitlines() if line.startswith("cp ")) == n
    assert [p.name for p in target.parent.iterdir()] == ["lung.txt"]  # no temp file left behind
    assert str(target.resolve()) in result.run_command


def test_existing_manifest_file_is_replaced(catalog, patient, tmp_path):
    # Only a manifest export_manifest wrote is replaced (any other file is refused: see
    # tests/test_attacks_download.py).
    target = tmp_path / "m.csv"
    _export(catalog, Selection(patient_ids=[patient]), "s5cmd", path="m.csv", root=tmp_path)
    _export(catalog, Selection(patient_ids=[patient]), "csv", path="m.csv", root=tmp_path)
    assert target.read_text().startswith("SeriesInstanceUID,")


@pytest.mark.parametrize("escape", ["../out.txt", "/tmp/elsewhere.txt", "a/../../out.txt"])
def test_paths_outside_the_root_are_refused(catalog, patient, tmp_path, escape):
    root = tmp_path / "root"
    with pytest.raises(PathRefused):
        _export(catalog, Selection(patient_ids=[patient]), path=escape, root=root)
    assert not (tmp_path / "out.txt").exists()


def test_sibling_prefix_path_is_refused(catalog, patient, tmp_path):
    root = tmp_path / "root"
    with pytest.raises(PathRefused, match="outside the download root"):
        _export(
            catalog, Selection(patient_ids=[patient]), path=str(tmp_path / "root_evil" / "m.txt"), root=root
        )


def test_symlinked_folder_escape_is_refused(catalog, patient, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(PathRefused):
        _export(catalog, Selection(patient_ids=[patient]), path="link/m.txt", root=root)
    assert list(outside.iterdir()) == []


def test_symlinked_file_is_not_written_through(catalog, patient, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    victim = root / "victim.txt"
    victim.write_text("keep")
    (root / "m.txt").symlink_to(victim)
    with pytest.raises(PathRefused):
        _export(catalog, Selection(patient_ids=[patient]), path="m.txt", root=root)
    assert victim.read_text() == "keep"


def test_a_directory_is_never_replaced(catalog, patient, tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(ManifestError, match="is a folder"):
        _export(catalog, Selection(patient_ids=[patient]), path="folder", root=tmp_path)
    with pytest.raises(ManifestError, match="is a folder"):
        _export(catalog, Selection(patient_ids=[patient]), path=str(tmp_path), root=tmp_path)
    assert os.path.isdir(tmp_path / "folder")


def test_a_path_ending_in_a_slash_is_a_folder_not_a_file_name(catalog, patient, tmp_path):
    # Found by a new-user trial: 'manifests/' wrote a file named 'manifests', and the next
    # path='manifests/cohort.txt' then failed because that folder was a file.
    with pytest.raises(ManifestError, match="is a folder.*'manifests/manifest.txt'"):
        _export(catalog, Selection(patient_ids=[patient]), path="manifests/", root=tmp_path)
    assert not (tmp_path / "manifests").exists()
    written = _export(catalog, Selection(patient_ids=[patient]), path="manifests/cohort.txt", root=tmp_path)
    assert written.path == str(tmp_path.resolve() / "manifests" / "cohort.txt")


def test_bad_format_is_refused(catalog, patient, tmp_path):
    with pytest.raises(ManifestError, match="format must be"):
        _export(catalog, Selection(patient_ids=[patient]), "json", root=tmp_path)  # type: ignore[arg-type]


def test_a_path_through_an_existing_file_is_refused_clearly(catalog, patient, tmp_path):
    (tmp_path / "m.csv").write_text("not a folder")
    with pytest.raises(ManifestError, match="Cannot write 'm.csv/x.txt'"):
        _export(catalog, Selection(patient_ids=[patient]), path="m.csv/x.txt", root=tmp_path)


def test_an_overlong_file_name_is_refused_clearly(catalog, patient, tmp_path):
    with pytest.raises(ManifestError, match="Cannot write"):
        _export(catalog, Selection(patient_ids=[patient]), path="x" * 300 + ".txt", root=tmp_path)
