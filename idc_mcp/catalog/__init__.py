"""The locked DuckDB catalog and the bundled schemas: the ground every tool stands on."""
