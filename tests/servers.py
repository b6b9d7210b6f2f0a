"""Servers for tests, built by the factory (`app.create_server`) the way the command line builds its own."""

from __future__ import annotations

from idc_mcp.app import IdcServer, create_server
from idc_mcp.catalog.database import Catalog, get_catalog
from idc_mcp.config import Settings, load_settings


def server_from_environment(catalog: Catalog | None = None) -> IdcServer:
    """A server with the settings the environment gives now (a test sets its variables first) over the
    suite's shared catalog, or `catalog`; the catalog stays open when the server's sessions end."""
    return create_server(load_settings(), catalog or get_catalog(), close_catalog=False)


def server_with(settings: Settings, catalog: Catalog) -> IdcServer:
    """A server with these settings over `catalog`, which stays open for its owner (the test)."""
    return create_server(settings, catalog, close_catalog=False)
