"""Live schemas of IDC's BigQuery tables (nested and REPEATED fields as dotted paths), cached per release,
and the nearest real names for a table, dataset or column that does not exist."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

from idc_mcp.bigquery.client import Backend, BigQueryJobError
from idc_mcp.bigquery.guard import DATASET_PATTERN, PUBLIC_PROJECT, TableRef
from idc_mcp.diagnostics.fuzzy import closest

# idc_current is a view of the newest release, which changes a few times a year; idc_v<N> never does.
CURRENT_TTL_S = 3600.0
MAX_PATHS = 20_000


class UnknownBigQueryName(ValueError):
    """A table, dataset or column that does not exist; the message names the nearest real ones."""


@dataclass(frozen=True)
class FieldPath:
    path: str  # 'SegmentedPropertyType.CodeMeaning'
    type: str  # STRING, INTEGER, FLOAT, RECORD, ...
    mode: str  # NULLABLE, REQUIRED, REPEATED
    description: str


@dataclass(frozen=True)
class TableSchema:
    ref: TableRef
    kind: str  # TABLE, VIEW
    description: str
    num_rows: int | None
    num_bytes: int | None
    fields: tuple[FieldPath, ...]

    @property
    def top_level(self) -> dict[str, FieldPath]:
        return {f.path.lower(): f for f in self.fields if "." not in f.path}

    def names(self) -> set[str]:
        """Every name a query may write for this table: top-level columns and each nested field name."""
        return {part.lower() for f in self.fields for part in f.path.split(".")}

    @property
    def has_json(self) -> bool:
        return any(f.type == "JSON" for f in self.fields)


def _flatten(fields: list, prefix: str = "") -> list[FieldPath]:  # google SchemaField objects
    out: list[FieldPath] = []
    for f in fields:
        path = f"{prefix}{f.name}"
        out.append(FieldPath(path, str(f.field_type), str(f.mode or "NULLABLE"), f.description or ""))
        if f.fields and len(out) < MAX_PATHS:
            out.extend(_flatten(list(f.fields), path + "."))
    return out


class SchemaCache:
    """Table schemas and table/dataset lists per endpoint, kept for the process (idc_current: an hour)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[tuple[str | None, TableRef], tuple[float, TableSchema]] = {}
        self._lists: dict[tuple[str | None, str], tuple[float, list[str]]] = {}

    def _fresh(self, stamp: float, dataset: str) -> bool:
        return dataset != "idc_current" or time.monotonic() - stamp < CURRENT_TTL_S

    def table(self, backend: Backend, ref: TableRef) -> TableSchema:
        key = (backend.endpoint, ref)
        with self._lock:
            hit = self._tables.get(key)
        if hit and self._fresh(hit[0], ref.dataset):
            return hit[1]
        try:
            table = backend.get_table(ref.full_name)
        except BigQueryJobError as exc:
            if "not found" in exc.api_message.lower() or "notFound" in exc.reason:
                raise UnknownBigQueryName(self.missing_table_message(backend, ref)) from exc
            raise
        schema = TableSchema(
            ref=ref,
            kind=str(getattr(table, "table_type", None) or "TABLE"),
            description=table.description or "",
            num_rows=table.num_rows,
            num_bytes=table.num_bytes,
            fields=tuple(_flatten(list(table.schema))),
        )
        with self._lock:
            self._tables[key] = (time.monotonic(), schema)
        return schema

    def _listed(self, backend: Backend, key: str, load) -> list[str]:
        dataset = key if key != "*" else "idc_current"
        with self._lock:
            hit = self._lists.get((backend.endpoint, key))
        if hit and self._fresh(hit[0], dataset):
            return hit[1]
        names = sorted(load())
        with self._lock:
            self._lists[(backend.endpoint, key)] = (time.monotonic(), names)
        return names

    def tables_of(self, backend: Backend, dataset: str) -> list[str]:
        return self._listed(backend, dataset, lambda: backend.list_tables(dataset))

    def releases(self, backend: Backend) -> list[str]:
        """IDC's datasets in bigquery-public-data (idc_current, idc_v1 ...), oldest release first."""
        names = self._listed(
            backend, "*", lambda: [d for d in backend.list_datasets() if DATASET_PATTERN.fullmatch(d)]
        )
        return sorted(names, key=_release_order)

    def missing_table_message(self, backend: Backend, ref: TableRef) -> str:
        try:
            releases = self.releases(backend)
            tables = self.tables_of(backend, ref.dataset) if ref.dataset in releases else []
        except BigQueryJobError:  # listing may be denied: still say what was not found
            return (
                f"Table `{ref.full_name}` was not found. Check the dataset (idc_current or idc_v<N>) and "
                "the table name; describe_bigquery_table('idc_current') lists IDC's tables."
            )
        if ref.dataset not in releases:
            versions = [r for r in releases if r != "idc_current"]
            span = f"{versions[0]} ... {versions[-1]}" if versions else "none found"
            return (
                f"Dataset `{PUBLIC_PROJECT}.{ref.dataset}` does not exist. IDC's datasets are idc_current "
                f"(the newest release) and idc_v<N> ({span})."
            )
        near = closest(ref.table, tables, limit=5)
        hint = f" Nearest: {', '.join(near)}." if near else ""
        return (
            f"Table `{ref.full_name}` does not exist.{hint} Tables of {ref.dataset}: "
            f"{', '.join(tables[:40])}{' ...' if len(tables) > 40 else ''}."
        )


def _release_order(name: str) -> tuple[int, int]:
    match = re.fullmatch(r"idc_v(\d+)", name)
    return (0, int(match.group(1))) if match else (1, 0)


def nearest_fields(word: str, schemas: list[TableSchema], limit: int = 5) -> list[str]:
    """Real field paths nearest to `word` (matched against each path and its last component)."""
    by_label: dict[str, str] = {}
    for schema in schemas:
        for f in schema.fields:
            label = f"{f.path} ({f.type}{', REPEATED' if f.mode == 'REPEATED' else ''})"
            by_label.setdefault(f.path, label)
            by_label.setdefault(f.path.rsplit(".", 1)[-1], label)
    found = closest(word, list(by_label), limit=limit * 2)
    return list(dict.fromkeys(by_label[name] for name in found))[:limit]


SCHEMAS = SchemaCache()
