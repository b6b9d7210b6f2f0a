"""Local first: say when the free, offline catalog already answers a BigQuery query.

The local tables are series-level summaries of IDC's BigQuery tables (same column names, taken from the
bundled schemas); when every column a query reads is in one of them, `query` gives the answer without a
cloud account, bytes scanned or network.
"""

from __future__ import annotations

from sqlglot import exp

from idc_mcp.bigquery.guard import ValidatedBigQuery
from idc_mcp.catalog.schemas import all_tables

# BigQuery table -> the local table that summarizes it.
LOCAL_EQUIVALENTS = {
    "dicom_all": "index",
    "dicom_metadata": "index",
    "dicom_metadata_curated_series_level": "index",
    "original_collections_metadata": "collections_index",
    "analysis_results_metadata": "analysis_results_index",
    "version_metadata": "version_metadata_index",
}


def _columns_read(validated: ValidatedBigQuery) -> set[str] | None:
    """Lower-case names of the table columns the query reads (None for SELECT *: all of them)."""
    if validated.selects_star:
        return None
    aliases = {a.alias.lower() for a in validated.tree.find_all(exp.Alias) if a.alias}
    for unnest in validated.tree.find_all(exp.Unnest):
        alias = unnest.args.get("alias")
        if isinstance(alias, exp.TableAlias):
            aliases |= {c.name.lower() for c in alias.columns} | {alias.name.lower()}
    return {c.name.lower() for c in validated.tree.find_all(exp.Column) if c.name.lower() not in aliases}


def local_note(validated: ValidatedBigQuery) -> str | None:
    """A note naming the local table (and fetch_index call, if needed) that answers the same question."""
    if not validated.tables or any(t.is_information_schema for t in validated.tables):
        return None
    locals_ = {LOCAL_EQUIVALENTS.get(t.table) for t in validated.tables}
    if None in locals_:
        return None
    columns = _columns_read(validated)
    if columns is None or not columns:
        return None
    tables = all_tables()
    summary = sorted(t for t in locals_ if t)
    available = {c.lower() for name in summary for c in tables[name].column_names}
    if columns <= available:
        names = " and ".join(f"`{t}`" for t in summary)
        grain = " (one row per series, not per instance)" if "index" in summary else ""
        return (
            f"Local first: every column this query reads is in the local {names} table{grain}, so "
            "query() answers it free and offline, with no bytes billed."
        )
    missing = columns - available
    for name, info in tables.items():
        if name in summary or "seriesinstanceuid" not in {c.lower() for c in info.column_names}:
            continue
        if missing <= {c.lower() for c in info.column_names}:
            how = "" if info.bundled else f'fetch_index("{name}") installs it; then '
            return (
                f"Local first: the columns this query reads are in the local {', '.join(summary)} and "
                f"`{name}` tables (series level): {how}query() can join them on SeriesInstanceUID, free "
                "and offline."
            )
    return None
