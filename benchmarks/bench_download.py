"""Download throughput: our engine vs idc-index's `download_from_selection` (s5cmd), same local S3 mirror.

A moto S3 server runs in its own process on 127.0.0.1 and holds objects at IDC's layout for real
series of the bundled index: (a) hundreds of small files, (b) a few large ones. Each engine downloads
the same selection into its own empty folder (one run each), then reruns it on the complete folder
(idc-index with `use_s5cmd_sync=True`, its resume mode). Prints seconds, MB/s and ratios.

Our rerun is timed three ways: in the same process (a running MCP server: plan and listings
remembered), with the engine's caches cleared (what a new process pays once the catalog is open: the
state file `.idc-mcp-state.json` saves the listing, its collection hints narrow the plan query), and as
`idc-mcp download` in a new Python process (adds interpreter start-up, imports and opening the catalog).

Run: /work/main/.venv/bin/python benchmarks/bench_download.py   (idc-index needs ~15 s and ~5 GB RAM to load)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from idc_mcp.catalog.database import get_catalog  # noqa: E402
from idc_mcp.download import engine  # noqa: E402
from idc_mcp.tools.selection import Selection  # noqa: E402
from tests.s3_fixture import public_bucket  # noqa: E402

SMALL_BYTES = 64 * 1024
LARGE_BYTES = 48 * 1024 * 1024
CASES = {
    # ~450 small files: four 4d_lung CT series
    "small files": (
        "SELECT SeriesInstanceUID, aws_bucket, crdc_series_uuid, instanceCount FROM index "
        "WHERE collection_id = '4d_lung' AND Modality = 'CT' AND instanceCount BETWEEN 100 AND 200 "
        "ORDER BY SeriesInstanceUID LIMIT 4",
        SMALL_BYTES,
    ),
    # 3 large files: single-instance breast tomosynthesis series in idc-open-data-cr
    "large files": (
        "SELECT SeriesInstanceUID, aws_bucket, crdc_series_uuid, 1 FROM index "
        "WHERE collection_id = 'breast_cancer_screening_dbt' AND instanceCount = 1 "
        "ORDER BY SeriesInstanceUID LIMIT 3",
        LARGE_BYTES,
    ),
}


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


def populate(endpoint: str) -> dict[str, tuple[list[str], int, int]]:
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    for bucket in ("idc-open-data", "idc-open-data-two", "idc-open-data-cr"):
        # Public read, like IDC's buckets: both engines send anonymous (unsigned) requests.
        public_bucket(s3, bucket)
    catalog = get_catalog()
    out = {}
    for name, (sql, size) in CASES.items():
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
        out[name] = ([r[0] for r in rows], files, files * size)
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


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def tree_bytes(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*.dcm") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main() -> None:
    logging.disable(logging.INFO)
    proc, endpoint = start_moto()
    work = Path(tempfile.mkdtemp(prefix="bench_download_"))
    try:
        cases = populate(endpoint)
        print("loading idc-index (peer)…", file=sys.stderr)
        import idc_index

        idc_index.index.aws_endpoint_url = endpoint  # point the peer at the mirror, inside this script only
        peer = idc_index.IDCClient()
        catalog = get_catalog()
        opts = engine.Options(endpoint_url=endpoint)
        head = ("case", "engine", "files", "MB", "first s", "MB/s", "rerun s", "rerun %")
        print("{:<12} {:<22} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8}".format(*head), flush=True)
        startup = startup_s()
        cold: dict[str, float] = {}
        cli: dict[str, float] = {}
        for name, (uids, files, size) in cases.items():
            ours_dir, peer_dir = work / f"ours_{name[0]}", work / f"peer_{name[0]}"
            peer_dir.mkdir()

            def run_ours(uids: list[str] = uids, ours_dir: Path = ours_dir) -> None:
                engine.download(catalog, Selection(series_uids=uids), ours_dir, opts)

            def run_peer(sync: bool, uids: list[str] = uids, peer_dir: Path = peer_dir) -> None:
                peer.download_from_selection(
                    downloadDir=str(peer_dir),
                    seriesInstanceUID=uids,
                    quiet=True,
                    show_progress_bar=False,
                    use_s5cmd_sync=sync,
                )

            results: dict[str, tuple[float, float, Path]] = {}
            results["idc-index (s5cmd)"] = (
                timed(lambda: run_peer(False)),
                timed(lambda: run_peer(True)),
                peer_dir,
            )
            # The bare s5cmd binary (what idc-index runs), same copies, without idc-index's own work;
            # its rerun uses `sync` (skips objects whose size and time match).
            raw_dir = work / f"s5cmd_{name[0]}"
            rows = catalog.execute(CASES[name][0]).rows
            results["s5cmd binary alone"] = (
                timed(lambda rows=rows, d=raw_dir: run_s5cmd(endpoint, "cp", rows, d)),
                timed(lambda rows=rows, d=raw_dir: run_s5cmd(endpoint, "sync", rows, d)),
                raw_dir,
            )
            results["idc-mcp (boto3 pool)"] = (timed(run_ours), timed(run_ours), ours_dir)
            # The rerun above is in the same process (as in a running MCP server: plans and listings
            # are remembered). From a fresh engine state, and from a new process through the CLI:
            engine.clear_caches()
            cold[name] = timed(run_ours)
            cli[name] = timed(lambda uids=uids, ours_dir=ours_dir: run_cli(endpoint, uids, ours_dir))
            for engine_name, (first, rerun, folder) in results.items():
                got_files, got_bytes = tree_bytes(folder)
                assert (got_files, got_bytes) == (files, size), (
                    f"{engine_name}: {got_files} files, {got_bytes} B"
                )
                mb = size / 1e6
                print(
                    f"{name:<12} {engine_name:<22} {files:>6} {mb:>8.1f} {first:>8.2f} {mb / first:>8.1f} "
                    f"{rerun:>8.2f} {100 * rerun / first:>7.1f}%"
                )
            (p_first, _, _), (o_first, o_rerun, _) = (
                results["idc-index (s5cmd)"],
                results["idc-mcp (boto3 pool)"],
            )
            print(
                f"{name:<12} throughput ratio idc-mcp/idc-index = {p_first / o_first:.2f}x; "
                f"idc-mcp rerun = {100 * o_rerun / o_first:.1f}% of its first run "
                f"; with caches cleared {cold[name]:.3f} s = {100 * cold[name] / o_first:.1f}%"
                f"; new CLI process {cli[name]:.2f} s = {100 * cli[name] / o_first:.1f}%"
                f" (start-up alone: {startup:.2f} s)"
            )
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
