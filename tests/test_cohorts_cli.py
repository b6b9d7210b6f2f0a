"""docs/cohorts.md's story at a terminal: save a cohort, share the file, a colleague reproduces the data.

Two download roots stand for two people; the colleague's `idc-mcp download --cohort` fetches from the
local S3 mirror (tests/s3_fixture.py) and must get exactly the saved series' objects.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from idc_mcp.cohorts import store

pytestmark = pytest.mark.slow  # starts command-line processes

ROOT = Path(__file__).resolve().parent.parent


def idc_mcp(*args: str, root: Path, endpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, IDC_MCP_DOWNLOAD_ROOT=str(root))
    if endpoint:
        env["IDC_MCP_S3_ENDPOINT_URL"] = endpoint
    return subprocess.run(
        [sys.executable, "-m", "idc_mcp", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_save_share_and_reproduce_at_the_terminal(tmp_path: Path, s3_mirror, built_catalog):
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    uids = [s.uid for s in s3_mirror.series]
    saved = idc_mcp(
        "cohort", "save", "shared", "--description", "for a colleague", "--series-uids", *uids, root=mine
    )
    assert saved.returncode == 0, saved.stderr
    assert json.loads(saved.stdout)["member_count"] == len(uids)
    again = idc_mcp("cohort", "save", "shared", "--series-uids", uids[0], root=mine)
    assert again.returncode == 1 and "overwrite=true" in again.stderr
    # Sharing is copying the file.
    (theirs / "cohorts").mkdir(parents=True)
    shutil.copy(store.path_of(mine, "shared"), theirs / "cohorts")
    listed = idc_mcp("cohort", "list", root=theirs)
    assert [c["name"] for c in json.loads(listed.stdout)["cohorts"]] == ["shared"]
    compared = idc_mcp("cohort", "compare", "shared", root=theirs)
    assert json.loads(compared.stdout)["unchanged"] == len(uids)
    got = idc_mcp(
        "download",
        "--cohort",
        "shared",
        "--download-dir",
        "data",
        "--no-progress",
        root=theirs,
        endpoint=s3_mirror.endpoint,
    )
    assert got.returncode == 0, got.stderr
    files = {p.name: p.read_bytes() for p in (theirs / "data").rglob("*.dcm")}
    assert files == {k.split("/")[-1]: d for s in s3_mirror.series for k, d in s.objects.items()}


def test_a_tampered_file_is_refused_at_the_terminal(tmp_path: Path, built_catalog):
    root = tmp_path / "root"
    (root / "cohorts").mkdir(parents=True)
    (root / "cohorts" / "x.cohort.json").write_text('{"format": "idc-mcp-cohort", "format_version": 7}')
    shown = idc_mcp("cohort", "show", "x", root=root)
    assert shown.returncode == 1 and "format_version 7; this idc-mcp reads version 1" in shown.stderr
    bad = idc_mcp("download", "--cohort", "../x", "--dry-run", root=root)
    assert bad.returncode == 1 and "is not allowed" in bad.stderr
