"""fetch_index against a real loopback HTTP server: fetch, verify, cache, register, and every way it can fail.

Each test gets its own cache folder (IDC_MCP_CACHE_DIR) holding a hard link to the already-built catalog,
and its own `Catalog`, so nothing here touches the process-wide catalog or the real cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import threading
from pathlib import Path

import duckdb
import filelock
import idc_index_data
import pytest
from mcp import Client

from idc_mcp import cli
from idc_mcp.catalog.database import Catalog
from idc_mcp.config import load_settings
from idc_mcp.indices import fetch
from idc_mcp.tools import query, tables
from tests.index_server import (
    INDEX_PARQUET,
    IndexServer,
    Route,
    SyntheticIndices,
    cache_with_catalog,
    serve_indices,
)
from tests.s3_fixture import add_public_bucket

VERSION = idc_index_data.__version__


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def data(synthetic_files: SyntheticIndices) -> SyntheticIndices:
    return synthetic_files


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, built_catalog: Path) -> Path:
    cache = cache_with_catalog(tmp_path / "cache", built_catalog)
    monkeypatch.setenv("IDC_MCP_CACHE_DIR", str(cache))
    monkeypatch.setenv("IDC_MCP_FETCH_TIMEOUT", "5")
    for name in ("IDC_MCP_INDEX_DIR", "IDC_MCP_INDEX_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return cache


@pytest.fixture
def server(env: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with serve_indices() as srv:
        monkeypatch.setenv("IDC_MCP_INDEX_BASE_URL", srv.base + "/release")
        monkeypatch.setenv("IDC_MCP_S3_ENDPOINT_URL", srv.base)
        yield srv


def publish(srv: IndexServer, data: dict[str, Path], name: str, checksum: str | None = "good") -> bytes:
    body = data[name].read_bytes()
    srv.add_file(f"release/{name}.parquet", body, checksum)
    return body


def clinical_objects(data: SyntheticIndices) -> dict[str, bytes]:
    return data.clinical_objects()


def publish_clinical(srv: IndexServer, data: dict[str, Path], **bucket: object) -> None:
    publish(srv, data, "clinical_index")
    srv.add_bucket("idc-open-metadata", clinical_objects(data), **bucket)  # type: ignore[arg-type]


def assert_nothing_cached(catalog: Catalog, name: str) -> None:
    folder = fetch.index_folder(catalog.settings)
    assert not (folder / f"{name}.duckdb").exists()
    assert [p.name for p in folder.iterdir() if not p.name.endswith(".lock")] == []
    assert not catalog.is_installed(name)
    # A fresh catalog (a restarted server) does not pick anything up either.
    fresh = Catalog(load_settings())
    assert name not in fresh.installed_tables()
    fresh.close()


def independent(sql: str, params: list[object]) -> list[tuple[object, ...]]:
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


# ---------------------------------------------------------------------------------------------- success
def test_fetched_index_is_queryable_and_joins_with_index(server, data, make_catalog):
    publish(server, data, "sm_index")
    catalog = make_catalog()
    seen: list[tuple[float, float | None]] = []
    result = fetch.fetch_index(catalog, "sm_index", lambda done, total, msg: seen.append((done, total)))

    assert result.status == "fetched" and result.tables == ["sm_index"]
    assert result.sha256 == hashlib.sha256(data["sm_index"].read_bytes()).hexdigest()
    assert "sha256 matches" in result.checksum
    assert result.size_bytes == data["sm_index"].stat().st_size
    assert seen and seen[-1][0] >= 1
    # The join returns exactly the rows plain DuckDB finds over the same two files.
    (expected,) = independent(
        "SELECT count(*), count(DISTINCT i.collection_id) FROM read_parquet($1) s "
        "JOIN read_parquet($2) i USING (SeriesInstanceUID) WHERE s.ObjectiveLensPower = 40",
        [str(data["sm_index"]), INDEX_PARQUET],
    )
    got = query.run_query(
        catalog,
        "SELECT count(*) AS n, count(DISTINCT i.collection_id) AS c FROM sm_index s "
        "JOIN index i USING (SeriesInstanceUID) WHERE s.ObjectiveLensPower = 40",
    )
    assert (got.rows[0]["n"], got.rows[0]["c"]) == expected and expected[0] > 0


def test_an_unreadable_fetch_record_is_not_reported_as_verified(server, data, make_catalog):
    # The record is the only evidence of the checks made at fetch time: without it, say so.
    publish(server, data, "sm_index")
    fetch.fetch_index(make_catalog(), "sm_index")
    record = fetch.index_folder(load_settings()) / "sm_index.json"
    record.write_text("{not json")

    again = fetch.fetch_index(make_catalog(), "sm_index")
    assert again.status == "already installed"
    assert "verified" not in again.checksum.replace("verify it again", "")
    assert again.checksum.startswith("unknown: its fetch record (sm_index.json) could not be read")
    assert again.sha256 is None


def test_second_fetch_is_instant_and_a_restart_finds_the_cached_index(server, data, make_catalog):
    publish(server, data, "sm_index")
    fetch.fetch_index(make_catalog(), "sm_index")
    downloads = server.hits["/release/sm_index.parquet"]

    restarted = make_catalog()  # a new server process: the cached index is attached on open
    assert restarted.is_installed("sm_index")
    again = fetch.fetch_index(restarted, "sm_index")
    assert again.status == "already installed"
    assert server.hits["/release/sm_index.parquet"] == downloads == 1
    listed = {t.name: t for t in tables.list_tables(restarted)}
    assert listed["sm_index"].installed and listed["sm_index"].size_bytes == data["sm_index"].stat().st_size
    assert (
        listed["sm_index"].row_count
        == independent("SELECT count(*) FROM read_parquet(?)", [str(data["sm_index"])])[0][0]
    )


def test_describe_table_works_on_a_fetched_index(server, data, make_catalog):
    publish(server, data, "sm_index")
    catalog = make_catalog()
    fetch.fetch_index(catalog, "sm_index")
    described = tables.profile(catalog, "sm_index")
    power = next(c for c in described.columns if c.name == "ObjectiveLensPower")
    assert described.installed and power.values_complete
    assert sorted(v.value for v in power.values or []) == [20, 40]
    assert "objective" in power.description.lower()


def test_concurrent_fetches_download_once_and_agree(server, data, make_catalog):
    body = publish(server, data, "sm_index")
    gate, requested = threading.Event(), threading.Event()
    original = server.routes["/release/sm_index.parquet"]
    server.routes["/release/sm_index.parquet"] = Route(body=body, gate=gate, requested=requested)
    catalog = make_catalog()
    results: list[object] = []

    def run_fetch() -> None:
        try:
            results.append(fetch.fetch_index(catalog, "sm_index").status)
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            results.append(exc)

    first = threading.Thread(target=run_fetch)
    first.start()
    assert requested.wait(10)
    # While the first download is in flight, the index's lock is held: a second fetch must wait for it.
    lock = fetch.index_folder(catalog.settings) / ".sm_index.lock"
    with pytest.raises(filelock.Timeout):
        filelock.FileLock(lock).acquire(timeout=0)
    second = threading.Thread(target=run_fetch)
    second.start()
    gate.set()
    first.join(20)
    second.join(20)
    assert sorted(map(str, results)) == ["already installed", "fetched"]
    assert server.hits["/release/sm_index.parquet"] == 1
    assert original.body == body
    assert query.run_query(catalog, "SELECT count(*) AS n FROM sm_index").rows[0]["n"] == 40


def test_query_running_while_an_index_is_attached_is_not_disturbed(server, data, make_catalog):
    # The catalog must be reopened to attach a new index; a query in flight finishes on the old connection.
    publish(server, data, "sm_index")
    catalog = make_catalog()
    done = threading.Event()
    worker = catalog.executor
    with catalog._gate.query():  # a query in flight, as Catalog.execute holds it
        fetcher = threading.Thread(target=lambda: (fetch.fetch_index(catalog, "sm_index"), done.set()))
        fetcher.start()
        gate = catalog._gate
        with gate._cond:  # the fetch is now waiting for this query to end
            assert gate._cond.wait_for(lambda: gate._reopening, timeout=20)
        assert not done.is_set()
        # The worker the query runs on was not replaced under it.
        assert worker.run("SELECT count(*) FROM index", None, 20)[2][0][0] > 0
    fetcher.join(20)
    assert done.is_set() and query.run_query(catalog, "SELECT count(*) AS n FROM sm_index").rows[0]["n"] == 40


def test_leftovers_of_an_interrupted_fetch_are_never_taken_for_an_index(server, data, make_catalog):
    folder = fetch.index_folder(load_settings())
    folder.mkdir(parents=True)
    (folder / f".sm_index.{os.getpid()}.1.part").write_bytes(data["sm_index"].read_bytes()[:100])
    (folder / ".sm_index.1.2.tmp").write_bytes(b"half a database")
    catalog = make_catalog()
    assert not catalog.is_installed("sm_index")
    publish(server, data, "sm_index")
    assert fetch.fetch_index(catalog, "sm_index").status == "fetched"
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) == [
        "sm_index.duckdb",
        "sm_index.json",
    ]


def test_damaged_cache_file_does_not_break_the_catalog_and_is_replaced(server, data, make_catalog):
    folder = fetch.index_folder(load_settings())
    folder.mkdir(parents=True)
    (folder / "sm_index.duckdb").write_bytes(b"not a database" * 100)
    catalog = make_catalog()
    assert catalog.is_installed("index") and not catalog.is_installed("sm_index")
    publish(server, data, "sm_index")
    assert fetch.fetch_index(catalog, "sm_index").status == "fetched"
    assert query.run_query(catalog, "SELECT count(*) AS n FROM sm_index").rows[0]["n"] == 40


def test_index_dir_is_used_without_any_network(env, data, make_catalog, monkeypatch, tmp_path):
    offline = tmp_path / "offline"
    offline.mkdir()
    shutil.copy(data["ct_index"], offline / "ct_index.parquet")
    monkeypatch.setenv("IDC_MCP_INDEX_DIR", str(offline))
    monkeypatch.setenv("IDC_MCP_INDEX_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    catalog = make_catalog()
    result = fetch.fetch_index(catalog, "ct_index")
    assert result.source == str(offline / "ct_index.parquet") and result.status == "fetched"
    got = query.run_query(catalog, "SELECT count(*) AS n FROM ct_index JOIN index USING (SeriesInstanceUID)")
    assert got.rows[0]["n"] == 40

    with pytest.raises(fetch.IndexFetchError, match="No network was tried") as missing:
        fetch.fetch_index(catalog, "seg_index")
    assert str(offline / "seg_index.parquet") in str(missing.value)


def test_index_dir_file_that_fails_its_checksum_file_is_refused(
    env, data, make_catalog, monkeypatch, tmp_path
):
    offline = tmp_path / "offline"
    offline.mkdir()
    shutil.copy(data["ct_index"], offline / "ct_index.parquet")
    (offline / "ct_index.parquet.sha256").write_text("0" * 64 + "  ct_index.parquet\n")
    monkeypatch.setenv("IDC_MCP_INDEX_DIR", str(offline))
    catalog = make_catalog()
    with pytest.raises(fetch.IndexFetchError, match="does not match its checksum file"):
        fetch.fetch_index(catalog, "ct_index")
    assert_nothing_cached(catalog, "ct_index")


def test_default_release_listing_gives_checksums_and_sizes(server, data, make_catalog, monkeypatch):
    # The default source: GitHub release assets, whose listing publishes size and sha256 of every asset.
    monkeypatch.delenv("IDC_MCP_INDEX_BASE_URL")
    monkeypatch.setattr(fetch, "RELEASE_URL", server.base + "/gh/{version}")
    monkeypatch.setattr(fetch, "RELEASE_API_URL", server.base + "/api/{version}")
    sm, seg = data["sm_index"].read_bytes(), data["seg_index"].read_bytes()
    server.add_file(f"gh/{VERSION}/sm_index.parquet", sm, checksum=None)
    server.release_assets(f"/api/{VERSION}", {"sm_index.parquet": sm, "seg_index.parquet": seg})
    catalog = make_catalog()
    result = fetch.fetch_index(catalog, "sm_index")
    assert f"/api/{VERSION}" in result.checksum and result.sha256 == hashlib.sha256(sm).hexdigest()

    # The listing seen during that fetch tells the size of indices not installed yet.
    listed = {t.name: t for t in tables.list_tables(catalog)}
    assert listed["seg_index"].size_bytes == len(seg) and not listed["seg_index"].installed
    assert listed["seg_index"].how_to_install == 'fetch_index("seg_index")'
    assert listed["seg_index"].size == fetch.human_size(len(seg))
    with pytest.raises(query.QueryError) as refused:
        query.run_query(catalog, "SELECT * FROM seg_index")
    text = str(refused.value)
    assert "'seg_index'" in text and 'fetch_index("seg_index")' in text and fetch.human_size(len(seg)) in text


def test_listing_digest_mismatch_is_refused(server, data, make_catalog, monkeypatch):
    monkeypatch.delenv("IDC_MCP_INDEX_BASE_URL")
    monkeypatch.setattr(fetch, "RELEASE_URL", server.base + "/gh/{version}")
    monkeypatch.setattr(fetch, "RELEASE_API_URL", server.base + "/api/{version}")
    sm = data["sm_index"].read_bytes()
    server.add_file(f"gh/{VERSION}/sm_index.parquet", sm, checksum=None)
    server.release_assets(f"/api/{VERSION}", {"sm_index.parquet": sm[:-1] + b"X"})
    catalog = make_catalog()
    with pytest.raises(fetch.IndexFetchError, match="failed its checksum"):
        fetch.fetch_index(catalog, "sm_index")
    assert not (fetch.index_folder(catalog.settings) / "sm_index.duckdb").exists()
    assert not catalog.is_installed("sm_index")


# ---------------------------------------------------------------------------------------------- failures
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_checksum_mismatch_is_refused_and_nothing_cached(server, data, make_catalog):
    publish(server, data, "sm_index", checksum="bad")
    catalog = make_catalog()
    with pytest.raises(fetch.IndexFetchError, match="failed its checksum") as refused:
        fetch.fetch_index(catalog, "sm_index")
    assert "sm_index.parquet.sha256" in str(refused.value)
    assert_nothing_cached(catalog, "sm_index")


def test_truncated_parquet_file_is_refused(server, data, make_catalog):
    body = data["sm_index"].read_bytes()
    server.add_file("release/sm_index.parquet", body[: len(body) // 2], checksum=None)
    catalog = make_catalog()
    with pytest.raises(fetch.IndexFetchError, match="not a readable parquet file"):
        fetch.fetch_index(catalog, "sm_index")
    assert_nothing_cached(catalog, "sm_index")


def test_transfer_that_breaks_off_is_refused(server, data, make_catalog):
    body = data["sm_index"].read_bytes()
    server.routes["/release/sm_index.parquet"] = Route(body=body, cut_after=len(body) // 3)
    catalog = make_catalog()
    with pytest.raises(fetch.IndexFetchError, match="Could not download sm_index") as refused:
        fetch.fetch_index(catalog, "sm_index")
    assert "IDC_MCP_INDEX_DIR" in str(refused.value)
    assert_nothing_cached(catalog, "sm_index")


def test_file_with_another_schema_is_refused(server, data, make_catalog):
    # seg_index's file offered as sm_index: readable parquet, wrong columns.
    server.add_file("release/sm_index.parquet", data["seg_index"].read_bytes())
    catalog = make_catalog()
    with pytest.raises(fetch.IndexFetchError, match="columns do not match") as refused:
        fetch.fetch_index(catalog, "sm_index")
    assert "ContainerIdentifier" in str(refused.value) and "SegmentationType" in str(refused.value)
    assert_nothing_cached(catalog, "sm_index")


@pytest.mark.parametrize("status", [404, 500])
def test_http_errors_are_explained(server, make_catalog, status):
    server.routes["/release/sm_index.parquet"] = Route(status=status)
    catalog = make_catalog()
    with pytest.raises(fetch.IndexFetchError, match=f"HTTP {status}") as refused:
        fetch.fetch_index(catalog, "sm_index")
    assert f"{server.base}/release/sm_index.parquet" in str(refused.value)
    assert_nothing_cached(catalog, "sm_index")


def test_connection_refused_says_what_was_tried_and_how_to_work_offline(env, make_catalog, monkeypatch):
    base = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("IDC_MCP_INDEX_BASE_URL", base)
    catalog = make_catalog()
    with pytest.raises(fetch.IndexFetchError) as refused:
        fetch.fetch_index(catalog, "sm_index")
    text = str(refused.value)
    assert base in text and "cannot connect" in text
    assert "IDC_MCP_INDEX_DIR" in text and f"releases/download/{VERSION}/sm_index.parquet" in text
    assert_nothing_cached(catalog, "sm_index")


def test_silent_server_times_out_instead_of_hanging(server, data, make_catalog, monkeypatch):
    publish(server, data, "sm_index")
    server.routes["/release/sm_index.parquet"] = Route(hang=True)
    monkeypatch.setenv("IDC_MCP_FETCH_TIMEOUT", "0.3")
    catalog = make_catalog()
    with pytest.raises(fetch.IndexFetchError, match=r"no answer within 0.3 s"):
        fetch.fetch_index(catalog, "sm_index")
    assert_nothing_cached(catalog, "sm_index")


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "/tmp/sm_index.parquet",
        "https://example.org/sm_index.parquet",
        "sm_index.parquet",
        "sm_index/../ct_index",
        "~/sm_index",
        "",
    ],
)
def test_paths_and_urls_are_refused_as_index_names(server, make_catalog, name):
    with pytest.raises(fetch.IndexFetchError, match="never a path or URL"):
        fetch.fetch_index(make_catalog(), name)
    assert sum(server.hits.values()) == 0


def test_unknown_index_name_gets_the_nearest_names(server, make_catalog):
    with pytest.raises(fetch.IndexFetchError, match="Did you mean 'sm_index'"):
        fetch.fetch_index(make_catalog(), "sm_indx")
    with pytest.raises(fetch.IndexFetchError, match=r'fetch_index\("clinical_index"\)'):
        fetch.fetch_index(make_catalog(), "clinical_tcga_brca")
    assert sum(server.hits.values()) == 0


def test_bundled_tables_need_no_fetch(server, make_catalog):
    result = fetch.fetch_index(make_catalog(), "collections_index")
    assert result.status == "bundled" and sum(server.hits.values()) == 0


# ---------------------------------------------------------------------------------------------- diagnostics
def test_query_on_a_known_index_that_is_not_installed_names_the_fetch_call(server, make_catalog):
    with pytest.raises(query.QueryError) as refused:
        query.run_query(make_catalog(), "SELECT * FROM sm_index JOIN index USING (SeriesInstanceUID)")
    assert "'sm_index'" in str(refused.value) and 'fetch_index("sm_index")' in str(refused.value)


def test_column_of_a_missing_index_used_on_index_points_to_that_index(server, make_catalog):
    with pytest.raises(query.QueryError) as refused:
        query.run_query(make_catalog(), "SELECT ObjectiveLensPower FROM index")
    text = str(refused.value)
    assert "sm_index.ObjectiveLensPower exists (join on SeriesInstanceUID)" in text
    assert 'fetch_index("sm_index")' in text


def test_list_tables_shows_install_state_and_how_to_install_for_every_index(server, make_catalog):
    listed = {t.name: t for t in tables.list_tables(make_catalog())}
    for name in fetch.fetchable():
        assert not listed[name].installed
        assert listed[name].how_to_install == f'fetch_index("{name}")'
        # No listing was ever seen and nothing was fetched: the size is honestly unknown.
        assert listed[name].size_bytes is None and listed[name].size == "unknown until fetched"
    assert listed["index"].installed and listed["index"].how_to_install is None


# ---------------------------------------------------------------------------------------------- clinical
def test_clinical_index_brings_the_clinical_tables(server, data, make_catalog):
    publish_clinical(server, data)
    catalog = make_catalog()
    result = fetch.fetch_index(catalog, "clinical_index")
    short = data.clinical.short_table_name
    table = f"clinical_{short}"
    assert result.tables == ["clinical_index", table], result.notes

    (expected,) = independent(
        "SELECT count(DISTINCT i.SeriesInstanceUID) FROM read_parquet($1) c "
        "JOIN read_parquet($2) i ON i.PatientID = c.dicom_patient_id WHERE c.vital_status = 'Alive'",
        [str(next(p for k, p in data.items() if k.startswith("s3:"))), INDEX_PARQUET],
    )
    got = query.run_query(
        catalog,
        f"SELECT count(DISTINCT i.SeriesInstanceUID) AS n FROM {table} c "
        "JOIN index i ON i.PatientID = c.dicom_patient_id WHERE c.vital_status = 'Alive'",
    )
    assert got.rows[0]["n"] == expected[0] > 0

    described = tables.profile(catalog, table)
    labels = {c.name: c.description for c in described.columns}
    assert labels["age_at_diagnosis"] == "Age at diagnosis (years)"
    listed = {t.name: t for t in tables.list_tables(catalog)}
    assert listed[table].installed and listed[table].row_count == data.clinical.patients
    assert short in listed[table].description


def _clinical_in_moto(server, data, s3_mirror, monkeypatch, endpoint: str) -> None:
    """clinical_index from the release server, the clinical objects in the local moto S3 at `endpoint`."""
    publish(server, data, "clinical_index")
    add_public_bucket(s3_mirror, "idc-open-metadata", clinical_objects(data))
    monkeypatch.setenv("IDC_MCP_S3_ENDPOINT_URL", endpoint)


def test_clinical_tables_come_through_the_one_s3_client_from_a_real_s3_server(
    server, data, make_catalog, s3_mirror, monkeypatch
):
    _clinical_in_moto(server, data, s3_mirror, monkeypatch, s3_mirror.endpoint)
    catalog = make_catalog()
    result = fetch.fetch_index(catalog, "clinical_index")
    table = f"clinical_{data.clinical.short_table_name}"
    assert result.tables == ["clinical_index", table], result.notes
    assert (
        query.run_query(catalog, f"SELECT count(*) AS n FROM {table}").rows[0]["n"] == data.clinical.patients
    )
    assert "/idc-open-metadata" not in server.hits  # nothing was asked of the hand-made bucket


def test_clinical_listing_and_objects_are_retried_when_the_store_fails_for_a_while(
    server, data, make_catalog, s3_mirror, fault_proxy, monkeypatch
):
    # Regression: the listing was parsed by hand over urllib and one 5xx reply lost the clinical tables.
    _clinical_in_moto(server, data, s3_mirror, monkeypatch, fault_proxy.endpoint)
    fault_proxy.fail_next(2)  # the listing, then its retry; the third attempt and the objects go through
    result = fetch.fetch_index(make_catalog(), "clinical_index")
    assert f"clinical_{data.clinical.short_table_name}" in result.tables, result.notes
    assert fault_proxy.failures_served == 2


def test_clinical_tables_are_given_up_with_a_retry_note_when_the_store_keeps_failing(
    server, data, make_catalog, s3_mirror, fault_proxy, monkeypatch
):
    _clinical_in_moto(server, data, s3_mirror, monkeypatch, fault_proxy.endpoint)
    fault_proxy.fail_next(100)
    catalog = make_catalog()
    result = fetch.fetch_index(catalog, "clinical_index")
    assert result.tables == ["clinical_index"] and catalog.is_installed("clinical_index")
    assert any("HTTP 500" in n and "after 3 attempts" in n and "again" in n for n in result.notes), (
        result.notes
    )
    assert fault_proxy.failures_served == 3
    assert not (fetch.index_folder(catalog.settings) / "clinical.duckdb").exists()


def test_clinical_listing_is_followed_across_pages(server, data, make_catalog):
    objects = clinical_objects(data)
    ((key, body),) = objects.items()
    # A second table in another shard folder, so that the listing has more than one page.
    extra_key = key.replace(f"/{data.clinical.short_table_name}/", "/followup_clinical/")
    objects[extra_key] = body
    publish(server, data, "clinical_index")
    server.add_bucket("idc-open-metadata", objects, page_size=1)
    catalog = make_catalog()
    result = fetch.fetch_index(catalog, "clinical_index")
    assert "clinical_followup_clinical" in result.tables and server.hits["/idc-open-metadata"] == 2


def test_clinical_object_failing_its_md5_is_not_installed(server, data, make_catalog):
    publish_clinical(server, data, bad_etag=frozenset(clinical_objects(data)))
    catalog = make_catalog()
    result = fetch.fetch_index(catalog, "clinical_index")
    assert result.tables == ["clinical_index"]
    assert any("failed its checksum: md5" in n for n in result.notes)
    folder = fetch.index_folder(catalog.settings)
    assert not (folder / "clinical.duckdb").exists() and not list(folder.glob(".clinical.*.parts"))


def test_clinical_tables_from_index_dir(env, data, make_catalog, monkeypatch, tmp_path):
    offline = tmp_path / "offline"
    (offline / "clinical_data").mkdir(parents=True)
    shutil.copy(data["clinical_index"], offline / "clinical_index.parquet")
    for key, path in data.items():
        if key.startswith("s3:"):
            target = offline / "clinical_data" / path.parent.name / path.name
            target.parent.mkdir()
            shutil.copy(path, target)
    monkeypatch.setenv("IDC_MCP_INDEX_DIR", str(offline))
    monkeypatch.setenv("IDC_MCP_S3_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    catalog = make_catalog()
    result = fetch.fetch_index(catalog, "clinical_index")
    assert f"clinical_{data.clinical.short_table_name}" in result.tables


def test_query_on_clinical_table_before_clinical_index_says_fetch_clinical_index(server, make_catalog):
    with pytest.raises(query.QueryError, match=r'fetch_index\("clinical_index"\)'):
        query.run_query(make_catalog(), "SELECT * FROM clinical_tcga_brca_clinical")


def test_failed_clinical_tables_leave_clinical_index_installed_with_a_retry_note(server, data, make_catalog):
    publish(server, data, "clinical_index")  # no bucket: the listing answers 404
    catalog = make_catalog()
    result = fetch.fetch_index(catalog, "clinical_index")
    assert result.tables == ["clinical_index"] and catalog.is_installed("clinical_index")
    assert any("HTTP 404" in n and 'fetch_index("clinical_index") again' in n for n in result.notes)
    assert not (fetch.index_folder(catalog.settings) / "clinical.duckdb").exists()


# ---------------------------------------------------------------------------------------------- MCP and CLI
@pytest.mark.anyio
async def test_fetch_index_tool_reports_progress_and_registers(server, data, make_catalog, monkeypatch):
    from tests.servers import server_with

    publish(server, data, "sm_index")
    catalog = make_catalog()
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async with Client(server_with(catalog.settings, catalog)) as client:
        result = await client.call_tool("fetch_index", {"name": "sm_index"}, progress_callback=on_progress)
        assert not result.is_error, result.content
        assert result.structured_content["status"] == "fetched"
        assert updates and any(m and "downloading" in m for _, _, m in updates)
        rows = await client.call_tool("query", {"sql": "SELECT count(*) AS n FROM sm_index"})
        assert rows.structured_content["rows"] == [{"n": 40}]
        refused = await client.call_tool("fetch_index", {"name": "../sm_index"})
        assert refused.is_error and "never a path or URL" in refused.content[0].text


def test_cli_fetch_index(server, data, make_catalog, capsys):
    publish(server, data, "seg_index")
    assert cli.main(["fetch-index", "seg_index"]) == 0
    out = capsys.readouterr().out
    assert "seg_index: fetched, 40 rows" in out
    assert cli.main(["fetch-index", "/etc/passwd"]) == 1
    assert "never a path or URL" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- pieces
def test_release_listing_parser_keeps_only_well_formed_assets():
    listing = {
        "assets": [
            {"name": "sm_index.parquet", "size": 12, "digest": "sha256:" + "AB" * 32},
            {"name": "seg_index.parquet", "size": "12", "digest": "md5:00"},
            {"size": 3},
            "junk",
        ]
    }
    assert fetch.parse_release_assets(listing) == {
        "sm_index.parquet": {"size": 12, "sha256": "ab" * 32},
        "seg_index.parquet": {"size": None, "sha256": None},
    }
    assert fetch.parse_release_assets(["not", "a", "release"]) == {}


def test_clinical_table_names_are_plain_identifiers_that_never_shadow_an_index():
    from idc_mcp.indices.clinical import table_name

    assert table_name("tcga_brca_clinical") == "clinical_tcga_brca_clinical"
    assert table_name("TCGA-BRCA Clinical") == "clinical_tcga_brca_clinical"
    assert table_name("../../etc") == "clinical_etc"
    assert table_name("index") is None  # would be clinical_index
    assert table_name("---") is None


def test_clinical_bucket_is_addressed_virtual_hosted_on_aws_and_path_style_on_mirrors(env, monkeypatch):
    from idc_mcp.indices.clinical import bucket_url

    monkeypatch.delenv("IDC_MCP_S3_ENDPOINT_URL", raising=False)
    assert bucket_url(load_settings()) == "https://idc-open-metadata.s3.amazonaws.com"
    monkeypatch.setenv("IDC_MCP_S3_ENDPOINT_URL", "http://127.0.0.1:9000/")
    assert bucket_url(load_settings()) == "http://127.0.0.1:9000/idc-open-metadata"


def test_synthetic_derived_series_point_at_image_series_of_their_own_study(data):
    # The documentation's joins return rows only if the test data is shaped like IDC's: checked here with
    # plain DuckDB over the synthetic files and the bundled index, not through our catalog.
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(
        "CREATE TABLE idx AS SELECT SeriesInstanceUID, StudyInstanceUID, Modality FROM read_parquet(?)",
        [INDEX_PARQUET],
    )
    for name, column in (
        ("seg_index", "segmented_SeriesInstanceUID"),
        ("rtstruct_index", "referenced_SeriesInstanceUID"),
        ("ann_index", "referenced_SeriesInstanceUID"),
    ):
        (rows, pointing, same_study) = con.execute(
            f"SELECT count(*), count(d.{column}), count(*) FILTER (WHERE src.StudyInstanceUID = "
            "own.StudyInstanceUID AND src.Modality IN ('CT', 'MR', 'PT', 'SM')) FROM read_parquet(?) d "
            f"JOIN idx own USING (SeriesInstanceUID) LEFT JOIN idx src ON src.SeriesInstanceUID = d.{column}",
            [str(data[name])],
        ).fetchone()
        assert rows == 40 and same_study == pointing >= 39, name
    # Some of the segmented images are described in ct_index too (seg_index -> index -> ct_index joins).
    (both,) = con.execute(
        "SELECT count(*) FROM read_parquet($1) s JOIN read_parquet($2) c "
        "ON c.SeriesInstanceUID = s.segmented_SeriesInstanceUID",
        [str(data["seg_index"]), str(data["ct_index"])],
    ).fetchone()
    con.close()
    assert both > 0


def test_clinical_tables_stop_at_the_fetch_deadline_even_inside_a_trickling_object(
    server, data, make_catalog, s3_mirror, fault_proxy, monkeypatch
):
    # A store that keeps sending a few bytes never trips the per-read timeout: without the whole
    # fetch's deadline reaching the S3 reads, fetch_index("clinical_index") could run for hours.
    objects = clinical_objects(data)
    ((key, _),) = objects.items()
    big = os.urandom(256 * 1024)  # listed after the real table; never converted (the fetch stops first)
    objects[key.replace(f"/{data.clinical.short_table_name}/", "/zz_large_table/")] = big
    publish(server, data, "clinical_index")
    add_public_bucket(s3_mirror, "idc-open-metadata", objects)
    monkeypatch.setenv("IDC_MCP_S3_ENDPOINT_URL", fault_proxy.endpoint)
    monkeypatch.setenv("IDC_MCP_FETCH_DEADLINE", "3")
    fault_proxy.rate_bytes_per_s = 16_384  # the large object would take 16 s
    catalog = make_catalog()
    result = fetch.fetch_index(catalog, "clinical_index")
    assert result.tables == ["clinical_index"] and catalog.is_installed("clinical_index")
    assert any("IDC_MCP_FETCH_DEADLINE (3 s" in n and "again" in n for n in result.notes), result.notes
    # The large object's read was stopped mid-body: its connection was shut, not read to the end.
    assert fault_proxy.body_abandoned.wait(30) and fault_proxy.body_bytes_sent < len(big)
    folder = fetch.index_folder(catalog.settings)
    assert not (folder / "clinical.duckdb").exists() and not list(folder.glob(".clinical.*.parts"))
