"""Name resolution (`idc_mcp.sql.scopes`): which CTE, table or derived table a name refers to.

The validator and the diagnostics both read names through this one module; these tests pin the SQL
scoping rules it must follow (DuckDB's: a CTE is visible only inside the query that defines it, after
its definition, and names compare without regard to case).
"""

from __future__ import annotations

from sqlglot import exp

from idc_mcp.sql import scopes
from idc_mcp.sql.guard import parse_one_statement


def _cte_tables(sql: str) -> list[str]:
    """The FROM/JOIN names of `sql` that resolve to a CTE, in text order."""
    tree = parse_one_statement(sql)
    found = scopes.cte_references(scopes.scopes(tree))
    return [t.sql(dialect="duckdb") for t in tree.find_all(exp.Table) if id(t) in found]


def test_a_cte_in_a_subquery_does_not_vouch_for_an_outer_table_of_that_name() -> None:
    # The attack: a harmless CTE named like a system view, defined where it cannot be seen.
    sql = "SELECT * FROM sqlite_master, (WITH sqlite_master AS (SELECT 1) SELECT * FROM sqlite_master) x"
    assert _cte_tables(sql) == ["sqlite_master"]
    tree = parse_one_statement(sql)
    outer = tree.args["from_"].this
    assert id(outer) not in scopes.cte_references(scopes.scopes(tree))


def test_a_cte_is_not_visible_before_its_definition() -> None:
    assert _cte_tables("WITH b AS (SELECT * FROM a), a AS (SELECT 1) SELECT * FROM b") == ["b"]


def test_cte_names_compare_without_case_like_duckdb() -> None:
    assert _cte_tables('WITH Recent AS (SELECT 1) SELECT * FROM recent, "RECENT" r') == [
        "recent",
        '"RECENT" AS r',
    ]


def test_a_cte_is_visible_in_subqueries_of_its_query() -> None:
    sql = "WITH c AS (SELECT 1 AS v) SELECT * FROM index WHERE 1 IN (SELECT v FROM c)"
    assert _cte_tables(sql) == ["c"]


def test_sources_name_what_each_alias_reads() -> None:
    tree = parse_one_statement(
        "WITH c AS (SELECT 1 AS v) SELECT * FROM index i JOIN c ON true JOIN (SELECT 2 AS w) d ON true "
        "ANTI JOIN sm_index s ON true"
    )
    root = scopes.scopes(tree)[-1]  # the outermost scope comes last
    found = scopes.sources(root)
    assert sorted(found) == ["c", "d", "i"]  # the ANTI JOIN's columns are not visible: left out
    assert found["i"][1] is None  # a catalog table
    assert found["c"][1] is not None and found["c"][1].expression.sql() == "SELECT 1 AS v"
    assert found["d"][1] is not None and found["d"][1].expression.sql() == "SELECT 2 AS w"


def test_table_aliases_map_each_alias_to_its_table() -> None:
    tree = parse_one_statement(
        "SELECT * FROM index a JOIN sm_index ON true WHERE x IN (SELECT 1 FROM collections c)"
    )
    assert scopes.table_aliases(scopes.scopes(tree), tree) == {
        "a": "index",
        "index": "index",
        "sm_index": "sm_index",
        "c": "collections",
        "collections": "collections",
    }


def test_a_validated_query_carries_its_scope_and_aliases_built_once(monkeypatch) -> None:
    # The diagnostics read names from the validated query: sqlglot's scopes are built once per query,
    # and the caller's text is never parsed again after the guard.
    from idc_mcp.sql import guard

    builds: list[int] = []
    original = scopes.traverse_scope
    monkeypatch.setattr(scopes, "traverse_scope", lambda root: builds.append(1) or original(root))
    validated = guard.validate("SELECT i.Modality FROM index i WHERE i.Modality = 'MR'", ["index"], 10)
    assert builds == [1]
    assert validated.scope is not None and validated.scope.expression is validated.tree
    assert validated.aliases == {"i": "index", "index": "index"}


def test_an_unknown_table_is_refused_with_the_tree_the_guard_parsed() -> None:
    import pytest

    from idc_mcp.sql import guard

    with pytest.raises(guard.UnknownTable) as refused:
        guard.validate("SELECT Modality FROM indx WHERE Modality = 'CT'", ["index"], 10)
    assert refused.value.tree is not None
    assert [t.name for t in refused.value.tree.find_all(exp.Table)] == ["indx"]
