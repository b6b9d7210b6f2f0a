from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.index_server import SyntheticIndices

# One cache folder and download root for the whole run, never the user's (see tests/isolation.py).
pytest_plugins = ["tests.isolation", "pytester"]

if TYPE_CHECKING:
    from idc_mcp.catalog.database import Catalog


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def s3_mirror():
    """A local S3 server (moto) holding small DICOM files for a few real IDC series."""
    from tests.s3_fixture import start_mirror

    mirror = start_mirror()
    yield mirror
    mirror.server.stop()


@pytest.fixture
def fault_proxy(s3_mirror):
    """A proxy in front of the mirror that can return 5xx, die mid-body, or trickle bytes."""
    from tests.s3_fixture import FaultProxy

    proxy = FaultProxy(s3_mirror.endpoint)
    yield proxy
    if not proxy.dead.is_set():
        proxy.stop()


@pytest.fixture(scope="module")
def catalog(built_catalog: Path) -> Catalog:
    """The default catalog (the process-wide one every tool uses), open."""
    from idc_mcp.catalog.database import get_catalog

    catalog = get_catalog()
    catalog.executor  # noqa: B018 - open it now, so that tests see the files an open catalog has
    # Opened by an earlier test while the run's first build was going on, it may still answer from the
    # parquet without the build's facts: move it onto the built file (whatever the machine's load).
    catalog.settle()
    return catalog


@pytest.fixture
def make_catalog() -> Iterator[Callable[[], Catalog]]:
    """Catalogs of their own, made from the environment as it is when called; closed after the test."""
    from idc_mcp.catalog.database import Catalog
    from idc_mcp.config import load_settings

    made: list[Catalog] = []

    def make() -> Catalog:
        made.append(Catalog(load_settings()))
        return made[-1]

    yield make
    for catalog in made:
        catalog.close()


@pytest.fixture(scope="session")
def built_catalog() -> Path:
    """The catalog file in the run's own cache, built once (tests hard-link it into their own caches)."""
    from idc_mcp.catalog.build import ensure_catalog_file
    from idc_mcp.config import load_settings

    return ensure_catalog_file(load_settings())


@pytest.fixture(scope="session")
def synthetic_files(tmp_path_factory: pytest.TempPathFactory) -> SyntheticIndices:
    """Synthetic files of every fetchable index, generated once per session from the bundled schemas and
    real series (see tests/index_server.py)."""
    from tests.index_server import synthetic_indices

    return synthetic_indices(tmp_path_factory.mktemp("indices"))


@pytest.fixture(scope="session")
def bq_emulator(tmp_path_factory: pytest.TempPathFactory, built_catalog: Path):
    """A BigQuery API server (bqemulator) on loopback, seeded with synthetic IDC tables (see
    tests/bigquery_data.py). Skipped without IDC_MCP_TEST_BQEMULATOR, except in CI, where it fails."""
    from tests.bigquery_emulator_session import emulator_session

    with emulator_session(tmp_path_factory.mktemp("bqemulator-home")) as session:
        yield session


@pytest.fixture
def bq_env(bq_emulator, monkeypatch: pytest.MonkeyPatch):
    """The server's BigQuery settings pointed at the emulator (anonymous requests, a test billing project)."""
    monkeypatch.setenv("IDC_MCP_BQ_API_ENDPOINT", bq_emulator.endpoint)
    monkeypatch.setenv("IDC_MCP_BQ_PROJECT", bq_emulator.billing_project)
    for name in ("IDC_MCP_BQ_MAX_GB", "IDC_MCP_BQ_TIMEOUT", "IDC_MCP_BQ_USD_PER_TIB"):
        monkeypatch.delenv(name, raising=False)
    return bq_emulator


@pytest.fixture(scope="session")
def preview_mirror():
    """A local S3 server (moto) with synthetic DICOM series per preview case (tests/preview_fixture.py)."""
    from tests.preview_fixture import start_preview_mirror

    mirror = start_preview_mirror()
    yield mirror
    mirror.server.stop()
