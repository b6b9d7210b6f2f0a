"""Keep the test run away from the user's own files (a pytest plugin, loaded by conftest.py).

The suite gets one cache folder and one download root of its own for the whole run: the catalog is built
there once and shared by every test (and by the servers the tests start, which inherit the environment).
The user's cache (`~/.cache/idc-mcp`) and download root (`~/idc-mcp-downloads`) are fingerprinted when the
run starts and checked when it ends: a run that changed either fails, naming what changed. Inherited
IDC_MCP_* variables are dropped so that the machine's own configuration cannot change a result (except
IDC_MCP_TEST_*, which configure the tests themselves).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

Fingerprint = tuple[tuple[str, int, int, int, int], ...] | None


def user_folders() -> dict[str, Path]:
    """The folders the product uses by default, which a test run must leave as they are."""
    home = Path.home()
    return {"cache": home / ".cache" / "idc-mcp", "download root": home / "idc-mcp-downloads"}


def fingerprint(folder: Path) -> Fingerprint:
    """Every entry under `folder` with inode, size, mtime and link count (a new hard link changes it)."""
    if not folder.exists():
        return None
    entries = []
    for path in [folder, *folder.rglob("*")]:
        st = path.lstat()
        entries.append((str(path.relative_to(folder)), st.st_ino, st.st_size, st.st_mtime_ns, st.st_nlink))
    return tuple(sorted(entries))


def _changes(before: Fingerprint, after: Fingerprint) -> list[str]:
    if before == after:
        return []
    if before is None:
        return ["created"]
    if after is None:
        return ["removed"]
    old = {entry[0]: entry for entry in before}
    new = {entry[0]: entry for entry in after}
    changed = [name for name in old.keys() & new.keys() if old[name] != new[name]]
    return (
        [f"added {name}" for name in sorted(new.keys() - old.keys())]
        + [f"removed {name}" for name in sorted(old.keys() - new.keys())]
        + [f"changed {name}" for name in sorted(changed)]
    )


def pytest_configure(config: pytest.Config) -> None:
    # IDC_MCP_TEST_* variables configure the test harness itself (e.g. where the BigQuery emulator is), not
    # the product, so they stay.
    for name in [n for n in os.environ if n.startswith("IDC_MCP_") and not n.startswith("IDC_MCP_TEST_")]:
        del os.environ[name]
    run_dir = Path(tempfile.mkdtemp(prefix="idc-mcp-test-run-"))
    os.environ["IDC_MCP_CACHE_DIR"] = str(run_dir / "cache")
    os.environ["IDC_MCP_DOWNLOAD_ROOT"] = str(run_dir / "downloads")
    config.stash[_RUN_DIR] = run_dir
    config.stash[_BEFORE] = {label: fingerprint(folder) for label, folder in user_folders().items()}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if _BEFORE not in config.stash:
        return
    problems = []
    for label, folder in user_folders().items():
        changes = _changes(config.stash[_BEFORE][label], fingerprint(folder))
        if changes:
            listed = ", ".join(changes[:5])
            problems.append(f"the user's {label} {folder} changed during the test run: {listed}")
    if problems:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        for problem in problems:
            if reporter is not None:
                reporter.write_line(f"ISOLATION FAILURE: {problem}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    run_dir = config.stash.get(_RUN_DIR, None)
    if run_dir is not None:
        shutil.rmtree(run_dir, ignore_errors=True)


_RUN_DIR = pytest.StashKey[Path]()
_BEFORE = pytest.StashKey[dict[str, Fingerprint]]()
