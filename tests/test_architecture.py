"""The package's folders are its layers: every import points down, and no module imports itself back.

README's "Architecture" map is the contract; this test holds the code to it. A new top-level module or
package fails here until it is given a layer (in LAYERS below and in the README map).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "idc_mcp"
README = Path(__file__).resolve().parents[1] / "README.md"

# Top to bottom; a module may import its own layer's modules and anything below, never above.
LAYERS: list[set[str]] = [
    {"__main__", "cli", "cli_terms", "app"},
    {"server"},
    {"serve", "apps"},
    {"bigquery", "preview", "prepare"},
    {"download", "guides"},
    {"tools"},
    {"indices", "cohorts"},
    {"diagnostics"},
    {"calls"},
    {
        "sql",
        "catalog",
        "files",
        "config",
        "object_store",
        "cancellation",
        "child_process",
        "errors",
        "units",
        "__init__",
    },  # fmt: skip
]
LAYER_OF = {name: depth for depth, names in enumerate(LAYERS) for name in names}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """idc_mcp modules imported anywhere in the file (also inside functions: those run too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("idc_mcp"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("idc_mcp"):
            found.add(node.module)
            # `from idc_mcp.pkg import module` imports a module, not only a name
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                if _exists(candidate):
                    found.add(candidate)
    return found


def _exists(module: str) -> bool:
    base = PACKAGE.parent.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_top_level_module_has_a_layer():
    tops = {_top(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert tops <= set(LAYER_OF), f"give these a layer in LAYERS and in README's map: {tops - set(LAYER_OF)}"


def test_no_import_points_up():
    upward = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if LAYER_OF.get(_top(target), 99) < LAYER_OF.get(_top(module), 99)
    ]
    assert not upward, "\n".join(sorted(upward))


def test_no_import_cycles():
    graph = {m: {t for t in ts if t in _graph_keys()} for m, ts in _graph().items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            # a package's own __init__ importing its modules is not a cycle through the package
            if nxt == node or (node.startswith(nxt + ".") and nxt != "idc_mcp"):
                continue
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def _graph_keys() -> set[str]:
    return {_module_name(p) for p in PACKAGE.rglob("*.py")}


def test_readme_map_names_every_folder_with_its_layer():
    section = README.read_text(encoding="utf-8").split("## Architecture", 1)[1].split("\n## ", 1)[0]
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    named = set(re.findall(r"`(\w+)/`", section))
    assert folders <= named, f"README's architecture map lacks {folders - named}"


def test_readme_map_gives_every_module_and_folder_its_layer_from_this_test():
    # The map's layer numbers are the code's: a row's number is its names' place in LAYERS (1 = top).
    section = README.read_text(encoding="utf-8").split("## Architecture", 1)[1].split("\n## ", 1)[0]
    shown: dict[str, int] = {}
    for row in re.findall(r"^\| (\d+) \| ([^|]+) \|", section, re.M):
        for name in re.findall(r"`(\w+)(?:/|\.py)`", row[1]):
            shown[name] = int(row[0])
    tops = {_top(_module_name(p)) for p in PACKAGE.rglob("*.py")} - {"__init__", "__main__"}
    assert tops <= set(shown), f"README's map lacks {tops - set(shown)}"
    wrong = {n: (layer, LAYER_OF[n] + 1) for n, layer in shown.items() if LAYER_OF[n] + 1 != layer}
    assert not wrong, f"README layer vs code layer: {wrong}"
