"""Replies that repair the assistant's mistakes: unknown tables and columns, and empty results.

Everything here is computed from the catalog and the bundled schemas (column names, nested struct
fields, table descriptions, the data itself), never from a synonym list. The SQL we suggest is built
with sqlglot from the validated tree; a join sketch is shown only if it validates and binds (run with
LIMIT 0), a corrected table name only if it validates. Every query we run for a diagnostic has a short
timeout inside an overall time budget (`budget.Budget`). The zero-row analysis is in `empty_result`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from sqlglot import exp

from idc_mcp.catalog.database import Catalog, QueryFailed
from idc_mcp.catalog.schemas import all_tables
from idc_mcp.diagnostics.budget import Budget
from idc_mcp.diagnostics.column_paths import (
    ColumnPath,
    column_paths,
    join_key,
    path_expr,
    table_columns,
)
from idc_mcp.diagnostics.empty_result import explain_empty_result
from idc_mcp.diagnostics.fuzzy import closest, fold, resembles
from idc_mcp.diagnostics.placeholders import query_notes as placeholder_notes
from idc_mcp.diagnostics.related_values import related_values_notes
from idc_mcp.diagnostics.text_formats import explain_mismatch, explain_text_function, sample_values
from idc_mcp.diagnostics.unknown_columns import other_unknown_columns
from idc_mcp.sql import guard

log = logging.getLogger(__name__)

MAX_PLACES = 5  # other tables named for an unknown column


def _referenced_columns(tree: exp.Expression) -> list[str]:
    names = [c.name for c in tree.find_all(exp.Column) if c.name and not isinstance(c.this, exp.Star)]
    aliases = {a.alias.lower() for a in tree.find_all(exp.Alias)}
    return list(dict.fromkeys(n for n in names if n.lower() not in aliases))


def _table_candidates(catalog: Catalog, table: str, tree: exp.Expression | None) -> list[tuple[str, str]]:
    """(table, why) candidates for an unknown table name, best first, from names, columns and descriptions."""
    tables = all_tables()
    installed = set(catalog.installed_tables())
    by_key = {info.source_key: name for name, info in tables.items()}
    names = list(tables) + list(by_key)
    exact = [n for n in names if fold(n) == fold(table)]
    if exact:
        return [(by_key.get(exact[0], exact[0]), "same name in idc-index")]
    found: dict[str, str] = {}
    for near in closest(table, names, limit=2, cutoff=80):
        found.setdefault(by_key.get(near, near), "closest name")
    referenced = _referenced_columns(tree) if tree is not None else []
    if referenced:
        for name in tables:
            have = {fold(c) for c in table_columns(catalog, name)}
            if all(fold(c) in have for c in referenced):
                found.setdefault(name, f"has every column the query uses: {', '.join(referenced[:4])}")
    if not found:
        words = {fold(table), fold(table).removesuffix("s")} - {""}
        for name, info in tables.items():
            text = fold(". ".join(info.description.split(". ")[:2]))
            if any(w in text for w in words):
                found.setdefault(name, f"its description mentions {table!r}")
    ranked = sorted(found.items(), key=lambda kv: (kv[1] != "closest name", kv[0] not in installed))
    return ranked[:3]


def unknown_table_message(catalog: Catalog, table: str, tree: exp.Expression | None) -> str:
    """Why `table` is refused and what to use instead; `tree` is the caller's query as the guard parsed it."""
    if table.startswith("/") or "." in table or "://" in table:
        return (
            f"{table!r} is not a catalog table: files and URLs cannot be read. "
            f"Query the catalog tables by name ({', '.join(catalog.installed_tables())})."
        )
    candidates = _table_candidates(catalog, table, tree)
    parts = [f"Table {table!r} does not exist."]
    for rank, (name, why) in enumerate(candidates):
        lead = "Did you mean" if rank == 0 else "Or"
        if catalog.is_installed(name):
            parts.append(f"{lead} {name}? ({why}; {catalog.row_count(name):,} rows)")
        else:
            parts.append(f'{lead} {name}? ({why}; not installed: fetch it first with fetch_index("{name}"))')
    best = next((n for n, _ in candidates if catalog.is_installed(n)), None)
    if tree is not None and best:
        fixed = tree.copy()
        for node in fixed.find_all(exp.Table):
            if node.name.lower() == table.lower():
                node.set("this", exp.to_identifier(best))
        try:  # shown only when it passes the validator (another table may be wrong too)
            guard.validate_tree(fixed.copy(), catalog.installed_tables(), 1)
            parts.append(f"Corrected query: `{fixed.sql(dialect='duckdb')}`.")
        except guard.SQLRejected:
            pass
    parts.append(
        f"Installed tables: {', '.join(catalog.installed_tables())} "
        f'(list_tables() shows all of them, describe_table(table="{best or "index"}") their columns).'
    )
    return " ".join(parts)


# -- unknown columns --------------------------------------------------------------------------------
_MISSING_COLUMN = [
    re.compile(r'Table "([^"]+)" does not have a column named "([^"]+)"'),
    re.compile(r'Referenced column "([^"]+)" not found'),
    re.compile(r'Could not find key "([^"]+)" in struct'),
    re.compile(r"Cannot extract field '([^']+)' from expression"),
    re.compile(r'Column "([^"]+)" .*not found', re.S),
]


# DuckDB's generic advice after a function that met the wrong type, left out where ours replaces it.
_NO_ADVICE = re.compile(r"\. (?:You might need|In order to)")
_DESCRIBE_TAIL = re.compile(r'describe_table\(table="[^"]*"\) lists every column with its description\.$')


def missing_column(error: str) -> tuple[str | None, str] | None:
    """(qualifier, column) named by a DuckDB binder error about a missing column or field."""
    for pattern in _MISSING_COLUMN:
        match = pattern.search(error)
        if match:
            groups = match.groups()
            return (groups[0], groups[1]) if len(groups) == 2 else (None, groups[0])
    return None


def explain_error(
    catalog: Catalog, validated: guard.ValidatedQuery, exc: QueryFailed, budget: Budget | None = None
) -> str:
    """An actionable message for a DuckDB error on a validated query."""
    text = internal_names_removed(str(exc))
    first = text.splitlines()[0][:400] if text else type(exc).__name__
    generic = f"The query failed: {first}. Fix the SQL and run it again (describe_table shows column types)."
    try:
        return _explain_error(catalog, validated, text, first, budget or Budget()) or generic
    except Exception:  # a diagnostic must never hide the error it explains
        log.exception("explaining a query error failed")
        return generic


# DuckDB names tables by database: "catalog-v1".main."index", "x_sm_index".main.sm_index. Those
# database names are ours, not the caller's: a table is just `index` to them.
_QUALIFIED = re.compile(r'(?:"[^"\n]*"|[A-Za-z_][\w-]*)\.main\.(?:"([^"\n]*)"|([A-Za-z_]\w*))')


def internal_names_removed(text: str) -> str:
    """A DuckDB message with internal database names left out (`"catalog-v1".main."index"` -> `index`)."""
    return _QUALIFIED.sub(lambda m: m.group(1) or m.group(2), text)


def _explain_error(
    catalog: Catalog, validated: guard.ValidatedQuery, text: str, first: str, budget: Budget
) -> str | None:
    twice = re.search(r'Ambiguous reference to table "([^"]+)"', text)
    if twice:
        table = twice.group(1)
        return (
            f"The query failed: {first}. The same table is read twice without its own name: give each "
            f"one an alias and qualify columns with it, e.g. FROM {table} a, {table} b (or FROM {table} a "
            f"JOIN {table} b ON a.<key> = b.<key>), then SELECT a.<column>, b.<column> ..."
        )
    missing = missing_column(text)
    if missing:
        qualifier, column = missing
        first = unknown_column_message(catalog, column, validated, qualifier, budget)
        others = other_unknown_columns(catalog, validated, column)
        if not others:
            return first
        # One reply for every unknown name; the describe_table pointer once, at the end.
        parts = [first, *(unknown_column_message(catalog, n, validated, q, budget) for q, n in others)]
        tail = _DESCRIBE_TAIL.search(first)
        if tail is None:
            return " ".join(parts)
        return " ".join([*(_DESCRIBE_TAIL.sub("", p).rstrip() for p in parts), tail.group(0)])
    wrong_alias = re.search(r'Referenced table "([^"]+)" not found', text)
    if wrong_alias:
        known = ", ".join(f"{a} ({t})" for a, t in validated.aliases.items() if a != t.lower())
        tables = ", ".join(dict.fromkeys(t for t in validated.aliases.values()))
        return (
            f"{wrong_alias.group(1)!r} is not a table or alias in this query. Qualify columns with "
            f"{'an alias defined in FROM/JOIN: ' + known if known else 'a table in FROM/JOIN: ' + tables}."
        )
    if any(k in text for k in ("No function matches the given name", "Could not choose a best candidate")):
        hint = explain_text_function(catalog, validated, budget)
        if hint:
            return f"The query failed: {_NO_ADVICE.split(first)[0]}. {hint}"
    if any(
        k in text for k in ("Cannot compare values of type", "Could not convert string", "Cannot mix values")
    ):
        hint = explain_mismatch(catalog, validated, budget) or _text_compared_to_number(
            catalog, validated, budget
        )
        if hint:
            return f"The query failed: {first}. {hint}"
    return None


def _text_compared_to_number(catalog: Catalog, validated: guard.ValidatedQuery, budget: Budget) -> str:
    """For `PatientAge > 50`-style mistakes: which text column met a number, and what its values look like."""
    types: dict[str, str] = {}
    for table in validated.tables:
        for name, dtype in catalog.columns(table):
            types.setdefault(name.lower(), dtype)
    aliases = validated.aliases
    for node in validated.tree.find_all(exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Between):
        column = node.this
        others = [v for k, v in node.args.items() if k != "this" and isinstance(v, exp.Literal)]
        if not isinstance(column, exp.Column) or not any(o.is_number for o in others):
            continue
        if types.get(column.name.lower()) != "VARCHAR":
            continue
        table = aliases.get(column.table.lower()) if column.table else None
        owners = [
            t for t in validated.tables if column.name.lower() in {c.lower() for c, _ in catalog.columns(t)}
        ]
        table = table or (owners[0] if owners else None)
        if table is None:
            continue
        values = sample_values(catalog, table, column.name, budget)[:3]  # the most common: the same each time
        examples = ", ".join(exp.Literal.string(str(v)).sql() for v in values)
        like = f"; values look like {examples}" if examples else ""
        return (
            f"{column.name} is text (VARCHAR{like}): compare it with a string, or convert it first, e.g. "
            f"TRY_CAST(regexp_extract({column.name}, '\\d+') AS INTEGER) for numbers inside text."
        )
    return ""


def unknown_column_message(
    catalog: Catalog,
    column: str,
    validated: guard.ValidatedQuery,
    qualifier: str | None = None,
    budget: Budget | None = None,
) -> str:
    budget = budget or Budget()
    aliases = validated.aliases
    used = [t for t in validated.tables if catalog.is_installed(t)]
    target = aliases.get(qualifier.lower()) if qualifier else None
    targets = [target] if target in used else used
    parts = [f"Column {column!r} does not exist in {', '.join(targets) or 'the queried tables'}."]
    paths = column_paths(catalog)
    # 0. The table has it, so the reference reads from a CTE or subquery that does not select it.
    for table in targets:
        if any(p.path.lower() == column.lower() for p in paths if p.table == table):
            return (
                f"{column!r} is a column of {table}, but the CTE or subquery this part of the query reads "
                f"from does not select it: add {column} to that inner SELECT list (or select * there)."
            )
    # 1. Another table of the same query that has it (a wrong alias in a join).
    in_query = False
    for node in dict.fromkeys(validated.tree.find_all(exp.Table)):
        if node.name in targets or node.name not in used:
            continue
        if any(fold(p.path) == fold(column) for p in paths if p.table == node.name):
            alias = node.alias_or_name
            parts.append(f"{node.name} has it: write {alias}.{column}.")
            in_query = True
    # 2. Close names in the table(s) the reference points at.
    own: list[str] = []
    for table in targets:
        by_leaf: dict[str, list[str]] = {}
        for p in paths:
            if p.table == table:
                by_leaf.setdefault(p.leaf, []).append(p.path)
        leaves = [n for n in closest(column, by_leaf, limit=6, cutoff=75) if resembles(column, n)]
        near = [path for leaf in leaves for path in by_leaf[leaf]][:3]
        if near:
            use = path_expr(qualifier, near[0]).sql(dialect="duckdb")
            own.append(f"Close names in {table}: {', '.join(near)} (use {use} if that is what you meant).")
    # 3. Every other table that holds it (or, failing a close name here, a close name there),
    #    with the join key and a query sketch. Exact matches elsewhere come before near names here.
    places = [] if in_query else _places(paths, column, set(used), fuzzy=not own)[:MAX_PLACES]
    base = targets[0] if targets else None
    elsewhere = [_place_hint(catalog, place, base, column, validated, budget) for place in places]
    exact_elsewhere = bool(places) and fold(places[0].leaf) == fold(column)
    parts.extend(elsewhere + own if exact_elsewhere else own + elsewhere)
    if len(parts) == 1:
        parts.append("No table has a column with that name or a close one.")
    parts.append(
        f'describe_table(table="{(targets or ["index"])[0]}") lists every column with its description.'
    )
    return " ".join(parts)


def _places(paths: list[ColumnPath], column: str, used: set[str], fuzzy: bool) -> list[ColumnPath]:
    others = [p for p in paths if p.table not in used]
    exact = [p for p in others if fold(p.leaf) == fold(column)]
    if exact:
        return sorted(exact, key=lambda p: (not p.installed, p.path.count(".")))
    if not fuzzy:
        return []
    near = {n for n in closest(column, {p.leaf for p in others}, limit=3, cutoff=88) if resembles(column, n)}
    return sorted((p for p in others if p.leaf in near), key=lambda p: (not p.installed, p.path.count(".")))


def _place_hint(
    catalog: Catalog,
    place: ColumnPath,
    base: str | None,
    column: str,
    validated: guard.ValidatedQuery,
    budget: Budget,
) -> str:
    where = f"{place.table}.{place.path}"
    key = join_key(catalog, base, place.table) if base else None
    if key is None:
        return f"{where} exists, but {place.table} shares no key column with {base}: query it on its own."
    if not place.installed:
        return (
            f"{where} exists (join on {key}); {place.table} is not installed: "
            f'fetch it first: fetch_index("{place.table}").'
        )
    sketch = join_sketch(catalog, validated, base or "", place, column, key, budget)
    return f"{where} exists: join {place.table} on {key}, e.g. `{sketch}`."


def _alias_for(table: str, taken: set[str]) -> str:
    letter = table[0].lower()
    alias, n = letter, 1
    while alias in taken:
        n += 1
        alias = f"{letter}{n}"
    return alias


def join_sketch(
    catalog: Catalog,
    validated: guard.ValidatedQuery,
    base: str,
    place: ColumnPath,
    column: str,
    key: str,
    budget: Budget,
) -> str:
    """The caller's query with `place.table` joined on `key` and the column taken from it.

    Built from the validated tree; shown only if it validates and binds, else a minimal sketch.
    """
    tree = validated.tree.copy()
    limit = tree.args.get("limit")
    if isinstance(limit, exp.Limit) and limit.expression.name == str(validated.limit + 1):
        tree.set("limit", None)
    table_node = next((t for t in tree.find_all(exp.Table) if t.name.lower() == base.lower()), None)
    select = table_node.find_ancestor(exp.Select) if table_node else None
    sketch = None
    if table_node is not None and select is not None:
        taken = {t.alias_or_name.lower() for t in tree.find_all(exp.Table)}
        if not table_node.alias:
            mine = _alias_for(base, taken)
            taken.add(mine)
            table_node.set("alias", exp.TableAlias(this=exp.to_identifier(mine)))
        mine = table_node.alias
        other = _alias_for(place.table, taken)
        own_columns = {c.lower() for c in table_columns(catalog, base)}
        for col in list(select.find_all(exp.Column)):
            if col.find_ancestor(exp.Select) is not select or isinstance(col.this, exp.Star):
                continue
            if col.name.lower() == column.lower():
                new = path_expr(other, place.path)
                if isinstance(col.parent, exp.Select):
                    new = exp.alias_(new, place.leaf)
                col.replace(new)
            elif not col.table and col.name.lower() in own_columns:
                col.set("table", exp.to_identifier(mine))
        table_ref = exp.Table(
            this=exp.to_identifier(place.table), alias=exp.TableAlias(this=exp.to_identifier(other))
        )
        select.join(table_ref, using=[key], copy=False)
        sketch = tree.sql(dialect="duckdb")
        if not _binds(catalog, tree, budget):
            sketch = None
    if sketch is None:
        mine, other = _alias_for(base, set()), _alias_for(place.table, {_alias_for(base, set())})
        minimal = (
            exp.select(
                exp.Column(this=exp.Star(), table=exp.to_identifier(mine)),
                exp.alias_(path_expr(other, place.path), place.leaf),
            )
            .from_(
                exp.Table(this=exp.to_identifier(base), alias=exp.TableAlias(this=exp.to_identifier(mine)))
            )
            .join(
                exp.Table(
                    this=exp.to_identifier(place.table), alias=exp.TableAlias(this=exp.to_identifier(other))
                ),
                using=[key],
            )
        )
        sketch = minimal.sql(dialect="duckdb") + " WHERE ..."
    return sketch


def _binds(catalog: Catalog, suggested: exp.Expression, budget: Budget) -> bool:
    """Whether a suggested query passes our validator and DuckDB's binder (run with LIMIT 0)."""
    try:
        checked = guard.validate_tree(suggested.copy(), catalog.installed_tables(), 1)
    except guard.SQLRejected:
        return False
    tree = checked.tree
    tree.set("limit", exp.Limit(expression=exp.Literal.number(0)))
    return budget.run(catalog, tree) is not None


Diagnose = Callable[[Catalog, guard.ValidatedQuery, Budget], list[str]]


def _notes(
    diagnose: Diagnose,
    catalog: Catalog,
    validated: guard.ValidatedQuery,
    budget: Budget | None,
    failed: str,
    fallback: list[str],
) -> list[str]:
    """Run one diagnostic of a query that has its rows: the rows are the answer, so a diagnostic that
    fails must not fail the query; its failure is logged and `fallback` returned."""
    try:
        return diagnose(catalog, validated, budget or Budget())
    except Exception:
        log.exception("%s failed", failed)
        return fallback


def explain_empty(
    catalog: Catalog, validated: guard.ValidatedQuery, budget: Budget | None = None
) -> list[str]:
    """Why a query returned no rows: which conditions empty it and which values exist instead."""
    fallback = ["The query returned no rows."]
    return _notes(explain_empty_result, catalog, validated, budget, "explaining an empty result", fallback)


def explain_related(
    catalog: Catalog, validated: guard.ValidatedQuery, budget: Budget | None = None
) -> list[str]:
    """For a result with rows: an equality whose literal has related values with many more rows."""
    return _notes(related_values_notes, catalog, validated, budget, "looking for related values", [])


def explain_placeholders(
    catalog: Catalog, validated: guard.ValidatedQuery, budget: Budget | None = None
) -> list[str]:
    """For a query that filters, groups or computes on a date column: the collections whose dates
    there are placeholders (one day of the year for every patient)."""
    return _notes(placeholder_notes, catalog, validated, budget, "looking for placeholder dates", [])


def counts_nothing(validated: guard.ValidatedQuery, records: list[dict[str, object]]) -> bool:
    """An aggregate-only query without GROUP BY whose one row is all 0/NULL (count(*) = 0): empty too."""
    tree = validated.tree
    if len(records) != 1 or not isinstance(tree, exp.Select) or tree.args.get("group"):
        return False
    if not all(e.find(exp.AggFunc) for e in tree.expressions):
        return False
    return all(v in (0, None) for v in records[0].values())
