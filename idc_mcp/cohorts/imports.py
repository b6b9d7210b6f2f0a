"""What an IDC portal export names: series by crdc_series_uuid (an s5cmd manifest) or by
SeriesInstanceUID (a CSV or JSON export), and the IDC data version it was made from.

Only parsing lives here; `tools/cohorts.py` resolves the entries against the catalog. Every line that
cannot be read is reported with its number; nothing is guessed.

Accepted:
- s5cmd manifests: `cp s3://<bucket>/<crdc_series_uuid>/* <folder>` lines (the URL may be quoted);
  comments start with '#'; a comment such as `# idc_data_version: v21` names the release.
- CSV: a header row with a SeriesInstanceUID column or a crdc_series_uuid / series_aws_url column; an
  `idc_data_version` column or comment line names the release.
- JSON: an object with `idc_data_version` and a list of series (`series`, `manifest`, `rows`, `data`,
  or `SeriesInstanceUID` / `series_uids` as plain strings), or a list of row objects.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from idc_mcp.cohorts.format import CohortError

MAX_ENTRIES = 100_000
MAX_PROBLEMS_SHOWN = 20
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_S3_URL = re.compile(r"s3://([a-z0-9.\-]+)/(" + _UUID.pattern + r")/")
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_VERSION = re.compile(r"idc_data_version\W*v?(\d+)", re.IGNORECASE)


@dataclass
class Entry:
    line: int
    series_uid: str | None = None
    crdc_series_uuid: str | None = None


@dataclass
class Export:
    kind: str  # s5cmd, csv or json
    release: int | None
    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def release_of(value: object) -> int | None:
    """'v21', '21', 21 -> 21."""
    if value is None or value == "":
        return None
    match = re.fullmatch(r"\s*v?(\d+)\s*", str(value), re.IGNORECASE)
    if not match:
        raise CohortError(
            f"idc_data_version {str(value)[:40]!r} is not a release number such as 'v21' or 21."
        )
    return int(match.group(1))


def parse_export(text: str, name: str) -> Export:
    stripped = text.lstrip("\ufeff").lstrip()
    if stripped.startswith(("{", "[")):
        export = _json(stripped)
    elif any(line.lstrip().startswith("cp ") for line in stripped.splitlines()[:200]):
        export = _s5cmd(stripped)
    else:
        export = _csv(stripped)
    if len(export.entries) > MAX_ENTRIES:
        raise CohortError(
            f"{name} lists {len(export.entries):,} series; a cohort holds at most {MAX_ENTRIES:,}."
        )
    if not export.entries and not export.problems:
        raise CohortError(
            f"{name} names no series. Give an s5cmd manifest (cp s3://... lines), a CSV with a "
            "SeriesInstanceUID or crdc_series_uuid column, or a JSON export from the IDC portal."
        )
    return export


def _comment_version(lines: list[str]) -> int | None:
    for line in lines:
        if line.lstrip().startswith("#") and (match := _VERSION.search(line)):
            return int(match.group(1))
    return None


def _s5cmd(text: str) -> Export:
    lines = text.splitlines()
    export = Export("s5cmd", _comment_version(lines))
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _S3_URL.search(line)
        if not line.startswith("cp ") or match is None:
            export.problems.append(
                f"line {number}: not a 'cp s3://<bucket>/<crdc_series_uuid>/* ...' line: {line[:80]!r}"
            )
            continue
        export.entries.append(Entry(number, crdc_series_uuid=match.group(2)))
    return export


def _csv(text: str) -> Export:
    lines = text.splitlines()
    version = _comment_version(lines)
    body = [
        (n, line) for n, line in enumerate(lines, 1) if line.strip() and not line.lstrip().startswith("#")
    ]
    if not body:
        return Export("csv", version)
    rows = list(csv.reader(io.StringIO("\n".join(line for _, line in body))))
    header = [h.strip() for h in rows[0]]
    lowered = [h.lower() for h in header]
    export = Export("csv", version)
    uid_col = lowered.index("seriesinstanceuid") if "seriesinstanceuid" in lowered else None
    uuid_col = next((lowered.index(c) for c in ("crdc_series_uuid", "series_aws_url") if c in lowered), None)
    version_col = lowered.index("idc_data_version") if "idc_data_version" in lowered else None
    if uid_col is None and uuid_col is None:
        raise CohortError(
            f"The CSV header ({', '.join(header[:8])}) has no SeriesInstanceUID, crdc_series_uuid or "
            "series_aws_url column. Export the cohort's series list from the IDC portal, or add that column."
        )
    versions: set[int] = set()
    for (number, _), row in zip(body[1:], rows[1:], strict=False):
        cells = [c.strip() for c in row]
        if version_col is not None and version_col < len(cells) and cells[version_col]:
            versions.add(release_of(cells[version_col]) or 0)
        _add(export, number, cells[uid_col] if uid_col is not None and uid_col < len(cells) else None,
             cells[uuid_col] if uuid_col is not None and uuid_col < len(cells) else None)  # fmt: skip
    _one_version(export, versions)
    return export


def _add(export: Export, number: int, uid: str | None, uuid_text: str | None) -> None:
    uuid = None
    if uuid_text:
        match = _UUID.search(uuid_text)
        if match is None:
            export.problems.append(f"line {number}: {uuid_text[:80]!r} holds no crdc_series_uuid")
            return
        uuid = match.group(0)
    if uid and not (_UID.match(uid) and len(uid) <= 64):
        export.problems.append(f"line {number}: {uid[:80]!r} is not a SeriesInstanceUID (digits and dots)")
        return
    if not uid and not uuid:
        export.problems.append(f"line {number}: no series named")
        return
    export.entries.append(Entry(number, uid or None, uuid))


def _one_version(export: Export, versions: set[int]) -> None:
    if len(versions) > 1:
        raise CohortError(
            f"The export mixes IDC data versions {sorted(versions)}; a cohort is resolved against one. "
            "Split the file by idc_data_version and import each part."
        )
    if versions:
        found = versions.pop()
        if export.release is not None and export.release != found:
            raise CohortError(
                f"The export says idc_data_version {export.release} in a comment and {found} in its rows."
            )
        export.release = found


def _json(text: str) -> Export:
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CohortError(f"The JSON export is not valid JSON ({exc.msg} at line {exc.lineno}).") from exc
    export = Export("json", None)
    versions: set[int] = set()
    if isinstance(data, dict):
        if (v := release_of(data.get("idc_data_version"))) is not None:
            versions.add(v)
        items = next(
            (
                data[k]
                for k in ("series", "manifest", "rows", "data", "SeriesInstanceUID", "series_uids")
                if k in data
            ),
            None,
        )
    else:
        items = data
    if not isinstance(items, list):
        raise CohortError(
            "The JSON export holds no list of series: give an object with idc_data_version and 'series' "
            "(a list of SeriesInstanceUIDs or of objects with SeriesInstanceUID / crdc_series_uuid)."
        )
    for number, item in enumerate(items, 1):
        if isinstance(item, str):
            _add(export, number, item.strip(), None)
        elif isinstance(item, dict):
            if (v := release_of(item.get("idc_data_version"))) is not None:
                versions.add(v)
            uid = item.get("SeriesInstanceUID")
            uuid = item.get("crdc_series_uuid") or item.get("series_aws_url")
            _add(export, number, str(uid).strip() if uid else None, str(uuid) if uuid else None)
        else:
            export.problems.append(f"item {number}: not a string or an object")
    _one_version(export, versions)
    return export
