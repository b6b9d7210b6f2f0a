"""The README's first hour, checked against what is true (issue 22, items 8 and 13).

The commands themselves run elsewhere: tests/test_install_paths.py runs the plugin, uvx and
`claude mcp add` lines (from REPO_URL and from a local clone), tests/test_readme_commands.py every
`idc-mcp` line. Here: what the Install section must say before those commands, and that the Development
section's facts (where tests install, which skip without the BigQuery emulator) match the code.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from tests import bqemulator, npm_tools
from tests.test_readme_commands import README, shell_lines

REPO = README.parent


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_install_says_the_python_it_needs_first_as_pyproject_requires() -> None:
    # On Python 3.9, pip's only word is "No matching distribution found for s3transfer".
    install = _section("Install (choose one)")
    required = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    version = re.search(r"\*\*Python (\d+\.\d+) or newer\*\*", install)
    assert version and f">={version.group(1)}" == required
    assert install.index("Python 3.11 or newer") < install.index("```")  # before any command
    assert "No matching distribution found for s3transfer" in install


def test_uv_can_be_installed_where_pip_is_refused_and_found_when_outside_path() -> None:
    uv = _section("Install (choose one)").split("### uv", 1)[1].split("\n### ", 1)[0]
    commands = [line.split("#")[0].strip() for line in shell_lines(README) if line.strip() and line in uv]
    assert "curl -LsSf https://astral.sh/uv/install.sh | sh" in uv  # needs no pip at all
    assert "pipx install uv" in commands and "python3 -m pip install --user uv" in commands
    assert "externally-managed-environment" in uv and 'export PATH="$HOME/.local/bin:$PATH"' in uv
    assert "uvx --version" in uv


def test_the_plugin_asks_for_uv_before_its_install_commands() -> None:
    plugin = _section("Install (choose one)").split("### 1. Claude Code plugin", 1)[1]
    assert plugin.index("Install uv first") < plugin.index("claude plugin marketplace add")


def test_repo_url_is_explained_once_and_every_way_shows_a_local_clone() -> None:
    install = _section("Install (choose one)")
    assert install.count("`REPO_URL` below stands for") == 1
    lines = [line.strip() for line in shell_lines(README)]
    assert "claude plugin marketplace add ./idc-mcp" in lines
    assert "uvx --from ./idc-mcp idc-mcp --version" in lines
    assert any(line.startswith("claude mcp add") and '"$PWD/idc-mcp"' in line for line in lines)


def test_development_says_where_the_tests_install_things() -> None:
    development = _section("Development")
    home_prefix = "~/" + str(npm_tools.DEFAULT_PREFIX.relative_to(Path.home()))
    assert f"`{home_prefix}`" in development and "IDC_TEST_NPM_PREFIX" in development
    assert "python -m tests.npm_tools" in development and "~/.cache/uv" in development
    assert re.search(r"\d+ min \d+ s", development)  # how long the suite takes (measured)


def test_development_names_the_tests_that_skip_without_the_bigquery_emulator() -> None:
    # Collect the suite (no test runs) and count the tests that need the emulator's fixture.
    census = (
        "import sys, pytest\n"
        "class Census:\n"
        "    def pytest_collection_modifyitems(self, items):\n"
        "        for item in items:\n"
        "            if 'bq_emulator' in item.fixturenames:\n"
        "                print('NEEDS', item.nodeid.split('::')[0])\n"
        "args = ['--collect-only', '-q', '-p', 'no:cacheprovider', 'tests']\n"
        "sys.exit(pytest.main(args, plugins=[Census()]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", census], capture_output=True, text=True, cwd=REPO, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    files = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("NEEDS ")]
    development = _section("Development")
    stated = re.search(r"Without the BigQuery emulator, (\d+) tests skip", development)
    assert stated and int(stated.group(1)) == len(files), f"{len(files)} tests need the emulator"
    for name in set(files):
        assert f"`{name}`" in development, name
    assert bqemulator.ENV_VAR in development and ".ci/bqemulator-venv.sh" in development
