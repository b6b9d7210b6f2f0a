"""pyproject.toml declares exactly what idc_mcp needs: every third-party module it imports comes from a
declared distribution, and every declared distribution is imported (or named here with its reason)."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
import tomllib
from importlib.metadata import distribution, packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Declared though no module of ours imports it: a library we call loads it.
USED_WITHOUT_IMPORT = {
    "pyarrow": "DuckDB's to_arrow_table()/from_arrow(), which database.py calls",
    "pylibjpeg": "pydicom's decoder plugin framework (previews)",
    "pylibjpeg-libjpeg": "pydicom's JPEG decoder plugin (previews)",
    "pylibjpeg-openjpeg": "pydicom's JPEG 2000 decoder plugin (previews)",
}
# Extras that are not part of the package (what its tests and benchmarks need).
NOT_THE_PACKAGE = {"test", "bench"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra, more in project.get("optional-dependencies", {}).items():
        if extra not in NOT_THE_PACKAGE:  # optional features of the package (e.g. bigquery)
            specs += more
    return {_canonical(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0]) for spec in specs}


def _module_file(name: str) -> str | None:
    """Where `name` (a module, or a name inside one: `google.cloud.bigquery`) is found, else None."""
    while name:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin not in (None, "namespace"):
            return spec.origin
        name = name.rpartition(".")[0]
    return None


def _distributions_of(name: str, owners: dict[str, list[str]]) -> list[str]:
    """The distribution(s) that hold module `name`; a namespace package (google) is shared by many, so
    those are told apart by the file the module is found in."""
    candidates = owners.get(name.split(".")[0], [name.split(".")[0]])
    if len(candidates) == 1:
        return candidates
    where = _module_file(name)
    held = [
        dist
        for dist in candidates
        if where and any(str(f.locate()) == where for f in distribution(dist).files or [])
    ]
    return held or candidates


def _imported() -> dict[str, str]:
    """Third-party distributions the package imports -> one file that imports it."""
    owners = packages_distributions()
    found: dict[str, str] = {}
    for path in sorted((ROOT / "idc_mcp").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "idc_mcp":
                    continue
                for dist in _distributions_of(name, owners):
                    found.setdefault(_canonical(dist), str(path.relative_to(ROOT)))
    return found


def test_every_imported_distribution_is_declared() -> None:
    missing = {dist: where for dist, where in _imported().items() if dist not in _declared()}
    assert missing == {}, f"imported but not declared in pyproject.toml: {missing}"


def test_every_declared_distribution_is_used() -> None:
    unused = _declared() - set(_imported()) - set(USED_WITHOUT_IMPORT)
    assert unused == set(), f"declared but imported by nothing in idc_mcp: {sorted(unused)}"
