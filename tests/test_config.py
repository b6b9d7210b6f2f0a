"""Every setting is declared once (idc_mcp/config.py): the README table, the command line's flags and its
--help come from that declaration, and a value that cannot be used stops the start with a message naming
the variable (as datasette checks its settings against its docs)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from idc_mcp import cli
from idc_mcp.config import SettingError, Settings, declared, flag_of, load_settings, settings_table

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_configuration_table_is_the_declaration():
    # Regenerate with `python -m idc_mcp.config` and paste it under README's "## Configuration".
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    assert settings_table() in section


def test_every_setting_has_a_variable_a_description_and_a_documented_default():
    for name, env, description, default, _flag in declared():
        assert env == "IDC_MCP_" + env.removeprefix("IDC_MCP_") and env.isupper(), name
        assert description and default, name
    assert len({env for _, env, *_ in declared()}) == len(Settings.model_fields)


def test_help_offers_a_flag_for_each_setting_that_declares_one(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    flagged = [(name, env) for name, env, _, _, flag in declared() if flag is not None]
    assert {"download_root", "cache_dir", "s3_endpoint_url", "tokens_file"} <= {n for n, _ in flagged}
    for name, env in flagged:
        assert flag_of(name) in text and f"(overrides {env})" in text, name


def test_a_flag_wins_over_the_environment_and_is_checked_like_it(tmp_path, monkeypatch):
    monkeypatch.setenv("IDC_MCP_DOWNLOAD_ROOT", str(tmp_path / "env"))
    args = cli.build_parser().parse_args(["--download-root", str(tmp_path / "flag")])
    assert cli.settings_from(args).download_root == tmp_path / "flag"


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("IDC_MCP_THREADS", "0.5", "valid integer"),  # was silently 0 threads
        ("IDC_MCP_THREADS", "0", "greater than or equal to 1"),
        ("IDC_MCP_QUERY_TIMEOUT", "-3", "greater than 0"),
        ("IDC_MCP_FETCH_DEADLINE", "soon", "valid number"),
        ("IDC_MCP_MEMORY_LIMIT", "lots", "such as 384MB"),
        ("IDC_MCP_BQ_MAX_GB", "0", "greater than 0"),
        ("IDC_MCP_BQ_USD_PER_TIB", "free", "valid number"),
    ],
)
def test_a_bad_value_stops_the_start_with_a_message_naming_the_variable(
    variable, value, says, monkeypatch, capsys
):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingError, match=f"{variable}='{value}'") as refused:
        load_settings()
    assert says in str(refused.value)
    assert cli.main(["--transport", "stdio"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("idc-mcp: error: invalid setting: ") and variable in err and "Traceback" not in err


def test_a_secret_setting_is_never_echoed_in_an_error(monkeypatch):
    with pytest.raises(SettingError) as refused:
        load_settings(tokens=["not", "text"])
    assert "IDC_MCP_TOKENS" in str(refused.value) or "--tokens" in str(refused.value)
    assert "not" not in str(refused.value).split(":", 2)[-1].split("(")[0]


def test_units_of_memory_are_read_as_duckdb_reads_them(monkeypatch):
    monkeypatch.setenv("IDC_MCP_MEMORY_LIMIT", " 1gib ")
    assert load_settings().memory_limit == "1GiB"


def _reads_the_environment(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
            return True
    return False


def test_no_module_reads_the_environment_but_through_the_settings():
    # Tools never read the environment, nor does the command line (the token variables included): they
    # get the settings. (child_process copies the environment for the worker processes it starts.)
    readers = sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / "idc_mcp").rglob("*.py") if _reads_the_environment(p)
    )
    assert readers == ["idc_mcp/child_process.py"]  # config.py reads it through pydantic-settings
