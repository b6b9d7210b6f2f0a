"""What the BigQuery tools answer and their error: light (pydantic only), so that the server can publish
the tools' schemas without importing the BigQuery client, guard and schemas (they load on the first call)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from idc_mcp.errors import AssistantError

# The bigquery_query tool's arguments (their descriptions are what the assistant reads).
BigQuerySql = Annotated[
    str, Field(description="one SELECT in BigQuery SQL over `bigquery-public-data.idc_current.<table>`")
]
TableArg = Annotated[str, Field(description="e.g. 'dicom_all', 'idc_v22.segmentations'")]
ColumnFilter = Annotated[
    str | None, Field(description="substring of field names or descriptions, e.g. 'Slice'")
]
MaxGb = Annotated[float | None, Field(gt=0, description="GB scanned to refuse above (below the server cap)")]


class BigQueryError(AssistantError, ValueError):
    """A BigQuery call could not be made or was refused; the message says what to do next."""


class JobStats(BaseModel):
    job_id: str = Field(description="BigQuery job id (look it up in the Cloud console's job history)")
    location: str | None = Field(None, description="where the job ran, e.g. US")
    billing_project: str = Field(description="the project that ran and pays for the job")
    estimated_bytes: int = Field(description="bytes the dry run said the query would scan")
    estimated_cost_usd: float = Field(description="on-demand cost of estimated_bytes (before the free tier)")
    byte_cap: int = Field(description="maximum_bytes_billed the job carried")
    bytes_processed: int | None = Field(None, description="bytes the job scanned")
    bytes_billed: int | None = Field(None, description="bytes billed (0 on a cache hit)")
    cache_hit: bool | None = Field(None, description="true when BigQuery answered from its result cache")
    elapsed_s: float = Field(description="seconds from submitting the job to having its rows")


class BigQueryResult(BaseModel):
    columns: list[str] = Field(description="column names, in order")
    rows: list[dict[str, Any]] = Field(description="one object per row (RECORD -> object, REPEATED -> list)")
    row_count: int = Field(description="rows returned in this reply")
    truncated: bool = Field(description="true when more rows exist or the reply was cut to fit")
    notes: list[str] = Field(default_factory=list, description="local-first advice, cuts, hand-off hints")
    executed_sql: str = Field(description="the validated BigQuery SQL that ran (with the enforced LIMIT)")
    job: JobStats
    series_instance_uids: list[str] = Field(
        default_factory=list, description="distinct SeriesInstanceUID values in these rows (when selected)"
    )
    selection: dict[str, list[str]] | None = Field(
        None,
        description="ready selection arguments for check_licenses, estimate_size, get_citations, "
        "get_dicomweb_urls, export_manifest and download: the series of these rows that the local "
        "catalog has, e.g. {'series_uids': [...]}",
    )
    series_not_in_catalog: list[str] = Field(
        default_factory=list, description="returned series the local catalog does not have (another release)"
    )


class BigQueryField(BaseModel):
    path: str = Field(description="column, or record.field for nested fields")
    type: str
    mode: str = Field(description="NULLABLE, REQUIRED or REPEATED (read REPEATED fields with UNNEST)")
    description: str = ""


class BigQueryTableDescription(BaseModel):
    table: str = Field(description="full name to use in bigquery_query, in backticks")
    kind: str = Field(description="TABLE or VIEW")
    description: str
    num_rows: int | None
    num_bytes: int | None = Field(
        description="bytes stored (a SELECT * scans about this much); null for views"
    )
    fields_total: int = Field(description="columns and nested fields in the table")
    fields: list[BigQueryField] = Field(description="columns and nested fields (filtered and capped)")
    notes: list[str] = Field(default_factory=list)
