"""Putting converted files in place: every file lands whole (a temporary in a private folder inside the
download root, moved over its final name) or not at all."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from idc_mcp.files import ensure_inside, write_text_inside

WORK_PREFIX = ".idc-mcp-prepare-"


@contextmanager
def work_folder(output: Path) -> Iterator[Path]:
    """A private temporary folder inside the output folder, removed with whatever is left in it."""
    folder = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=output))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def clean_stale(output: Path) -> None:
    """Remove the work folders an interrupted call left behind (a killed process cannot clean up)."""
    if output.is_dir():
        for entry in output.iterdir():
            if entry.name.startswith(WORK_PREFIX) and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)


def place(root: Path, made: Path, final: Path) -> Path:
    """Move a finished file over `final` (same file system: an atomic rename), inside the root."""
    final.parent.mkdir(parents=True, exist_ok=True)
    target = ensure_inside(root, final)
    os.replace(made, target)
    return target


def link_or_copy(root: Path, source: Path, final: Path, work: Path) -> Path:
    """`final` as a hard link to `source` (no extra space), or a copy where links are refused."""
    staged = work / f"link-{len(list(work.iterdir()))}"
    try:
        os.link(source, staged)
    except OSError:
        shutil.copyfile(source, staged)
    return place(root, staged, final)


def write_json(root: Path, path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_inside(root, path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
