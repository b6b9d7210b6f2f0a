"""Copy the skill into the Claude Code plugin layout: skill/ + references/ -> skills/<skill name>/.

skill/SKILL.md and references/*.md are the single source (the wheel, the MCP resources and the docs tests
read them there). Claude Code plugins want `skills/<name>/SKILL.md`, and their installer does not follow
symlinks, so the plugin gets a generated copy; `--check` (run by the tests) fails when it is stale.

    python packaging/sync_skill.py          # regenerate
    python packaging/sync_skill.py --check  # exit 1 and name the stale files
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def skill_name(repo: Path = REPO) -> str:
    match = re.search(r"^name:\s*(\S+)\s*$", (repo / "skill" / "SKILL.md").read_text(), re.M)
    if match is None:
        raise SystemExit("skill/SKILL.md has no `name:` in its front matter")
    return match.group(1)


def expected_files(repo: Path = REPO) -> dict[str, bytes]:
    """Plugin path (relative to the repository) -> content."""
    target = f"skills/{skill_name(repo)}"
    files = {f"{target}/SKILL.md": (repo / "skill" / "SKILL.md").read_bytes()}
    for reference in sorted((repo / "references").glob("*.md")):
        files[f"{target}/references/{reference.name}"] = reference.read_bytes()
    return files


def stale_files(repo: Path = REPO) -> list[str]:
    expected = expected_files(repo)
    present = {str(p.relative_to(repo)) for p in (repo / "skills").rglob("*") if p.is_file()}
    wrong = [
        path
        for path, content in expected.items()
        if not (repo / path).is_file() or (repo / path).read_bytes() != content
    ]
    return sorted(set(wrong) | (present - set(expected)))


def sync(repo: Path = REPO) -> None:
    shutil.rmtree(repo / "skills", ignore_errors=True)
    for path, content in expected_files(repo).items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_bytes(content)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    parser.add_argument("--repo", type=Path, default=REPO)
    args = parser.parse_args()
    if args.check:
        stale = stale_files(args.repo)
        if stale:
            print("stale plugin skill files (run: python packaging/sync_skill.py):", *stale, sep="\n  ")
            return 1
        return 0
    sync(args.repo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
