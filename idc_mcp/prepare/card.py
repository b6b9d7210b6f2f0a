"""The dataset card written beside the data: README.md (what, from where, license, how to cite, split)
and cases.csv (one row per case). Citations are the texts get_citations gives; license verdicts come from
the one license policy."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.license_policy import License
from idc_mcp.catalog.sources import Source
from idc_mcp.download.plan import SeriesPlan
from idc_mcp.files import write_text_inside
from idc_mcp.prepare import images
from idc_mcp.prepare.convert import Run, package_version
from idc_mcp.prepare.plan import SPLITS, Case
from idc_mcp.tools.citations import get_citations
from idc_mcp.tools.selection import Selection

CASE_COLUMNS = (
    "case_id",
    "split",
    "collection_id",
    "PatientID",
    "StudyInstanceUID",
    "series_uids",
    "images",
    "labels",
    "idc_data_version",
    "license_short_name",
    "license_url",
    "commercial_use",
    "source_doi",
    "citation",
    "source_urls",
)


def _citations(catalog: Catalog, series: list[SeriesPlan]) -> tuple[dict[str, str], str]:
    """DOI (lower case) -> its citation text, and the whole bibliography, exactly as get_citations gives."""
    cited = get_citations(catalog, Selection(series_uids=tuple(s.series_uid for s in series)), "text")
    return {e.doi.lower(): str(e.citation) for e in cited.entries if e.kind == "dataset"}, cited.bibliography


def _case_rows(
    output: Path,
    cases: list[Case],
    run: Run,
    licenses: dict[str, License],
    citation_of: dict[str, str],
    version: str,
) -> list[dict[str, Any]]:
    rows = []
    for c in cases:
        if not run.has_output(c):
            continue
        done = [s for s in c.series if s.series_uid in run.info]
        image_files = [v["nifti"] for _, info in run.images_of(c) for v in info["volumes"]]
        label_files = []
        for _, info in run.labels_of(c):
            label_files += [info["label_map"]] if info.get("label_map") else []
            label_files += [seg["file"] for seg in info.get("segments", []) if "file" in seg]
            label_files += [roi["file"] for roi in info.get("rois", [])]
        dois = sorted({(s.source_doi or "").lower() for s in done if s.source_doi})
        rows.append(
            {
                "case_id": c.case_id,
                "split": c.split,
                "collection_id": c.collection_id,
                "PatientID": c.patient_id,
                "StudyInstanceUID": c.study_uid,
                "series_uids": " ".join(s.series_uid for s in done),
                "images": " ".join(image_files),
                "labels": " ".join(label_files),
                "idc_data_version": version,
                "license_short_name": "; ".join(sorted({s.license_short_name or "unknown" for s in done})),
                "license_url": "; ".join(sorted({licenses[s.series_uid].url or "" for s in done} - {""})),
                "commercial_use": "; ".join(
                    sorted({licenses[s.series_uid].terms.commercial_use for s in done})
                ),
                "source_doi": " ".join(dois),
                "citation": " | ".join(citation_of.get(d, f"https://doi.org/{d}") for d in dois),
                "source_urls": " ".join(s.s3_url for s in done),
            }
        )
    return rows


def write_card(
    catalog: Catalog,
    root: Path,
    output: Path,
    cases: list[Case],
    run: Run,
    plans: list[SeriesPlan],
    licenses: dict[str, License],
    sources: dict[str, Source],
    version: str,
    request: Any,
    ratios: tuple[float, float, float],
) -> list[Path]:
    converted = [s for c in cases for s in c.series if s.series_uid in run.info]
    citation_of, bibliography = _citations(catalog, converted) if converted else ({}, "")
    rows = _case_rows(output, cases, run, licenses, citation_of, version)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CASE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    cases_csv = write_text_inside(root, output / "cases.csv", buf.getvalue())
    groups: dict[str, list[str]] = {}
    for s in converted:
        lic = licenses[s.series_uid]
        key = f"{s.license_short_name or 'unknown'}: commercial use {lic.terms.commercial_use}" + (
            f" ({lic.url})" if lic.url else ""
        )
        groups.setdefault(key, [])
        if s.collection_id not in groups[key]:
            groups[key].append(s.collection_id)
    counts = {name: sum(1 for r in rows if r["split"] == name) for name in SPLITS}
    lines = [
        f"# {output.name}: an analysis-ready dataset from NCI Imaging Data Commons",
        "",
        f"Made by idc-mcp `prepare_dataset` from IDC data version {version} (idc-index-data), layout "
        f"`{request.layout}`: {len(rows)} cases (one per study), {len(converted)} series converted.",
        "",
        "## Files",
        "",
        "- `<collection>/<patient>/<study>/<Modality>_<SeriesInstanceUID>.nii.gz` and `.json`: image "
        f"volumes and their acquisition sidecars, made by {images.version()}.",
        f"- `SEG_<uid>.nii.gz` (+ `.json` mapping values to segment labels and codes): label maps on the "
        f"grid of their image, made with {package_version('highdicom')}; `SEG_<uid>_seg<n>.nii.gz` when "
        "segments overlap or are fractional (one file per segment).",
        "- `RTSTRUCT_<uid>_<ROI>.nii.gz`: one mask per ROI on the image grid "
        f"({package_version('scikit-image')} fills the contours).",
        f"- `measurements.csv` / `.parquet`: SR TID 1500 measurements ({package_version('highdicom')}).",
        "- `cases.csv`: one row per case: split, UIDs, files, license, citation, source URLs.",
        "- `dicom/`: the DICOM files as downloaded (with their LICENSE, CITATION and manifest files).",
    ]
    if request.layout == "nnunet":
        lines.append(
            "- `dataset.json`, `imagesTr/`, `labelsTr/`, `imagesTs/`, `labelsTs/`: nnU-Net v2 raw dataset."
        )
    if request.layout == "monai":
        lines.append("- `datalist.json`: MONAI datalist (training / validation / test).")
    lines += [
        "",
        "## Split",
        "",
        f"Patient-level (no patient in two splits), seed {request.seed}, ratios train/validation/test "
        f"{ratios[0]:.3g}/{ratios[1]:.3g}/{ratios[2]:.3g}: "
        + ", ".join(f"{counts[n]} {n}" for n in SPLITS)
        + ". The same selection, seed and ratios give the same split.",
        "",
        "## License",
        "",
    ]
    lines += [f"- {key}: {', '.join(cols)}" for key, cols in sorted(groups.items())]
    lines += [
        "",
        "## How to cite",
        "",
        "Cite every source below (the licenses require attribution) and the IDC platform paper:",
        "",
        bibliography,
        "",
    ]
    readme = write_text_inside(root, output / "README.md", "\n".join(lines))
    return [readme, cases_csv]
