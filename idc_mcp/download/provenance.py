"""Provenance written next to the data: a manifest of the series and, per collection, LICENSE and CITATION.

License and citation facts come from the catalog: each series' `source_DOI` is looked up among
`collections_index.sources[]` (license struct, citation) and `analysis_results_index`.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.sqltext import sql_literal
from idc_mcp.download.plan import SeriesPlan
from idc_mcp.files import ensure_inside, safe_component, write_text_inside

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

_SOURCES_SQL = """
SELECT lower(src.source_doi) AS doi, src.source_title AS title, src.license.license_short_name AS short,
       src.license.license_long_name AS long, src.license.license_url AS url, src.citation AS citation
FROM (SELECT unnest(sources) AS src FROM collections_index) WHERE lower(src.source_doi) IN ({dois})
UNION ALL
SELECT lower(source_DOI), analysis_result_title, license_short_name, license_long_name, license_url, citation
FROM analysis_results_index WHERE lower(source_DOI) IN ({dois})
"""


@dataclass(frozen=True)
class Source:
    doi: str
    title: str | None
    license_short_name: str | None
    license_long_name: str | None
    license_url: str | None
    citation: str | None


def _plain(text: str | None) -> str | None:
    """Citation text as stored has HTML entities and <i> tags; keep the words only."""
    if text is None:
        return None
    return html.unescape(re.sub(r"<[^>]{0,40}>", "", text)).strip()


def lookup_sources(catalog: Catalog, series: list[SeriesPlan]) -> dict[str, Source]:
    """The license and citation of every source DOI among the series, keyed by lower-case DOI."""
    dois = sorted({s.source_doi.lower() for s in series if s.source_doi})
    found: dict[str, Source] = {}
    if not dois:
        return found
    for row in catalog.records(_SOURCES_SQL.format(dois=", ".join(map(sql_literal, dois)))):
        found.setdefault(
            row["doi"],
            Source(row["doi"], row["title"], row["short"], row["long"], row["url"], _plain(row["citation"])),
        )
    return found


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
                (src.license_url if src else "") or "",
                s.source_doi or "",
                s.s3_url,
                s.folder,
                count,
                size,
            ]
        )
    return out.getvalue()


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
        lic.append(f"  {src.license_short_name or 'unknown'} — {src.license_long_name or ''}".rstrip(" —"))
        if src.license_url:
            lic.append(f"  {src.license_url}")
        lic.append("")
        cit.append(src.citation or f"{src.title or ''} https://doi.org/{doi}".strip())
        cit.append("")
    for name, n in sorted(licenses_only.items()):
        lic.extend([f"{n} series without a recorded source: {name}", ""])
    cit.append(
        "Also cite the Imaging Data Commons: Fedorov, A., et al. (2023). National Cancer Institute Imaging "
        "Data Commons: Toward Transparency, Reproducibility, and Scalability in Imaging Artificial "
        "Intelligence. RadioGraphics 43(12). https://doi.org/10.1148/rg.230180"
    )
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
