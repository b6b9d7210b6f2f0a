"""Series by series: images with dcm2niix, SEG and RTSTRUCT onto their image's grid, SR to table rows.

A series an earlier call converted from the same DICOM files, whose outputs still have their recorded
checksums, is reused; a series that fails is reported with the converter's reason and the others go on.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idc_mcp.download.plan import SeriesPlan
from idc_mcp.files import safe_component
from idc_mcp.prepare import images, measurements, outputs
from idc_mcp.prepare import state as prepare_state
from idc_mcp.prepare.errors import ConversionFailed, PrepareCancelled
from idc_mcp.prepare.plan import Case, role_of

if TYPE_CHECKING:
    from idc_mcp.prepare.grid import Grid

Writer = Callable[..., None]
log = logging.getLogger(__name__)


def package_version(name: str) -> str:
    try:
        return f"{name} {importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        return name


def series_stem(s: SeriesPlan) -> str:
    return f"{safe_component(s.modality)}_{s.series_uid}"


def case_folder(output: Path, c: Case) -> Path:
    return (
        output / safe_component(c.collection_id) / safe_component(c.patient_id) / safe_component(c.study_uid)
    )


@dataclass
class Run:
    root: Path
    output: Path
    records: dict[str, dict[str, Any]]
    files_of: dict[str, list[Path]]
    folder_of: dict[str, Path]
    cancel: threading.Event
    on_series: Callable[[], None]
    converted: int = 0
    reused: int = 0
    failures: list[tuple[SeriesPlan, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    overlapping: list[str] = field(default_factory=list)
    measurements: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, dict[str, Any]] = field(default_factory=dict)  # series uid -> what it produced

    def convert_all(self, cases: list[Case]) -> None:
        """Every image first (a label may lie on an image of another study), then labels, then SR."""
        for role in ("image", "label", "sr"):
            for case in cases:
                self.convert_case(case, (role,))

    def convert_case(self, case: Case, roles: tuple[str, ...] = ("image", "label", "sr")) -> None:
        for role in roles:
            for s in case.with_role(role):
                if self.cancel.is_set():
                    raise PrepareCancelled("cancelled between series")
                try:
                    self._one(case, s, role)
                except ConversionFailed as exc:
                    self.failures.append((s, str(exc)))
                except PrepareCancelled:
                    raise
                except Exception as exc:  # noqa: BLE001 - a converter's error on one series' data: reported, the run goes on
                    log.warning("converting series %s failed", s.series_uid, exc_info=True)
                    self.failures.append((s, f"{type(exc).__name__}: {exc}"[:400]))
                finally:
                    self.on_series()

    def has_output(self, case: Case) -> bool:
        return any(s.series_uid in self.info for s in case.series)

    def images_of(self, case: Case) -> list[tuple[SeriesPlan, dict[str, Any]]]:
        return [(s, self.info[s.series_uid]) for s in case.with_role("image") if s.series_uid in self.info]

    def labels_of(self, case: Case) -> list[tuple[SeriesPlan, dict[str, Any]]]:
        return [(s, self.info[s.series_uid]) for s in case.with_role("label") if s.series_uid in self.info]

    # ------------------------------------------------------------ one series
    def _inputs(self, s: SeriesPlan, extra: str = "") -> str:
        files = self.files_of.get(s.series_uid)
        if not files:
            raise ConversionFailed("no DICOM files were downloaded for this series")
        return prepare_state.fingerprint(files) + extra

    def _one(self, case: Case, s: SeriesPlan, role: str) -> None:
        extra = ""
        if role == "label":
            reference = self._reference(s)
            image_outputs = self.records.get(reference, {}).get("outputs", {})
            extra = ":" + prepare_state.digest_of(image_outputs)
        inputs = self._inputs(s, extra)
        record = self.records.get(s.series_uid)
        if prepare_state.still_valid(self.output, record, inputs) and record is not None:
            self.info[s.series_uid] = record["info"]
            if role == "sr":
                self.measurements += record["info"].get("rows", [])
            self.reused += 1
            return
        self.records.pop(s.series_uid, None)
        folder = case_folder(self.output, case)
        with outputs.work_folder(self.output) as work:
            if role == "image":
                made, info = self._image(s, folder, work)
            elif role == "label":
                made, info = self._label(s, folder, work)
            else:
                made, info = [], self._sr(s)
        self.info[s.series_uid] = info
        self.records[s.series_uid] = {
            "inputs": inputs,
            "outputs": {str(p.relative_to(self.output)): prepare_state.sha256(p) for p in made},
            "info": info,
        }
        self.converted += 1

    def _image(self, s: SeriesPlan, folder: Path, work: Path) -> tuple[list[Path], dict[str, Any]]:
        target = work / "out"
        target.mkdir()
        volumes = images.run_dcm2niix(self.folder_of[s.series_uid], target, self.cancel)
        made: list[Path] = []
        listed = []
        for v in volumes:
            stem = series_stem(s) + v.suffix
            nifti = outputs.place(self.root, v.nifti, folder / f"{stem}.nii.gz")
            made.append(nifti)
            sidecar = None
            if v.sidecar is not None and v.sidecar.exists():
                sidecar = outputs.place(self.root, v.sidecar, folder / f"{stem}.json")
                made.append(sidecar)
            listed.append(
                {
                    "nifti": str(nifti.relative_to(self.output)),
                    "sidecar": str(sidecar.relative_to(self.output)) if sidecar else None,
                    "suffix": v.suffix,
                    "equalized": v.equalized,
                }
            )
            if v.equalized:
                self.notes.append(
                    f"{s.series_uid}: slices unevenly spaced; dcm2niix's equalized volume kept (interpolated)"
                )
        return made, {
            "kind": "image",
            "modality": s.modality,
            "converter": images.version(),
            "volumes": listed,
        }

    def _reference(self, s: SeriesPlan) -> str:
        from idc_mcp.prepare.segmentations import referenced_series

        files = self.files_of.get(s.series_uid) or []
        if not files:
            raise ConversionFailed("no DICOM files were downloaded for this series")
        reference = referenced_series(sorted(files)[0])
        if reference is None:
            raise ConversionFailed("it names no referenced image series (ReferencedSeriesSequence)")
        if reference not in self.info:
            raise ConversionFailed(
                f"its image series {reference} is not in the selection or failed to convert; add "
                f"series_uids=['{reference}'] to the selection"
            )
        return reference

    def _grids(self, reference: str) -> list[Any]:
        from idc_mcp.prepare.grid import image_grid

        return [image_grid(self.output / v["nifti"]) for v in self.info[reference]["volumes"]]

    def _label(self, s: SeriesPlan, folder: Path, work: Path) -> tuple[list[Path], dict[str, Any]]:
        from idc_mcp.prepare.grid import write_on_grid

        reference = self._reference(s)
        files = sorted(self.files_of[s.series_uid])
        if len(files) > 1:
            self.notes.append(
                f"{s.series_uid}: {len(files)} instances; the first ({files[0].name}) was converted"
            )
        grids = self._grids(reference)
        reasons = []
        for grid in grids:  # a series of several volumes: the one the label lies on
            try:
                if (s.modality or "").upper() == "SEG":
                    return self._seg(s, files[0], grid, reference, folder, work, write_on_grid)
                return self._rtstruct(s, files[0], grid, reference, folder, work, write_on_grid)
            except ConversionFailed as exc:
                reasons.append(str(exc))
        raise ConversionFailed("; ".join(reasons) or "its image series gave no volume")

    def _seg(
        self,
        s: SeriesPlan,
        path: Path,
        grid: Grid,
        reference: str,
        folder: Path,
        work: Path,
        write_on_grid: Writer,
    ) -> tuple[list[Path], dict[str, Any]]:
        from idc_mcp.prepare.segmentations import seg_to_labels

        labels = seg_to_labels(path, grid)
        made: list[Path] = []
        stem = series_stem(s)
        files: dict[str, str] = {}
        staged_files = []
        for suffix, make in labels.arrays.items():  # one full-size array in memory at a time
            staged = work / f"{stem}{suffix}.nii.gz"
            array, slope = make()
            write_on_grid(array, grid, staged, slope)
            del array
            staged_files.append((suffix, staged))
        finals = self._into_place([staged for _, staged in staged_files], folder)
        made += finals
        for (suffix, _), final in zip(staged_files, finals, strict=True):
            files[suffix] = str(final.relative_to(self.output))
        for entry in labels.labels:
            if "file_suffix" in entry:
                entry["file"] = files[entry.pop("file_suffix")]
        if labels.overlapping:
            self.overlapping.append(s.series_uid)
        info = {
            "kind": "seg",
            "converter": package_version("highdicom"),
            "image_series": reference,
            "image": str(grid.source.relative_to(self.output)),
            "label_map": files.get(""),
            "overlapping": labels.overlapping,
            "segments": labels.labels,
            "notes": labels.notes,
        }
        made.append(outputs.write_json(self.root, folder / f"{stem}.json", info))
        return made, info

    def _rtstruct(
        self,
        s: SeriesPlan,
        path: Path,
        grid: Grid,
        reference: str,
        folder: Path,
        work: Path,
        write_on_grid: Writer,
    ) -> tuple[list[Path], dict[str, Any]]:
        from idc_mcp.prepare.rtstruct import rtstruct_to_masks

        masks = rtstruct_to_masks(path, grid)
        made: list[Path] = []
        rois: list[dict[str, Any]] = []
        used: set[str] = set()
        stem = series_stem(s)
        for roi in masks.rois:
            name = safe_component(roi.name).replace(" ", "_")
            if name in used:
                name = f"{name}_{roi.number}"
            used.add(name)
            staged = work / f"{stem}_{name}.nii.gz"
            write_on_grid(roi.mask, grid, staged)
            rois.append(
                {
                    "roi_number": roi.number,
                    "name": roi.name,
                    "file": staged.name,
                    "contours": roi.contours,
                    "contours_left_out": roi.skipped,
                }
            )
        finals = self._into_place([work / entry["file"] for entry in rois], folder)
        made += finals
        for entry, final in zip(rois, finals, strict=True):
            entry["file"] = str(final.relative_to(self.output))
        self.notes += masks.notes
        info = {
            "kind": "rtstruct",
            "converter": f"pydicom + {package_version('scikit-image')} (draw.polygon)",
            "image_series": reference,
            "image": str(grid.source.relative_to(self.output)),
            "rois": rois,
        }
        made.append(outputs.write_json(self.root, folder / f"{stem}.json", info))
        return made, info

    def _into_place(self, staged: list[Path], folder: Path) -> list[Path]:
        """The label files made in the work folder, moved into the case folder once every one of them was
        made: a conversion that fails half-way leaves none of its files in place."""
        return [outputs.place(self.root, file, folder / file.name) for file in staged]

    def _sr(self, s: SeriesPlan) -> dict[str, Any]:
        rows = []
        for path in sorted(self.files_of.get(s.series_uid) or []):
            rows += measurements.sr_rows(path)
        self.measurements += rows
        return {"kind": "sr", "converter": package_version("highdicom"), "rows": rows}

    def write_measurements(self) -> list[Path]:
        if not self.measurements:
            return []
        from idc_mcp.files import atomic_write

        rows = sorted(
            self.measurements, key=lambda r: (r["PatientID"], r["StudyInstanceUID"], r["sr_sop_instance_uid"])
        )
        csv_path = self.output / "measurements.csv"
        with atomic_write(csv_path, root=self.root) as out:
            out.write(measurements.table_csv(rows))
        parquet_path = self.output / "measurements.parquet"
        with atomic_write(parquet_path, binary=True, root=self.root) as out:
            out.write(measurements.table_parquet(rows))
        return [csv_path, parquet_path]


def is_role(s: SeriesPlan, role: str) -> bool:
    return role_of(s.modality)[0] == role
