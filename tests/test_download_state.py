"""The state file: a rerun from a new process skips listing complete series, and never trusts it blindly.

`engine.clear_caches()` puts the engine where a new process starts (no remembered plan, listing or S3
client); the fault proxy counts every request that reaches the object store.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from idc_mcp.catalog.database import get_catalog
from idc_mcp.download import engine, state
from idc_mcp.download.plan import DEFAULT_TEMPLATE, plan_series, plan_uids_with_hints, plan_with_hints
from idc_mcp.tools.selection import Selection, resolve_selection
from tests.s3_fixture import PARQUET, S3Mirror
from tests.test_download import data_files, everything, expected_files, opts


def download(endpoint: str, root: Path, selection: Selection) -> engine.Outcome:
    return engine.download(get_catalog(), selection, root, opts(endpoint))


def first_run_then_new_process(mirror: S3Mirror, proxy_endpoint: str, root: Path) -> Path:
    """A complete download through the proxy, then the engine as a new process finds it."""
    out = download(proxy_endpoint, root, everything(mirror))
    assert out.files_downloaded == mirror.total_files
    engine.clear_caches()
    return root / state.STATE_NAME


def test_rerun_from_a_new_process_sends_no_request_for_complete_series(s3_mirror, fault_proxy, tmp_path):
    state_file = first_run_then_new_process(s3_mirror, fault_proxy.endpoint, tmp_path)
    assert state_file.is_file()
    before = fault_proxy.requests
    out = download(fault_proxy.endpoint, tmp_path, everything(s3_mirror))
    assert fault_proxy.requests == before  # not one listing, not one object
    assert (out.files_downloaded, out.files_skipped) == (0, s3_mirror.total_files)
    assert out.bytes_total == s3_mirror.total_bytes
    assert data_files(tmp_path) == expected_files(s3_mirror, tmp_path)


def test_truncated_or_deleted_file_is_repaired_despite_the_state_file(s3_mirror, fault_proxy, tmp_path):
    first_run_then_new_process(s3_mirror, fault_proxy.endpoint, tmp_path)
    files = sorted(expected_files(s3_mirror, tmp_path))
    truncated = files[0]
    truncated.write_bytes(truncated.read_bytes()[:-1])  # one byte short: only a size check sees it
    before = fault_proxy.requests
    out = download(fault_proxy.endpoint, tmp_path, everything(s3_mirror))
    # Only the damaged file's series is listed again (one request) and the file fetched (one request).
    assert fault_proxy.requests == before + 2
    assert (out.files_downloaded, out.files_skipped) == (1, s3_mirror.total_files - 1)
    assert data_files(tmp_path) == expected_files(s3_mirror, tmp_path)

    engine.clear_caches()
    files[-1].unlink()
    out = download(fault_proxy.endpoint, tmp_path, everything(s3_mirror))
    assert out.files_downloaded == 1
    assert data_files(tmp_path) == expected_files(s3_mirror, tmp_path)


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b'{"format": 1, "series": []}', b'{"format": 99, "series": {}}', b"\xff\xfe\x00"],
    ids=["broken-json", "empty", "wrong-shape", "unknown-format", "binary"],
)
def test_corrupt_state_file_is_ignored_and_replaced(s3_mirror, fault_proxy, tmp_path, content):
    state_file = first_run_then_new_process(s3_mirror, fault_proxy.endpoint, tmp_path)
    state_file.write_bytes(content)
    before = fault_proxy.requests
    out = download(fault_proxy.endpoint, tmp_path, everything(s3_mirror))
    assert fault_proxy.requests == before + len(s3_mirror.series)  # every series listed, as a first run
    assert (out.files_downloaded, out.bytes_downloaded) == (0, 0)
    assert set(state.load(tmp_path)) == {s.uid for s in s3_mirror.series}  # rewritten whole


def test_edited_state_entry_is_not_trusted(s3_mirror, fault_proxy, tmp_path):
    """An entry that lost an object (so that a missing file would look complete) fails its digest;
    an entry whose recorded size differs from the file on disk fails the size check. Both are listed."""
    state_file = first_run_then_new_process(s3_mirror, fault_proxy.endpoint, tmp_path)
    multi = next(s for s in s3_mirror.series if len(s.objects) > 1)
    other = next(s for s in s3_mirror.series if s is not multi)
    data = json.loads(state_file.read_text())
    dropped = data["series"][multi.uid]["objects"].pop()
    data["series"][other.uid]["objects"][0][1] += 1  # size no longer matches the file
    state_file.write_text(json.dumps(data))
    missing = next(p for p in expected_files(s3_mirror, tmp_path) if p.name == dropped[0].split("/")[-1])
    missing.unlink()
    before = fault_proxy.requests
    out = download(fault_proxy.endpoint, tmp_path, everything(s3_mirror))
    assert fault_proxy.requests == before + 2 + 1  # two listings, one object
    assert out.files_downloaded == 1
    assert data_files(tmp_path) == expected_files(s3_mirror, tmp_path)


def test_state_recorded_for_another_endpoint_is_not_used(s3_mirror, fault_proxy, tmp_path):
    download(s3_mirror.endpoint, tmp_path, everything(s3_mirror))
    engine.clear_caches()
    out = download(fault_proxy.endpoint, tmp_path, everything(s3_mirror))
    assert fault_proxy.requests == len(s3_mirror.series) and out.files_downloaded == 0


def test_state_file_symlink_pointing_out_is_neither_read_nor_followed(s3_mirror, fault_proxy, tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside.json"
    state_file = first_run_then_new_process(s3_mirror, fault_proxy.endpoint, root)
    # A valid state file for this very download, but reached through a link out of the root.
    state_file.rename(outside)
    text = outside.read_text()
    state_file.symlink_to(outside)
    before = fault_proxy.requests
    out = download(fault_proxy.endpoint, root, everything(s3_mirror))
    assert fault_proxy.requests == before + len(s3_mirror.series)  # not read: every series listed
    assert out.files_downloaded == 0
    assert outside.read_text() == text  # never written through the link
    assert state_file.is_symlink()  # and the link is left alone, like any link met at a final name
    assert state.load(root) == {}


def test_dry_run_writes_no_state_file(s3_mirror, tmp_path):
    download(s3_mirror.endpoint, tmp_path, everything(s3_mirror))
    (tmp_path / state.STATE_NAME).unlink()
    engine.download(get_catalog(), everything(s3_mirror), tmp_path, opts(s3_mirror.endpoint), dry_run=True)
    assert not (tmp_path / state.STATE_NAME).exists()


def test_plan_with_hints_matches_the_general_plan_and_refuses_wrong_hints(s3_mirror):
    catalog = get_catalog()
    selection = everything(s3_mirror)
    truth = {s.uid: s.collection_id for s in s3_mirror.series}  # from the parquet file, not our catalog
    general = plan_series(catalog, resolve_selection(catalog, selection), DEFAULT_TEMPLATE)
    hinted = plan_with_hints(catalog, selection, DEFAULT_TEMPLATE, truth)
    assert hinted == general
    assert {p.series_uid: p.collection_id for p in hinted} == truth
    # Hints only narrow the scan: a wrong one loses series, which sends the planner the general way.
    wrong = {uid: "4d_lung_x'); DROP TABLE index; --" for uid in truth}
    assert plan_with_hints(catalog, selection, DEFAULT_TEMPLATE, wrong) is None
    assert catalog.row_count("index")  # and the literal stayed a literal
    # Without a hint for every UID (a first run has none), one query on the UIDs alone plans them.
    partial = {k: v for k, v in list(truth.items())[1:]}
    assert plan_with_hints(catalog, selection, DEFAULT_TEMPLATE, partial) == general
    assert plan_with_hints(catalog, selection, DEFAULT_TEMPLATE, {}) == general
    unknown = Selection(series_uids=[*truth, "1.2.3.4.5.6.7.8.9"])
    assert plan_with_hints(catalog, unknown, DEFAULT_TEMPLATE, {}) is None  # the general path names it
    derived = [s.uid for s in s3_mirror.series if s.analysis_result_id]
    assert derived, "the mirror holds a derived series"
    excluding = Selection(series_uids=[s.uid for s in s3_mirror.series], analysis_results="exclude")
    assert plan_with_hints(catalog, excluding, DEFAULT_TEMPLATE, truth) is None  # general path drops them
    by_collection = Selection(collection_ids=["4d_lung"])
    assert plan_with_hints(catalog, by_collection, DEFAULT_TEMPLATE, truth) is None


def test_resolved_selection_of_any_kind_is_planned_with_hints(s3_mirror):
    """After resolving (patients, studies, sql...), the plan query still uses the recorded collections."""
    catalog = get_catalog()
    by_patient = Selection(patient_ids=sorted({s.patient_id for s in s3_mirror.series}))
    resolved = resolve_selection(catalog, by_patient)
    # The collection of every series of these patients, read straight from the bundled parquet file.
    hints = dict(
        duckdb.connect()
        .execute(
            f"SELECT SeriesInstanceUID, collection_id FROM read_parquet('{PARQUET}') "
            "WHERE PatientID IN (SELECT unnest(?))",
            [by_patient.patient_ids],
        )
        .fetchall()
    )
    assert set(hints) == set(resolved.series_uids)
    general = plan_series(catalog, resolved, DEFAULT_TEMPLATE)
    assert plan_uids_with_hints(catalog, resolved.series_uids, DEFAULT_TEMPLATE, hints) == general
    assert {s.uid for s in s3_mirror.series} <= {p.series_uid for p in general}
    quoted = "1.2'3"
    assert plan_uids_with_hints(catalog, [quoted], DEFAULT_TEMPLATE, {quoted: "4d_lung"}) is None


def test_state_keeps_the_newest_series_within_its_object_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(state, "MAX_RECORDED_OBJECTS", 5)
    records = {
        f"1.2.{i}": state.SeriesRecord(
            "http://e", "b", f"p{i}/", "c", ((f"p{i}/a", 1, ""), (f"p{i}/b", 2, "")), ("1:1:1:1", "2:2:2:2")
        )
        for i in range(4)
    }
    state.save(tmp_path, tmp_path, records)
    assert list(state.load(tmp_path)) == ["1.2.2", "1.2.3"]
    assert not [p for p in tmp_path.iterdir() if p.name != state.STATE_NAME]  # no temporary left
