"""Confinement of every file the server writes to the download root (`IDC_MCP_DOWNLOAD_ROOT`).

A caller-supplied folder may be relative to the root or absolute inside it. Anything else is refused:
`..` escapes, absolute paths elsewhere, sibling-prefix paths (`/data/root_evil` next to `/data/root`),
and symlinks that point out. The check runs on resolved real paths, and `ensure_inside` repeats it for
each file just before it is written.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

MAX_COMPONENT_CHARS = 120
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


class PathRefused(ValueError):
    """A path outside the download root or otherwise unsafe; the message says what is allowed."""


def download_root(root: Path) -> Path:
    """The root, created if needed, as a resolved real path."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PathRefused(f"The download root {str(root)!r} cannot be created: {exc.strerror}.") from exc
    return root.resolve(strict=True)


def _inside(path: Path, root: Path) -> bool:
    # Path.is_relative_to compares whole components, so /data/root_evil is not inside /data/root.
    return path == root or path.is_relative_to(root)


def resolve_inside(root: Path, requested: str | os.PathLike[str] | None) -> Path:
    """Resolve a caller's folder or file path against the root and refuse anything outside it."""
    real_root = download_root(root)
    if requested is None or str(requested).strip() == "":
        return real_root
    text = str(requested)
    if "\x00" in text or any(ord(ch) < 32 for ch in text):
        raise PathRefused("The path contains control characters. Use a plain folder name.")
    candidate = Path(text).expanduser()
    if any(part == ".." for part in candidate.parts):
        raise PathRefused(
            f"The path {text!r} contains '..'. Give a folder inside the download root {str(real_root)!r}, "
            "relative to it (e.g. 'lung_ct') or absolute inside it."
        )
    joined = candidate if candidate.is_absolute() else real_root / candidate
    # resolve(strict=False) follows every symlink that exists, so a link pointing out is caught here.
    resolved = joined.resolve(strict=False)
    if not _inside(resolved, real_root):
        raise PathRefused(
            f"The path {text!r} is outside the download root {str(real_root)!r} (it resolves to "
            f"{str(resolved)!r}). Give a folder inside the root, relative to it (e.g. 'lung_ct'); set "
            "IDC_MCP_DOWNLOAD_ROOT to write elsewhere."
        )
    return resolved


def ensure_inside(root: Path, path: Path) -> Path:
    """Re-check, right before writing, that `path` (whose parent exists) is still inside the root."""
    real_root = root.resolve(strict=True)
    parent = path.parent.resolve(strict=True)
    if not _inside(parent, real_root):
        raise PathRefused(f"Refusing to write {str(path)!r}: its folder resolves outside the download root.")
    if path.is_symlink():
        raise PathRefused(f"Refusing to write {str(path)!r}: it is a symbolic link.")
    return parent / path.name


def write_text_inside(root: Path, path: Path, text: str) -> Path:
    """Write `text` to `path` (whose parent exists) inside the root, via a temp file and a rename.

    The temp name is unique and opened exclusively, so it never follows a link planted at that name;
    on any failure it is removed. Returns the final path."""
    final = ensure_inside(root, path)
    tmp = ensure_inside(root, path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"))
    try:
        with open(tmp, "x", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def safe_component(value: object, fallback: str = "unknown") -> str:
    """A metadata value made safe as one path component: no separators, '..', control characters."""
    text = "" if value is None else str(value)
    text = _UNSAFE.sub("_", text).strip().strip(".")
    text = re.sub(r"\.{2,}", "_", text)
    if not text:
        text = fallback
    return text[:MAX_COMPONENT_CHARS]
