"""Every column idc-index-data knows, with the nested struct fields of installed tables.

`collections_index.sources` is a list of structs in DuckDB, so `license_url` lives at the path
`sources[].license.license_url`; `path_expr` turns such a path into SQL that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.schemas import JOIN_KEYS, all_tables, get_table
from idc_mcp.sql.types import field_paths


@dataclass(frozen=True)
class ColumnPath:
    """A column or nested struct field: `path` is e.g. 'sources[].license.license_url'."""

    table: str
    path: str
    installed: bool

    @property
    def leaf(self) -> str:
        return self.path.rsplit(".", 1)[-1].removesuffix("[]")

    @property
    def top(self) -> str:
        return self.path.split(".", 1)[0].removesuffix("[]")


def column_paths(catalog: Catalog) -> list[ColumnPath]:
    """Every column of every table idc-index-data knows (and of any other installed table, such as
    fetched clinical tables), with the nested struct fields of the installed ones."""
    installed = catalog.installed_tables()
    known = all_tables()
    paths: list[ColumnPath] = []
    for name in list(known) + [t for t in installed if t not in known]:
        if name in installed:
            for column, duck_type in catalog.columns(name):
                paths.append(ColumnPath(name, column, True))
                paths.extend(ColumnPath(name, p, True) for p in field_paths(column, duck_type))
        else:
            paths.extend(ColumnPath(name, c, False) for c in known[name].column_names)
    return paths


def table_columns(catalog: Catalog, table: str) -> list[str]:
    if catalog.is_installed(table):
        return [c for c, _ in catalog.columns(table)]
    info = get_table(table)
    return info.column_names if info else []


def join_key(catalog: Catalog, left: str, right: str) -> str | None:
    """The most specific key column both tables have (SeriesInstanceUID before collection_id...)."""
    right_cols = {c.lower() for c in table_columns(catalog, right)}
    left_cols = {c.lower() for c in table_columns(catalog, left)}
    for key in JOIN_KEYS:
        if key.lower() in left_cols and key.lower() in right_cols:
            return key
    return None


def path_expr(alias: str | None, path: str) -> exp.Expression:
    """o.a.b for a struct path; list_transform(o.a, x -> x.b.c) when the path crosses a list."""
    head, _, rest = path.partition("[]")
    node: exp.Expression = (
        exp.column(head.split(".")[0], table=alias) if alias else exp.column(head.split(".")[0])
    )
    for field in head.split(".")[1:]:
        node = exp.Dot(this=node, expression=exp.to_identifier(field))
    if not rest:
        return node
    var = exp.to_identifier("x")
    inner: exp.Expression = exp.column(var.name)
    for field in rest.lstrip(".").replace("[]", "").split("."):
        inner = exp.Dot(this=inner, expression=exp.to_identifier(field))
    return exp.Anonymous(this="list_transform", expressions=[node, exp.Lambda(this=inner, expressions=[var])])
