"""What `list_tables` and `describe_table` return: a table's columns in full (the profile) and the
views cut from it (one line per column, or one column in full)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, PrivateAttr, SerializerFunctionWrapHandler, model_serializer


class TableSummary(BaseModel):
    name: str
    description: str
    installed: bool
    row_count: int | None = Field(None, description="rows, when installed")
    how_to_install: str | None = Field(None, description="the call that installs it, when not installed")
    size_bytes: int | None = Field(
        None, description="download size of a fetched index (null: bundled, or not known until fetched)"
    )
    size: str | None = Field(None, description="size_bytes, human readable, or 'unknown until fetched'")


class ValueCount(BaseModel):
    value: Any
    count: int


class NestedValues(BaseModel):
    path: str = Field(description="where the values sit: name[] = list elements, a.b = struct field")
    type: str
    distinct_count: int | None = None
    values: list[ValueCount] = Field(description="element values with the rows holding each, most first")
    values_complete: bool = Field(description="true when `values` lists every distinct value")
    filter: str = Field(
        description="a filter that works in the query tool, for the first value (or for <value> to replace "
        "when the values could not be counted in time)"
    )


class ColumnDescription(BaseModel):
    name: str
    type: str = Field(description="type in the catalog (DuckDB), or the schema type when not installed")
    description: str
    format: str | None = Field(None, description="how the values are written, when not what the type says")
    null_count: int | None = Field(None, description="rows where the column is NULL")
    distinct_count: int | None = Field(None, description="distinct values other than NULL")
    distinct_count_exact: bool | None = Field(None, description="false: distinct_count is an estimate")
    values: list[ValueCount] | None = Field(None, description="values with row counts, most common first")
    values_complete: bool = Field(
        False, description="true when `values` lists every distinct value except NULL (see null_count)"
    )
    examples: list[Any] | None = Field(None, description="a few example values (high-cardinality columns)")
    nested: list[NestedValues] | None = Field(None, description="values inside a list or struct column")
    notes: list[str] | None = Field(None, description="what to know before filtering or grouping by it")
    # `format` in a few words, for the one-line view (not part of the reply)
    _brief_format: str | None = PrivateAttr(None)
    _brief_notes: list[str] = PrivateAttr(default_factory=list)  # `notes` in a few words, likewise

    @model_serializer(mode="wrap")
    def _without_empty_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Unset facts are left out: a 31-column table would repeat ~60 bytes of nulls per column.
        return {k: v for k, v in handler(self).items() if v is not None}


class TableProfile(BaseModel):
    """Every column of a table in full: what describe_table's views are cut from (computed once)."""

    name: str
    description: str
    installed: bool
    row_count: int | None
    columns: list[ColumnDescription]
    notes: list[str] = Field(default_factory=list)


class TableDescription(BaseModel):
    name: str
    description: str
    installed: bool
    row_count: int | None
    summary: dict[str, str] | None = Field(
        None, description="compact view, per column: type; description; NULLs; top values with row counts"
    )
    columns: list[ColumnDescription] | None = Field(None, description="the column asked for, in full")
    compact: bool = Field(False, description="true: `summary` (one line per column), not `columns`")
    notes: list[str] = Field(default_factory=list)

    @model_serializer(mode="wrap")
    def _one_view_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The view not asked for (`summary` or `columns`) is left out.
        return {k: v for k, v in handler(self).items() if v is not None or k not in ("summary", "columns")}
