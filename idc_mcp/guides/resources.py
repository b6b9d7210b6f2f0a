"""The agent skill and reference guides: where they are, how they are read, and what their examples are.

The markdown lives in `skill/` and `references/` at the repository root. A wheel carries the same files
under `idc_mcp/_docs/skill` and `idc_mcp/_docs/references` (pyproject force-include), so the installed
copy is preferred and the repository folders are the fallback for editable and development installs.

Run `python -m idc_mcp.guides --write-schema-reference` to regenerate `references/metadata_schema.md`
from the bundled schema JSON and the data (a test fails when the file is stale).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from idc_mcp.catalog.schemas import JOIN_KEYS, all_tables, get_table

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # idc_mcp/
# Where the wheel puts the docs inside the package (see [tool.hatch.build.targets.wheel.force-include]).
INSTALLED_DOCS = "_docs"
SKILL_FILE = "SKILL.md"


class DocNotFound(LookupError):
    """A skill, reference or table name that does not exist; the message names the available ones."""


@dataclass(frozen=True)
class DocsLocation:
    skill_dir: Path
    references_dir: Path
    installed: bool  # True when read from the package (wheel), False for the repository folders


def locate_docs(package_dir: Path = PACKAGE_DIR) -> DocsLocation:
    """The docs shipped in the package when present, else the repository's `skill/` and `references/`."""
    packaged = package_dir / INSTALLED_DOCS
    if (packaged / "skill" / SKILL_FILE).is_file():
        return DocsLocation(packaged / "skill", packaged / "references", installed=True)
    repo = package_dir.parent
    return DocsLocation(repo / "skill", repo / "references", installed=False)


def reference_files(location: DocsLocation | None = None) -> dict[str, Path]:
    """Reference name (file name without `.md`) -> path, sorted by name."""
    loc = location or locate_docs()
    if not loc.references_dir.is_dir():
        return {}
    return {p.stem: p for p in sorted(loc.references_dir.glob("*.md"))}


def title_of(path: Path) -> str:
    """The first markdown heading of a file, or its name."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("# "):
                return line[2:].strip()
    return path.stem


def read_skill(location: DocsLocation | None = None) -> str:
    loc = location or locate_docs()
    path = loc.skill_dir / SKILL_FILE
    if not path.is_file():
        raise DocNotFound(f"The skill file is missing ({path}). Reinstall idc-mcp; the wheel ships it.")
    return path.read_text(encoding="utf-8")


def read_reference(name: str, location: DocsLocation | None = None) -> str:
    """The markdown of one reference. `name` is looked up among the files, never joined into a path."""
    files = reference_files(location)
    key = name[:-3] if name.endswith(".md") else name
    if key not in files:
        available = ", ".join(f"idc://references/{n}" for n in files) or "none (docs not installed)"
        raise DocNotFound(f"Unknown reference {name!r}. Available: {available}. The skill is idc://skill.")
    return files[key].read_text(encoding="utf-8")


def table_schema(name: str, installed_tables: list[str] | None = None) -> dict[str, object]:
    """One table's schema (from the bundled schema JSON) as a JSON-ready dict."""
    info = get_table(name)
    if info is None:
        available = ", ".join(all_tables())
        raise DocNotFound(f"Unknown table {name!r}. Available tables: {available}. Read idc://tables/index.")
    out: dict[str, object] = {
        "name": info.name,
        "description": info.description,
        "bundled": info.bundled,
        "join_keys": [k for k in JOIN_KEYS if info.column(k) is not None],
        "columns": [
            {"name": c.name, "type": c.type, "mode": c.mode, "description": c.description}
            for c in info.columns
        ],
    }
    if installed_tables is not None:
        out["installed"] = info.name in installed_tables
        if info.name not in installed_tables:
            out["how_to_install"] = f'fetch_index("{info.name}")'
    return out


def table_schema_json(name: str, installed_tables: list[str] | None = None) -> str:
    return json.dumps(table_schema(name, installed_tables), indent=1, ensure_ascii=False)


# ---------------------------------------------------------------- code examples in the markdown
# A ```sql fence must run against the installed catalog and return at least one row. A ```sql fetch-first
# fence uses an index that is not bundled (sm_index, seg_index, ...): it must name such an index and bind
# against that index's schema, but it can run only after fetch_index.
FETCH_FIRST = "fetch-first"
# Fences may be indented (inside a list item) by up to 3 spaces, as in CommonMark.
_FENCE = re.compile(r"^( {0,3})```([^\n`]*)\n(.*?)^ {0,3}```\s*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class CodeExample:
    file: str
    line: int
    language: str
    info: str  # everything after the language on the fence line
    code: str

    @property
    def label(self) -> str:
        return f"{self.file}:{self.line}"


def code_examples(text: str, file: str = "<text>") -> list[CodeExample]:
    """Every fenced code block in a markdown text, with its 1-based starting line."""
    out = []
    for match in _FENCE.finditer(text):
        info = match.group(2).strip()
        language, _, rest = info.partition(" ")
        line = text.count("\n", 0, match.start()) + 1
        code = textwrap.dedent(match.group(3)) if match.group(1) else match.group(3)
        out.append(CodeExample(file, line, language.lower(), rest.strip(), code))
    return out


def all_doc_files(location: DocsLocation | None = None) -> list[Path]:
    loc = location or locate_docs()
    files = [loc.skill_dir / SKILL_FILE] if (loc.skill_dir / SKILL_FILE).is_file() else []
    return files + list(reference_files(loc).values())


def all_code_examples(location: DocsLocation | None = None) -> list[CodeExample]:
    loc = location or locate_docs()
    root = loc.skill_dir.parent
    out = []
    for path in all_doc_files(loc):
        out.extend(code_examples(path.read_text(encoding="utf-8"), str(path.relative_to(root))))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m idc_mcp.guides", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--write-schema-reference",
        action="store_true",
        help="regenerate references/metadata_schema.md from the bundled schema JSON and the data",
    )
    parser.add_argument("--output", type=Path, help="write here instead of references/metadata_schema.md")
    args = parser.parse_args(argv)
    if not args.write_schema_reference:
        parser.print_help()
        return 2
    from idc_mcp.catalog.database import get_catalog
    from idc_mcp.guides.schema_reference import generate_schema_reference

    target = args.output or locate_docs().references_dir / "metadata_schema.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(generate_schema_reference(get_catalog()), encoding="utf-8")
    print(f"wrote {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
