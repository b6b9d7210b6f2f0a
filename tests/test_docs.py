"""The skill and references are checked like code: every example runs, every name is real.

Fence conventions (in skill/ and references/):
- ```sql           runs through the query tool's code path (`run_query`) and must return at least one row.
- ```sql fetch-first uses an index that is not bundled (sm_index, seg_index, ..., or a clinical table
                    clinical_<short_table_name>). It must name such an index, pass the SQL guard with
                    that index known, and bind (every table, column and type) against empty tables built
                    from the bundled schema JSON. Then it must run and return rows on a catalog that
                    fetched its indices from a loopback server of synthetic index files built from the
                    schema JSON and real series (tests/index_server.py).
- ```python        must compile; every call on an `IDCClient` must be a real method with real keywords.
- ```sql bigquery  BigQuery Standard SQL for the BigQuery guide: must parse in the BigQuery dialect and
                    read only IDC's public datasets (it cannot run here).
- ```python        must compile; every call on an `IDCClient` must be a real method with real keywords;
                    SQL passed to `sql_query` must run (same DuckDB dialect and table names; fetched
                    indices as for fetch-first) and every table other than `index`/`prior_versions_index`
                    must be loaded by `fetch_index` first.
- ```bash          every `idc` command line must use a real command and real options of the idc CLI.
Every DICOM UID written in the docs must exist in the index.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import shlex
from collections.abc import Iterator, Sequence
from pathlib import Path

import click
import duckdb
import idc_index
import idc_index_data
import pytest
import sqlglot
from idc_index import IDCClient
from idc_index.cli import idc as idc_cli

from idc_mcp.catalog.database import Catalog, get_catalog
from idc_mcp.catalog.schemas import all_tables
from idc_mcp.docs import resources
from idc_mcp.indices import fetch
from idc_mcp.sql import guard
from idc_mcp.tools.query import run_query
from tests.index_server import SyntheticIndices, catalog_with_fetched

REPO = Path(__file__).resolve().parent.parent
LOCATION = resources.locate_docs()
EXAMPLES = resources.all_code_examples(LOCATION)
KNOWN_LANGUAGES = {"sql", "python", "bash", "json", "text"}


def _of(language: str, info: str = "") -> list[resources.CodeExample]:
    return [e for e in EXAMPLES if e.language == language and e.info == info]


def _ids(examples: list[resources.CodeExample]) -> list[str]:
    return [e.label for e in examples]


BIGQUERY = "bigquery"
RUNNABLE_SQL = _of("sql")
BIGQUERY_SQL = _of("sql", BIGQUERY)
FETCH_FIRST_SQL = _of("sql", resources.FETCH_FIRST)
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
    } <= set(resources.reference_files(LOCATION))


def test_every_fence_has_a_known_language_so_no_example_escapes_the_checks():
    # An unlabeled or misspelled fence (```SQL fetchfirst) would silently skip every check below.
    bad = [e.label for e in EXAMPLES if e.language not in KNOWN_LANGUAGES]
    bad += [
        e.label
        for e in EXAMPLES
        if e.language == "sql" and e.info not in ("", resources.FETCH_FIRST, BIGQUERY)
    ]
    bad += [e.label for e in EXAMPLES if e.language != "sql" and e.info]
    assert not bad, f"fences with an unknown language or marker: {bad}"


@pytest.mark.parametrize("example", RUNNABLE_SQL, ids=_ids(RUNNABLE_SQL))
def test_sql_example_runs_through_the_query_tool_and_returns_rows(example: resources.CodeExample):
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


# Clinical tables have no published schema; the one column every one of them has is dicom_patient_id.
_CLINICAL_TABLE = re.compile(r"\b(clinical_(?!index\b)[a-z0-9_]+)\b")


def _clinical_tables(sql: str) -> list[str]:
    return sorted(set(_CLINICAL_TABLE.findall(sql)))


def _validate_with_every_index(sql: str) -> guard.ValidatedQuery:
    """The SQL guard's verdict when every index (and the clinical tables the SQL names) is installed."""
    return guard.validate(sql, [*all_tables(), *_clinical_tables(sql)], max_rows=5)


def _indices_to_fetch(tables: list[str]) -> set[str]:
    """The fetch_index names that install `tables` (clinical tables come with clinical_index)."""
    known = all_tables()
    return {
        fetch.CLINICAL_INDEX if t not in known else t
        for t in tables
        if t not in known or not known[t].bundled
    }


def _empty_schema_database(clinical: Sequence[str] = ()) -> duckdb.DuckDBPyConnection:
    """Empty tables with the real columns: installed tables as the catalog types them, the others from
    the bundled schema JSON, so that a query binds exactly as it would after fetch_index."""
    catalog = get_catalog()
    con = duckdb.connect()
    for name, info in all_tables().items():
        if catalog.is_installed(name):
            cols = catalog.columns(name)
        else:
            cols = [(c.name, _duckdb_type(c.type, c.mode)) for c in info.columns]
        body = ", ".join(f'"{c}" {t}' for c, t in cols)
        con.execute(f'CREATE TABLE "{name}" ({body})')
    for name in clinical:
        con.execute(f'CREATE TABLE "{name}" (dicom_patient_id VARCHAR)')
    return con


def _python_sql() -> list[str]:
    return [sql for e in PYTHON for sql in _sql_query_calls(e.code)]


@pytest.fixture(scope="session")
def fetched_catalog(
    tmp_path_factory: pytest.TempPathFactory, built_catalog: Path, synthetic_files: SyntheticIndices
) -> Iterator[Catalog]:
    """A catalog of its own (own cache folder) with every index the examples use, fetched through
    fetch_index from a loopback server of synthetic index files (real SeriesInstanceUIDs and PatientIDs)."""
    wanted: set[str] = set()
    for sql in [e.code for e in FETCH_FIRST_SQL] + _python_sql():
        wanted |= _indices_to_fetch(_validate_with_every_index(sql).tables)

    def fetched_cleanly(result: fetch.FetchResult) -> None:
        assert result.status == "fetched" and not [n for n in result.notes if "not installed" in n]

    cache = tmp_path_factory.mktemp("fetched") / "cache"
    with catalog_with_fetched(cache, built_catalog, synthetic_files, sorted(wanted), fetched_cleanly) as c:
        yield c


@pytest.mark.parametrize("example", FETCH_FIRST_SQL, ids=_ids(FETCH_FIRST_SQL))
def test_fetch_first_sql_example_binds_against_the_index_schema(example: resources.CodeExample):
    validated = _validate_with_every_index(example.code)
    assert _indices_to_fetch(validated.tables), (
        f"{example.label} uses only bundled tables: mark it ```sql, not fetch-first"
    )
    con = _empty_schema_database(_clinical_tables(example.code))
    con.execute(validated.sql).fetchall()  # raises on an unknown table, column or type mismatch


@pytest.mark.parametrize("example", FETCH_FIRST_SQL, ids=_ids(FETCH_FIRST_SQL))
def test_fetch_first_sql_example_returns_rows_once_its_indices_are_fetched(
    example: resources.CodeExample, fetched_catalog: Catalog
):
    result = run_query(fetched_catalog, example.code, max_rows=5)
    assert result.row_count >= 1, f"{example.label} returned no rows: {result.diagnostics}"


def test_sql_cookbook_has_at_least_6_tested_joins_with_the_specialized_indices():
    joins = [
        e
        for e in FETCH_FIRST_SQL
        if e.file.endswith("sql_cookbook.md")
        and re.search(r"\bJOIN\b", e.code, re.IGNORECASE)
        and len(_validate_with_every_index(e.code).tables) >= 2
    ]
    assert len(joins) >= 6, [e.label for e in joins]
    # Both kinds of key are shown: the series itself, and the images a derived series points at.
    shown = "\n".join(e.code for e in joins)
    for key in ("segmented_SeriesInstanceUID", "referenced_SeriesInstanceUID", "dicom_patient_id"):
        assert key in shown, key


def test_the_fetch_first_check_catches_a_wrong_column():
    # Guards the guard: binding against the schema must reject a column sm_index does not have, and a
    # clinical column that not every clinical table has.
    validated = guard.validate("SELECT s.Stain FROM sm_index AS s", ["sm_index"], max_rows=5)
    with pytest.raises(duckdb.BinderException):
        _empty_schema_database().execute(validated.sql)
    sql = "SELECT c.vital_status FROM clinical_nlst_prsn AS c"
    with pytest.raises(duckdb.BinderException):
        _empty_schema_database(_clinical_tables(sql)).execute(_validate_with_every_index(sql).sql)


@pytest.mark.parametrize("example", BIGQUERY_SQL, ids=_ids(BIGQUERY_SQL))
def test_bigquery_example_parses_and_reads_only_idc_public_datasets(example: resources.CodeExample):
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
    text = resources.read_reference("sql_cookbook", LOCATION)
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


def test_sql_cookbook_answers_the_research_questions_the_docs_lacked():
    # Issue 11: stains, objective power and tumour vs normal; segmented structures; diffusion b-values;
    # patients with both radiology and pathology. Each is a tested recipe (runs in the tests above).
    fetched = "\n".join(e.code for e in FETCH_FIRST_SQL if e.file.endswith("sql_cookbook.md"))
    bundled = "\n".join(e.code for e in RUNNABLE_SQL if e.file.endswith("sql_cookbook.md"))
    for needle in (
        "unnest(s.staining_usingSubstance_CodeMeaning)",
        "ObjectiveLensPower = 40",
        "primaryAnatomicStructureModifier_CodeMeaning",
        "unnest(seg.SegmentedPropertyType_CodeMeanings)",
        "list_contains(seg.SegmentedPropertyType_CodeMeanings",
        "unnest(mr.DiffusionBValue)",
    ):
        assert needle in fetched, needle
    assert "Modality = 'SM'" in bundled and "HAVING" in bundled


def test_docs_use_one_size_convention_and_no_commercial_use_shortcut():
    # GB = 1000 MB, as estimate_size reports; `NOT LIKE '%NC%'` keeps series under other (NLM) terms.
    for example in RUNNABLE_SQL + FETCH_FIRST_SQL:
        assert "1024" not in example.code, example.label
        assert "NOT LIKE '%NC%'" not in example.code, example.label


# ---------------------------------------------------------------- python and CLI examples
@pytest.mark.parametrize("example", PYTHON, ids=_ids(PYTHON))
def test_python_example_compiles(example: resources.CodeExample):
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
def test_python_example_uses_only_real_idc_index_methods_and_keywords(example: resources.CodeExample):
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
def test_idc_index_sql_in_python_examples_runs_and_loads_its_tables_first(
    example: resources.CodeExample, request: pytest.FixtureRequest
):
    # idc-index's sql_query sees only `index` and `prior_versions_index` until fetch_index loads more (and
    # never the clinical tables: idc-index reads those with get_clinical_table).
    preloaded = {"index", "prior_versions_index"}
    for sql in _sql_query_calls(example.code):
        validated = _validate_with_every_index(sql)
        missing = set(validated.tables) - preloaded - _fetched(example.code)
        assert not missing, f"{example.label}: sql_query uses {missing} without fetch_index"
        _empty_schema_database(_clinical_tables(sql)).execute(validated.sql)
        fetched = bool(_indices_to_fetch(validated.tables))
        catalog = request.getfixturevalue("fetched_catalog") if fetched else get_catalog()
        assert run_query(catalog, sql, max_rows=5).row_count >= 1, example.label


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
def test_idc_cli_example_uses_real_commands_and_options(example: resources.CodeExample):
    problems = [p for line in _command_lines(example.code) for p in idc_cli_problems(line)]
    assert problems == []


def test_the_cli_checker_catches_made_up_options():
    assert idc_cli_problems("idc download-from-selection --collection-name x") != []
    assert idc_cli_problems("idc fetch sm_index") != []


def test_idc_index_api_reference_matches_the_installed_version():
    text = resources.read_reference("idc_index_api", LOCATION)
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
    for path in resources.all_doc_files(LOCATION):
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


# ---------------------------------------------------------------- the skill
def test_skill_has_front_matter_with_name_and_description_and_stays_short():
    text = resources.read_skill(LOCATION)
    assert text.startswith("---\n")
    front = text.split("---\n", 2)[1]
    fields = dict(line.split(":", 1) for line in front.strip().splitlines() if ":" in line)
    # Its own name: IDC publishes a skill called `imaging-data-commons`; installing both must not collide.
    assert fields["name"].strip() == "idc-mcp-imaging"
    assert re.fullmatch(r"[a-z0-9-]{1,64}", fields["name"].strip())
    assert len(fields["description"].strip()) > 50
    assert len(text.splitlines()) < 500


def test_skill_points_to_every_reference():
    text = resources.read_skill(LOCATION)
    for name in resources.reference_files(LOCATION):
        assert f"references/{name}.md" in text and f"idc://references/{name}" in text, name


def test_mcp_tools_reference_example_calls_are_valid_json():
    for example in _of("json"):
        if example.file.endswith("mcp_tools.md"):
            json.loads(example.code)


def test_every_fence_line_in_the_docs_belongs_to_a_parsed_example():
    # An indented or oddly written fence that the parser missed would escape every check.
    for path in resources.all_doc_files(LOCATION):
        text = path.read_text(encoding="utf-8")
        fence_lines = len(re.findall(r"^\s*```", text, re.MULTILINE))
        assert fence_lines == 2 * len(resources.code_examples(text)), path.name


def test_docs_no_longer_state_what_an_audit_found_false():
    docs = {name: resources.read_reference(name, LOCATION) for name in resources.reference_files(LOCATION)}
    docs["skill"] = resources.read_skill(LOCATION)
    text = "\n".join(docs.values())
    assert "the versions idc-mcp pins" not in text  # pyproject requires idc-index>=0.13; only CI pins
    assert "idc-index>=0.13" in docs["idc_index_api"]
    # VolView is Kitware's app on the S3 files, not an IDC-hosted DICOMweb viewer.
    assert "not an IDC-hosted DICOMweb viewer" in docs["idc_portal_guide"]
    assert "idc-open-data-two" in docs["idc_portal_guide"]  # the DICOM stores hold one bucket's series
    # get_clinical_table takes a short_table_name; get_series_file_URLs lists the bucket over the network.
    for example in PYTHON:
        if "get_clinical_table(" in example.code:
            assert "short_table_name" in example.code and "listdir" not in example.code, example.label
        for line in example.code.splitlines():
            if "get_series_file_URLs(uid)" in line:
                assert "network" in line, example.label
    # PatientSex is NULL for most series (tests/test_doc_facts.py recomputes every such claim).
    assert "mostly `F`/`M`/`O`" not in text and "Mostly `F`, `M` and `O`" not in text
    # The server depends on idc-index-data only; idc-index is a test dependency.
    assert "it requires\n`idc-index>=0.13`" not in text
    # The public proxy serves all three buckets; only Google's own DICOM store holds one bucket's series.
    assert "DICOM stores that back the proxy" not in text and "from all three buckets" in text
    # sm_index is built from dicom_all (idc-index-data's sm_index.sql); the preview cache is 64 MiB.
    assert "(the source of `sm_index`)" not in text and "64 MB" not in text
