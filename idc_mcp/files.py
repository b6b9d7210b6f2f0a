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
MAX_PATH_CHARS = 1024  # a caller's folder or file path; deeper trees are refused before any system call
MAX_NAME_BYTES = 255  # one path component, as ext4, XFS, APFS and NTFS allow
MAX_SHOWN_CHARS = 120  # a caller's input echoed in a message is cut to this
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


# Names the download engine gives its own files in a download folder (manifests, LICENSE and CITATION
# texts; the state file and temporaries are hidden names). A data file never takes one of them: the
# engine renames such objects, and export_manifest refuses them.
_OWN_NAMES = re.compile(r"(?i)^(\..*|license_.*\.txt|citation_.*\.txt|idc_manifest_.*\.csv)$")


def is_own_name(name: str) -> bool:
    """True for a file name the download engine reserves for its own files (see _OWN_NAMES)."""
    return bool(_OWN_NAMES.match(name))


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


def shown(value: object, limit: int = MAX_SHOWN_CHARS) -> str:
    """A caller's input as a message echoes it: quoted, cut to `limit` characters (saying how long it was)."""
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


def _check_shape(text: str) -> None:
    """Refuse paths no file system takes (too long, a component over 255 bytes), naming the rule."""
    if len(text) > MAX_PATH_CHARS:
        raise PathRefused(
            f"The path {shown(text)} is longer than {MAX_PATH_CHARS} characters. Give a short folder name "
            "inside the download root, e.g. 'lung_ct'."
        )
    for part in re.split(r"[/\\]", text):
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise PathRefused(
                f"The path {shown(text)} has a component longer than {MAX_NAME_BYTES} bytes, which file "
                "systems refuse. Use shorter folder names, e.g. 'lung_ct'."
            )


def resolve_inside(root: Path, requested: str | os.PathLike[str] | None) -> Path:
    """Resolve a caller's folder or file path against the root and refuse anything outside it.

    A refusal names what the caller gave and the rule, never what the path resolves to: a link (such as
    /proc/self/fd/N or a symlink planted anywhere) must not become a way to read where things are."""
    real_root = download_root(root)
    if requested is None or str(requested).strip() == "":
        return real_root
    text = str(requested)
    if "\x00" in text or any(ord(ch) < 32 for ch in text):
        raise PathRefused("The path contains control characters. Use a plain folder name.")
    _check_shape(text)
    candidate = Path(text).expanduser()
    if any(part == ".." for part in candidate.parts):
        raise PathRefused(
            f"The path {shown(text)} contains '..'. Give a folder inside the download root "
            f"{str(real_root)!r}, relative to it (e.g. 'lung_ct') or absolute inside it."
        )
    joined = candidate if candidate.is_absolute() else real_root / candidate
    # resolve(strict=False) follows every symlink that exists, so a link pointing out is caught here.
    try:
        resolved = joined.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # a link we may not read (/proc/1/cwd), a loop, a name too long
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "a symbolic link loop"
        raise PathRefused(
            f"The path {shown(text)} cannot be resolved ({reason}). Give a folder inside the download "
            f"root {str(real_root)!r}, relative to it (e.g. 'lung_ct')."
        ) from exc
    if not _inside(resolved, real_root):
        raise PathRefused(
            f"The path {shown(text)} leads outside the download root {str(real_root)!r} (directly or "
            "through a symbolic link). Give a folder inside the root, relative to it (e.g. 'lung_ct'); set "
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
