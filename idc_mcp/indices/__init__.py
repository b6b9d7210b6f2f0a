"""Specialized indices fetched on demand (fetch, clinical tables, the converted-file store)."""
