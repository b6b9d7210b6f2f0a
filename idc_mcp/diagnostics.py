"""Replies that repair the assistant's mistakes: unknown tables and columns, and empty results.

Everything here is computed from the catalog and the bundled schemas (column names, nested struct
fields, table descriptions, the data itself), never from a synonym list. The SQL we suggest is built
with sqlglot from the validated tree and checked to bind before it is shown; every query we run for a
diagnostic has a short timeout inside an overall time budget (`budget.Budget`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb
from sqlglot import exp

from idc_mcp import sqlguard
from idc_mcp.budget import Budget
from idc_mcp.catalog import Catalog
from idc_mcp.empty_result import explain_empty_result
from idc_mcp.fuzzy import closest, fold
from idc_mcp.schemas import JOIN_KEYS, all_tables, get_table

MAX_PLACES = 5  # other tables named for an unknown column


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


def struct_fields(duck_type: str) -> tuple[list[tuple[str, str]], bool]:
    """The (field, type) pairs of a DuckDB STRUCT type, and whether it is a list of structs."""
    text = duck_type.strip()
    is_list = text.endswith("[]")
    text = text.removesuffix("[]")
    if not (text.upper().startswith("STRUCT(") and text.endswith(")")):
        return [], is_list
    body, fields, depth, start = text[7:-1], [], 0, 0
    for pos, char in enumerate(body + ","):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            item = body[start:pos].strip()
            start = pos + 1
            match = re.match(r'^("(?:[^"]|"")+"|\S+)\s+(.+)$', item, re.S)
            if match:
                name = match.group(1)
                if name.startswith('"'):
                    name = name[1:-1].replace('""', '"')
                fields.append((name, match.group(2)))
    return fields, is_list


def _nested_paths(prefix: str, duck_type: str, depth: int = 0) -> list[str]:
    fields, is_list = struct_fields(duck_type)
    if not fields or depth > 4:
        return []
    base = prefix + ("[]" if is_list else "")
    paths = []
    for name, sub in fields:
        path = f"{base}.{name}"
        paths.append(path)
        paths.extend(_nested_paths(path, sub, depth + 1))
    return paths


def column_paths(catalog: Catalog) -> list[ColumnPath]:
    """Every column of every table idc-index-data knows, with nested fields of installed tables."""
    installed = set(catalog.installed_tables())
    paths: list[ColumnPath] = []
    for name, info in all_tables().items():
        if name in installed:
            for column, duck_type in catalog.columns(name):
                paths.append(ColumnPath(name, column, True))
                paths.extend(ColumnPath(name, p, True) for p in _nested_paths(column, duck_type))
        else:
            paths.extend(ColumnPath(name, c, False) for c in info.column_names)
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


def _size_note(table: str) -> str:
    info = get_table(table)
    columns = f"{len(info.columns)} columns" if info else ""
    return f" ({columns})" if columns else ""


def not_installed_message(table: str) -> str:
    info = get_table(table)
    about = f" {info.description.split('. ')[0][:200]}." if info and info.description else ""
    key = next((k for k in JOIN_KEYS if info and k in info.column_names), None)
    join = f" It joins to index on {key}." if key and info and info.name != "index" else ""
    return (
        f"Table {table!r} is an IDC index that is not installed yet{_size_note(table)}.{about}{join} "
        f"Fetch it first: fetch_index({table!r}), then run the query again."
    )


# -- unknown tables ---------------------------------------------------------------------------------
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


def unknown_table_message(catalog: Catalog, table: str, sql: str) -> str:
    if table.startswith("/") or "." in table or "://" in table:
        return (
            f"{table!r} is not a catalog table: files and URLs cannot be read. "
            f"Query the catalog tables by name ({', '.join(catalog.installed_tables())})."
        )
    try:
        tree: exp.Expression | None = sqlguard.parse_one_statement(sql)
    except sqlguard.SQLRejected:
        tree = None
    candidates = _table_candidates(catalog, table, tree)
    parts = [f"Table {table!r} does not exist."]
    for rank, (name, why) in enumerate(candidates):
        lead = "Did you mean" if rank == 0 else "Or"
        if catalog.is_installed(name):
            parts.append(f"{lead} {name}? ({why}; {catalog.row_count(name):,} rows)")
        else:
            parts.append(f"{lead} {name}? ({why}; not installed: fetch it first with fetch_index({name!r}))")
    best = next((n for n, _ in candidates if catalog.is_installed(n)), None)
    if tree is not None and best:
        fixed = tree.copy()
        for node in fixed.find_all(exp.Table):
            if node.name.lower() == table.lower():
                node.set("this", exp.to_identifier(best))
        parts.append(f"Corrected query: {fixed.sql(dialect='duckdb')} .")
    parts.append(
        f"Installed tables: {', '.join(catalog.installed_tables())} "
        "(list_tables() shows all of them, describe_table(name) their columns)."
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


def missing_column(error: str) -> tuple[str | None, str] | None:
    """(qualifier, column) named by a DuckDB binder error about a missing column or field."""
    for pattern in _MISSING_COLUMN:
        match = pattern.search(error)
        if match:
            groups = match.groups()
            return (groups[0], groups[1]) if len(groups) == 2 else (None, groups[0])
    return None


def _aliases(tree: exp.Expression) -> dict[str, str]:
    """alias or name (lowercase) -> catalog table, for the tables the query reads."""
    out: dict[str, str] = {}
    for node in tree.find_all(exp.Table):
        out[node.alias_or_name.lower()] = node.name
        out.setdefault(node.name.lower(), node.name)
    return out


def explain_error(
    catalog: Catalog, validated: sqlguard.ValidatedQuery, exc: duckdb.Error, budget: Budget | None = None
) -> str:
    """An actionable message for a DuckDB error on a validated query."""
    text = str(exc)
    first = text.splitlines()[0][:400]
    missing = missing_column(text)
    if missing:
        qualifier, column = missing
        return unknown_column_message(catalog, column, validated, qualifier, budget or Budget())
    return f"The query failed: {first}. Fix the SQL and run it again (describe_table shows column types)."


def unknown_column_message(
    catalog: Catalog,
    column: str,
    validated: sqlguard.ValidatedQuery,
    qualifier: str | None = None,
    budget: Budget | None = None,
) -> str:
    budget = budget or Budget()
    aliases = _aliases(validated.tree)
    used = [t for t in validated.tables if catalog.is_installed(t)]
    target = aliases.get(qualifier.lower()) if qualifier else None
    targets = [target] if target in used else used
    parts = [f"Column {column!r} does not exist in {', '.join(targets) or 'the queried tables'}."]
    paths = column_paths(catalog)
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
    own_near = False
    for table in targets:
        near = closest(column, [p.path for p in paths if p.table == table], limit=3, cutoff=75)
        if near:
            own_near = True
            parts.append(
                f"Close names in {table}: {', '.join(near)} (use {near[0]} if that is what you meant)."
            )
    # 3. Every other table that holds it (or, failing a close name here, a close name there),
    #    with the join key and a query sketch.
    if not in_query:
        base = targets[0] if targets else None
        for place in _places(paths, column, set(used), fuzzy=not own_near)[:MAX_PLACES]:
            parts.append(_place_hint(catalog, place, base, column, validated, budget))
    if len(parts) == 1:
        parts.append("No table has a column with that name or a close one.")
    parts.append("describe_table(name) lists every column with its description.")
    return " ".join(parts)


def _places(paths: list[ColumnPath], column: str, used: set[str], fuzzy: bool) -> list[ColumnPath]:
    others = [p for p in paths if p.table not in used]
    exact = [p for p in others if fold(p.leaf) == fold(column)]
    if exact:
        return sorted(exact, key=lambda p: (not p.installed, p.path.count(".")))
    if not fuzzy:
        return []
    near = set(closest(column, {p.leaf for p in others}, limit=3, cutoff=88))
    return sorted((p for p in others if p.leaf in near), key=lambda p: (not p.installed, p.path.count(".")))


def _place_hint(
    catalog: Catalog,
    place: ColumnPath,
    base: str | None,
    column: str,
    validated: sqlguard.ValidatedQuery,
    budget: Budget,
) -> str:
    where = f"{place.table}.{place.path}"
    key = join_key(catalog, base, place.table) if base else None
    if key is None:
        return f"{where} exists, but {place.table} shares no key column with {base}: query it on its own."
    if not place.installed:
        return (
            f"{where} exists (join on {key}); {place.table} is not installed: "
            f"fetch it first: fetch_index({place.table!r})."
        )
    sketch = join_sketch(catalog, validated, base or "", place, column, key, budget)
    return f"{where} exists: join {place.table} on {key}, e.g. {sketch} ."


def _alias_for(table: str, taken: set[str]) -> str:
    letter = table[0].lower()
    alias, n = letter, 1
    while alias in taken:
        n += 1
        alias = f"{letter}{n}"
    return alias


def _path_expr(alias: str, path: str) -> exp.Expression:
    """o.a.b for a struct path; list_transform(o.a, x -> x.b.c) when the path crosses a list."""
    head, _, rest = path.partition("[]")
    node: exp.Expression = exp.column(head.split(".")[0], table=alias)
    for field in head.split(".")[1:]:
        node = exp.Dot(this=node, expression=exp.to_identifier(field))
    if not rest:
        return node
    var = exp.to_identifier("x")
    inner: exp.Expression = exp.column(var.name)
    for field in rest.lstrip(".").replace("[]", "").split("."):
        inner = exp.Dot(this=inner, expression=exp.to_identifier(field))
    return exp.Anonymous(this="list_transform", expressions=[node, exp.Lambda(this=inner, expressions=[var])])


def join_sketch(
    catalog: Catalog,
    validated: sqlguard.ValidatedQuery,
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
                new = _path_expr(other, place.path)
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
        if not _binds(catalog, sketch, budget):
            sketch = None
    if sketch is None:
        mine, other = _alias_for(base, set()), _alias_for(place.table, {_alias_for(base, set())})
        minimal = (
            exp.select(
                exp.Column(this=exp.Star(), table=exp.to_identifier(mine)),
                exp.alias_(_path_expr(other, place.path), place.leaf),
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


def _binds(catalog: Catalog, sql: str, budget: Budget) -> bool:
    """Whether a suggested query passes our validator and DuckDB's binder (run with LIMIT 0)."""
    try:
        checked = sqlguard.validate(sql, catalog.installed_tables(), 1)
    except sqlguard.SQLRejected:
        return False
    tree = checked.tree.copy()
    tree.set("limit", exp.Limit(expression=exp.Literal.number(0)))
    return budget.run(catalog, tree) is not None


def explain_empty(
    catalog: Catalog, validated: sqlguard.ValidatedQuery, budget: Budget | None = None
) -> list[str]:
    """Why a query returned no rows: which conditions empty it and which values exist instead."""
    return explain_empty_result(catalog, validated, budget or Budget())


def counts_nothing(validated: sqlguard.ValidatedQuery, records: list[dict[str, object]]) -> bool:
    """An aggregate-only query without GROUP BY whose one row is all 0/NULL (count(*) = 0): empty too."""
    tree = validated.tree
    if len(records) != 1 or not isinstance(tree, exp.Select) or tree.args.get("group"):
        return False
    if not all(e.find(exp.AggFunc) for e in tree.expressions):
        return False
    return all(v in (0, None) for v in records[0].values())
