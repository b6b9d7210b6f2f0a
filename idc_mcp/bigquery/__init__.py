"""Guarded BigQuery queries over IDC's public datasets (`bigquery-public-data.idc_current`, `idc_v<N>`).

settings -> guard (sqlglot, BigQuery dialect) -> client (credentials, dry run, capped job, cancel,
result pages) over transport (every HTTP response capped in bytes and time) -> schema (live table
schemas, nearest names) -> service (the plain functions the tools call).
Nothing here imports google-cloud-bigquery at import time: the `bigquery` extra is optional, and
without it the tools answer with the setup steps.
"""
