"""Provenance written next to the data: a manifest of the series and, per collection, LICENSE and CITATION.

License and citation facts come from the catalog's one source lookup (`catalog.sources`); the verdict
on each license is the one policy (`catalog.license_policy`), and each citation is the same plain text
get_citations gives.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import defaultdict
from pathlib import Path

from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.sources import Source, series_license
from idc_mcp.catalog.sources import lookup_sources as sources_of
from idc_mcp.download.plan import SeriesPlan
from idc_mcp.files import ensure_inside, safe_component, write_text_inside
from idc_mcp.tools.citations import idc_paper_text

MANIFEST_COLUMNS = (
    "SeriesInstanceUID",
    "collection_id",
    "PatientID",
    "StudyInstanceUID",
    "Modality",
    "analysis_result_id",
    "license_short_name",
    "license_url",
    "source_DOI",
    "s3_url",
    "folder",
    "files",
    "bytes",
)


def lookup_sources(catalog: Catalog, series: list[SeriesPlan]) -> dict[str, Source]:
    """The license and citation of every source DOI among the series, keyed by lower-case DOI."""
    return sources_of(catalog, (s.source_doi for s in series if s.source_doi))


def manifest_name(series: list[SeriesPlan]) -> str:
    """Stable per selection, so a rerun rewrites its own manifest and other selections keep theirs."""
    digest = hashlib.sha256("\n".join(sorted(s.series_uid for s in series)).encode()).hexdigest()[:12]
    return f"idc_manifest_{digest}.csv"


def _write_atomic(root: Path, path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    final = ensure_inside(root, path)
    try:  # a rerun usually finds the same text: reading it is cheaper than writing and renaming
        if not final.is_symlink() and final.read_text(encoding="utf-8") == text:
            return
    except (OSError, ValueError):
        pass
    write_text_inside(root, path, text)


def manifest_csv(
    series: list[SeriesPlan], sources: dict[str, Source], files: dict[str, tuple[int, int]]
) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for s in series:
        src = sources.get((s.source_doi or "").lower())
        count, size = files.get(s.series_uid, (0, 0))
        writer.writerow(
            [
                s.series_uid,
                s.collection_id,
                s.patient_id,
                s.study_uid,
                s.modality,
                s.analysis_result_id or "",
                s.license_short_name or "",
                _license_url(s, src),
                s.source_doi or "",
                s.s3_url,
                s.folder,
                count,
                size,
            ]
        )
    return out.getvalue()


def _license_url(series: SeriesPlan, src: Source | None) -> str:
    """The URL check_licenses reports for the series' license (the name governs a contradicting URL)."""
    return series_license(series.license_short_name, src).url or ""


def _license_lines(short: str | None, src: Source | None) -> list[str]:
    """The license as check_licenses reports it: name, URL, and the one policy's verdict."""
    license = series_license(short, src)
    lines = [f"  {short or 'unknown'} — {license.long_name or ''}".rstrip(" —")]
    if license.url:
        lines.append(f"  {license.url}")
    lines.append(f"  {license.summary()}")
    if license.note:
        lines.append(f"  note: {license.note}")
    return [*lines, ""]


def _collection_texts(
    collection: str, series: list[SeriesPlan], sources: dict[str, Source]
) -> tuple[str, str]:
    by_doi: dict[str, int] = defaultdict(int)
    licenses_only: dict[str, int] = defaultdict(int)
    for s in series:
        if s.source_doi and s.source_doi.lower() in sources:
            by_doi[s.source_doi.lower()] += 1
        else:
            licenses_only[s.license_short_name or "unknown"] += 1
    lic = [f"Licenses of the IDC data downloaded from collection '{collection}'.", ""]
    cit = [f"Cite these sources when you use the IDC data downloaded from collection '{collection}'.", ""]
    for doi, n in sorted(by_doi.items()):
        src = sources[doi]
        lic.append(f"{n} series from {src.title or doi} (https://doi.org/{doi}):")
        lic.extend(_license_lines(src.license_short_name, src))
        cit.append(src.citation or f"{src.title or ''} https://doi.org/{doi}".strip())
        cit.append("")
    for name, n in sorted(licenses_only.items()):
        lic.append(f"{n} series without a recorded source:")
        lic.extend(_license_lines(None if name == "unknown" else name, None))
    cit.append(f"Also cite the Imaging Data Commons: {idc_paper_text()}")
    return "\n".join(lic).rstrip() + "\n", "\n".join(cit).rstrip() + "\n"


def write_provenance(
    root: Path,
    destination: Path,
    series: list[SeriesPlan],
    sources: dict[str, Source],
    files: dict[str, tuple[int, int]],
) -> Path:
    """Write the manifest and each collection's LICENSE/CITATION texts; returns the manifest path."""
    manifest = destination / manifest_name(series)
    _write_atomic(root, manifest, manifest_csv(series, sources, files))
    by_collection: dict[str, list[SeriesPlan]] = defaultdict(list)
    for s in series:
        by_collection[s.collection_id].append(s)
    for collection, members in by_collection.items():
        license_text, citation_text = _collection_texts(collection, members, sources)
        name = safe_component(collection)
        _write_atomic(root, destination / f"LICENSE_{name}.txt", license_text)
        _write_atomic(root, destination / f"CITATION_{name}.txt", citation_text)
    return manifest
