"""pyproject.toml declares exactly what idc_mcp needs: every third-party module it imports comes from a
declared distribution, and every declared distribution is imported (or named here with its reason)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Declared though no module of ours imports it: DuckDB calls it for us.
USED_WITHOUT_IMPORT = {"pyarrow": "DuckDB's to_arrow_table()/from_arrow(), which database.py calls"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_canonical(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0]) for spec in project["dependencies"]}


def _imported() -> dict[str, str]:
    """Third-party distributions the package imports -> one file that imports it."""
    owners = packages_distributions()
    found: dict[str, str] = {}
    for path in sorted((ROOT / "idc_mcp").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "idc_mcp":
                    continue
                for dist in owners.get(top, [top]):
                    found.setdefault(_canonical(dist), str(path.relative_to(ROOT)))
    return found


def test_every_imported_distribution_is_declared() -> None:
    missing = {dist: where for dist, where in _imported().items() if dist not in _declared()}
    assert missing == {}, f"imported but not declared in pyproject.toml: {missing}"


def test_every_declared_distribution_is_used() -> None:
    unused = _declared() - set(_imported()) - set(USED_WITHOUT_IMPORT)
    assert unused == set(), f"declared but imported by nothing in idc_mcp: {sorted(unused)}"
