"""The real npm CLIs the packaging tests run: `claude` (plugin validation/installation) and `mcpb`.

They are installed with npm into a local prefix (~/.cache/idc-mcp-tests/npm, or $IDC_TEST_NPM_PREFIX):
.ci/run does it first with `python -m tests.npm_tools`; a test does it when they are missing.
When npm or its registry cannot be reached the calling test is skipped and says so; any other install
failure fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

# Pinned: a new CLI release must not change what "valid" means between two runs of the same commit.
PACKAGES = {"claude": "@anthropic-ai/claude-code@2.1.197", "mcpb": "@anthropic-ai/mcpb@2.1.2"}
DEFAULT_PREFIX = Path.home() / ".cache" / "idc-mcp-tests" / "npm"


def prefix() -> Path:
    return Path(os.environ.get("IDC_TEST_NPM_PREFIX") or DEFAULT_PREFIX)


def npm_tool(name: str) -> Path:
    binary = prefix() / "node_modules" / ".bin" / name
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(f"npm is not installed: cannot install {PACKAGES[name]}, so `{name}` checks did not run")
    done = subprocess.run(
        [npm, "install", "--prefix", str(prefix()), "--no-audit", "--no-fund", PACKAGES[name]],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        reachable = (
            subprocess.run([npm, "ping"], capture_output=True, timeout=60, check=False).returncode == 0
        )
        if not reachable:
            pytest.skip(f"the npm registry is unreachable: {PACKAGES[name]} not installed, `{name}` not run")
        raise AssertionError(f"npm install {PACKAGES[name]} failed:\n{done.stderr[-2000:]}")
    assert binary.exists(), f"npm installed {PACKAGES[name]} but {binary} is missing"
    return binary


if __name__ == "__main__":
    import sys

    npm = shutil.which("npm")
    if npm is None:
        sys.exit("npm is not installed")
    command = [npm, "install", "--prefix", str(prefix()), "--no-audit", "--no-fund", *PACKAGES.values()]
    sys.exit(subprocess.run(command, check=False).returncode)
