"""The test run never reads or writes the user's own cache or download folder (tests/isolation.py).

Before, the suite built its catalog in ~/.cache/idc-mcp and hard-linked it dozens of times, so a run's
result depended on what the machine had done before, and a server running beside the suite could break it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from idc_mcp.config import load_settings
from tests.isolation import user_folders

REPO = Path(__file__).resolve().parents[1]


def _is_inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def test_the_run_has_its_own_cache_and_download_root():
    settings = load_settings()
    run_tmp = Path(tempfile.gettempdir())
    for folder in (settings.cache_dir, settings.download_root):
        assert _is_inside(folder, run_tmp), folder
        assert not any(_is_inside(folder, user) for user in user_folders().values()), folder


def test_the_shared_catalog_lives_in_the_runs_cache(catalog):
    assert _is_inside(catalog.settings.version_cache_dir, load_settings().cache_dir)


def test_servers_started_by_tests_inherit_the_runs_cache():
    # Subprocess servers (stdio, HTTP) get os.environ: it must name the run's folders, never the user's.
    assert os.environ["IDC_MCP_CACHE_DIR"] == str(load_settings().cache_dir)
    assert os.environ["IDC_MCP_DOWNLOAD_ROOT"] == str(load_settings().download_root)


def _run_inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, body: str) -> pytest.RunResult:
    home = pytester.path / "home"
    (home / ".cache" / "idc-mcp" / "25.0.5").mkdir(parents=True)
    (home / ".cache" / "idc-mcp" / "25.0.5" / "catalog-v1.duckdb").write_text("the user's catalog")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makepyfile(test_inner=body)
    return pytester.runpytest_subprocess("-p", "tests.isolation", "-p", "no:cacheprovider")


def test_a_run_that_writes_into_the_users_cache_fails(pytester, monkeypatch):
    result = _run_inner(
        pytester,
        monkeypatch,
        """
import os
from pathlib import Path

def test_leaks_a_hard_link():
    version = Path.home() / ".cache" / "idc-mcp" / "25.0.5"
    os.link(version / "catalog-v1.duckdb", version / "linked.duckdb")
""",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*ISOLATION FAILURE*cache*added 25.0.5/linked.duckdb*"])


def test_a_run_that_leaves_the_users_folders_alone_passes(pytester, monkeypatch):
    result = _run_inner(
        pytester,
        monkeypatch,
        """
import os

def test_uses_the_runs_cache():
    assert "idc-mcp-test-run-" in os.environ["IDC_MCP_CACHE_DIR"]
""",
    )
    assert result.ret == pytest.ExitCode.OK
    assert "ISOLATION FAILURE" not in result.stdout.str()
