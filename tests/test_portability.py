"""The package imports and the server starts where `fcntl` does not exist (Windows, where README's setup
also works): locks are `filelock` locks, never `fcntl` directly.

A fresh interpreter gets a meta-path hook that refuses `fcntl`. The mcp SDK's own stdio transport takes
`fcntl` on POSIX only (`if sys.platform != "win32"`), so it is imported first, as the platform branch
it is; then `fcntl` is forgotten and blocked, and every module of idc_mcp, with the rest of its
dependencies, must import, and the server must answer over stdio.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

ROOT = Path(__file__).resolve().parent.parent

BLOCK_FCNTL = """
import importlib.abc, sys
import mcp.server.stdio  # the SDK's POSIX-only branch (on Windows it never imports fcntl)
sys.modules.pop("fcntl", None)

class NoFcntl(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "fcntl":
            raise ImportError("fcntl is not available on this platform (blocked by the test)")
        return None

sys.meta_path.insert(0, NoFcntl())
"""

IMPORT_ALL = """
import importlib, json, pkgutil, warnings
warnings.simplefilter("ignore")
import idc_mcp
modules = pkgutil.walk_packages(idc_mcp.__path__, "idc_mcp.")
names = [m.name for m in modules if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
from idc_mcp.files import file_lock
with file_lock(__import__("pathlib").Path(sys.argv[1])):
    pass
print(json.dumps({"modules": len(names), "fcntl_loaded": "fcntl" in sys.modules}))
"""

SERVE = """
import warnings
warnings.simplefilter("ignore")
from idc_mcp.cli import main
raise SystemExit(main(["--lazy-catalog"]))
"""


def test_every_module_imports_without_fcntl(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_FCNTL + IMPORT_ALL, str(tmp_path / ".probe.lock")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["modules"] > 40 and report["fcntl_loaded"] is False


@pytest.mark.anyio
@pytest.mark.slow
async def test_server_starts_and_answers_without_fcntl():
    server = StdioServerParameters(
        command=sys.executable, args=["-c", BLOCK_FCNTL + SERVE], env=dict(os.environ), cwd=str(ROOT)
    )
    with anyio.fail_after(120):
        async with Client(server, mode="legacy", read_timeout_seconds=120) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            assert {"query", "download", "fetch_index"} <= tools
            result = await client.call_tool(
                "query", {"sql": "SELECT count(*) AS n FROM index WHERE collection_id = '4d_lung'"}
            )
            assert not result.is_error, result.content
            assert result.structured_content is not None
            assert result.structured_content["rows"][0]["n"] > 0
