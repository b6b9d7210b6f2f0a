"""prepare_dataset end to end through an in-memory MCP client and a local S3 mirror (tests/prepare_mirror.py):
what it writes for each layout, what it refuses before any work, reruns, and the dataset card."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from mcp import Client

from idc_mcp.prepare.plan import check_ratios
from tests import prepare_fixture as f
from tests.prepare_mirror import MEASUREMENTS, start_prepare_mirror
from tests.servers import server_from_environment

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def mirror():
    m = start_prepare_mirror()
    yield m
    m.server.stop()


@pytest.fixture
def root(tmp_path, monkeypatch, mirror) -> Path:
    monkeypatch.setenv("IDC_MCP_DOWNLOAD_ROOT", str(tmp_path))
    monkeypatch.setenv("IDC_MCP_S3_ENDPOINT_URL", mirror.endpoint)
    return tmp_path


def uids(mirror, *roles: str) -> list[str]:
    return [mirror.series[r]["uid"] for r in roles]


async def call(arguments: dict, progress=None):  # type: ignore[no-untyped-def]
    async with Client(server_from_environment()) as client:
        return await client.call_tool("prepare_dataset", arguments, progress_callback=progress)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


async def test_plain_layout_converts_each_kind_reports_failures_and_skips_by_name(root, mirror):
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    everything = uids(mirror, "ct1", "seg1", "rtstruct1", "sr1", "ct2", "seg2", "ct3", "sm")
    result = await call({"series_uids": everything, "output_dir": "ds"}, on_progress)
    assert not result.is_error, result.content[0].text
    data = result.structured_content
    out = root / "ds"
    assert data["series_converted"] == 6 and data["series_reused"] == 0
    # the CT whose objects are not DICOM fails by name with dcm2niix's reason; the others go on
    assert [(x["SeriesInstanceUID"], "dcm2niix" in x["reason"]) for x in data["failures"]] == [
        (mirror.series["ct3"]["uid"], True)
    ]
    assert [(x["SeriesInstanceUID"], x["Modality"]) for x in data["skipped"]] == [
        (mirror.series["sm"]["uid"], "SM")
    ]
    assert "slide microscopy" in data["skipped"][0]["reason"]
    assert seen == sorted(seen) and seen[-1] == 1000
    # the image: every voxel at its patient coordinate
    ct1 = mirror.series["ct1"]
    study = out / ct1["collection_id"] / ct1["patient"] / ct1["study"]
    image = nib.load(study / f"CT_{ct1['uid']}.nii.gz")
    g = mirror.facts["geometry"]
    assert f.nifti_value_at(image, f.pixel_lps(g, 2, 5, 6)) == f.voxel_value(2, 5, 6)
    assert json.loads((study / f"CT_{ct1['uid']}.json").read_text())["Modality"] == "CT"
    # the SEG on the image grid, the labels where the mask was
    seg = nib.load(study / f"SEG_{mirror.series['seg1']['uid']}.nii.gz")
    assert seg.shape == image.shape and np.allclose(seg.affine, image.affine)
    mask = mirror.facts["mask1"]
    for k, r, c in [(2, 4, 5), (2, 7, 10), (3, 10, 3), (2, 8, 5), (0, 0, 0)]:
        assert f.nifti_value_at(seg, f.pixel_lps(g, k, r, c)) == mask[k, r, c]
    meta = json.loads((study / f"SEG_{mirror.series['seg1']['uid']}.json").read_text())
    assert [(s["value"], s["label"]) for s in meta["segments"]] == [(1, "Tumour"), (2, "Node")]
    # the RTSTRUCT as one mask per ROI, named by ROI name
    roi = nib.load(study / f"RTSTRUCT_{mirror.series['rtstruct1']['uid']}_GTV_1.nii.gz")
    assert roi.shape == image.shape and int(np.asarray(roi.dataobj).sum()) > 0
    # the SR as the measurements table
    with (out / "measurements.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["measurement"], float(r["value"]), r["unit"]) for r in rows] == MEASUREMENTS
    assert {r["SeriesInstanceUID"] for r in rows} == {mirror.series["sr1"]["uid"]}
    assert (out / "measurements.parquet").is_file()
    # nothing half-written: no temporaries anywhere
    hidden = [p for p in files_under(out) if "/." in "/" + p and not p.startswith("dicom/")]
    assert hidden == [".idc-mcp-prepare.json"]  # the rerun record only
    assert not list(out.glob(".idc-mcp-prepare-*"))


async def test_the_card_cites_with_get_citations_text_and_splits_by_patient(root, mirror):
    selection = uids(mirror, "ct1", "seg1", "ct2", "seg2")
    result = await call({"series_uids": selection, "output_dir": "card", "split": [0.5, 0, 0.5], "seed": 3})
    assert not result.is_error, result.content[0].text
    out = root / "card"
    async with Client(server_from_environment()) as client:
        cited = (await client.call_tool("get_citations", {"series_uids": selection})).structured_content
    with (out / "cases.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and {r["split"] for r in rows} == {"train", "test"}
    texts = {e["citation"] for e in cited["entries"] if e["kind"] == "dataset"}
    for row in rows:
        assert (
            row["idc_data_version"] and row["license_short_name"] and row["source_urls"].startswith("s3://")
        )
        assert all(part in texts for part in row["citation"].split(" | "))
    readme = (out / "README.md").read_text()
    assert cited["bibliography"] in readme and "seed 3" in readme
    # the same call gives the same split
    again = await call({"series_uids": selection, "output_dir": "card", "split": [0.5, 0, 0.5], "seed": 3})
    with (out / "cases.csv").open() as fh:
        assert [r["split"] for r in csv.DictReader(fh)] == [r["split"] for r in rows]
    assert (
        again.structured_content["series_reused"] == 4 and again.structured_content["series_converted"] == 0
    )


async def test_a_rerun_redoes_only_a_series_whose_output_changed(root, mirror):
    selection = uids(mirror, "ct2", "seg2")
    first = await call({"series_uids": selection, "output_dir": "rerun"})
    assert first.structured_content["series_converted"] == 2
    ct2 = mirror.series["ct2"]
    label = (
        root
        / "rerun"
        / ct2["collection_id"]
        / ct2["patient"]
        / ct2["study"]
        / f"SEG_{mirror.series['seg2']['uid']}.nii.gz"
    )
    label.write_bytes(b"tampered")
    second = (await call({"series_uids": selection, "output_dir": "rerun"})).structured_content
    assert (second["series_converted"], second["series_reused"]) == (1, 1)
    assert nib.load(label).shape[:3] == (f.COLS, f.ROWS, 6)


def check_nnunet_raw(folder: Path) -> None:
    """nnU-Net v2's documented rules for a raw dataset (what its verify_dataset_integrity checks):
    dataset.json with channel_names, labels (background 0, consecutive integers), numTraining and
    file_ending; every training case has each channel and one label file; numTraining matches; label
    files hold only declared values; images and labels share shape and geometry."""
    meta = json.loads((folder / "dataset.json").read_text())
    assert {"channel_names", "labels", "numTraining", "file_ending"} <= set(meta)
    values = sorted(meta["labels"].values())
    assert meta["labels"]["background"] == 0 and values == list(range(len(values)))
    ending = meta["file_ending"]
    labels = sorted((folder / "labelsTr").glob(f"*{ending}"))
    assert len(labels) == meta["numTraining"]
    for label_path in labels:
        case = label_path.name[: -len(ending)]
        label = nib.load(label_path)
        assert set(np.unique(np.asarray(label.dataobj)).tolist()) <= set(values)
        for channel in meta["channel_names"]:
            image = nib.load(folder / "imagesTr" / f"{case}_{int(channel):04d}{ending}")
            assert image.shape == label.shape and np.allclose(image.affine, label.affine, atol=1e-4)
    images = {p.name[: -len(ending) - 5] for p in (folder / "imagesTr").glob(f"*{ending}")}
    assert images == {p.name[: -len(ending)] for p in labels}


async def test_nnunet_layout_passes_nnunets_documented_integrity_rules(root, mirror):
    selection = uids(mirror, "ct1", "seg1", "ct2", "seg2")
    result = await call(
        {"series_uids": selection, "layout": "nnunet", "output_dir": "nn", "split": [1, 0, 0]}
    )
    assert not result.is_error, result.content[0].text
    out = root / "nn"
    check_nnunet_raw(out)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "CT"} and meta["labels"] == {
        "background": 0,
        "Node": 1,
        "Tumour": 2,
    }
    assert meta["numTraining"] == 2


NNUNET_PYTHON = os.environ.get("IDC_MCP_TEST_NNUNET_PYTHON")


@pytest.mark.skipif(not NNUNET_PYTHON, reason="IDC_MCP_TEST_NNUNET_PYTHON (a Python with nnunetv2) not set")
async def test_nnunet_layout_passes_nnunetv2s_own_verify_dataset_integrity(root, mirror):
    # nnunetv2 needs torch (~200 MB), so it lives in its own environment (see docs/prepare.md).
    selection = uids(mirror, "ct1", "seg1", "ct2", "seg2")
    result = await call(
        {"series_uids": selection, "layout": "nnunet", "output_dir": "nnv", "split": [1, 0, 0]}
    )
    assert not result.is_error, result.content[0].text
    check = (
        "import sys\n"
        "from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity\n"
        "verify_dataset_integrity(sys.argv[1], 1)\n"
    )
    done = subprocess.run([NNUNET_PYTHON, "-c", check, str(root / "nnv")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


async def test_monai_layout_lists_each_image_with_its_label(root, mirror):
    selection = uids(mirror, "ct1", "seg1", "ct2", "seg2")
    result = await call({"series_uids": selection, "layout": "monai", "output_dir": "mo", "split": [1, 0, 0]})
    assert not result.is_error, result.content[0].text
    datalist = json.loads((root / "mo" / "datalist.json").read_text())
    assert len(datalist["training"]) == 2
    for entry in datalist["training"]:
        image = nib.load(root / "mo" / entry["image"])
        assert nib.load(root / "mo" / entry["label"]).shape == image.shape


# ---------------------------------------------------------------- refusals, before any work
async def test_commercial_true_refuses_non_commercial_series_before_any_download(root, catalog):
    row = catalog.records(
        "SELECT SeriesInstanceUID FROM index "
        "WHERE collection_id = 'nsclc_radiomics' AND Modality = 'CT' LIMIT 1"
    )[0]
    result = await call({"series_uids": [row["SeriesInstanceUID"]], "commercial": True, "output_dir": "c"})
    assert result.is_error
    text = result.content[0].text
    assert "not licensed for commercial use" in text and "nsclc_radiomics (CC BY-NC 3.0)" in text
    assert not (root / "c").exists()


@pytest.mark.parametrize("split", [[0.5, 0.6, 0.1], [70, 15, 10], [0.2, 0.2, 0.2]])
async def test_split_ratios_that_do_not_sum_to_one_are_refused_not_rescaled(root, catalog, split):
    # Found trying the tool as a new user: [0.5, 0.6, 0.1] was silently normalised to 42/50/8 %.
    row = catalog.records("SELECT SeriesInstanceUID FROM index WHERE Modality = 'CT' LIMIT 1")[0]
    result = await call({"series_uids": [row["SeriesInstanceUID"]], "output_dir": "s", "split": split})
    assert result.is_error
    text = result.content[0].text
    assert f"sum to {sum(split):g}" in text and "must sum to 1 (or to 100 as percentages)" in text
    assert not (root / "s").exists()


def test_ratios_that_sum_to_one_or_to_a_hundred_are_the_same_shares():
    assert check_ratios((0.7, 0.15, 0.15)) == pytest.approx((0.7, 0.15, 0.15))
    assert check_ratios((70, 15, 15)) == pytest.approx((0.7, 0.15, 0.15))
    assert check_ratios((0.333, 0.333, 0.333)) == pytest.approx((1 / 3, 1 / 3, 1 / 3))  # rounding


async def test_nnunet_refuses_a_study_without_labels_before_any_work(root, mirror):
    result = await call(
        {"series_uids": uids(mirror, "ct1", "seg1", "ct3"), "layout": "nnunet", "output_dir": "n"}
    )
    assert (
        result.is_error
        and "needs a label" in result.content[0].text
        and "layout='monai'" in result.content[0].text
    )
    assert not (root / "n").exists()


async def test_nnunet_refuses_two_label_series_in_one_case(root, mirror):
    result = await call({"series_uids": uids(mirror, "ct1", "seg1", "rtstruct1"), "layout": "nnunet"})
    assert result.is_error and "one label map per case" in result.content[0].text


async def test_a_segmentation_without_its_image_is_refused(root, mirror):
    result = await call({"series_uids": uids(mirror, "seg1")})
    assert result.is_error and "no image series" in result.content[0].text


async def test_output_dir_outside_the_root_is_refused(root, mirror, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    for bad in ("../escape", str(elsewhere)):
        result = await call({"series_uids": uids(mirror, "ct2"), "output_dir": bad})
        assert result.is_error and "download root" in result.content[0].text
    assert not list(elsewhere.iterdir())


async def test_a_dry_run_plans_and_writes_nothing(root, mirror):
    result = await call(
        {"series_uids": uids(mirror, "ct1", "seg1", "sm"), "dry_run": True, "output_dir": "dry"}
    )
    data = result.structured_content
    assert data["dry_run"] and data["cases"] == 1 and len(data["skipped"]) == 1
    assert not (root / "dry").exists()


# ---------------------------------------------------------------- cancellation, tool surface, command line
def test_cancelling_keeps_finished_series_leaves_nothing_half_written_and_a_rerun_resumes(
    root, mirror, catalog
):
    import threading

    from idc_mcp.config import load_settings
    from idc_mcp.prepare import PrepareCancelled
    from idc_mcp.prepare.engine import PrepareCounter, Request
    from idc_mcp.prepare.service import run_prepare
    from idc_mcp.tools.selection import Selection

    cancel = threading.Event()

    class CancelAfterFirstSeries(PrepareCounter):
        def series_finished(self) -> None:
            super().series_finished()
            cancel.set()  # as a client's cancellation would, while the next series waits

    selection = Selection(series_uids=tuple(uids(mirror, "ct1", "seg1", "ct2", "seg2")))
    settings = load_settings()
    with pytest.raises(PrepareCancelled, match="1 series converted and kept"):
        run_prepare(catalog, settings, selection, Request(output_dir="cx"), CancelAfterFirstSeries(), cancel)
    out = root / "cx"
    assert len(list(out.rglob("*.nii.gz"))) == 1 and not list(out.glob(".idc-mcp-prepare-*"))
    again = run_prepare(catalog, settings, selection, Request(output_dir="cx"))
    assert (again.series_reused, again.series_converted) == (1, 3)


async def test_the_tool_is_declared_as_writing_and_its_text_fits_the_budget():
    async with Client(server_from_environment()) as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "prepare_dataset")
    assert tool.annotations.read_only_hint is False and tool.annotations.destructive_hint is False
    size = len(tool.description or "") + len(json.dumps(tool.input_schema, separators=(",", ":")))
    assert size <= 1536, size
    assert {"layout", "output_dir", "commercial", "split", "seed", "dry_run", "series_uids"} <= set(
        tool.input_schema["properties"]
    )


def test_cli_prepare_writes_the_dataset_and_prints_the_result(root, mirror, capsys):
    from idc_mcp import cli

    code = cli.main(
        ["--s3-endpoint-url", mirror.endpoint, "prepare", "--series-uids", *uids(mirror, "ct2", "seg2"),
         "--layout", "monai", "--output-dir", "cli", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["series_converted"] == 2 and (root / "cli" / "datalist.json").is_file()


def test_cli_prepare_refusal_goes_to_stderr_with_exit_code_1(root, mirror, capsys):
    from idc_mcp import cli

    code = cli.main(["--s3-endpoint-url", mirror.endpoint, "prepare", "--series-uids", *uids(mirror, "seg1")])
    assert code == 1 and "no image series" in capsys.readouterr().err


def test_missing_converters_are_named_with_the_extra_to_install(monkeypatch):
    import importlib.util

    from idc_mcp.prepare.errors import MissingConverters, require_converters

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "dcm2niix" else real(name, *a)
    )
    with pytest.raises(MissingConverters, match=r"idc-mcp\[prepare\]"):
        require_converters()


async def test_not_enough_free_space_is_refused_before_any_download(root, mirror, monkeypatch):
    import shutil

    usage = shutil.disk_usage(root)
    # a disk with 64 KiB free, as it would report it (the estimate: the index's sizes of the series, twice)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=64 * 1024))
    result = await call({"series_uids": uids(mirror, "ct1", "seg1"), "output_dir": "full"})
    assert result.is_error and "Not enough free disk space" in result.content[0].text
    assert "65,536 are free" in result.content[0].text
    assert not (root / "full" / "dicom").exists()


async def test_a_selection_of_only_slides_is_refused_with_the_reason(root, mirror):
    result = await call({"series_uids": uids(mirror, "sm")})
    assert (
        result.is_error
        and "slide microscopy" in result.content[0].text
        and "download" in result.content[0].text
    )
