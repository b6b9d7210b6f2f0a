"""The explorer's committed HTML is the build of its source, self-contained, under a strict CSP: users
install with pip and need no Node.js, and what they get is what the source says."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from idc_mcp.apps.surface import CSP, HTML, VIEWER_DOMAINS
from tests.explorer_browser import APP_SRC, npm_ci


def test_rebuilding_the_app_gives_the_committed_file():
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip(
            "Node.js/npm is not installed: the check that explorer.html is the build of src/ did not run"
        )
    npm_ci()
    done = subprocess.run(
        ["node", "build.mjs", "--check"],
        cwd=APP_SRC,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout


def test_the_lock_file_pins_what_package_json_names():
    package = json.loads((APP_SRC / "package.json").read_text())
    locked = json.loads((APP_SRC / "package-lock.json").read_text())["packages"]
    for name, version in {**package["dependencies"], **package["devDependencies"]}.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} must be pinned exactly, not {version!r}"
        assert locked[f"node_modules/{name}"]["version"] == version, name


def test_the_app_is_one_file_that_loads_nothing_remote():
    html = HTML.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>")
    assert not re.search(r"<script[^>]+src=", html), "a script from elsewhere"
    assert not re.search(r"<link[^>]+href=", html), "a stylesheet from elsewhere"
    assert not re.search(r"""(src|href)=["']https?:""", html)
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert "default-src 'none'" in policy and "img-src data:" in policy and "connect-src 'none'" in policy
    # The declared CSP allows no remote domain at all.
    assert not any(CSP.model_dump(exclude_none=True).values())
    for domain in VIEWER_DOMAINS:  # the app opens only the viewer domains the server declares
        assert domain in html
