"""What the explorer's browser tests (and its benchmark) stand on: Debian's chromium driven by Playwright,
the test host (tests/explorer_host/host.js, bundled with the app's own npm dependencies), and a real
server over streamable HTTP on loopback reading the local S3 mirror of the preview tests.

When chromium, Playwright or npm is missing, `need_browser()` skips with the reason; it never passes
silently.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

ROOT = Path(__file__).resolve().parent.parent
APP_SRC = ROOT / "idc_mcp" / "apps" / "src"
HOST_JS = Path(__file__).resolve().parent / "explorer_host" / "host.js"
CHROMIUM = Path(os.environ.get("IDC_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
HOST_PATH = "/explorer-test-host"


def need_browser() -> None:
    """Skip, saying why, when the browser tests cannot run here."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"no chromium at {CHROMIUM}: install Debian's `chromium` (.ci/run does) to run the app tests"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip(
            "Playwright is not installed (pip install '.[test]'): the app's browser tests did not run"
        )
    if shutil.which("npm") is None:
        pytest.skip(
            "npm is not installed: the test host cannot be bundled, so the app's browser tests did not run"
        )


def npm_ci() -> None:
    """Install the app's locked npm dependencies (once); skip if the registry cannot be reached."""
    if (APP_SRC / "node_modules" / "esbuild").exists() and (
        APP_SRC / "node_modules" / "@modelcontextprotocol" / "client"
    ).exists():
        return
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"],
        cwd=APP_SRC,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        if subprocess.run(["npm", "ping"], capture_output=True, timeout=60, check=False).returncode != 0:
            pytest.skip("the npm registry is unreachable: the app's npm dependencies are not installed")
        raise AssertionError(f"npm ci failed in {APP_SRC}:\n{done.stderr[-2000:]}")


def host_page(out: Path) -> str:
    """The test host as one HTML page (its script bundled by the app's esbuild)."""
    npm_ci()
    bundle = out / "host.js"
    subprocess.run(
        [str(APP_SRC / "node_modules" / ".bin" / "esbuild"), str(HOST_JS), "--bundle", "--format=esm",
         f"--outfile={bundle}", "--log-level=warning"],
        check=True, env=dict(os.environ, NODE_PATH=str(APP_SRC / "node_modules")), timeout=300,
    )  # fmt: skip
    script = bundle.read_text(encoding="utf-8").replace("</script", "<\\/script")
    head = "<!doctype html><html><head><meta charset='utf-8'></head><body>"
    return f"{head}<script type='module'>{script}</script></body></html>"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    base: str
    download_root: Path
    stderr: Path


@contextmanager
def serve(folder: Path, built_catalog: Path, s3_endpoint: str) -> Iterator[Served]:
    """`idc-mcp --transport streamable-http` on loopback with its own cache (the run's catalog linked in)."""
    from tests.index_server import cache_with_catalog

    cache = cache_with_catalog(folder / "cache", built_catalog)
    port = _free_port()
    served = Served(f"http://127.0.0.1:{port}", folder / "downloads", folder / "stderr.txt")
    env = dict(
        os.environ, IDC_MCP_CACHE_DIR=str(cache), IDC_MCP_S3_ENDPOINT_URL=s3_endpoint,
        IDC_MCP_DOWNLOAD_ROOT=str(served.download_root),
    )  # fmt: skip
    # One browser client makes all the module's calls: the per-client limits (tested elsewhere) are raised
    # so that a later test is not turned away for the calls of the tests before it.
    command = [sys.executable, "-m", "idc_mcp", "--transport", "streamable-http", "--port", str(port),
               "--max-concurrent", "8", "--calls-per-minute", "6000"]  # fmt: skip
    proc = subprocess.Popen(command, stderr=served.stderr.open("w"), cwd=ROOT, env=env)
    try:
        with httpx2.Client(timeout=5) as http:
            for _ in range(600):
                if proc.poll() is not None:
                    raise AssertionError(f"the server exited: {served.stderr.read_text()[-2000:]}")
                try:
                    if http.get(f"{served.base}/health").status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                try:
                    proc.wait(timeout=0.1)  # returns early if the server dies
                except subprocess.TimeoutExpired:
                    pass
            else:
                raise AssertionError("the server did not answer /health")
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def open_host(chromium, served: Served, page_html: str, args: dict, width: int = 560, theme: str = "light"):
    """A page of the test host (served at the server's own origin, so the MCP client is same-origin),
    with the explorer opened by `explore(args)`. Returns (page, app frame, start reply)."""
    page = chromium.new_page(viewport={"width": width + 40, "height": 900})
    page.route(
        f"{served.base}{HOST_PATH}", lambda route: route.fulfill(body=page_html, content_type="text/html")
    )
    page.goto(f"{served.base}{HOST_PATH}")
    page.wait_for_function("typeof window.startHost === 'function'")
    started = page.evaluate(
        "(o) => window.startHost(o)", {"tool": "explore", "args": args, "theme": theme, "width": width}
    )
    frame = page.frame_locator("#app")
    return page, frame, started
