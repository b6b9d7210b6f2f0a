"""One answer per fact, whichever tool gives it: the citation text of every bundled source and the verdict
on every license value are the same in get_citations / check_licenses, in the download result and in the
LICENSE_/CITATION_ files written next to the data (they drifted apart when each had its own copy)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from idc_mcp.download import provenance
from idc_mcp.download.engine import Outcome
from idc_mcp.download.listing import SeriesFiles
from idc_mcp.download.plan import DEFAULT_TEMPLATE, plan_series
from idc_mcp.download.service import to_result
from idc_mcp.tools.citations import get_citations, idc_paper_text
from idc_mcp.tools.licenses import check_licenses
from idc_mcp.tools.selection import Selection, resolve_selection
from tests.parquet import bundled_citation_count, truth

# Every (collection or analysis result, source DOI) pair of the metadata, with one series citing it.
_CITED_PAIRS = """
WITH s AS (
    SELECT collection_id AS owner, lower(u.s.source_doi) AS doi FROM {collections}, unnest(sources) AS u(s)
    UNION ALL
    SELECT analysis_result_id, lower(source_DOI) FROM {analysis}
)
SELECT s.owner, s.doi, (SELECT min(i.SeriesInstanceUID) FROM {index} AS i
                        WHERE lower(i.source_DOI) = s.doi
                          AND (i.collection_id = s.owner OR i.analysis_result_id = s.owner)) AS uid
FROM s ORDER BY 1, 2
"""

# Every license value of the metadata (name, long name, URL), with one series under it.
_LICENSE_VALUES = """
WITH s AS (
    SELECT lower(u.s.source_doi) AS doi, u.s.license.license_short_name AS short,
           u.s.license.license_long_name AS long, u.s.license.license_url AS url
    FROM {collections}, unnest(sources) AS u(s)
    UNION ALL
    SELECT lower(source_DOI), license_short_name, license_long_name, license_url FROM {analysis}
)
SELECT s.short, s.long, s.url, min(i.SeriesInstanceUID)
FROM s JOIN {index} AS i ON lower(i.source_DOI) = s.doi AND i.license_short_name = s.short
GROUP BY ALL ORDER BY ALL
"""


def _plans(catalog, uids):
    return plan_series(catalog, resolve_selection(catalog, Selection(series_uids=uids)), DEFAULT_TEMPLATE)


def _outcome(destination: Path, series: list[SeriesFiles], sources: dict) -> Outcome:
    """What the engine hands the download tool after a run (nothing to transfer: only licenses matter)."""
    return Outcome(
        destination=destination, series=series, sources=sources, files_total=0, bytes_total=0, files_skipped=0
    )


def _sidecars(catalog, plans, folder: Path, kind: str) -> dict[str, str]:
    """Write the provenance files for `plans` into `folder`; the LICENSE_ or CITATION_ text per collection."""
    folder.mkdir(exist_ok=True)
    sources = provenance.lookup_sources(catalog, plans)
    provenance.write_provenance(folder, folder, plans, sources, {})
    return {p.stem.split("_", 1)[1]: p.read_text(encoding="utf-8") for p in folder.glob(f"{kind}_*.txt")}


def test_every_bundled_citation_reads_the_same_in_get_citations_and_the_citation_files(catalog, tmp_path):
    pairs = truth(_CITED_PAIRS)
    assert len(pairs) == bundled_citation_count() and all(uid for _, _, uid in pairs)
    uids = sorted({uid for _, _, uid in pairs})
    tool = get_citations(catalog, Selection(series_uids=uids), "text")
    text_of = {e.doi.lower(): e.citation for e in tool.entries if e.kind == "dataset"}
    assert len(text_of) == len({doi for _, doi, _ in pairs})

    plans = _plans(catalog, uids)
    collection_of = {p.series_uid: p.collection_id for p in plans}
    files = _sidecars(catalog, plans, tmp_path / "data", "CITATION")
    paragraphs = {c: text.rstrip("\n").split("\n\n") for c, text in files.items()}
    checked = 0
    for _owner, doi, uid in pairs:
        cited = text_of[doi]
        assert isinstance(cited, str) and "\n" not in cited and "<" not in cited
        assert cited in paragraphs[collection_of[uid]], (doi, collection_of[uid])
        checked += 1
    assert checked == bundled_citation_count()
    paper = next(e.citation for e in tool.entries if e.kind == "platform paper")
    assert paper == idc_paper_text()
    assert all(p[-1] == f"Also cite the Imaging Data Commons: {paper}" for p in paragraphs.values())


@pytest.fixture(scope="module")
def license_values():
    rows = truth(_LICENSE_VALUES)
    # 5 license names, 7 (name, long name, URL) combinations in this data, among them a CC BY-NC 3.0
    # source whose metadata URL is the CC BY page; more in a later release are covered too.
    assert len({r[0] for r in rows}) >= 5 and len(rows) >= 7
    return rows


def test_every_license_value_gets_one_verdict_in_check_licenses_download_and_license_files(
    catalog, tmp_path, license_values
):
    verdicts: dict[str, set[tuple[str, str | None]]] = defaultdict(set)
    for number, (short, _long, _url, uid) in enumerate(license_values):
        report = check_licenses(catalog, Selection(series_uids=[uid]))
        (group,) = report.licenses
        tool = (group.commercial_use, group.license_url)

        plans = _plans(catalog, [uid])
        sources = provenance.lookup_sources(catalog, plans)
        outcome = _outcome(tmp_path, [SeriesFiles(plans[0], [])], sources)
        (summary,) = to_result(outcome).licenses
        download = (summary.commercial_use, summary.license_url)

        (license_file,) = _sidecars(catalog, plans, tmp_path / str(number), "LICENSE").values()
        assert f"commercial use: {group.commercial_use}; " + "; ".join(group.conditions) in license_file
        assert f"  {group.license_url}\n" in license_file
        manifest = next((tmp_path / str(number)).glob("idc_manifest_*.csv")).read_text()
        assert f",{group.license_url}," in manifest

        assert tool == download, (short, tool, download)
        verdicts[short].add(tool)
    # One verdict per license name, whatever metadata entry its series point to.
    assert all(len(v) == 1 for v in verdicts.values()), verdicts
    assert {k: next(iter(v))[0] for k, v in verdicts.items()} == {
        "CC BY 3.0": "allowed",
        "CC BY 4.0": "allowed",
        "CC BY-NC 3.0": "not allowed",
        "CC BY-NC 4.0": "not allowed",
        "National Library of Medicine Terms and Conditions; May 21, 2019": "check the terms",
    }


def test_download_next_step_follows_the_policy_not_one_license_name(catalog, tmp_path, license_values):
    # Regression: the download told users to read the terms for anything but exactly 'CC BY 4.0', so
    # CC BY 3.0 data got a warning there and "allowed" in check_licenses.
    by_name = {short: uid for short, _long, _url, uid in license_values}
    for names, warned in (
        (["CC BY 3.0", "CC BY 4.0"], None),
        (["CC BY 3.0", "CC BY-NC 4.0"], "CC BY-NC 4.0"),
    ):
        plans = _plans(catalog, [by_name[n] for n in names])
        outcome = _outcome(tmp_path, [SeriesFiles(p, []) for p in plans], {})
        step = to_result(outcome).next_step
        assert ("Not for commercial use" in step) == bool(warned), step
        assert "CC BY 3.0" not in step
        if warned:
            assert warned in step
