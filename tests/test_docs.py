"""The skill and references are checked like code: every example runs, every name is real.

Fence conventions (in skill/ and references/):
- ```sql           runs through the query tool's code path (`run_query`) and must return at least one row.
- ```sql fetch-first uses an index that is not bundled (sm_index, seg_index, ...). It must name such an
                    index, pass the SQL guard with that index known, and bind (every table, column and
                    type) against empty tables built from the bundled schema JSON. Once the index is
                    installed in the catalog it must also run and return rows.
- ```python        must compile; every call on an `IDCClient` must be a real method with real keywords.
- ```sql bigquery  BigQuery Standard SQL for the BigQuery guide: must parse in the BigQuery dialect and
                    read only IDC's public datasets (it cannot run here).
- ```python        must compile; every call on an `IDCClient` must be a real method with real keywords;
                    SQL passed to `sql_query` must run (same DuckDB dialect and table names) and every
                    table other than `index`/`prior_versions_index` must be loaded by `fetch_index` first.
- ```bash          every `idc` command line must use a real command and real options of the idc CLI.
Every DICOM UID written in the docs must exist in the index.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import click
import duckdb
import idc_index
import idc_index_data
import pytest
import sqlglot
from idc_index import IDCClient
from idc_index.cli import idc as idc_cli

from idc_mcp import docs, sqlguard
from idc_mcp.catalog import get_catalog
from idc_mcp.query import run_query
from idc_mcp.schema_reference import generate_schema_reference

REPO = Path(__file__).resolve().parent.parent
LOCATION = docs.locate_docs()
EXAMPLES = docs.all_code_examples(LOCATION)
KNOWN_LANGUAGES = {"sql", "python", "bash", "json", "text"}


def _of(language: str, info: str = "") -> list[docs.CodeExample]:
    return [e for e in EXAMPLES if e.language == language and e.info == info]


def _ids(examples: list[docs.CodeExample]) -> list[str]:
    return [e.label for e in examples]


BIGQUERY = "bigquery"
RUNNABLE_SQL = _of("sql")
BIGQUERY_SQL = _of("sql", BIGQUERY)
FETCH_FIRST_SQL = _of("sql", docs.FETCH_FIRST)
PYTHON = _of("python")
BASH = _of("bash")


def test_docs_are_found_in_the_repository_during_development():
    assert LOCATION.skill_dir == REPO / "skill" and not LOCATION.installed
    assert {
        "metadata_schema",
        "sql_cookbook",
        "idc_index_api",
        "mcp_tools",
        "bigquery_guide",
        "idc_portal_guide",
    } <= set(docs.reference_files(LOCATION))


def test_every_fence_has_a_known_language_so_no_example_escapes_the_checks():
    # An unlabeled or misspelled fence (```SQL fetchfirst) would silently skip every check below.
    bad = [e.label for e in EXAMPLES if e.language not in KNOWN_LANGUAGES]
    bad += [
        e.label for e in EXAMPLES if e.language == "sql" and e.info not in ("", docs.FETCH_FIRST, BIGQUERY)
    ]
    bad += [e.label for e in EXAMPLES if e.language != "sql" and e.info]
    assert not bad, f"fences with an unknown language or marker: {bad}"


@pytest.mark.parametrize("example", RUNNABLE_SQL, ids=_ids(RUNNABLE_SQL))
def test_sql_example_runs_through_the_query_tool_and_returns_rows(example: docs.CodeExample):
    result = run_query(get_catalog(), example.code, max_rows=5)
    assert result.row_count >= 1, f"{example.label} returned no rows: {result.diagnostics}"


def _duckdb_type(schema_type: str, mode: str) -> str:
    base = {
        "STRING": "VARCHAR",
        "INTEGER": "BIGINT",
        "FLOAT": "DOUBLE",
        "BOOLEAN": "BOOLEAN",
        "TIMESTAMP": "TIMESTAMP",
        "DATE": "DATE",
        "RECORD": "JSON",
    }.get(schema_type, "VARCHAR")
    return base + ("[]" if mode == "REPEATED" else "")


def _empty_schema_database() -> duckdb.DuckDBPyConnection:
    """Empty tables with the real columns: installed tables as the catalog types them, the others from
    the bundled schema JSON, so that a query binds exactly as it would after fetch_index."""
    from idc_mcp.schemas import all_tables

    catalog = get_catalog()
    con = duckdb.connect()
    for name, info in all_tables().items():
        if catalog.is_installed(name):
            cols = catalog.columns(name)
        else:
            cols = [(c.name, _duckdb_type(c.type, c.mode)) for c in info.columns]
        body = ", ".join(f'"{c}" {t}' for c, t in cols)
        con.execute(f'CREATE TABLE "{name}" ({body})')
    return con


@pytest.mark.parametrize("example", FETCH_FIRST_SQL, ids=_ids(FETCH_FIRST_SQL))
def test_fetch_first_sql_example_binds_against_the_index_schema(example: docs.CodeExample):
    from idc_mcp.schemas import all_tables

    catalog = get_catalog()
    installed = catalog.installed_tables()
    validated = sqlguard.validate(example.code, list(all_tables()), max_rows=5)
    not_bundled = [t for t in validated.tables if not all_tables()[t].bundled]
    assert not_bundled, f"{example.label} uses only bundled tables: mark it ```sql, not fetch-first"
    con = _empty_schema_database()
    con.execute(validated.sql).fetchall()  # raises on an unknown table, column or type mismatch
    if all(t in installed for t in validated.tables):
        assert run_query(catalog, example.code, max_rows=5).row_count >= 1


def test_the_fetch_first_check_catches_a_wrong_column():
    # Guards the guard: binding against the schema must reject a column sm_index does not have.
    validated = sqlguard.validate("SELECT s.Stain FROM sm_index AS s", ["sm_index"], max_rows=5)
    with pytest.raises(duckdb.BinderException):
        _empty_schema_database().execute(validated.sql)


@pytest.mark.parametrize("example", BIGQUERY_SQL, ids=_ids(BIGQUERY_SQL))
def test_bigquery_example_parses_and_reads_only_idc_public_datasets(example: docs.CodeExample):
    tree = sqlglot.parse_one(example.code, read="bigquery")
    tables = list(tree.find_all(sqlglot.exp.Table))
    assert tables
    for table in tables:
        assert table.catalog == "bigquery-public-data" and re.fullmatch(r"idc_(current|v\d+)", table.db), (
            table
        )


def test_sql_cookbook_has_at_least_25_runnable_queries():
    cookbook = [e for e in RUNNABLE_SQL if e.file.endswith("sql_cookbook.md")]
    assert len(cookbook) >= 25


def test_sql_cookbook_covers_the_topics_the_issue_asks_for():
    text = docs.read_reference("sql_cookbook", LOCATION)
    sql = "\n".join(e.code for e in RUNNABLE_SQL if e.file.endswith("sql_cookbook.md"))
    for needle in (
        "JOIN collections_index",
        "cancer_types",
        "Manufacturer",
        "BodyPartExamined",
        "license_short_name",
        "series_size_MB",
        "analysis_results_index",
        "SEG",
        "prior_versions_index",
        "PatientSex",
        "PatientAge",
    ):
        assert needle in sql, needle
    assert "fetch-first" in text


# ---------------------------------------------------------------- python and CLI examples
@pytest.mark.parametrize("example", PYTHON, ids=_ids(PYTHON))
def test_python_example_compiles(example: docs.CodeExample):
    compile(example.code, example.label, "exec")


def _client_names(tree: ast.AST) -> set[str]:
    """Variables bound to an IDCClient: `x = IDCClient()` or `x = IDCClient.client()`."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            is_client = (isinstance(func, ast.Name) and func.id == "IDCClient") or (
                isinstance(func, ast.Attribute)
                and func.attr == "client"
                and isinstance(func.value, ast.Name)
                and func.value.id == "IDCClient"
            )
            if is_client:
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def idc_client_call_problems(code: str) -> list[str]:
    """Calls on IDCClient objects that do not exist in the installed idc-index, or use unknown keywords."""
    tree = ast.parse(code)
    clients = _client_names(tree) | {"IDCClient"}
    problems = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        if not (isinstance(owner, ast.Name) and owner.id in clients):
            continue
        method = getattr(IDCClient, node.func.attr, None)
        if method is None or not callable(method):
            problems.append(f"IDCClient has no method {node.func.attr}()")
            continue
        params = inspect.signature(method).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            continue
        for kw in node.keywords:
            if kw.arg is not None and kw.arg not in params:
                problems.append(f"{node.func.attr}() has no keyword {kw.arg!r}")
        positional = [p for p in params.values() if p.name != "self" and p.kind is not p.KEYWORD_ONLY]
        if len(node.args) > len(positional):
            problems.append(f"{node.func.attr}() takes at most {len(positional)} positional arguments")
    return problems


@pytest.mark.parametrize("example", PYTHON, ids=_ids(PYTHON))
def test_python_example_uses_only_real_idc_index_methods_and_keywords(example: docs.CodeExample):
    assert idc_client_call_problems(example.code) == []


def test_the_idc_client_checker_catches_made_up_methods_and_keywords():
    # Guards the guard: the check above must be able to fail.
    code = "from idc_index import IDCClient\nc = IDCClient()\nc.download_series(x)\nc.sql_query(query='x')\n"
    assert len(idc_client_call_problems(code)) == 2


def test_python_examples_call_the_idc_client():
    calls = sum(len(re.findall(r"client\.\w+\(", e.code)) for e in PYTHON)
    assert calls >= 10


def _sql_query_calls(code: str) -> list[str]:
    """The SQL string literals passed to `<client>.sql_query(...)`."""
    out = []
    for node in ast.walk(ast.parse(code)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "sql_query"
        ):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                out.append(node.args[0].value)
    return out


def _fetched(code: str) -> set[str]:
    return set(re.findall(r"fetch_index\(\s*[\"'](\w+)[\"']", code))


@pytest.mark.parametrize("example", PYTHON, ids=_ids(PYTHON))
def test_idc_index_sql_in_python_examples_runs_and_loads_its_tables_first(example: docs.CodeExample):
    from idc_mcp.schemas import all_tables

    # idc-index's sql_query sees only `index` and `prior_versions_index` until fetch_index loads more.
    preloaded = {"index", "prior_versions_index"}
    for sql in _sql_query_calls(example.code):
        validated = sqlguard.validate(sql, list(all_tables()), max_rows=5)
        missing = set(validated.tables) - preloaded - _fetched(example.code)
        assert not missing, f"{example.label}: sql_query uses {missing} without fetch_index"
        if all(all_tables()[t].bundled for t in validated.tables):
            assert run_query(get_catalog(), sql, max_rows=5).row_count >= 1, example.label
        else:
            _empty_schema_database().execute(validated.sql)


def test_python_examples_run_some_idc_index_sql():
    assert sum(len(_sql_query_calls(e.code)) for e in PYTHON) >= 4


def idc_cli_problems(line: str) -> list[str]:
    words = shlex.split(line)
    if not words or words[0] != "idc":
        return []
    if len(words) < 2 or words[1] not in idc_cli.commands:
        return [f"unknown idc command in {line!r}; commands: {sorted(idc_cli.commands)}"]
    command: click.Command = idc_cli.commands[words[1]]
    options = {opt for p in command.params for opt in p.opts}
    return [
        f"{words[1]} has no option {w}"
        for w in words[2:]
        if w.startswith("--") and w.split("=")[0] not in options
    ]


def _command_lines(code: str) -> list[str]:
    return [ln.strip() for ln in code.replace("\\\n", " ").splitlines() if ln.strip().startswith("idc ")]


@pytest.mark.parametrize("example", BASH, ids=_ids(BASH))
def test_idc_cli_example_uses_real_commands_and_options(example: docs.CodeExample):
    problems = [p for line in _command_lines(example.code) for p in idc_cli_problems(line)]
    assert problems == []


def test_the_cli_checker_catches_made_up_options():
    assert idc_cli_problems("idc download-from-selection --collection-name x") != []
    assert idc_cli_problems("idc fetch sm_index") != []


def test_idc_index_api_reference_matches_the_installed_version():
    text = docs.read_reference("idc_index_api", LOCATION)
    assert f"idc-index {idc_index.__version__}" in text
    assert f"idc-index-data {idc_index_data.__version__}" in text
    public = [n for n, f in inspect.getmembers(IDCClient) if not n.startswith("_") and callable(f)]
    missing = [n for n in public if f"{n}(" not in text]
    assert not missing, f"IDCClient methods not documented: {missing}"
    missing_cmds = [c for c in idc_cli.commands if f"idc {c}" not in text]
    assert not missing_cmds, f"idc CLI commands not documented: {missing_cmds}"


# DICOM UIDs (not the standard's own 1.2.840.10008 SOP class and transfer syntax UIDs).
_UID = re.compile(r"(?<![\d.])(?!1\.2\.840\.10008\.)\d+(?:\.\d+){5,}(?![\d.])")


def test_every_dicom_uid_in_the_docs_exists_in_the_index():
    found = {}
    for path in docs.all_doc_files(LOCATION):
        if path.name == "metadata_schema.md":
            continue  # generated from the schema JSON; its UIDs are SOP class examples
        for uid in _UID.findall(path.read_text(encoding="utf-8")):
            found.setdefault(uid, path.name)
    assert found
    listed = ", ".join(f"'{u}'" for u in found)
    known = {
        r[0]
        for r in get_catalog()
        .execute(
            f"SELECT SeriesInstanceUID FROM index WHERE SeriesInstanceUID IN ({listed}) UNION "
            f"SELECT StudyInstanceUID FROM index WHERE StudyInstanceUID IN ({listed})"
        )
        .rows
    }
    assert {u: f for u, f in found.items() if u not in known} == {}


# ---------------------------------------------------------------- generated schema reference
def test_metadata_schema_reference_is_a_fresh_generation():
    # Regenerate with: python -m idc_mcp.docs --write-schema-reference
    on_disk = (LOCATION.references_dir / "metadata_schema.md").read_text(encoding="utf-8")
    assert on_disk == generate_schema_reference(get_catalog())


def test_the_schema_reference_command_writes_the_generated_file(tmp_path: Path):
    target = tmp_path / "metadata_schema.md"
    assert docs.main(["--write-schema-reference", "--output", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == generate_schema_reference(get_catalog())
    assert docs.main([]) == 2  # no action asked: help, and a failing exit code


def test_metadata_schema_reference_lists_every_index_and_column_of_the_bundled_json():
    # Read straight from idc-index-data, not through our schema module.
    text = docs.read_reference("metadata_schema", LOCATION)
    for key, meta in idc_index_data.INDEX_METADATA.items():
        name = "index" if key == "idc_index" else key
        assert f"### `{name}`" in text
        section = text.split(f"### `{name}`", 1)[1].split("\n### ", 1)[0]
        for column in meta["schema"]["columns"]:
            assert f"| `{column['name']}` |" in section, f"{name}.{column['name']}"


def test_metadata_schema_reference_states_the_exact_license_strings_from_the_parquet():
    text = docs.read_reference("metadata_schema", LOCATION)
    path = idc_index_data.IDC_INDEX_PARQUET_FILEPATH
    licenses = duckdb.sql(f"SELECT DISTINCT license_short_name FROM read_parquet('{path}')").fetchall()
    for (license_name,) in licenses:
        assert f"`{license_name}`" in text


# ---------------------------------------------------------------- the skill
def test_skill_has_front_matter_with_name_and_description_and_stays_short():
    text = docs.read_skill(LOCATION)
    assert text.startswith("---\n")
    front = text.split("---\n", 2)[1]
    fields = dict(line.split(":", 1) for line in front.strip().splitlines() if ":" in line)
    assert fields["name"].strip() == "imaging-data-commons"
    assert len(fields["description"].strip()) > 50
    assert len(text.splitlines()) < 500


def test_skill_points_to_every_reference():
    text = docs.read_skill(LOCATION)
    for name in docs.reference_files(LOCATION):
        assert f"references/{name}.md" in text and f"idc://references/{name}" in text, name


# ---------------------------------------------------------------- packaging
def test_installed_docs_are_preferred_over_the_repository(tmp_path: Path):
    package = tmp_path / "idc_mcp"
    (package / "_docs" / "skill").mkdir(parents=True)
    (package / "_docs" / "references").mkdir()
    (package / "_docs" / "skill" / "SKILL.md").write_text("---\nname: x\n---\n")
    (package / "_docs" / "references" / "only_here.md").write_text("# only in the wheel\n")
    loc = docs.locate_docs(package)
    assert loc.installed
    assert docs.read_reference("only_here", loc) == "# only in the wheel\n"
    assert list(docs.reference_files(loc)) == ["only_here"]


def test_repository_docs_are_the_fallback_when_the_package_has_none(tmp_path: Path):
    (tmp_path / "idc_mcp").mkdir()
    (tmp_path / "references").mkdir()
    (tmp_path / "references" / "dev.md").write_text("# dev\n")
    loc = docs.locate_docs(tmp_path / "idc_mcp")
    assert not loc.installed and loc.references_dir == tmp_path / "references"
    assert docs.read_reference("dev.md", loc) == "# dev\n"
    with pytest.raises(docs.DocNotFound, match="idc://references/dev"):
        docs.read_reference("missing", loc)


def test_the_wheel_puts_the_docs_where_the_locator_looks():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert include["skill"] == f"idc_mcp/{docs.INSTALLED_DOCS}/skill"
    assert include["references"] == f"idc_mcp/{docs.INSTALLED_DOCS}/references"


@pytest.mark.slow
def test_a_built_wheel_carries_the_docs_and_serves_them_from_the_package(tmp_path: Path):
    # Build the real wheel (hatchling, as CI would), unpack it, and import idc_mcp from the unpacked copy
    # only: the docs must come from idc_mcp/_docs, and the MCP resources must serve them.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("idc_mcp-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    script = (
        "import asyncio, json\n"
        "from mcp import Client\n"
        "from idc_mcp import docs\n"
        "from idc_mcp.server import mcp\n"
        "async def main():\n"
        "    async with Client(mcp) as c:\n"
        "        r = await c.read_resource('idc://references/sql_cookbook')\n"
        "        s = await c.read_resource('idc://skill')\n"
        "    loc = docs.locate_docs()\n"
        "    print(json.dumps({'file': docs.__file__, 'installed': loc.installed,\n"
        "                      'cookbook': r.contents[0].text, 'skill': s.contents[0].text}))\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["file"].startswith(str(site)) and result["installed"] is True
    assert result["cookbook"] == (REPO / "references" / "sql_cookbook.md").read_text(encoding="utf-8")
    assert result["skill"] == (REPO / "skill" / "SKILL.md").read_text(encoding="utf-8")


def test_mcp_tools_reference_example_calls_are_valid_json():
    for example in _of("json"):
        if example.file.endswith("mcp_tools.md"):
            json.loads(example.code)


def test_every_fence_line_in_the_docs_belongs_to_a_parsed_example():
    # An indented or oddly written fence that the parser missed would escape every check.
    for path in docs.all_doc_files(LOCATION):
        text = path.read_text(encoding="utf-8")
        fence_lines = len(re.findall(r"^\s*```", text, re.MULTILINE))
        assert fence_lines == 2 * len(docs.code_examples(text)), path.name
