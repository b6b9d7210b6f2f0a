"""What a previous run verified, kept next to the data so that a rerun from a new process is cheap.

`<destination>/.idc-mcp-state.json` records, for each series whose files were all complete at the end
of a run, the endpoint, bucket and prefix it came from, its collection (a hint that lets the planner
filter the index on its leading sort column), the listing that was verified (object names,
sizes, ETags) and each file's stamp when it was verified (inode, size, mtime and ctime: see
`s3.stamp`), so that a file replaced by other content of the same size is never taken as complete.
In IDC a `crdc_series_uuid` prefix names one immutable version of a series, so the listing stays true
for that prefix.

The file is only ever a shortcut, never an authority:
- a series' recorded listing is used only if the endpoint, bucket and prefix match the current plan
  *and* every recorded file exists under its final name with the recorded stamp; otherwise the series
  is listed again, and each file is taken as complete only if its stamp still holds or its content
  hashes to the object's MD5;
- an entry whose digest does not match its content, or a file that cannot be read or parsed, is
  treated as absent (the download then lists everything, as on a first run);
- it is written atomically, inside the download root, after the files it describes were verified.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idc_mcp.files import write_text_inside

STATE_NAME = ".idc-mcp-state.json"
FORMAT = 2  # 2: with file stamps (a format-1 file is ignored: the rerun hashes what is on disk)
MAX_STATE_BYTES = 64 * 1024 * 1024  # larger files are not read (a rerun then lists, as on a first run)
MAX_RECORDED_OBJECTS = 300_000  # oldest series are dropped beyond this (≈ 30 MB of JSON)


@dataclass(frozen=True)
class SeriesRecord:
    """One series as a previous run verified it complete."""

    endpoint: str
    bucket: str
    prefix: str
    collection_id: str
    objects: tuple[tuple[str, int, str], ...]  # (key, size, etag) — the listing that was verified
    stamps: tuple[str, ...] = ()  # s3.stamp of each object's file when it was verified, in that order

    def digest(self) -> str:
        payload = json.dumps(
            [self.endpoint, self.bucket, self.prefix, self.collection_id, self.objects, self.stamps],
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def listing(self) -> list[tuple[str, int, str]]:
        """The recorded objects in the shape `s3.list_objects` returns: (key, size, etag)."""
        return list(self.objects)


def _parse_entry(raw: Any) -> SeriesRecord | None:
    """A record from its JSON form, or None if anything about it is off (wrong types, bad digest)."""
    if not isinstance(raw, dict):
        return None
    fields = ("endpoint", "bucket", "prefix", "collection_id")
    if not all(isinstance(raw.get(f), str) and raw.get(f) for f in fields):
        return None
    objects = raw.get("objects")
    if not isinstance(objects, list) or not objects:
        return None
    parsed = []
    for obj in objects:
        if not (isinstance(obj, list) and len(obj) == 3):
            return None
        key, size, etag = obj
        if not (isinstance(key, str) and key.startswith(raw["prefix"]) and len(key) > len(raw["prefix"])):
            return None
        if not (isinstance(size, int) and not isinstance(size, bool) and size >= 0 and isinstance(etag, str)):
            return None
        parsed.append((key, size, etag))
    stamps = raw.get("stamps")
    if not isinstance(stamps, list) or len(stamps) != len(parsed):
        return None
    if not all(isinstance(s, str) for s in stamps):
        return None
    record = SeriesRecord(*(raw[f] for f in fields), objects=tuple(parsed), stamps=tuple(stamps))
    return record if raw.get("digest") == record.digest() else None


def load(destination: Path) -> dict[str, SeriesRecord]:
    """The records in the destination's state file by SeriesInstanceUID; {} if absent or unreadable."""
    path = destination / STATE_NAME
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_STATE_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("series"), dict):
        return {}
    records = {}
    for uid, raw in data["series"].items():
        record = _parse_entry(raw)
        if record is not None:
            records[uid] = record
    return records


def save(root: Path, destination: Path, records: dict[str, SeriesRecord]) -> None:
    """Write the records atomically (temporary + rename, both checked inside the root); the newest last,
    and the oldest dropped beyond MAX_RECORDED_OBJECTS."""
    kept: list[tuple[str, SeriesRecord]] = []
    count = 0
    for uid, record in reversed(records.items()):
        count += len(record.objects)
        if count > MAX_RECORDED_OBJECTS:
            break
        kept.append((uid, record))
    series = {
        uid: {
            "endpoint": r.endpoint,
            "bucket": r.bucket,
            "prefix": r.prefix,
            "collection_id": r.collection_id,
            "objects": [list(o) for o in r.objects],
            "stamps": list(r.stamps),
            "digest": r.digest(),
        }
        for uid, r in reversed(kept)
    }
    text = json.dumps({"format": FORMAT, "series": series}, separators=(",", ":"))
    write_text_inside(root, destination / STATE_NAME, text)
