"""Server start stays small: heavy libraries load only when a tool needs them (RSS budget 300 MiB)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What idc-index needs (its start peaked at 3.1 GiB in the benchmark): never at server start.
HEAVY = ("pandas", "idc_index", "pyarrow", "numpy")


def test_importing_the_server_does_not_import_pandas_or_idc_index() -> None:
    # A fresh interpreter: this test process may already have imported them for other tests.
    code = (
        "import json, sys; import idc_mcp.cli, idc_mcp.server; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == []
