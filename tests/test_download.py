"""The download engine against a real local S3 server (moto) and a fault-injecting proxy."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import threading
from pathlib import Path

import duckdb
import idc_index_data
import pytest

from idc_mcp.catalog.database import get_catalog
from idc_mcp.download import engine, ranged
from idc_mcp.download.engine import DownloadCancelled, DownloadError, Options, Progress
from idc_mcp.download.plan import TemplateError
from idc_mcp.download.s3 import RemoteFile, RetryPolicy, check_streamed
from idc_mcp.files import PathRefused
from idc_mcp.object_store import Streamed, TransferMismatch, make_client
from idc_mcp.tools.selection import Selection, SelectionError
from tests.s3_fixture import S3Mirror

FAST_RETRY = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.05)


def opts(endpoint: str, workers: int = 4) -> Options:
    return Options(
        endpoint_url=endpoint, workers=workers, retry=FAST_RETRY, connect_timeout_s=2, read_timeout_s=5
    )


def everything(mirror: S3Mirror) -> Selection:
    return Selection(series_uids=[s.uid for s in mirror.series])


def expected_files(mirror: S3Mirror, dest: Path) -> dict[Path, bytes]:
    """Where each object must land with the default template, computed from the mirror's own facts."""
    out = {}
    for s in mirror.series:
        folder = dest / s.collection_id / s.patient_id / s.study_uid / f"{s.modality}_{s.uid}"
        for key, data in s.objects.items():
            out[folder / key.split("/")[-1]] = data
    return out


def data_files(dest: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in dest.rglob("*.dcm")}


def temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".idcpart")]


def run(
    mirror_or_endpoint: S3Mirror | str, root: Path, selection: Selection, workers: int = 4, **kw
) -> engine.Outcome:
    endpoint = mirror_or_endpoint if isinstance(mirror_or_endpoint, str) else mirror_or_endpoint.endpoint
    return engine.download(get_catalog(), selection, root, opts(endpoint, workers), **kw)


def test_files_land_in_the_template_layout_byte_identical(s3_mirror, tmp_path):
    out = run(s3_mirror, tmp_path, everything(s3_mirror), download_dir="cohort")
    dest = tmp_path / "cohort"
    assert data_files(dest) == expected_files(s3_mirror, dest)
    assert (out.files_total, out.files_downloaded, out.files_skipped) == (s3_mirror.total_files,) * 2 + (0,)
    assert out.bytes_downloaded == out.bytes_total == s3_mirror.total_bytes
    assert temporaries(tmp_path) == []


def test_custom_and_flat_templates(s3_mirror, tmp_path):
    run(
        s3_mirror,
        tmp_path,
        everything(s3_mirror),
        download_dir="t",
        dir_template="%Modality-%SeriesInstanceUID",
    )
    for s in s3_mirror.series:
        assert {p.name for p in (tmp_path / "t" / f"{s.modality}-{s.uid}").iterdir()} == {
            k.split("/")[-1] for k in s.objects
        }
    run(s3_mirror, tmp_path, everything(s3_mirror), download_dir="flat", dir_template="")
    assert {p.name for p in (tmp_path / "flat").glob("*.dcm")} == {
        k.split("/")[-1] for s in s3_mirror.series for k in s.objects
    }


def test_unknown_template_placeholder_is_refused_with_the_nearest_one(s3_mirror, tmp_path):
    with pytest.raises(TemplateError, match="%PatientID"):
        run(s3_mirror, tmp_path, everything(s3_mirror), dir_template="%PatientId/%../x")
    assert list(tmp_path.iterdir()) == []


def test_rerun_moves_no_bytes(s3_mirror, fault_proxy, tmp_path):
    run(s3_mirror, tmp_path, everything(s3_mirror))
    out = run(fault_proxy.endpoint, tmp_path, everything(s3_mirror))
    assert (out.files_downloaded, out.bytes_downloaded, out.files_skipped) == (0, 0, s3_mirror.total_files)
    # The proxy saw only listings: not one object body crossed the wire.
    assert fault_proxy.body_bytes_sent == 0


def test_truncated_and_deleted_files_are_repaired_and_stale_temporaries_removed(s3_mirror, tmp_path):
    run(s3_mirror, tmp_path, everything(s3_mirror))
    files = sorted(expected_files(s3_mirror, tmp_path))
    truncated, deleted = files[0], files[1]
    truncated.write_bytes(truncated.read_bytes()[:100])
    deleted.unlink()
    stale = files[2].with_name(f".{files[2].name}.deadbeef0000.idcpart")
    stale.write_bytes(b"partial")
    out = run(s3_mirror, tmp_path, everything(s3_mirror))
    assert out.files_downloaded == 2 and out.files_skipped == s3_mirror.total_files - 2
    assert data_files(tmp_path) == expected_files(s3_mirror, tmp_path)
    assert temporaries(tmp_path) == []


def test_server_dying_mid_download_leaves_only_complete_files_and_a_rerun_completes(
    s3_mirror, fault_proxy, tmp_path
):
    # Dies in the middle of an object body once half the bytes were sent; one worker, so the files
    # before it are complete and the one in flight is cut.
    fault_proxy.die_after_bytes(s3_mirror.total_bytes // 2)
    with pytest.raises(DownloadError) as err:
        run(fault_proxy.endpoint, tmp_path, everything(s3_mirror), workers=1)
    expected = expected_files(s3_mirror, tmp_path)
    on_disk = data_files(tmp_path)
    assert 0 < len(on_disk) < len(expected)
    for path, data in on_disk.items():
        assert data == expected[path], f"{path} is under its final name but incomplete"
    assert temporaries(tmp_path) == []
    assert f"{len(on_disk)} of {len(expected)} files are complete" in str(err.value)
    assert "again" in str(err.value)
    out = run(s3_mirror, tmp_path, everything(s3_mirror))
    assert out.files_skipped == len(on_disk)
    assert data_files(tmp_path) == expected


def test_5xx_replies_are_retried(s3_mirror, fault_proxy, tmp_path):
    fault_proxy.fail_next(2)
    run(fault_proxy.endpoint, tmp_path, everything(s3_mirror))
    assert fault_proxy.failures_served == 2
    assert data_files(tmp_path) == expected_files(s3_mirror, tmp_path)


def test_bytes_corrupted_in_transit_are_caught_by_the_md5_etag_and_fetched_again(
    s3_mirror, fault_proxy, tmp_path
):
    # Same length, one byte flipped: only the MD5 (the single-part ETag) can tell.
    fault_proxy.corrupt_next(2)
    run(fault_proxy.endpoint, tmp_path, everything(s3_mirror))
    assert fault_proxy.corruptions_served == 2
    assert data_files(tmp_path) == expected_files(s3_mirror, tmp_path)
    assert temporaries(tmp_path) == []


def test_bytes_corrupted_in_transit_are_caught_by_the_stores_checksum_and_fetched_again(
    s3_mirror, fault_proxy, tmp_path
):
    # Same length, one byte flipped, the store's CRC32 header kept: the engine hashes no MD5 for such
    # bodies (botocore checks the CRC32 while streaming), and that check alone must refuse them.
    fault_proxy.corrupt_next(2, keep_checksum=True)
    run(fault_proxy.endpoint, tmp_path, everything(s3_mirror))
    assert fault_proxy.corruptions_served == 2
    assert data_files(tmp_path) == expected_files(s3_mirror, tmp_path)
    assert temporaries(tmp_path) == []


def test_a_store_checked_body_of_another_object_version_is_refused():
    # The store's checksum proves the bytes are the object it holds now; its ETag must also be the one
    # listed, or the file would not be the version the listing (and the state file) describe.
    listed = RemoteFile("b", "k", 3, '"0cc175b9c0f1b6a831c399e269772661"', Path("x"))
    check_streamed(listed, Streamed(3, '"0cc175b9c0f1b6a831c399e269772661"', "crc32", None))
    with pytest.raises(TransferMismatch, match="ETag changed"):
        check_streamed(listed, Streamed(3, '"92eb5ffee6ae2fec3ad71c777531578f"', "crc32", None))
    with pytest.raises(TransferMismatch, match="received 2 of 3"):
        check_streamed(listed, Streamed(2, '"0cc175b9c0f1b6a831c399e269772661"', "crc32", None))
    # Without a store checksum, the MD5 of the bytes must equal the single-part ETag.
    with pytest.raises(TransferMismatch, match="MD5"):
        check_streamed(listed, Streamed(3, "", None, "92eb5ffee6ae2fec3ad71c777531578f"))


def test_unreachable_store_is_reported_with_what_to_do(s3_mirror, fault_proxy, tmp_path):
    fault_proxy.stop()
    with pytest.raises(DownloadError, match="IDC_MCP_S3_ENDPOINT_URL"):
        run(fault_proxy.endpoint, tmp_path, everything(s3_mirror))
    assert list(tmp_path.iterdir()) == []


def test_offline_a_dry_run_answers_from_the_index_and_a_download_says_what_still_works(
    s3_mirror, fault_proxy, tmp_path
):
    # Found by new-user trials: a dry run listed the bucket, so offline it failed (issue 22: it answers
    # from the catalog now); a download says what still answers offline.
    fault_proxy.stop()
    planned = run(fault_proxy.endpoint, tmp_path, everything(s3_mirror), dry_run=True)
    assert planned.series_estimated == len(planned.series) == len(s3_mirror.series)
    assert planned.files_total == s3_mirror.total_files  # the index's instance counts
    assert planned.unreachable and f"The S3 endpoint {fault_proxy.endpoint}" in planned.unreachable
    with pytest.raises(DownloadError, match=r"Offline, download\(dry_run=true\) still answers"):
        run(fault_proxy.endpoint, tmp_path, everything(s3_mirror))
    assert list(tmp_path.iterdir()) == []


class CancelAfterFirstBytes(Progress):
    """Asks for cancellation as soon as the first bytes are written, as a client would mid-download."""

    def __init__(self, cancel: threading.Event) -> None:
        super().__init__()
        self.cancel = cancel

    def add(self, n: int) -> None:
        super().add(n)
        self.cancel.set()


def test_cancellation_stops_and_leaves_no_temporaries(s3_mirror, tmp_path):
    cancel = threading.Event()
    with pytest.raises(DownloadCancelled, match="resume"):
        run(s3_mirror, tmp_path, everything(s3_mirror), progress=CancelAfterFirstBytes(cancel), cancel=cancel)
    expected = expected_files(s3_mirror, tmp_path)
    on_disk = data_files(tmp_path)
    assert len(on_disk) < len(expected)
    assert all(expected[p] == d for p, d in on_disk.items())
    assert temporaries(tmp_path) == []


@pytest.fixture
def small_parts(monkeypatch):
    """Objects of 16 KiB or more (all of the mirror's) are fetched as ranged parts of 8 KiB."""
    monkeypatch.setattr(ranged, "PART_THRESHOLD", 16 * 1024)
    monkeypatch.setattr(ranged, "PART_BYTES", 8 * 1024)


def test_large_objects_are_fetched_in_ranged_parts_verified_and_atomic(
    s3_mirror, fault_proxy, small_parts, tmp_path
):
    outcome = run(fault_proxy.endpoint, tmp_path, everything(s3_mirror))
    files = sum(len(s.objects) for s in s3_mirror.series)
    assert outcome.files_downloaded == files
    assert fault_proxy.range_requests >= 3 * files  # every object came in parts (18-37 KB: 3-5 each)
    assert data_files(tmp_path) == expected_files(s3_mirror, tmp_path)
    assert temporaries(tmp_path) == []


def test_a_corrupted_part_is_caught_by_the_md5_of_the_assembled_file_and_fetched_again(
    s3_mirror, fault_proxy, small_parts, tmp_path
):
    # Ranged replies carry no store checksum: the file read back must hash to the single-part ETag.
    fault_proxy.corrupt_next(2)
    run(fault_proxy.endpoint, tmp_path, everything(s3_mirror))
    assert fault_proxy.corruptions_served == 2
    assert data_files(tmp_path) == expected_files(s3_mirror, tmp_path)
    assert temporaries(tmp_path) == []


def test_cancellation_mid_part_leaves_no_partial_file(s3_mirror, fault_proxy, small_parts, tmp_path):
    fault_proxy.rate_bytes_per_s = 50_000  # parts trickle: the cancel arrives while they stream
    cancel = threading.Event()
    with pytest.raises(DownloadCancelled, match="no partial files"):
        run(
            fault_proxy.endpoint,
            tmp_path,
            everything(s3_mirror),
            progress=CancelAfterFirstBytes(cancel),
            cancel=cancel,
        )
    expected = expected_files(s3_mirror, tmp_path)
    on_disk = data_files(tmp_path)
    assert len(on_disk) < len(expected)
    assert all(expected[p] == d for p, d in on_disk.items())
    assert temporaries(tmp_path) == []


def test_parts_of_another_object_version_are_refused(s3_mirror, small_parts, tmp_path):
    # Every range asks If-Match with the listed ETag: an object replaced since the listing (another
    # ETag) answers 412, and no part of it is taken.
    series = s3_mirror.series[0]
    key, data = next(iter(series.objects.items()))
    client = make_client(s3_mirror.endpoint, 4)
    parts = ranged.RangedFetcher(client, 4)
    try:
        with open(tmp_path / "part", "w+b") as out, pytest.raises(TransferMismatch, match="ETag changed"):
            parts.fetch(
                series.bucket,
                key,
                len(data),
                '"' + "0" * 32 + '"',
                None,
                out,
                threading.Event(),
                lambda n: None,
            )
    finally:
        parts.close()


@pytest.mark.parametrize(
    "requested",
    [
        "../outside",
        "a/../../outside",
        "/etc",
        "{root}_evil",  # sibling sharing the root's name as a prefix
        "{root}/link_out",  # symlink inside the root pointing out
        "link_out/sub",
    ],
)
def test_download_dir_escapes_are_refused(s3_mirror, tmp_path, requested):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link_out").symlink_to(outside)
    with pytest.raises(PathRefused):
        run(s3_mirror, root, everything(s3_mirror), download_dir=requested.format(root=root))
    assert list(outside.iterdir()) == [] and not (tmp_path / "root_evil").exists()


def test_symlinked_series_folder_pointing_out_is_refused(s3_mirror, tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    (root / "dl").mkdir(parents=True)
    first = s3_mirror.series[0]
    (root / "dl" / first.collection_id).symlink_to(outside)
    with pytest.raises(PathRefused, match="outside the download root"):
        run(s3_mirror, root, everything(s3_mirror), download_dir="dl")
    assert list(outside.rglob("*")) == []


def test_unknown_uids_and_empty_selections_are_refused(s3_mirror, tmp_path):
    with pytest.raises(SelectionError, match="Unknown series_uids"):
        run(s3_mirror, tmp_path, Selection(series_uids=["1.2.3.4.5.6.7.8.9"]))
    with pytest.raises(SelectionError, match="Empty selection"):
        run(s3_mirror, tmp_path, Selection())
    assert list(tmp_path.iterdir()) == []


def test_dry_run_plans_and_writes_nothing(s3_mirror, tmp_path):
    # An interrupted run's temporary must survive a dry run too: it writes and deletes nothing.
    (tmp_path / "keep.idcpart").write_bytes(b"x")
    before = sorted(tmp_path.rglob("*"))
    out = run(s3_mirror, tmp_path, everything(s3_mirror), dry_run=True)
    assert sorted(tmp_path.rglob("*")) == before
    assert out.manifest_path is None
    assert (out.files_total, out.bytes_total, out.bytes_needed) == (
        s3_mirror.total_files,
        s3_mirror.total_bytes,
        s3_mirror.total_bytes,
    )


def _tiny_filesystem(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


def test_not_enough_disk_space_is_refused_with_needed_and_available(s3_mirror, tmp_path, monkeypatch):
    small = tmp_path / "small"
    mounted = _tiny_filesystem(small, "64k")  # far below the mirror's ~280 kB
    if not mounted:  # not root: fake only the free-space figure, as a tiny disk would report it
        usage = shutil.disk_usage(tmp_path)
        monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=64 * 1024))
    try:
        with pytest.raises(DownloadError) as err:
            run(s3_mirror, small, everything(s3_mirror))
        free = shutil.disk_usage(small).free
        assert f"needs {s3_mirror.total_bytes:,} bytes and {free:,} are available" in str(err.value)
        assert list(small.iterdir()) == []
    finally:
        if mounted:
            subprocess.run(["umount", str(small)], check=True)


def test_manifest_and_license_citation_texts_match_the_bundled_metadata(s3_mirror, tmp_path):
    out = run(s3_mirror, tmp_path, everything(s3_mirror))
    rows = list(csv.DictReader(out.manifest_path.open()))
    assert {r["SeriesInstanceUID"] for r in rows} == {s.uid for s in s3_mirror.series}
    for r in rows:
        s = next(s for s in s3_mirror.series if s.uid == r["SeriesInstanceUID"])
        assert r["license_short_name"] == s.license_short_name and r["source_DOI"] == s.source_doi
        assert r["s3_url"] == f"s3://{s.bucket}/{s.crdc_series_uuid}/"
        assert (int(r["files"]), int(r["bytes"])) == (len(s.objects), s.size)
    folder = Path(idc_index_data.IDC_INDEX_PARQUET_FILEPATH).parent
    urls = dict(
        duckdb.sql(
            f"""SELECT lower(s.source_doi), s.license.license_url FROM
            (SELECT unnest(sources) s FROM read_parquet('{folder / "collections_index.parquet"}'))
            UNION SELECT lower(source_DOI), license_url FROM
            read_parquet('{folder / "analysis_results_index.parquet"}')"""
        ).fetchall()
    )
    for s in s3_mirror.series:
        license_text = (tmp_path / f"LICENSE_{s.collection_id}.txt").read_text()
        assert s.license_short_name in license_text and urls[s.source_doi.lower()] in license_text
        citation = (tmp_path / f"CITATION_{s.collection_id}.txt").read_text()
        assert s.source_doi.lower() in citation.lower() and "<i>" not in citation


def test_only_single_part_etags_are_used_as_md5():
    # A multipart upload's ETag is an MD5 of part MD5s plus '-<parts>': it cannot check the bytes.
    single = RemoteFile("b", "k", 1, '"0cc175b9c0f1b6a831c399e269772661"', Path("x"))
    multi = RemoteFile("b", "k", 1, '"0cc175b9c0f1b6a831c399e269772661-3"', Path("x"))
    assert single.md5 == "0cc175b9c0f1b6a831c399e269772661" and multi.md5 is None
