"""Attacks on the download side (download, estimate_size, export_manifest), each named for what it stops.

Everything goes through the MCP tools in memory, against local mirrors only: the moto S3 server of
tests/s3_fixture.py, or a fake S3 bucket served by tests/index_server.py when a test must change the
store's content. Grouped by the class of issue 16 it holds against.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client

from idc_mcp.download import bounds, s3, service
from idc_mcp.download.engine import Options
from idc_mcp.files import safe_component
from tests.huge_store import HugeStore, serve_huge_store
from tests.index_server import IndexServer, serve_indices
from tests.parquet import truth
from tests.servers import server_from_environment

pytestmark = pytest.mark.anyio


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    monkeypatch.setenv("IDC_MCP_DOWNLOAD_ROOT", str(folder))
    return folder


async def call(tool: str, arguments: dict) -> tuple[bool, str]:
    """(is_error, text of the reply) of one tool call."""
    async with Client(server_from_environment()) as client:
        result = await client.call_tool(tool, arguments)
    return result.is_error, result.content[0].text if result.content else ""


async def download(arguments: dict) -> dict:
    """The structured result of a download call that must succeed."""
    async with Client(server_from_environment()) as client:
        result = await client.call_tool("download", arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


@pytest.fixture
def mirrored(s3_mirror, monkeypatch) -> list[str]:
    """The SeriesInstanceUIDs of the moto mirror, which the tools now download from."""
    monkeypatch.setenv("IDC_MCP_S3_ENDPOINT_URL", s3_mirror.endpoint)
    return [s.uid for s in s3_mirror.series]


@pytest.fixture
def fake_store(s3_mirror, monkeypatch) -> Iterator[IndexServer]:
    """A loopback S3 endpoint of our own (tests/index_server.py), whose objects a test may set and change:
    the tools download from it."""
    with serve_indices() as server:
        monkeypatch.setenv("IDC_MCP_S3_ENDPOINT_URL", server.base)
        yield server


def put_series(store: IndexServer, series, objects: dict[str, bytes]) -> None:
    """Serve `objects` (name -> bytes) as the whole content of a real series' prefix."""
    store.add_bucket(series.bucket, {f"{series.crdc_series_uuid}/{k}": v for k, v in objects.items()})


# -- paths are never echoed resolved; inputs are echoed cut ------------------------------------------
async def test_proc_fd_probe_does_not_reveal_where_an_open_file_is(root, tmp_path):
    secret = tmp_path / "secret-location-4711"
    secret.mkdir()
    with open(secret / "server.log", "w") as handle:
        probe = f"/proc/self/fd/{handle.fileno()}"
        for tool in ("estimate_size", "download"):
            is_error, text = await call(tool, {"collection_ids": ["rider_pilot"], "download_dir": probe})
            assert is_error and "outside the download root" in text
            assert "secret-location-4711" not in text and probe in text


@pytest.mark.parametrize("probe", ["/proc/self/cwd", "/proc/self/exe", "/proc/self/root/etc"])
async def test_proc_self_links_do_not_reveal_their_targets(root, probe):
    target = os.path.realpath(probe)
    is_error, text = await call("estimate_size", {"collection_ids": ["rider_pilot"], "download_dir": probe})
    assert is_error and f"{target!r}" not in text and f"to {target}" not in text


async def test_symlink_planted_in_the_root_does_not_reveal_its_target(root, tmp_path):
    (root / "link").symlink_to(tmp_path / "hidden-target-0815")
    is_error, text = await call("estimate_size", {"collection_ids": ["rider_pilot"], "download_dir": "link"})
    assert is_error and "hidden-target-0815" not in text


async def test_a_megabyte_input_is_echoed_cut(root):
    huge = "x" * 1_000_000
    for tool, arguments in (
        ("estimate_size", {"collection_ids": ["rider_pilot"], "download_dir": "../" + huge}),
        ("download", {"collection_ids": ["rider_pilot"], "dir_template": huge, "dry_run": True}),
        ("export_manifest", {"collection_ids": ["rider_pilot"], "path": "../" + huge}),
        ("fetch_index", {"name": huge}),
        ("query", {"sql": "SELECT 1", huge: 1}),  # an argument name the tool does not have
    ):
        is_error, text = await call(tool, arguments)
        assert is_error and len(text) < 2_000, (tool, len(text))
        assert "1,000,0" in text  # says how long the input was


# -- hostile paths and templates get our own clear errors --------------------------------------------
@pytest.mark.parametrize(
    ("download_dir", "rule"),
    [
        ("a" * 300, "longer than 255 bytes"),
        ("/".join(["b" * 200] * 30), "longer than 1024 characters"),
        ("/proc/1/cwd", "cannot be resolved"),
    ],
)
async def test_unresolvable_download_dirs_are_clear_errors(root, download_dir, rule):
    for tool, extra in (("estimate_size", {}), ("download", {"dry_run": True})):
        is_error, text = await call(
            tool, {"collection_ids": ["rider_pilot"], "download_dir": download_dir, **extra}
        )
        assert is_error and rule in text, text
    assert list(root.iterdir()) == []


async def test_a_template_thousands_of_folders_deep_is_a_clear_error(root):
    is_error, text = await call(
        "download", {"collection_ids": ["rider_pilot"], "dir_template": "%Modality/" * 1500, "dry_run": True}
    )
    assert is_error and "too long or too deep" in text
    assert list(root.iterdir()) == []


# -- export_manifest: folders and engine-managed files -----------------------------------------------
@pytest.mark.parametrize("path", ["manifests/.", "manifests/./", "manifests/..", "."])
async def test_export_manifest_refuses_a_path_naming_a_folder(root, path):
    is_error, text = await call("export_manifest", {"collection_ids": ["rider_pilot"], "path": path})
    assert is_error and ("folder" in text or "'..'" in text)
    assert not (root / "manifests").is_file() and not (root / "manifests").exists()


# -- completeness is verified, never taken from the size ---------------------------------------------
@pytest.mark.parametrize("state_file", ["kept", "removed"])
async def test_same_size_content_over_a_data_file_is_fetched_again(mirrored, root, state_file):
    await download({"series_uids": mirrored, "download_dir": "d"})
    victim = sorted((root / "d").rglob("*.dcm"))[0]
    original = victim.read_bytes()
    victim.write_bytes(b"# IDC s5cmd manifest: 1 series".ljust(len(original), b"#"))
    if state_file == "removed":
        (root / "d" / ".idc-mcp-state.json").unlink()
    again = await download({"series_uids": mirrored, "download_dir": "d"})
    assert again["files_downloaded"] == 1 and victim.read_bytes() == original


async def test_a_same_size_file_renamed_onto_a_data_file_is_fetched_again(mirrored, root):
    await download({"series_uids": mirrored, "download_dir": "d"})
    first, second = sorted((root / "d").rglob("*.dcm"))[:2]
    original = first.read_bytes()
    impostor = first.with_name("impostor")
    impostor.write_bytes(bytes(len(original)))
    os.replace(impostor, first)
    again = await download({"series_uids": mirrored, "download_dir": "d"})
    assert again["files_downloaded"] == 1 and first.read_bytes() == original


async def test_export_manifest_refuses_to_overwrite_files_the_download_engine_manages(mirrored, root):
    await download({"series_uids": mirrored, "download_dir": "d"})
    dest = root / "d"
    managed = [
        sorted(dest.rglob("*.dcm"))[0],
        next(dest.glob("LICENSE_*.txt")),
        next(dest.glob("CITATION_*.txt")),
        next(dest.glob("idc_manifest_*.csv")),
        dest / ".idc-mcp-state.json",
    ]
    before = {p: p.read_bytes() for p in managed}
    for path in managed:
        for fmt in ("s5cmd", "csv"):
            is_error, text = await call(
                "export_manifest",
                {"series_uids": mirrored[:1], "format": fmt, "path": str(path.relative_to(root))},
            )
            assert is_error and ("did not write" in text or "keeps for its own files" in text), text
    assert {p: p.read_bytes() for p in managed} == before
    again = await download({"series_uids": mirrored, "download_dir": "d"})
    assert again["files_downloaded"] == 0


# -- data never shares a name with our own files ------------------------------------------------------
async def test_objects_named_like_our_sidecars_are_renamed_and_never_overwritten(s3_mirror, fake_store, root):
    series = s3_mirror.series[0]
    collection = safe_component(series.collection_id)
    hostile = {
        f"LICENSE_{collection}.txt": b"object pretending to be the license",
        f"citation_{collection}.TXT": b"object pretending to be the citation",
        "idc_manifest_000000000000.csv": b"object pretending to be a manifest",
        "a.dcm": b"DICM" * 100,
    }
    put_series(fake_store, series, hostile)
    first = await download({"series_uids": [series.uid], "download_dir": "flat", "dir_template": ""})
    dest = root / "flat"
    assert len(first["renamed_files"]) == 3 and "object_" in first["next_step"]
    for name, data in hostile.items():
        stored = dest / (name if name == "a.dcm" else f"object_{name}")
        assert stored.read_bytes() == data
    assert (dest / f"LICENSE_{collection}.txt").read_text().startswith("Licenses of the IDC data")
    again = await download({"series_uids": [series.uid], "download_dir": "flat", "dir_template": ""})
    assert again["files_downloaded"] == 0 and again["files_skipped"] == len(hostile)
    assert (dest / f"LICENSE_{collection}.txt").read_text().startswith("Licenses of the IDC data")
    assert all((dest / f"object_{n}").read_bytes() == d for n, d in hostile.items() if n != "a.dcm")


# -- concurrent downloads into one folder ------------------------------------------------------------
def series_folder(root: Path, series) -> Path:
    return (
        root / series.collection_id / series.patient_id / series.study_uid / f"{series.modality}_{series.uid}"
    )


async def test_a_download_leaves_the_temporaries_of_a_running_download_alone(s3_mirror, mirrored, root):
    series = s3_mirror.series[0]
    folder = series_folder(root, series)
    folder.mkdir(parents=True)
    # A live process of its own (it waits on its stdin) stands for another server writing here.
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        theirs = folder / f".x.dcm.{other.pid}-{'a' * 12}{s3.TEMP_SUFFIX}"
        theirs.write_bytes(b"in flight")
        # One of our own fetches in flight: its token registered live, as s3.fetch does while it writes.
        token = "b" * 12
        ours = folder / f".y.dcm.x1y2z3w4{s3.temp_suffix(token)}"
        ours.write_bytes(b"in flight")
        with s3._LIVE_LOCK:
            s3._LIVE_TOKENS.add(token)
        try:
            await download({"series_uids": [series.uid]})
            assert theirs.read_bytes() == ours.read_bytes() == b"in flight"
        finally:
            with s3._LIVE_LOCK:
                s3._LIVE_TOKENS.discard(token)
    finally:
        other.communicate(b"")
    # Once their writers are gone, the temporaries are left-overs and the next run removes them.
    (next(folder.glob("*.dcm"))).unlink()
    await download({"series_uids": [series.uid]})
    assert not theirs.exists() and not ours.exists()


async def test_three_identical_downloads_at_once_all_succeed(s3_mirror, fault_proxy, root, monkeypatch):
    fault_proxy.rate_bytes_per_s = 200_000  # slow enough that the three calls overlap
    monkeypatch.setenv("IDC_MCP_S3_ENDPOINT_URL", fault_proxy.endpoint)
    uids = [s.uid for s in s3_mirror.series]
    replies: list = []

    async def one(client: Client) -> None:
        replies.append(await client.call_tool("download", {"series_uids": uids, "download_dir": "same"}))

    async with Client(server_from_environment()) as client:
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(one, client)
    assert [r.is_error for r in replies] == [False] * 3, [r.content[0].text for r in replies if r.is_error]
    files = {p.name: p.read_bytes() for p in (root / "same").rglob("*.dcm")}
    assert files == {k.split("/")[-1]: d for s in s3_mirror.series for k, d in s.objects.items()}
    assert [p for p in root.rglob("*") if p.name.endswith(s3.TEMP_SUFFIX)] == []


# -- the listing cache heals ---------------------------------------------------------------------------
async def test_after_an_object_changes_size_the_next_call_succeeds(s3_mirror, fake_store, root, monkeypatch):
    fast = s3.RetryPolicy(attempts=2, base_delay_s=0.01, max_delay_s=0.02)
    monkeypatch.setattr(service, "options_from", lambda cfg: Options(cfg.s3_endpoint_url, retry=fast))
    series = s3_mirror.series[0]
    put_series(fake_store, series, {"a.dcm": b"A" * 400})
    await download({"series_uids": [series.uid], "download_dir": "first"})
    put_series(fake_store, series, {"a.dcm": b"B" * 600})  # the store changed under the same key
    is_error, text = await call("download", {"series_uids": [series.uid], "download_dir": "second"})
    assert is_error and "call download again" in text
    again = await download({"series_uids": [series.uid], "download_dir": "second"})
    assert again["files_downloaded"] == 1
    assert next((root / "second").rglob("a.dcm")).read_bytes() == b"B" * 600


# -- listings are bounded: a dry run answers from a sample, a download refuses what one call cannot hold ----
LARGE = "ldct_and_projection_data"  # 698 series, 8,044,937 files in the index this was written against


@pytest.fixture
def huge_store(monkeypatch) -> Iterator[HugeStore]:
    """The large collection mirrored with its real instance counts (listings computed on request)."""
    with serve_huge_store() as store:
        rows = truth(
            "SELECT aws_bucket, crdc_series_uuid, instanceCount FROM {index} WHERE collection_id = ?", [LARGE]
        )
        store.counts = {f"{bucket}/{uuid}/": n for bucket, uuid, n in rows}
        monkeypatch.setenv("IDC_MCP_S3_ENDPOINT_URL", store.base)
        yield store


def index_figures(collection: str) -> tuple[int, int, int]:
    """(series, files, bytes) of a collection by the index."""
    ((series, files, size_mb),) = truth(
        "SELECT count(*), sum(instanceCount), sum(series_size_MB) FROM {index} WHERE collection_id = ?",
        [collection],
    )
    return series, int(files), size_mb


async def test_dry_run_of_eight_million_objects_lists_a_bounded_sample(huge_store, root):
    series, files, _ = index_figures(LARGE)
    result = await download({"collection_ids": [LARGE], "dry_run": True})
    assert result["series_count"] == series and result["files_total"] == files
    assert 0 < result["series_estimated"] < series
    assert "index's figures" in result["next_step"] and "Split it" in result["next_step"]
    # The store was asked for a sample only (one page of overshoot at most per series listed).
    listed = series - result["series_estimated"]
    assert huge_store.objects_listed <= bounds.DRY_RUN_MAX_LISTED + listed * 1000
    assert list(root.iterdir()) == []


async def test_a_dry_run_past_its_listing_time_answers_from_the_index(huge_store, root, monkeypatch):
    monkeypatch.setattr(bounds, "DRY_RUN_LIST_S", 0.0)  # the time is up before the first request
    series, files, size_mb = index_figures(LARGE)
    result = await download({"collection_ids": [LARGE], "dry_run": True})
    counts = (result["series_count"], result["series_estimated"], result["files_total"])
    assert counts == (series, series, files)
    assert abs(result["bytes_total"] - size_mb * 1e6) < series  # the index's sizes, rounded per series
    assert all(p["estimated"] for p in result["plan"]) and huge_store.requests == 0


async def test_download_beyond_one_call_is_refused_with_figures_before_any_listing(huge_store, root):
    series, files, _ = index_figures(LARGE)
    is_error, text = await call("download", {"collection_ids": [LARGE]})
    assert is_error and f"{series:,} series with {files:,} files" in text
    assert f"at most {bounds.MAX_OBJECTS_PER_CALL:,} files" in text and "first" in text
    assert huge_store.requests == 0 and list(root.iterdir()) == []


async def test_a_store_listing_more_than_the_index_says_is_cut(huge_store, root, monkeypatch):
    monkeypatch.setattr(bounds, "MAX_OBJECTS_PER_CALL", 2_500)
    uid, bucket, uuid = truth(
        "SELECT SeriesInstanceUID, aws_bucket, crdc_series_uuid FROM {index} WHERE instanceCount = 1 LIMIT 1"
    )[0]
    huge_store.counts[f"{bucket}/{uuid}/"] = 50_000  # the index says one file
    is_error, text = await call("download", {"series_uids": [uid]})
    assert is_error and "more than the index says" in text
    assert huge_store.objects_listed <= 2_500 + 1_000
