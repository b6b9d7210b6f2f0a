"""Download throughput: our engine vs the bare `s5cmd` binary (and idc-index), same local S3 mirror.

A moto S3 server runs in its own process on 127.0.0.1 and holds objects at IDC's layout for real
series of the bundled index: (a) hundreds of small files, (b) a few large ones, (c) the same large
files uploaded without a checksum (like IDC's older objects: the store keeps only the ETag, so we
check each body by its MD5, where the store's own CRC32 checks the others).

Target: our throughput >= the bare s5cmd binary's, for many small and for a few large files.
Both run alternately (order swapped every round) into empty folders, `--rounds` times after one untimed
warm-up each; the medians are compared. Ours is `engine.download` in this process as a running MCP
server calls it (its S3 client built once; remembered plans and listings forgotten before each run,
so every timed run resolves, plans, lists, checks free space, fetches, verifies and renames every file,
and writes provenance and the state file). s5cmd gets the bucket and prefix of each series (it cannot
read the index) and lists and copies them (`s5cmd run` of one `cp` per series), verifying nothing.

Then each complete download is rerun: idc-index with `use_s5cmd_sync=True`, s5cmd with `sync`, ours
three ways: in the same process (plan and listings remembered), with the engine's caches cleared (a new
process once the catalog is open: the state file `.idc-mcp-state.json` saves the listing), and as
`idc-mcp download` in a new Python process (adds interpreter start-up, imports and opening the catalog).
idc-index's `download_from_selection` (which runs s5cmd) is timed once per case (`--skip-idc-index`
leaves it out: it needs ~15 s and ~5 GB RAM to load).

Run: /work/venv/bin/python benchmarks/bench_download.py [--rounds 5] [--skip-idc-index]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from idc_mcp.catalog.database import get_catalog  # noqa: E402
from idc_mcp.download import engine, listing  # noqa: E402
from idc_mcp.tools.selection import Selection  # noqa: E402
from tests.s3_fixture import public_bucket  # noqa: E402

SMALL_BYTES = 64 * 1024
LARGE_BYTES = 48 * 1024 * 1024
_SMALL_SQL = (
    # ~450 small files: four 4d_lung CT series
    "SELECT SeriesInstanceUID, aws_bucket, crdc_series_uuid, instanceCount FROM index "
    "WHERE collection_id = '4d_lung' AND Modality = 'CT' AND instanceCount BETWEEN 100 AND 200 "
    "ORDER BY SeriesInstanceUID LIMIT 4"
)
_LARGE_SQL = (
    # 3 large files: single-instance breast tomosynthesis series in idc-open-data-cr
    "SELECT SeriesInstanceUID, aws_bucket, crdc_series_uuid, 1 FROM index "
    "WHERE collection_id = 'breast_cancer_screening_dbt' AND instanceCount = 1 "
    "ORDER BY SeriesInstanceUID LIMIT 3 OFFSET {offset}"
)
# name -> (series query, bytes per file, whether the store keeps a checksum of each object)
CASES = {
    "small files": (_SMALL_SQL, SMALL_BYTES, True),
    "large files": (_LARGE_SQL.format(offset=0), LARGE_BYTES, True),
    "large, MD5 only": (_LARGE_SQL.format(offset=3), LARGE_BYTES, False),
}
TARGET = 1.0  # throughput ours / s5cmd
PEER = "s5cmd binary alone"
OURS = "idc-mcp engine"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto_server did not start")


def populate(endpoint: str) -> dict[str, tuple[list[tuple], int, int]]:
    """Upload each case's objects; (rows of the series, files, bytes) per case."""

    def client(checksum: bool):  # type: ignore[no-untyped-def]
        # boto3 sends a CRC32 with each upload by default, which the store keeps and returns with the
        # object (as S3 does for new uploads); "when_required" uploads without one (IDC's older objects).
        config = Config(request_checksum_calculation="when_supported" if checksum else "when_required")
        return boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=config,
        )

    for bucket in ("idc-open-data", "idc-open-data-two", "idc-open-data-cr"):
        # Public read, like IDC's buckets: both engines send anonymous (unsigned) requests.
        public_bucket(client(True), bucket)
    catalog = get_catalog()
    out = {}
    for name, (sql, size, checksum) in CASES.items():
        s3 = client(checksum)
        rows = catalog.execute(sql).rows
        files = 0
        for _uid, bucket, series_uuid, count in rows:
            for _ in range(count):
                s3.put_object(
                    Bucket=bucket,
                    Key=f"{series_uuid}/{uuid.uuid4()}.dcm",
                    Body=os.urandom(size),
                    ACL="public-read",
                )
                files += 1
        out[name] = (rows, files, files * size)
    return out


def run_s5cmd(endpoint: str, op: str, rows: list[tuple], dest: Path) -> None:
    commands = dest.parent / f"{dest.name}_{op}.txt"
    commands.write_text("".join(f"{op} s3://{r[1]}/{r[2]}/* {dest}/{r[2]}/\n" for r in rows))
    exe = str(Path(sys.executable).with_name("s5cmd"))
    cmd = [exe, "--no-sign-request", "--endpoint-url", endpoint, "run", str(commands)]
    subprocess.run(cmd, check=True, capture_output=True)


def run_cli(endpoint: str, uids: list[str], root: Path) -> None:
    """`idc-mcp download` in a new Python process on a complete folder: must move nothing."""
    repo = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "idc_mcp", "--download-root", str(root), "--s3-endpoint-url", endpoint]
    cmd += ["download", "--no-progress", "--series-uids", *uids]
    env = dict(os.environ, PYTHONPATH=str(repo))
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=repo)
    result = json.loads(done.stdout)
    assert result["files_downloaded"] == 0 and result["files_skipped"] == result["files_total"], result


def startup_s() -> float:
    """What any new `idc-mcp download` process pays before downloading: interpreter, imports, catalog."""
    repo = Path(__file__).resolve().parents[1]
    code = (
        "import idc_mcp.cli, idc_mcp.download.cli, idc_mcp.download.service\n"
        "from idc_mcp.catalog.database import get_catalog\nget_catalog().execute('SELECT 1')"
    )
    env = dict(os.environ, PYTHONPATH=str(repo))
    return min(
        timed(lambda: subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=repo))
        for _ in range(3)
    )


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def tree_bytes(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*.dcm") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def forget_plans_and_listings() -> None:
    """What a new selection finds in a running server: no remembered plan or listing (the S3 client and
    the open catalog stay, as they do between calls)."""
    engine._PLANS.clear()
    listing.clear_listings()


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def alternate(
    engines: dict[str, Callable[[], Path]], rounds: int, expect: tuple[int, int]
) -> dict[str, list[float]]:
    """Time each engine `rounds` times, alternating (the order swapped every round) after one untimed
    warm-up each; every run's folder must hold exactly the expected files and bytes."""
    times: dict[str, list[float]] = {name: [] for name in engines}
    for run in engines.values():  # warm-up: our client is built, the store's objects are in cache
        shutil.rmtree(run(), ignore_errors=True)
    for r in range(rounds):
        for name in list(engines) if r % 2 == 0 else list(reversed(engines)):
            started = time.perf_counter()
            folder = engines[name]()
            times[name].append(time.perf_counter() - started)
            got = tree_bytes(folder)
            assert got == expect, f"{name}: {got[0]} files, {got[1]} B"
            shutil.rmtree(folder, ignore_errors=True)
    return times


def reruns(endpoint: str, catalog, rows: list[tuple], folder: Path, startup: float) -> str:  # type: ignore[no-untyped-def]
    """Both engines again on their complete downloads (in `folder`): they must move nothing."""
    uids = [r[0] for r in rows]
    opts = engine.Options(endpoint_url=endpoint)
    ours, theirs = folder / "ours", folder / "s5cmd"
    engine.download(catalog, Selection(series_uids=uids), ours, opts)
    run_s5cmd(endpoint, "cp", rows, theirs)
    s5_sync = timed(lambda: run_s5cmd(endpoint, "sync", rows, theirs))
    same = timed(lambda: engine.download(catalog, Selection(series_uids=uids), ours, opts))
    engine.clear_caches()
    cleared = timed(lambda: engine.download(catalog, Selection(series_uids=uids), ours, opts))
    cli = timed(lambda: run_cli(endpoint, uids, ours))
    # clear_caches dropped the S3 client: build it again (untimed) for the next timed runs.
    engine.download(catalog, Selection(series_uids=uids), folder / "again", opts)
    shutil.rmtree(folder, ignore_errors=True)
    return (
        f"rerun of the complete download: s5cmd sync {s5_sync:.3f} s; ours {same:.3f} s in the same process, "
        f"{cleared:.3f} s with caches cleared, {cli:.2f} s as a new CLI process "
        f"(start-up alone: {startup:.2f} s)"
    )


def idc_index_run(peer, uids: list[str], folder: Path, expect: tuple[int, int]) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """idc-index's download_from_selection once into an empty folder, then again with its sync mode."""
    folder.mkdir()

    def run(sync: bool) -> None:
        peer.download_from_selection(
            downloadDir=str(folder),
            seriesInstanceUID=uids,
            quiet=True,
            show_progress_bar=False,
            use_s5cmd_sync=sync,
        )

    first = timed(lambda: run(False))
    assert tree_bytes(folder) == expect
    return first, timed(lambda: run(True))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="timed runs per engine and case (medians)")
    parser.add_argument("--skip-idc-index", action="store_true", help="leave idc-index's call out")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    proc, endpoint = start_moto()
    work = Path(tempfile.mkdtemp(prefix="bench_download_"))
    print(f"cpus {os.cpu_count()}, load average {load_average()} (1, 5, 15 min) at start", flush=True)
    try:
        cases = populate(endpoint)
        peer = None
        if not args.skip_idc_index:
            print("loading idc-index…", file=sys.stderr)
            import idc_index

            idc_index.index.aws_endpoint_url = endpoint  # point it at the mirror, inside this script only
            peer = idc_index.IDCClient()
        catalog = get_catalog()
        opts = engine.Options(endpoint_url=endpoint)
        startup = startup_s()
        verdicts: list[str] = []
        folders = (work / f"run{i}" for i in range(1_000_000))
        for name, (rows, files, size) in cases.items():
            uids = [r[0] for r in rows]
            mb = size / 1e6

            def ours(uids: list[str] = uids) -> Path:
                folder = next(folders)
                forget_plans_and_listings()
                engine.download(catalog, Selection(series_uids=uids), folder, opts)
                return folder

            def s5cmd(rows: list[tuple] = rows) -> Path:
                folder = next(folders)
                run_s5cmd(endpoint, "cp", rows, folder)
                return folder

            times = alternate({PEER: s5cmd, OURS: ours}, args.rounds, (files, size))
            median = {e: statistics.median(t) for e, t in times.items()}
            ratio = median[PEER] / median[OURS]
            verdict = "met" if ratio >= TARGET else "NOT met"
            print(f"\n== {name}: {files} files, {mb:.1f} MB; {args.rounds} alternated rounds ==")
            for e, t in times.items():
                shown = " ".join(f"{x:.3f}" for x in t)
                print(f"{e:<22} median {median[e]:.3f} s = {mb / median[e]:7.1f} MB/s   (runs: {shown})")
            print(
                f"throughput ours / s5cmd = {ratio:.2f}x (target >= {TARGET:.1f}x: {verdict}); "
                f"load average {load_average()}"
            )
            verdicts.append(f"{name:<16} ours / s5cmd = {ratio:.2f}x  {verdict}")
            print(reruns(endpoint, catalog, rows, next(folders), startup))
            if peer is not None:
                first, rerun = idc_index_run(peer, uids, next(folders), (files, size))
                print(
                    f"idc-index download_from_selection: {first:.2f} s = {mb / first:.1f} MB/s (one run), "
                    f"rerun {rerun:.2f} s; ours is {first / median[OURS]:.1f}x faster"
                )
        print("\n== summary (target: throughput ours / bare s5cmd >= 1.0x) ==")
        print("\n".join(verdicts))
        print(f"load average {load_average()} at the end")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
