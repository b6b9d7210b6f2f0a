"""The cohort folder: `<download root>/cohorts/<name>.cohort.json`, one shareable file per cohort.

Names are checked before any path is made (`format.check_name`: no separators, no '..'); files are
written by the one atomic writer inside the download root, under a lock, and an existing cohort is
replaced only when the caller says so. A file that is a link, too large or not a cohort is refused
without being read further.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from idc_mcp import files
from idc_mcp.cohorts.format import MAX_FILE_BYTES, Cohort, CohortError, check_name, parse, to_text

FOLDER = "cohorts"
SUFFIX = ".cohort.json"


def folder(download_root: Path) -> Path:
    """The cohort folder (created), inside the download root."""
    return files.resolve_inside(download_root, FOLDER)


def path_of(download_root: Path, name: str) -> Path:
    return folder(download_root) / f"{check_name(name)}{SUFFIX}"


def _lock(download_root: Path) -> files.FileLock:
    return files.file_lock(folder(download_root) / ".cohorts.lock")


def save(download_root: Path, cohort: Cohort, overwrite: bool) -> Path:
    """Write the cohort file atomically; refuse to replace an existing cohort unless `overwrite`."""
    target = path_of(download_root, cohort.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(download_root):
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise CohortError(f"{target} is not a regular file; it is left alone. Choose another name.")
        if target.exists() and not overwrite:
            raise CohortError(
                f"A cohort named {cohort.name!r} already exists ({target}). Choose another name, or pass "
                "overwrite=true to replace it."
            )
        files.write_text_inside(download_root, target, to_text(cohort))
    return target


def read_text(path: Path, source: str) -> str:
    """A cohort-sized text file, or a CohortError (a link, a folder, too large, not UTF-8)."""
    if path.is_symlink() or not path.is_file():
        raise CohortError(f"{source} is not a regular file.")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise CohortError(f"{source} is {size:,} bytes; cohort files hold at most {MAX_FILE_BYTES:,}.")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CohortError(f"{source} is not UTF-8 text.") from exc


def load(download_root: Path, name: str) -> Cohort:
    """The saved cohort `name`, checked (see `format.parse`)."""
    target = path_of(download_root, name)
    if not target.exists() and not target.is_symlink():
        known = names(download_root)
        listed = ", ".join(known[:20]) if known else "none yet"
        raise CohortError(
            f"No cohort named {name!r} in {target.parent} (saved cohorts: {listed}). "
            "Save one with save_cohort, "
            "or import_cohort a file a colleague shared."
        )
    cohort = parse(read_text(target, f"Cohort file {target.name}"), f"Cohort file {target.name}")
    if cohort.name != name:
        raise CohortError(
            f"Cohort file {target.name} holds the cohort named {cohort.name!r}, not {name!r} "
            "(renamed by hand?). "
            f"Rename the file to {cohort.name}{SUFFIX}."
        )
    return cohort


def names(download_root: Path) -> list[str]:
    """The saved cohorts' names (files with a valid name), sorted."""
    found = []
    for path in folder(download_root).glob(f"*{SUFFIX}"):
        name = path.name[: -len(SUFFIX)]
        try:
            check_name(name)
        except CohortError:
            continue
        found.append(name)
    return sorted(found)


@dataclass(frozen=True)
class Listed:
    name: str
    path: Path
    cohort: Cohort | None
    problem: str | None


def list_all(download_root: Path) -> list[Listed]:
    """Every saved cohort, read and checked; a file that fails is listed with what is wrong."""
    listed = []
    for name in names(download_root):
        path = path_of(download_root, name)
        try:
            listed.append(Listed(name, path, load(download_root, name), None))
        except CohortError as exc:
            listed.append(Listed(name, path, None, str(exc)))
    return listed
