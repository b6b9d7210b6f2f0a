"""Validation of the caller's SQL (allowlist, bounds) and JSON coercion of results."""
