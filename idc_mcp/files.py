"""Files the server writes: confinement to the download root, the one atomic writer, locks, free space.

A caller-supplied folder may be relative to the root or absolute inside it. Anything else is refused:
`..` escapes, absolute paths elsewhere, sibling-prefix paths (`/data/root_evil` next to `/data/root`),
and symlinks that point out. The check runs on resolved real paths, and `ensure_inside` repeats it for
each file just before it is written.

Every file we produce (manifests, provenance, state, catalog, fetched indices, downloaded objects) is
written by `atomic_write` or `atomic_output`: a temporary from `tempfile` in the target folder, renamed
over the target only when complete, removed on any failure, so the old file stays intact. Locks between
processes are `filelock` locks, which work wherever Python does (no `fcntl`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from filelock import FileLock

from idc_mcp.errors import AssistantError

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


class PathRefused(AssistantError, ValueError):
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


@contextmanager
def atomic_write(
    path: Path,
    binary: bool = False,
    *,
    root: Path | None = None,
    suffix: str = ".tmp",
    before_replace: Callable[[Path], None] | None = None,
) -> Iterator[IO[Any]]:
    """Yield a new temporary file in `path`'s folder; on a clean exit, rename it over `path`.

    The temporary is created by `tempfile.mkstemp` (a random name, opened exclusively, so it never
    follows a link planted there) as `.<name>.<random><suffix>`. If the block raises, or the final
    checks fail, the temporary is removed and `path` keeps its old content. With `root`, the target is
    checked to be inside the download root (and not a link) before writing and again before the rename;
    `before_replace(final)` may refuse the rename by raising.
    """
    final = ensure_inside(root, path) if root is not None else path
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=final.parent)
    tmp = Path(name)
    try:
        if binary:
            handle: IO[Any] = os.fdopen(fd, "wb")
        else:
            handle = os.fdopen(fd, "w", encoding="utf-8", newline="")
        with handle:
            yield handle
        final = ensure_inside(root, path) if root is not None else path
        if before_replace is not None:
            before_replace(final)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a path for a producer that opens files by name (DuckDB); on a clean exit it replaces `path`.

    The path lies in a private temporary folder (`tempfile`) beside `path`, so whatever the producer adds
    next to it (a write-ahead log, a spill folder) goes away with that folder, on success or failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        produced = folder / path.name
        yield produced
        os.replace(produced, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_text_inside(root: Path, path: Path, text: str) -> Path:
    """Write `text` to `path` (whose parent exists) inside the root, atomically. Returns the final path."""
    with atomic_write(path, root=root) as out:
        out.write(text)
    return ensure_inside(root, path)


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (for our own cache files, outside the download root)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as out:
        out.write(text)


def file_lock(path: Path) -> FileLock:
    """A lock between processes (and threads: each call opens its own lock file handle) on `path`.

    Portable: `filelock` uses the platform's own locking, so the package imports and runs everywhere."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path)


def free_bytes(folder: Path) -> int:
    """Free space on the file system that holds `folder`, or will hold it (its nearest existing ancestor)."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def safe_component(value: object, fallback: str = "unknown") -> str:
    """A metadata value made safe as one path component: no separators, '..', control characters."""
    text = "" if value is None else str(value)
    text = _UNSAFE.sub("_", text).strip().strip(".")
    text = re.sub(r"\.{2,}", "_", text)
    if not text:
        text = fallback
    return text[:MAX_COMPONENT_CHARS]
