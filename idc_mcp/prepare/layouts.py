"""Training layouts over the converted files.

- `nnunet`: nnU-Net v2's raw dataset: `imagesTr/<case>_<channel:04d>.nii.gz`, `labelsTr/<case>.nii.gz`
  (one label map per case, values consecutive from 0 = background), `imagesTs`/`labelsTs` for the test
  split, and `dataset.json` (channel_names, labels, numTraining, file_ending). Images are hard links to
  the converted files (copies where links are refused); label maps are rewritten with the dataset-wide
  values (label names sorted, 1..N).
- `monai`: `datalist.json`, MONAI's decathlon-style datalist (`training`, `validation`, `test` lists of
  {"image", "label"} paths relative to the file), one entry per image volume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from idc_mcp.prepare import outputs
from idc_mcp.prepare.convert import Run
from idc_mcp.prepare.plan import Case

NNUNET_FOLDERS = ("imagesTr", "labelsTr", "imagesTs", "labelsTs")


def _label_parts(output: Path, info: dict[str, Any]) -> list[tuple[str, Path, int | None]]:
    """(label name, file, value in that file or None for a 0/1 mask) of one label series."""
    if info["kind"] == "seg":
        if info.get("overlapping"):
            raise ValueError(
                "its segments overlap (or are FRACTIONAL): nnU-Net takes one label per voxel; use "
                "layout='plain' or 'monai', which keep one file per segment"
            )
        return [(seg["label"], output / info["label_map"], int(seg["value"])) for seg in info["segments"]]
    return [(roi["name"], output / roi["file"], None) for roi in info["rois"]]


def write_nnunet(
    root: Path, output: Path, cases: list[Case], run: Run
) -> tuple[list[Path], list[tuple[Case, str]]]:
    import nibabel as nib

    ready: list[tuple[Case, list[Path], dict[str, Any]]] = []
    failed: list[tuple[Case, str]] = []
    channels: list[str] = []
    for case in cases:
        images = sorted(run.images_of(case), key=lambda pair: pair[0].modality)
        labels = run.labels_of(case)
        if not images or not labels:
            if case.with_role("image"):
                failed.append((case, "its image or label series failed to convert (see the series failures)"))
            continue
        volumes = []
        for s, info in images:
            if len(info["volumes"]) != 1:
                failed.append(
                    (
                        case,
                        f"image series {s.series_uid} gave {len(info['volumes'])} volumes, not one channel",
                    )
                )
                break
            volumes.append(output / info["volumes"][0]["nifti"])
        else:
            channels = [s.modality for s, _ in images]
            ready.append((case, volumes, labels[0][1]))
    names = sorted({name for _, _, info in ready for name, _, _ in _safe_parts(output, info)})
    value_of = {name: i + 1 for i, name in enumerate(names)}
    for folder in NNUNET_FOLDERS:
        (output / folder).mkdir(exist_ok=True)
    training = 0
    with outputs.work_folder(output) as work:
        for case, volumes, info in ready:
            try:
                grid_image: Any = nib.load(volumes[0])
                for other in volumes[1:]:
                    img: Any = nib.load(other)
                    if img.shape[:3] != grid_image.shape[:3] or not np.allclose(
                        img.affine, grid_image.affine, atol=1e-3
                    ):
                        raise ValueError(
                            f"its channels have different grids ({other.name} vs {volumes[0].name}): nnU-Net "
                            "channels must share one grid; use layout='monai'"
                        )
                label = np.zeros(grid_image.shape[:3], np.uint8 if len(names) < 255 else np.uint16)
                for name, path, value in _label_parts(output, info):
                    part: Any = nib.load(path)
                    if part.shape[:3] != label.shape or not np.allclose(
                        part.affine, grid_image.affine, atol=1e-3
                    ):
                        raise ValueError(f"label {path.name} is not on the grid of {volumes[0].name}")
                    data = np.asarray(part.dataobj)
                    voxels = data == value if value is not None else data > 0
                    if np.any(label[voxels] != 0):
                        raise ValueError(
                            f"label {name!r} overlaps another: nnU-Net takes one label per voxel"
                        )
                    label[voxels] = value_of[name]
            except (ValueError, OSError) as exc:
                failed.append((case, str(exc)))
                continue
            test = case.split == "test"
            images_dir, labels_dir = ("imagesTs", "labelsTs") if test else ("imagesTr", "labelsTr")
            for channel, volume in enumerate(volumes):
                outputs.link_or_copy(
                    root, volume, output / images_dir / f"{case.case_id}_{channel:04d}.nii.gz", work
                )
            staged = work / f"{case.case_id}.nii.gz"
            image = nib.Nifti1Image(label, grid_image.affine)
            image.set_qform(grid_image.affine, code=1)
            image.set_sform(grid_image.affine, code=1)
            nib.save(image, staged)
            outputs.place(root, staged, output / labels_dir / staged.name)
            training += 0 if test else 1
    dataset = {
        "channel_names": {str(i): name for i, name in enumerate(channels)},
        "labels": {"background": 0, **value_of},
        "numTraining": training,
        "file_ending": ".nii.gz",
        "name": output.name,
        "description": "Made by idc-mcp prepare_dataset from NCI Imaging Data Commons; see README.md",
    }
    return [outputs.write_json(root, output / "dataset.json", dataset)], failed


def _safe_parts(output: Path, info: dict[str, Any]) -> list[tuple[str, Path, int | None]]:
    try:
        return _label_parts(output, info)
    except ValueError:
        return []


def write_monai(root: Path, output: Path, cases: list[Case], run: Run) -> list[Path]:
    lists: dict[str, list[dict[str, Any]]] = {"training": [], "validation": [], "test": []}
    key = {"train": "training", "validation": "validation", "test": "test"}
    for case in cases:
        labels = run.labels_of(case)
        for s, info in run.images_of(case):
            for volume in info["volumes"]:
                entry: dict[str, Any] = {
                    "image": volume["nifti"],
                    "case": case.case_id,
                    "modality": s.modality,
                    "SeriesInstanceUID": s.series_uid,
                }
                for _, label in labels:
                    if label["image"] != volume["nifti"]:
                        continue
                    if label["kind"] == "seg" and label.get("label_map"):
                        entry.setdefault("label", label["label_map"])
                    files = [seg["file"] for seg in label.get("segments", []) if "file" in seg]
                    files += [roi["file"] for roi in label.get("rois", [])]
                    if files:
                        entry.setdefault("label_files", []).extend(files)
                lists[key[case.split]].append(entry)
    data = {
        "description": "Made by idc-mcp prepare_dataset from NCI Imaging Data Commons; see README.md",
        **lists,
    }
    return [outputs.write_json(root, output / "datalist.json", data)]
