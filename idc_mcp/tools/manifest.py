"""export_manifest: an s5cmd manifest or a CSV of a selection, inline or written inside the download root.

s5cmd lines are `cp s3://<bucket>/<crdc_series_uuid>/* <folder>/` (the series' `series_aws_url`), each
series into its own folder laid out as `download` lays it out (`tools.layout`; `dir_template=''` puts
every file in one folder), run with `s5cmd --no-sign-request --endpoint-url <endpoint> run <file>` from
the folder to download into. Files are written atomically (temp file
+ rename) and only inside the download root; a directory or a symlink is never replaced.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from idc_mcp import files
from idc_mcp.catalog.database import Catalog
from idc_mcp.errors import AssistantError
from idc_mcp.tools.layout import DEFAULT_TEMPLATE, TemplateError, check_template, render_folder
from idc_mcp.tools.selection import Selection, resolve_selection, selection_where

ManifestFormat = Literal["s5cmd", "csv"]
# The tool's own arguments (besides the selection); their descriptions are what the assistant reads.
FormatArg = Annotated[ManifestFormat, Field(description="s5cmd: cp lines; csv: UIDs, license, size, URL")]
PathArg = Annotated[str | None, Field(description="file in the download root; omit: inline")]
MAX_INLINE_SERIES = 200
MAX_INLINE_BYTES = 64 * 1024
CSV_COLUMNS = (
    "SeriesInstanceUID",
    "collection_id",
    "PatientID",
    "StudyInstanceUID",
    "Modality",
    "license_short_name",
    "series_size_MB",
    "series_aws_url",
)


class ManifestError(AssistantError, ValueError):
    """The manifest cannot be produced as asked; the message says what to pass instead."""


class Manifest(BaseModel):
    format: ManifestFormat
    series_count: int
    total_size_MB: float
    endpoint_url: str = Field(description="S3 endpoint the s3:// URLs are served from (anonymous access)")
    run_command: str = Field(description="how to download with this manifest")
    path: str | None = Field(description="the file written (inside the download root), or null when inline")
    bytes: int = Field(description="size of the manifest text")
    content: str | None = Field(description="the manifest itself when returned inline")
    summary: str


def _destination(template: str, row: tuple[object, ...]) -> str:
    """The folder one series is copied into (relative to where s5cmd runs), quoted when it must be."""
    values = dict(zip(CSV_COLUMNS, row, strict=True))
    folder = render_folder(template, values)
    target = f"{folder}/" if folder else "."
    if re.fullmatch(r"[\w./-]+", target):
        return target
    return "'" + target.replace("'", "'\\''") + "'"  # a space or another character s5cmd would split on


def layout_note(template: str) -> str:
    """Where the files land, and how to change it."""
    if not template:
        return "every file in the folder s5cmd runs in (dir_template='')"
    return (
        f"one folder per series, {template} (as download lays them out), below the folder s5cmd runs in; "
        "dir_template='' puts every file in one folder"
    )


def render(
    catalog: Catalog,
    selection: Selection,
    fmt: ManifestFormat,
    endpoint_url: str,
    dir_template: str | None = None,
) -> tuple[str, int, float]:
    """(manifest text, series count, total MB) for a selection."""
    if fmt not in ("s5cmd", "csv"):
        raise ManifestError(f"format must be 's5cmd' or 'csv', not {fmt!r}.")
    try:
        template = check_template(DEFAULT_TEMPLATE if dir_template is None else dir_template)
    except TemplateError as exc:
        raise ManifestError(str(exc)) from exc
    resolved = resolve_selection(catalog, selection)
    where, params = selection_where(resolved)
    rows = catalog.execute(
        f"SELECT {', '.join(CSV_COLUMNS)} FROM index WHERE {where} "
        "ORDER BY collection_id, PatientID, StudyInstanceUID, SeriesInstanceUID",
        params,
    ).rows
    total = float(sum(r[6] or 0 for r in rows))
    if fmt == "s5cmd":
        header = [
            f"{S5CMD_HEADER}: {len(rows)} series, {total:,.1f} MB; anonymous access.",
            f"# Endpoint: {endpoint_url}",
            f"# Run: s5cmd --no-sign-request --endpoint-url {endpoint_url} run <this file>",
            f"# Files land in {layout_note(template)}.",
        ]
        text = "\n".join(header + [f"cp {r[7]} {_destination(template, r)}" for r in rows]) + "\n"
    else:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
        text = out.getvalue()
    return text, len(rows), total


S5CMD_HEADER = "# IDC s5cmd manifest"


def _is_our_manifest(path: Path) -> bool:
    """An existing file export_manifest wrote (its first line is our s5cmd or CSV header)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(256)
    except OSError:
        return False
    return head.startswith(S5CMD_HEADER.encode()) or head.startswith(",".join(CSV_COLUMNS).encode() + b"\n")


def _check_replaceable(requested: str, target: Path) -> None:
    """Refuse a name the download engine reserves, and any existing file that is not one of our manifests:
    export_manifest must never replace downloaded data, a LICENSE/CITATION text or the state file."""
    if files.is_own_name(target.name):
        raise ManifestError(
            f"path {files.shown(requested)} has a name the download engine keeps for its own files (hidden "
            "names, LICENSE_*.txt, CITATION_*.txt, idc_manifest_*.csv). Give another file name, e.g. "
            "'manifests/cohort.txt'."
        )
    if target.exists() and not _is_our_manifest(target):
        raise ManifestError(
            f"path {files.shown(requested)} is an existing file that export_manifest did not write (e.g. "
            "downloaded data); it is not replaced. Give a new file name, e.g. 'manifests/cohort.txt'."
        )


def write_atomically(download_root: Path, requested: str, text: str) -> Path:
    """Write `text` to `requested` (relative to, or absolute inside, the download root) via temp + rename."""
    try:
        return _write(download_root, requested, text)
    except OSError as exc:  # e.g. a name too long, a parent that is a file, no permission
        raise ManifestError(
            f"Cannot write {files.shown(requested)} in the download root: {exc.strerror or exc}. "
            "Give a short file name in a folder that is not a file, e.g. 'manifests/cohort.txt'."
        ) from exc


def _write(download_root: Path, requested: str, text: str) -> Path:
    named = Path(requested).expanduser()
    named = named if named.is_absolute() else files.download_root(download_root) / named
    if named.is_symlink():
        raise files.PathRefused(
            f"Refusing to write {files.shown(requested)}: it is a symbolic link. Give another file name."
        )
    target = files.resolve_inside(download_root, requested)
    # 'manifests/' names a folder even before it exists: never write a file called 'manifests'.
    # 'manifests/.' too: pathlib drops a trailing '.', which would name the folder as a file.
    last = re.split(r"[/\\]", requested.rstrip())[-1]
    names_folder = last in ("", ".", "..")
    if names_folder or target == files.download_root(download_root) or target.is_dir():
        folder = requested.rstrip().rstrip("/.") or "manifests"
        raise ManifestError(
            f"path {files.shown(requested)} is a folder; give a file name inside it, "
            f"e.g. {files.shown(folder + '/manifest.txt')}."
        )
    if not target.name or target.name in (".", ".."):
        raise ManifestError(
            f"path {files.shown(requested)} does not name a file; give e.g. 'manifests/lung_ct.s5cmd'."
        )
    _check_replaceable(requested, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with files.atomic_write(target, root=download_root, before_replace=_refuse_folder_or_link) as out:
        out.write(text)
    return files.ensure_inside(download_root, target)


def _refuse_folder_or_link(final: Path) -> None:
    # Checked again just before the rename: a folder or link swapped in meanwhile is not replaced.
    if final.is_dir() or final.is_symlink():
        raise ManifestError(f"{str(final)!r} became a folder or link; not overwritten.")


def export_manifest(
    catalog: Catalog,
    selection: Selection,
    fmt: ManifestFormat,
    path: str | None,
    download_root: Path,
    endpoint_url: str,
    dir_template: str | None = None,
) -> Manifest:
    text, count, total = render(catalog, selection, fmt, endpoint_url, dir_template)
    template = DEFAULT_TEMPLATE if dir_template is None else dir_template
    lands = f" Files land in {layout_note(template)}." if fmt == "s5cmd" else ""
    size = len(text.encode())
    run = (
        f"s5cmd --no-sign-request --endpoint-url {endpoint_url} run <manifest file>"
        if fmt == "s5cmd"
        else "CSV for review or your own tooling; use format='s5cmd' for a download manifest."
    )
    if path is None or not path.strip():
        if count > MAX_INLINE_SERIES or size > MAX_INLINE_BYTES:
            raise ManifestError(
                f"The manifest has {count:,} series ({size / 1024:,.0f} KiB); inline replies hold at most "
                f"{MAX_INLINE_SERIES} series / {MAX_INLINE_BYTES // 1024} KiB. Pass path='manifests/<name>."
                f"{'txt' if fmt == 's5cmd' else 'csv'}' to write it inside the download root."
            )
        return Manifest(
            format=fmt,
            series_count=count,
            total_size_MB=round(total, 3),
            endpoint_url=endpoint_url,
            run_command=run,
            path=None,
            bytes=size,
            content=text,
            summary=f"{fmt} manifest of {count:,} series ({total:,.1f} MB), inline.{lands}",
        )
    written = write_atomically(download_root, path, text)
    return Manifest(
        format=fmt,
        series_count=count,
        total_size_MB=round(total, 3),
        endpoint_url=endpoint_url,
        run_command=run.replace("<manifest file>", str(written)),
        path=str(written),
        bytes=size,
        content=None,
        summary=f"Wrote the {fmt} manifest of {count:,} series ({total:,.1f} MB) to {written}.{lands}",
    )
