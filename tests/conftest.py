from __future__ import annotations

from pathlib import Path

import pytest

from tests.index_server import SyntheticIndices


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def built_catalog() -> Path:
    """The catalog file in the default cache, built once (tests hard-link it into their own caches)."""
    from idc_mcp.catalog import ensure_catalog_file
    from idc_mcp.config import load_settings

    return ensure_catalog_file(load_settings())


@pytest.fixture(scope="session")
def synthetic_files(tmp_path_factory: pytest.TempPathFactory) -> SyntheticIndices:
    """Synthetic files of every fetchable index, generated once per session from the bundled schemas and
    real series (see tests/index_server.py)."""
    from tests.index_server import synthetic_indices

    return synthetic_indices(tmp_path_factory.mktemp("indices"))
