"""What a preparation will do, decided before any byte moves: the role of each series, the cases
(one per study), the patient-level split, and whether the chosen layout can hold the selection."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from idc_mcp.download.plan import SeriesPlan
from idc_mcp.files import safe_component
from idc_mcp.prepare.errors import PrepareError

# dcm2niix makes volumes of these; SEG, RTSTRUCT and SR have their own converters.
IMAGE_MODALITIES = frozenset({"CT", "MR", "PT", "NM", "CR", "DX", "MG", "XA", "RF", "US", "OT"})
LABEL_MODALITIES = frozenset({"SEG", "RTSTRUCT"})
SKIP_REASONS = {
    "SM": "slide microscopy (whole-slide pyramids) has no volume form; use download and a WSI library",
    "ECG": "waveforms, not images",
    "DOC": "an encapsulated document, not an image",
    "KO": "a key-object selection (references only)",
    "PR": "a presentation state (display settings only)",
    "REG": "a registration (transforms, no pixels)",
    "RWV": "real-world value mapping only",
    "ANN": "microscopy bulk annotations, not a volume or label map",
    "RTPLAN": "a treatment plan, no pixels",
    "RTDOSE": "dose grids are not converted",
}
Role = str  # 'image' | 'label' | 'sr' | 'skip'
SPLITS = ("train", "validation", "test")


def role_of(modality: str | None) -> tuple[Role, str | None]:
    m = (modality or "").upper()
    if m in IMAGE_MODALITIES:
        return "image", None
    if m in LABEL_MODALITIES:
        return "label", None
    if m == "SR":
        return "sr", None
    return "skip", SKIP_REASONS.get(m, f"modality {m or 'unknown'} has no conversion to volumes or tables")


@dataclass
class Case:
    """One study: its image, label and SR series, and the split its patient fell in."""

    case_id: str
    collection_id: str
    patient_id: str
    study_uid: str
    series: list[SeriesPlan] = field(default_factory=list)
    split: str = "train"

    def with_role(self, role: Role) -> list[SeriesPlan]:
        return [s for s in self.series if role_of(s.modality)[0] == role]


def case_id(collection_id: str, patient_id: str, study_uid: str) -> str:
    digest = hashlib.sha256(study_uid.encode()).hexdigest()[:8]
    return safe_component(f"{collection_id}_{patient_id}_{digest}").replace(" ", "_")


def make_cases(series: list[SeriesPlan]) -> list[Case]:
    cases: dict[str, Case] = {}
    for s in series:
        if role_of(s.modality)[0] == "skip":
            continue
        case = cases.get(s.study_uid)
        if case is None:
            case = cases[s.study_uid] = Case(
                case_id(s.collection_id, s.patient_id, s.study_uid),
                s.collection_id,
                s.patient_id,
                s.study_uid,
            )
        case.series.append(s)
    return sorted(cases.values(), key=lambda c: (c.collection_id, c.patient_id, c.study_uid))


# How far from 1 (or from 100, as percentages) the three ratios may sum: rounding, not a mistake.
RATIO_SUM_TOLERANCE = 0.01


def check_ratios(split: tuple[float, float, float]) -> tuple[float, float, float]:
    """The (train, validation, test) shares, which must sum to 1, or to 100 as percentages: ratios that
    sum to anything else are refused, not rescaled (0.5/0.6/0.1 would silently become 42/50/8 %)."""
    if len(split) != 3 or any(r < 0 for r in split) or sum(split) <= 0:
        raise PrepareError(
            f"split must be three non-negative ratios (train, validation, test), e.g. [0.7, 0.15, 0.15], "
            f"not {list(split)!r}."
        )
    total = float(sum(split))
    if abs(total - 1) > RATIO_SUM_TOLERANCE and abs(total - 100) > 100 * RATIO_SUM_TOLERANCE:
        scaled = [round(r / total, 3) for r in split]
        raise PrepareError(
            f"split ratios {list(split)!r} sum to {total:g}; they must sum to 1 (or to 100 as percentages). "
            f"Give the shares you mean, e.g. {scaled!r} for these proportions."
        )
    return (split[0] / total, split[1] / total, split[2] / total)


def assign_splits(cases: list[Case], ratios: tuple[float, float, float], seed: int) -> None:
    """Patient-level split: the sorted patients shuffled by `seed`, then cut by the ratios (largest
    remainder), so every study of a patient lands in one split and the same call gives the same split."""
    patients = sorted({(c.collection_id, c.patient_id) for c in cases})
    random.Random(seed).shuffle(patients)
    n = len(patients)
    exact = [r * n for r in ratios]
    counts = [int(x) for x in exact]
    for i in sorted(range(3), key=lambda i: exact[i] - counts[i], reverse=True)[: n - sum(counts)]:
        counts[i] += 1
    split_of: dict[tuple[str, str], str] = {}
    start = 0
    for name, count in zip(SPLITS, counts, strict=True):
        for p in patients[start : start + count]:
            split_of[p] = name
        start += count
    for c in cases:
        c.split = split_of[(c.collection_id, c.patient_id)]


def check_layout(layout: str, cases: list[Case]) -> None:
    """Refuse, before any work, a selection the layout cannot hold (what to change is in the message)."""
    if not any(c.with_role("image") for c in cases):
        if layout != "plain" or not any(c.with_role("sr") for c in cases):
            raise PrepareError(
                "The selection has no image series to convert (CT, MR, PT, ...). Add the images (e.g. "
                "their study_uids) or, for SR measurements only, use layout='plain'."
            )
    for c in cases:
        if c.with_role("label") and not c.with_role("image"):
            uid = c.with_role("label")[0].series_uid
            raise PrepareError(
                f"Segmentation {uid} (study {c.study_uid}) comes without its image series: label maps are "
                "written on the image's grid. Add the study's images (study_uids=[that study]) or drop it."
            )
    if layout != "nnunet":
        return
    unlabelled = [c for c in cases if c.with_role("image") and not c.with_role("label")]
    if unlabelled:
        raise PrepareError(
            f"layout='nnunet' needs a label (SEG or RTSTRUCT) for every case, and {len(unlabelled)} of "
            f"{len(cases)} studies have none (e.g. patient {unlabelled[0].patient_id}, study "
            f"{unlabelled[0].study_uid}). Add analysis_results='include' with their segmentations, select "
            "only studies that have one (sql over seg_index), or use layout='monai' or 'plain'."
        )
    channels: set[tuple[str, ...]] = set()
    for c in cases:
        modalities = [s.modality for s in c.with_role("image")]
        if len(set(modalities)) != len(modalities):
            raise PrepareError(
                f"layout='nnunet' takes one image per channel, and study {c.study_uid} has "
                f"{len(modalities)} image series ({', '.join(sorted(modalities))}). Select one series per "
                "modality (series_uids) or use layout='monai'."
            )
        if len(c.with_role("label")) > 1:
            raise PrepareError(
                f"layout='nnunet' takes one label map per case, and study {c.study_uid} has "
                f"{len(c.with_role('label'))} segmentation series. Select one (series_uids) or use "
                "layout='monai'."
            )
        channels.add(tuple(sorted(modalities)))
    if len(channels) > 1:
        shown = " vs ".join("+".join(ch) for ch in sorted(channels)[:3])
        raise PrepareError(
            f"layout='nnunet' needs the same channels in every case, and the studies differ ({shown}). "
            "Select studies with the same modalities or use layout='monai'."
        )
