"""A bounded on-disk cache of finished previews, inside the cache folder (IDC_MCP_CACHE_DIR/previews).

IDC's S3 prefix (crdc_series_uuid) names one immutable version of a series, so a preview made from it
stays true; the key also holds the endpoint and every argument that changes the picture. Entries are
written atomically (temporary file, then rename) and the least recently used are removed once the
folder holds more than `max_bytes` or `max_entries`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from idc_mcp.files import atomic_write

MAX_BYTES = 64 << 20
MAX_ENTRIES = 500
FORMAT = 1  # bump when rendering changes, so old pictures are not served


class PreviewCache:
    def __init__(self, folder: Path, max_bytes: int = MAX_BYTES, max_entries: int = MAX_ENTRIES) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.max_entries = max_entries

    @staticmethod
    def key(**parts: Any) -> str:
        text = json.dumps({"format": FORMAT, **parts}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def get(self, key: str) -> tuple[bytes, dict[str, Any]] | None:
        image, meta = self.folder / f"{key}.img", self.folder / f"{key}.json"
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
            data = image.read_bytes()
        except (OSError, ValueError):
            return None
        if not isinstance(info, dict) or hashlib.sha256(data).hexdigest() != info.get("sha256"):
            return None  # torn or edited entry: make the preview again
        os.utime(meta)  # most recently used
        return data, info

    def put(self, key: str, data: bytes, info: dict[str, Any]) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._write(self.folder / f"{key}.img", data)
            self._write(
                self.folder / f"{key}.json",
                json.dumps({**info, "sha256": hashlib.sha256(data).hexdigest()}).encode(),
            )
            self._evict()
        except OSError:
            pass  # a cache that cannot be written only costs a refetch next time

    def _write(self, path: Path, data: bytes) -> None:
        with atomic_write(path, binary=True) as out:
            out.write(data)

    def _evict(self) -> None:
        entries = []
        for meta in self.folder.glob("*.json"):
            image = meta.with_suffix(".img")
            try:
                entries.append(
                    (meta.stat().st_mtime, meta, image, meta.stat().st_size + image.stat().st_size)
                )
            except OSError:
                continue
        entries.sort(key=lambda e: e[0])  # oldest use first
        total = sum(e[3] for e in entries)
        while entries and (total > self.max_bytes or len(entries) > self.max_entries):
            _, meta, image, size = entries.pop(0)
            meta.unlink(missing_ok=True)
            image.unlink(missing_ok=True)
            total -= size

    def size(self) -> tuple[int, int]:
        """(entries, bytes) now held."""
        files = (
            [p for p in self.folder.glob("*") if p.suffix in (".img", ".json")]
            if self.folder.exists()
            else []
        )
        return len([p for p in files if p.suffix == ".json"]), sum(p.stat().st_size for p in files)
