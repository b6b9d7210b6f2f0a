"""Facts computed when the catalog is built (catalog.facts): the diagnostics and describe_table read a
column's values from them instead of scanning the column, and must say exactly what a scan would.

Each check runs twice: with the built facts, and with them turned off (the path a first-ever start's
parquet views and fetched indices take), and the two answers must be the same.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlglot import exp

from idc_mcp.catalog import build, facts
from idc_mcp.catalog.database import Catalog, QueryFailed
from idc_mcp.catalog.memo import Memo
from idc_mcp.config import load_settings
from idc_mcp.diagnostics import related_values, value_hints
from idc_mcp.diagnostics.budget import Budget
from idc_mcp.diagnostics.value_hints import Scope
from idc_mcp.tools import tables
from idc_mcp.tools.query import run_query


@pytest.fixture
def without_facts(monkeypatch: pytest.MonkeyPatch):
    """Turn the built facts off, and start without any values kept from earlier tests."""

    def off() -> None:
        monkeypatch.setattr(facts, "text_values", lambda *_: None)
        monkeypatch.setattr(related_values, "_POOLS", Memo(maxsize=256))
        fresh_profiles(monkeypatch)

    return off


def fresh_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tables, "_PROFILES", Memo(maxsize=64))
    monkeypatch.setattr(tables, "_VIEWS", Memo(maxsize=256))


def _computed_pool(catalog: Catalog, table: str, column: str, monkeypatch: pytest.MonkeyPatch):
    with monkeypatch.context() as patch:
        patch.setattr(facts, "text_values", lambda *_: None)
        budget = Budget(total_s=60, per_query_s=30)
        pool = value_hints.value_pool(catalog, _scope(), exp.to_table(table), column, budget)
        assert budget.ran > 0 and budget.skipped == 0
        return pool


def _scope() -> Scope:
    return Scope(exp.select("*"), None, {}, {})


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("index", "Manufacturer"),
        ("index", "Modality"),
        ("index", "BodyPartExamined"),
        ("index", "license_short_name"),
        ("collections_index", "cancer_types"),
        ("collections_index", "tumor_locations"),
    ],
)
def test_a_built_pool_holds_exactly_the_values_a_scan_counts(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch, table: str, column: str
) -> None:
    built = value_hints.value_pool(catalog, _scope(), exp.to_table(table), column, Budget())
    computed = _computed_pool(catalog, table, column, monkeypatch)
    assert built.complete and computed.complete
    assert built.counts == computed.counts


def test_an_identifier_column_has_no_pool_either_way(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    budget = Budget()
    built = value_hints.value_pool(catalog, _scope(), exp.to_table("index"), "SeriesInstanceUID", budget)
    assert budget.ran == 0  # answered from the build: no scan
    computed = _computed_pool(catalog, "index", "SeriesInstanceUID", monkeypatch)
    assert (built.counts, built.complete) == ({}, False) == (computed.counts, computed.complete)


@pytest.mark.parametrize("column", ["StudyDescription", "SeriesNumber"])
def test_a_column_with_too_many_values_keeps_its_most_common_ones(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch, column: str
) -> None:
    built = value_hints.value_pool(catalog, _scope(), exp.to_table("index"), column, Budget())
    computed = _computed_pool(catalog, "index", column, monkeypatch)
    assert not built.complete and not computed.complete
    assert len(built.counts) == value_hints.DISTINCT_CAP
    assert list(built.counts.items()) == list(computed.counts.items())  # ties at the cut too: by value


def test_names_are_matched_as_sql_matches_them_in_any_case(catalog: Catalog) -> None:
    upper = facts.text_values(catalog, "INDEX", "manufacturer")
    assert upper is not None and upper == facts.text_values(catalog, "index", "Manufacturer")


def test_no_facts_for_what_the_build_did_not_count(catalog: Catalog) -> None:
    assert facts.text_values(catalog, "index", "series_size_MB") is None  # not text
    assert facts.text_values(catalog, "index", "no_such_column") is None
    assert facts.text_values(catalog, "sm_index", "ObjectiveLensPower") is None  # a fetched index


def test_a_catalog_without_facts_answers_none_so_the_caller_computes() -> None:
    class ParquetViews:  # what a first-ever start queries: no idc_mcp_facts schema
        cache_key = ("first-ever", 0, True)

        def preloaded_facts(self) -> dict[str, Any]:
            return {}

        def execute(self, sql: str, *_: Any, **__: Any) -> None:
            raise QueryFailed(
                "CatalogException", "Catalog Error: Table with name text_columns does not exist!"
            )

    assert facts.text_values(ParquetViews(), "index", "Modality") is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) AS n FROM index WHERE Manufacturer = 'GE'",  # related values, with counts
        "SELECT count(*) AS n FROM index i WHERE i.Manufacturer IN ('GE', 'Philips') AND Modality = 'CT'",
        "SELECT * FROM index WHERE BodyPartExamined = 'LUNGS' AND Modality = 'CT'",  # nearest values
        "SELECT * FROM index WHERE Manufacturer = 'Siemens Medical'",
        "SELECT * FROM index WHERE Modality = 'ct'",
        "SELECT collection_id FROM collections_index WHERE cancer_types = 'lung'",
        "SELECT * FROM index WHERE SeriesDescription = 'axial t2 flair'",  # a free-text column
    ],
)
def test_built_facts_give_the_same_hints_as_scanning_the_columns(
    catalog: Catalog, without_facts, sql: str
) -> None:
    built = run_query(catalog, sql + " ", max_rows=5).diagnostics  # a new text: not a cached reply
    assert built, "the premise: this query gets a hint"
    without_facts()
    computed = run_query(catalog, sql + "  ", max_rows=6).diagnostics
    assert [n.replace("max_rows", "") for n in built] == [n.replace("max_rows", "") for n in computed]


@pytest.mark.parametrize("table", ["index", "collections_index", "analysis_results_index"])
def test_describe_table_from_built_facts_is_the_same_as_scanning(
    catalog: Catalog, without_facts, monkeypatch: pytest.MonkeyPatch, table: str
) -> None:
    fresh_profiles(monkeypatch)
    built = tables.describe_table(catalog, table)
    text = [c for c, t in catalog.columns(table) if t == "VARCHAR"]
    full = tables.describe_table(catalog, table, "Modality" if table == "index" else text[0])
    without_facts()
    assert tables.describe_table(catalog, table) == built
    assert tables.describe_table(catalog, table, (full.columns or [])[0].name) == full


def test_describe_table_scans_no_text_column_of_a_bundled_table(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_profiles(monkeypatch)
    ran: list[str] = []
    execute = catalog.execute

    def spy(sql: str, *args: Any, **kwargs: Any):
        ran.append(sql)
        return execute(sql, *args, **kwargs)

    monkeypatch.setattr(catalog, "execute", spy)
    tables.describe_table(catalog, "index")
    grouped = [s for s in ran if "GROUP BY" in s and "idc_mcp_facts" not in s]
    text = {c for c, t in catalog.columns("index") if t == "VARCHAR"}
    assert not [s for s in grouped if any(f'"{c}"' in s for c in text)], grouped


# -- the layout of the catalog file --------------------------------------------------------------------
def test_a_catalog_of_an_older_layout_is_rebuilt_and_removed(
    built_catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDC_MCP_CACHE_DIR", str(tmp_path))
    settings = load_settings()
    folder = settings.version_cache_dir
    folder.mkdir(parents=True)
    older = folder / f"catalog-v{build.CATALOG_LAYOUT - 1}.duckdb"
    newer = folder / f"catalog-v{build.CATALOG_LAYOUT + 1}.duckdb"
    shutil.copy(built_catalog, older)  # a complete catalog, but without this layout's facts
    newer.write_bytes(b"a newer server's catalog")
    builds: list[list[str]] = []

    def child(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        # The build child's work, in this process and without its minute of building (see below).
        builds.append(command)
        build.build_once(Path(command[-2]), int(command[-1]))
        return subprocess.CompletedProcess(command, 0, "", "")

    def materialize(target: Path, threads: int) -> None:  # leaves the file the real build would
        os.link(built_catalog, target)

    monkeypatch.setattr(build.subprocess, "run", child)
    monkeypatch.setattr(build, "build_catalog_file", materialize)
    target = build.ensure_catalog_file(settings)
    assert target == folder / build.CATALOG_FILE and target.is_file()
    assert len(builds) == 1 and builds[0][-2] == str(target)
    assert not older.exists()  # never opened again: its space is given back
    assert newer.read_bytes() == b"a newer server's catalog"  # left to the newer code that made it
    assert build.ensure_catalog_file(settings) == target and len(builds) == 1  # current: no rebuild


@pytest.mark.parametrize(
    ("where", "known"),
    [
        (None, True),  # the table's rows
        ("Modality = 'MR'", True),
        ("Modality IN ('MR', 'CT', 'MR')", True),  # a repeated value counts once, as in SQL
        ("i.Manufacturer = 'GE'", True),
        ("Modality = 'nothing'", True),
        ("lower(Modality) = 'mr'", False),  # a folded comparison: counted by a query
        ("SeriesDescription = 'CT'", False),  # identifier-like: its values are not kept
        ("instanceCount = 1", False),  # not a text column
    ],
)
def test_counts_the_catalog_build_holds_are_the_counts_a_query_gives(
    catalog: Catalog, where: str | None, known: bool
) -> None:
    from idc_mcp.diagnostics import empty_result
    from idc_mcp.diagnostics.value_hints import scope_of
    from idc_mcp.sql import guard
    from tests.parquet import parquet_sql

    sql = "SELECT * FROM index AS i" + (f" WHERE {where}" if where else "")
    validated = guard.validate(sql, catalog.installed_tables(), 10)
    tree = validated.tree
    conds = empty_result.conjuncts(tree.args.get("where"))
    counted = empty_result._known_count(catalog, scope_of(tree, None, validated.scope), conds)
    if not known:
        assert counted is None
        return
    truth = parquet_sql('SELECT count(*) FROM "index" AS i' + (f" WHERE {where}" if where else ""))[0][0]
    assert counted == truth


def test_a_join_is_always_counted_by_a_query(catalog: Catalog) -> None:
    from idc_mcp.diagnostics import empty_result
    from idc_mcp.diagnostics.value_hints import scope_of
    from idc_mcp.sql import guard

    sql = "SELECT * FROM index i JOIN collections_index c USING (collection_id) WHERE i.Modality = 'MR'"
    validated = guard.validate(sql, catalog.installed_tables(), 10)
    tree = validated.tree
    conds = empty_result.conjuncts(tree.args.get("where"))
    assert empty_result._known_count(catalog, scope_of(tree, None, validated.scope), conds) is None
