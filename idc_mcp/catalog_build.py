"""Build the catalog file in a child process, so the server never holds the build's memory.

Usage: python -m idc_mcp.catalog_build TARGET THREADS
"""

from __future__ import annotations

import sys
from pathlib import Path

from idc_mcp.catalog import build_catalog_file

if __name__ == "__main__":
    build_catalog_file(Path(sys.argv[1]), int(sys.argv[2]))
