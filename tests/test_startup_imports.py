"""Server start stays small: heavy libraries load only when a tool needs them (RSS budget 300 MiB)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What idc-index needs (its start peaked at 3.1 GiB in the benchmark): never at server start.
HEAVY = ("pandas", "idc_index", "pyarrow", "numpy")


def loaded_by_server_start(modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` importing the server loads, in a fresh interpreter (this test process may
    already have imported them for other tests)."""
    code = (
        "import json, sys; import idc_mcp.cli, idc_mcp.server; "
        f"print(json.dumps([m for m in {modules!r} if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return list(json.loads(done.stdout))


def test_importing_the_server_does_not_import_pandas_or_idc_index() -> None:
    assert loaded_by_server_start(HEAVY) == []


# What only some tools need: loaded by their first call, so that a start (and the first query, which
# waits for it) does not pay for the download engine, the BigQuery client and guard, or name parsing.
DEFERRED = (
    "idc_mcp.download.engine",
    "idc_mcp.download.service",
    "idc_mcp.bigquery.service",
    "idc_mcp.bigquery.client",
    "idc_mcp.preview.service",
    "nameparser",
    "boto3",
)


def test_tools_publish_their_schemas_without_loading_what_only_their_calls_need() -> None:
    assert loaded_by_server_start(DEFERRED) == []


def test_the_download_package_still_offers_its_names() -> None:
    # The package loads its engine on first use of these names (PEP 562), not at import.
    from idc_mcp import download

    assert download.DownloadCancelled.__mro__[1] is download.DownloadError
    assert callable(download.run_download)
    assert download.DownloadResult.model_fields["next_step"]
    try:
        download.not_a_name  # noqa: B018
    except AttributeError as exc:
        assert "not_a_name" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")
