"""Viewer links (OHIF v3/v2, SLIM, VolView) and DICOMweb URLs on IDC's public proxy.

URL formats are IDC's: OHIF and SLIM take DICOM UIDs; VolView takes the series' S3 folders
(`s3://<bucket>/<crdc_series_uuid>`, the pattern IDC's tutorials use with volview.kitware.app).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from idc_mcp.catalog.database import Catalog
from idc_mcp.tools.selection import (
    Selection,
    SelectionError,
    clean_ids,
    report_unknown,
    resolve_selection,
    selection_where,
)

Viewer = Literal["auto", "ohif_v3", "ohif_v2", "slim", "volview"]
ResolvedViewer = Literal["ohif_v3", "ohif_v2", "slim", "volview"]

MAX_VIEWER_SERIES = 50
# The get_viewer_url tool's arguments (their descriptions are what the assistant reads).
SeriesUidArg = Annotated[
    str | list[str] | None,
    Field(description=f"one SeriesInstanceUID, or a list of up to {MAX_VIEWER_SERIES}"),
]
StudyUidArg = Annotated[str | None, Field(description="StudyInstanceUID (the whole study)")]
ViewerArg = Annotated[Viewer, Field(description="auto: SLIM for slide microscopy, else OHIF v3")]
MAX_VOLVIEW_SERIES = 50
MAX_DICOMWEB_URLS = 500

VIEWER_HOST = "https://viewer.imaging.datacommons.cancer.gov"
VOLVIEW_APP = "https://volview.kitware.app/"
DICOMWEB_ROOT = (
    "https://proxy.imaging.datacommons.cancer.gov/current/"
    "viewer-only-no-downloads-see-tinyurl-dot-com-slash-3j3d9jyp/dicomWeb"
)
DICOMWEB_NOTE = (
    "IDC's public DICOMweb proxy is quota-limited and meant for viewing and light metadata access, not "
    "bulk download: download with export_manifest / s5cmd from S3 instead."
)


def viewer_url(viewer: ResolvedViewer, study_uid: str, series_uid: str | None, s3_folders: list[str]) -> str:
    """The URL of one study (optionally one series) in one viewer. VolView needs the S3 folders."""
    if viewer == "ohif_v3":
        url = f"{VIEWER_HOST}/v3/viewer/?StudyInstanceUIDs={study_uid}"
        return url + (f"&initialSeriesInstanceUID={series_uid}" if series_uid else "")
    if viewer == "ohif_v2":
        url = f"{VIEWER_HOST}/viewer/{study_uid}"
        return url + (f"?SeriesInstanceUID={series_uid}" if series_uid else "")
    if viewer == "slim":
        url = f"{VIEWER_HOST}/slim/studies/{study_uid}"
        return url + (f"/series/{series_uid}" if series_uid else "")
    return f"{VOLVIEW_APP}?urls=[{','.join(s3_folders)}]"


def s3_folder(series_aws_url: str) -> str:
    """s3://bucket/uuid/* -> s3://bucket/uuid (VolView loads a folder)."""
    return series_aws_url.removesuffix("*").rstrip("/")


class ViewerLink(BaseModel):
    url: str
    viewer: ResolvedViewer
    study_uid: str
    series_uid: str | None = Field(description="null for a whole-study link")
    collection_id: str
    modalities: list[str] = Field(description="modalities of the series (or of the whole study)")


class ViewerLinks(BaseModel):
    links: list[ViewerLink] = Field(description="one per series asked for, or one for the study")
    notes: list[str] = Field(default_factory=list)
    summary: str


def _one_uid(argument: str, value: str | None) -> str | None:
    cleaned = clean_ids(argument, [value] if value is not None else None, uid=True)
    return cleaned[0] if cleaned else None


def get_viewer_url(
    catalog: Catalog,
    series_uid: str | list[str] | None = None,
    study_uid: str | None = None,
    viewer: Viewer = "auto",
) -> ViewerLinks:
    if viewer not in ("auto", "ohif_v3", "ohif_v2", "slim", "volview"):
        raise SelectionError(f"viewer must be auto, ohif_v3, ohif_v2, slim or volview, not {viewer!r}.")
    if isinstance(series_uid, str):
        series_uid = [series_uid]
    series = clean_ids("series_uid", series_uid, uid=True) or []
    study = _one_uid("study_uid", study_uid)
    if not series and not study:
        raise SelectionError(
            "Give series_uid (one UID or a list) or study_uid. Find them with the query tool, e.g. SELECT "
            "StudyInstanceUID, SeriesInstanceUID FROM index WHERE collection_id = '...' LIMIT 5."
        )
    if len(series) > MAX_VIEWER_SERIES:
        raise SelectionError(
            f"series_uid has {len(series)} UIDs; at most {MAX_VIEWER_SERIES} links are made per call. "
            "Ask for fewer series, or for the whole study with study_uid."
        )
    if series:
        report_unknown(catalog, "series_uid", "SeriesInstanceUID", series)
    if study:
        report_unknown(catalog, "study_uid", "StudyInstanceUID", [study])
    notes: list[str] = []
    links: list[ViewerLink] = []
    if series:
        rows = catalog.records(
            """
            SELECT SeriesInstanceUID AS series, StudyInstanceUID AS study, collection_id, Modality,
                   series_aws_url
            FROM index WHERE SeriesInstanceUID IN (SELECT unnest(?))
            """,
            [series],
        )
        by_uid = {r["series"]: r for r in rows}
        if study:
            elsewhere = [f"{u} (study {by_uid[u]['study']})" for u in series if by_uid[u]["study"] != study]
            if elsewhere:
                raise SelectionError(
                    f"These series are not in study_uid {study}: {', '.join(elsewhere[:5])}. Drop study_uid "
                    "(each series' own study is used) or pass matching UIDs."
                )
        study_modalities = _study_modalities(catalog, sorted({r["study"] for r in rows}))
        for uid in series:
            row = by_uid[uid]
            chosen = _choose(viewer, study_modalities[row["study"]], notes)
            folders = [s3_folder(row["series_aws_url"])]
            links.append(
                ViewerLink(
                    url=viewer_url(chosen, row["study"], uid, folders),
                    viewer=chosen,
                    study_uid=row["study"],
                    series_uid=uid,
                    collection_id=row["collection_id"],
                    modalities=[row["Modality"]],
                )
            )
    else:
        assert study is not None
        rows = catalog.records(
            "SELECT collection_id, Modality, series_aws_url FROM index WHERE StudyInstanceUID = ? "
            "ORDER BY SeriesNumber, SeriesInstanceUID",
            [study],
        )
        modalities = sorted({r["Modality"] for r in rows})
        chosen = _choose(viewer, modalities, notes)
        folders = [s3_folder(r["series_aws_url"]) for r in rows]
        if chosen == "volview" and len(folders) > MAX_VOLVIEW_SERIES:
            raise SelectionError(
                f"Study {study} has {len(folders)} series; a VolView link takes at most "
                f"{MAX_VOLVIEW_SERIES}. "
                "Pass series_uid for the series to open (the query tool lists them), or use viewer='ohif_v3'."
            )
        links.append(
            ViewerLink(
                url=viewer_url(chosen, study, None, folders),
                viewer=chosen,
                study_uid=study,
                series_uid=None,
                collection_id=rows[0]["collection_id"],
                modalities=modalities,
            )
        )
    used = sorted({link.viewer for link in links})
    summary = f"{len(links)} link(s) in {', '.join(used)}. Open the url in a browser; no login is needed."
    return ViewerLinks(links=links, notes=list(dict.fromkeys(notes)), summary=summary)


def _study_modalities(catalog: Catalog, studies: list[str]) -> dict[str, list[str]]:
    rows = catalog.execute(
        "SELECT StudyInstanceUID, list(DISTINCT Modality ORDER BY Modality) FROM index "
        "WHERE StudyInstanceUID IN (SELECT unnest(?)) GROUP BY 1",
        [studies],
    ).rows
    return {study: list(mods) for study, mods in rows}


def _choose(viewer: Viewer, study_modalities: list[str], notes: list[str]) -> ResolvedViewer:
    slide = "SM" in study_modalities
    if viewer == "auto":
        return "slim" if slide else "ohif_v3"
    if slide and viewer != "slim":
        notes.append(f"The study has slide microscopy (SM); {viewer} may not display it — use viewer='slim'.")
    if not slide and viewer == "slim":
        notes.append("SLIM is a slide-microscopy viewer and the study has no SM series; prefer ohif_v3.")
    if viewer == "volview":
        notes.append(
            "VolView loads the series' files from S3 in your browser (the whole series is transferred)."
        )
    return viewer


class DicomwebSeries(BaseModel):
    series_uid: str
    study_uid: str
    modality: str | None
    url: str


class DicomwebUrls(BaseModel):
    dicomweb_root: str = Field(description="the DICOMweb service root (QIDO-RS/WADO-RS)")
    series_count: int = Field(description="series in the selection")
    urls: list[DicomwebSeries] = Field(description=f"one per series, at most {MAX_DICOMWEB_URLS}")
    truncated: bool
    note: str


def get_dicomweb_urls(catalog: Catalog, selection: Selection) -> DicomwebUrls:
    resolved = resolve_selection(catalog, selection)
    where, params = selection_where(resolved)
    rows = catalog.execute(
        f"SELECT SeriesInstanceUID, StudyInstanceUID, Modality FROM index WHERE {where} "
        f"ORDER BY collection_id, PatientID, StudyInstanceUID, SeriesInstanceUID LIMIT {MAX_DICOMWEB_URLS}",
        params,
    ).rows
    urls = [
        DicomwebSeries(
            series_uid=series,
            study_uid=study,
            modality=modality,
            url=f"{DICOMWEB_ROOT}/studies/{study}/series/{series}",
        )
        for series, study, modality in rows
    ]
    truncated = resolved.count > len(urls)
    note = DICOMWEB_NOTE
    if truncated:
        note += (
            f" Only the first {len(urls)} of {resolved.count:,} series are listed; narrow the selection for "
            "the rest (each URL is the root + /studies/{StudyInstanceUID}/series/{SeriesInstanceUID})."
        )
    return DicomwebUrls(
        dicomweb_root=DICOMWEB_ROOT, series_count=resolved.count, urls=urls, truncated=truncated, note=note
    )
