"""The skill and references ship in the wheel and are found there first, the repository copy second."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from idc_mcp.docs import resources

REPO = Path(__file__).resolve().parent.parent


def test_installed_docs_are_preferred_over_the_repository(tmp_path: Path):
    package = tmp_path / "idc_mcp"
    (package / "_docs" / "skill").mkdir(parents=True)
    (package / "_docs" / "references").mkdir()
    (package / "_docs" / "skill" / "SKILL.md").write_text("---\nname: x\n---\n")
    (package / "_docs" / "references" / "only_here.md").write_text("# only in the wheel\n")
    loc = resources.locate_docs(package)
    assert loc.installed
    assert resources.read_reference("only_here", loc) == "# only in the wheel\n"
    assert list(resources.reference_files(loc)) == ["only_here"]


def test_repository_docs_are_the_fallback_when_the_package_has_none(tmp_path: Path):
    (tmp_path / "idc_mcp").mkdir()
    (tmp_path / "references").mkdir()
    (tmp_path / "references" / "dev.md").write_text("# dev\n")
    loc = resources.locate_docs(tmp_path / "idc_mcp")
    assert not loc.installed and loc.references_dir == tmp_path / "references"
    assert resources.read_reference("dev.md", loc) == "# dev\n"
    with pytest.raises(resources.DocNotFound, match="idc://references/dev"):
        resources.read_reference("missing", loc)


def test_the_wheel_puts_the_docs_where_the_locator_looks():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert include["skill"] == f"idc_mcp/{resources.INSTALLED_DOCS}/skill"
    assert include["references"] == f"idc_mcp/{resources.INSTALLED_DOCS}/references"


@pytest.mark.slow
def test_a_built_wheel_carries_the_docs_and_serves_them_from_the_package(tmp_path: Path):
    # Build the real wheel (hatchling, as CI would), unpack it, and import idc_mcp from the unpacked copy
    # only: the docs must come from idc_mcp/_docs, and the MCP resources must serve them.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("idc_mcp-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    script = (
        "import asyncio, json\n"
        "from mcp import Client\n"
        "from idc_mcp.docs import resources\n"
        "from idc_mcp.app import create_server\n"
        "from idc_mcp.config import load_settings\n"
        "async def main():\n"
        "    async with Client(create_server(load_settings())) as c:\n"
        "        r = await c.read_resource('idc://references/sql_cookbook')\n"
        "        s = await c.read_resource('idc://skill')\n"
        "    loc = resources.locate_docs()\n"
        "    print(json.dumps({'file': resources.__file__, 'installed': loc.installed,\n"
        "                      'cookbook': r.contents[0].text, 'skill': s.contents[0].text}))\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["file"].startswith(str(site)) and result["installed"] is True
    assert result["cookbook"] == (REPO / "references" / "sql_cookbook.md").read_text(encoding="utf-8")
    assert result["skill"] == (REPO / "skill" / "SKILL.md").read_text(encoding="utf-8")
