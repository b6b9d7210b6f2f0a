"""What an earlier call converted, kept beside the dataset so that a rerun skips it.

`<output_dir>/.idc-mcp-prepare.json` maps each series to a fingerprint of its DICOM files (names and
sizes of the verified download) and the SHA-256 of each file it produced. A series is reused only when
the fingerprint matches and every output is still there with its recorded checksum; anything else
(a missing or changed file, a state file that cannot be read) means converting again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from idc_mcp.files import write_text_inside

STATE_NAME = ".idc-mcp-prepare.json"
FORMAT = 1
CHUNK = 1024 * 1024


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(files: list[Path]) -> str:
    """The DICOM input of a series: its file names and sizes (IDC objects never change under a name)."""
    parts = sorted(f"{p.name}:{p.stat().st_size}" for p in files)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def digest_of(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def load(folder: Path) -> dict[str, dict[str, Any]]:
    path = folder / STATE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("series"), dict):
        return {}
    return data["series"]


def save(root: Path, folder: Path, series: dict[str, dict[str, Any]]) -> None:
    text = json.dumps({"format": FORMAT, "series": series}, indent=1, sort_keys=True)
    write_text_inside(root, folder / STATE_NAME, text)


def still_valid(folder: Path, record: dict[str, Any] | None, inputs: str) -> bool:
    """True when `record` was made from the same inputs and all its outputs are intact."""
    if not record or record.get("inputs") != inputs or not isinstance(record.get("outputs"), dict):
        return False
    for relative, digest in record["outputs"].items():
        path = folder / relative
        if path.is_symlink() or not path.is_file() or sha256(path) != digest:
            return False
    return True
