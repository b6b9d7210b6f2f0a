"""Where the catalog file of a data version is, and which layout it has (no imports beyond the standard
library: the query worker and the executor that starts it both need it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from idc_mcp.config import Settings

# Bumped when the layout of the catalog file changes, so an old cache is rebuilt. The file is written
# atomically (temp file + rename), so its existence under this name means it is complete.
CATALOG_LAYOUT = 5  # 2: exact distinct counts per column (catalog.facts); 3: text columns' values too;
# 4: collections whose dates are placeholders; 5: rows kept in the parquet's order (no re-sort)
CATALOG_FILE = f"catalog-v{CATALOG_LAYOUT}.duckdb"


def catalog_file(settings: Settings) -> Path:
    """Where the catalog file of this idc-index-data version is (it exists once built)."""
    return settings.version_cache_dir / CATALOG_FILE
