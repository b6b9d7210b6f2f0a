"""DuckDB types read the one way: sqlglot's `DataType.build(..., dialect="duckdb")`, never by hand.

Whether a column is nested, the fields of a struct, and the scalar paths inside a nested column all come
from the parsed type. Scalar types are named as DuckDB names them (sqlglot writes VARCHAR as TEXT).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.errors import ParseError

_T = exp.DataType.Type
NESTED = (_T.ARRAY, _T.LIST, _T.STRUCT, _T.MAP, _T.UNION)
LISTS = (_T.ARRAY, _T.LIST)
MAX_DEPTH = 4  # struct levels walked below a column
# DuckDB's own names where sqlglot's duckdb generator writes another spelling of the same type.
_DUCKDB_NAMES = {
    _T.TEXT: "VARCHAR",
    _T.VARCHAR: "VARCHAR",
    _T.INT: "INTEGER",
    _T.FLOAT: "FLOAT",
    _T.INT128: "HUGEINT",
    _T.UINT128: "UHUGEINT",
    _T.VARBINARY: "BLOB",
    _T.TIMESTAMPTZ: "TIMESTAMP WITH TIME ZONE",
}


@functools.lru_cache(maxsize=4096)
def parse_type(text: str) -> exp.DataType | None:
    """The parsed DuckDB type, or None when sqlglot cannot read it."""
    try:
        return exp.DataType.build(text.strip(), dialect="duckdb")
    except (ParseError, ValueError):
        return None


def is_nested(text: str) -> bool:
    """A list, array, struct, map or union (their values are not plain scalars)."""
    parsed = parse_type(text)
    return parsed is not None and parsed.is_type(*NESTED)


def scalar_name(dtype: exp.DataType) -> str:
    """DuckDB's name for a scalar type (VARCHAR, INTEGER, BIGINT, DOUBLE, ...)."""
    return _DUCKDB_NAMES.get(dtype.this) or dtype.sql(dialect="duckdb").replace(", ", ",")


def _element(dtype: exp.DataType) -> exp.DataType | None:
    inner = dtype.expressions[0] if dtype.is_type(*LISTS) and dtype.expressions else None
    return inner if isinstance(inner, exp.DataType) else None


def struct_fields(dtype: exp.DataType) -> list[tuple[str, exp.DataType]]:
    """(name, type) of each field of a STRUCT type; [] for any other type."""
    if not dtype.is_type(_T.STRUCT):
        return []
    return [
        (field.name, field.args["kind"])
        for field in dtype.expressions
        if isinstance(field, exp.ColumnDef) and isinstance(field.args.get("kind"), exp.DataType)
    ]


def _struct_and_list(dtype: exp.DataType) -> tuple[exp.DataType | None, bool]:
    """The struct a type is (or is a list of), and whether it is a list."""
    element = _element(dtype)
    if element is not None:
        return (element if element.is_type(_T.STRUCT) else None), True
    return (dtype if dtype.is_type(_T.STRUCT) else None), False


def field_paths(column: str, text: str) -> list[str]:
    """Every field below a struct column (or a list of structs), at every level: `sources[].license`,
    `sources[].license.license_url`, ... (a list is marked `[]`)."""
    parsed = parse_type(text)
    return [] if parsed is None else _field_paths(column, parsed, 0)


def _field_paths(prefix: str, dtype: exp.DataType, depth: int) -> list[str]:
    struct, is_list = _struct_and_list(dtype)
    if struct is None or depth > MAX_DEPTH:
        return []
    base = prefix + ("[]" if is_list else "")
    paths: list[str] = []
    for name, sub in struct_fields(struct):
        path = f"{base}.{name}"
        paths.append(path)
        paths.extend(_field_paths(path, sub, depth + 1))
    return paths


@dataclass(frozen=True)
class Leaf:
    """One scalar inside a nested column: the struct `fields` below it, whether the column is a list,
    and the scalar's DuckDB type."""

    fields: tuple[str, ...]
    in_list: bool
    type: str


def scalar_leaves(text: str) -> list[Leaf]:
    """The scalars inside a list of scalars, a struct or a list of structs (walked through nested structs);
    none for a scalar, a map, a union, a list of lists, or lists inside structs."""
    parsed = parse_type(text)
    if parsed is None:
        return []
    element = _element(parsed)
    if element is not None and not element.is_type(*NESTED):
        return [Leaf((), True, scalar_name(element))]
    struct, in_list = _struct_and_list(parsed)
    if struct is None:
        return []
    return [Leaf(fields, in_list, name) for fields, name in _leaves(struct, ())]


def _leaves(struct: exp.DataType, prefix: tuple[str, ...]) -> list[tuple[tuple[str, ...], str]]:
    if len(prefix) > MAX_DEPTH:
        return []
    out: list[tuple[tuple[str, ...], str]] = []
    for name, sub in struct_fields(struct):
        if sub.is_type(_T.STRUCT):
            out.extend(_leaves(sub, (*prefix, name)))
        elif not sub.is_type(*NESTED):
            out.append(((*prefix, name), scalar_name(sub)))
    return out
