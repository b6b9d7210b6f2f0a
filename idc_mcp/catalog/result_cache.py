"""A bounded cache of `query` replies: the catalog is immutable per idc-index-data version.

Key: the SQL regenerated from the validated tree (what actually runs, so two spellings of one query
share an entry), `max_rows`, and what the catalog holds (`Catalog.cache_key`: its data version's folder
and its generation, bumped when a fetched index is attached, which changes what a name can refer to).
A second map goes from the caller's exact text to that key, so a repeat skips parsing too; it is only a
shortcut to the same key.
A text refused by validation has no validated form: its refusal is kept under the text itself.

Bounded in bytes (each entry counted by its JSON size), least recently used first out; a reply whose
diagnostics were cut short by their time budget is never stored, so a busy moment is not pinned.
Concurrent callers of one key compute it once (`single_flight`): fifty clients asking the same
question start one query and one diagnosis, not fifty.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

from idc_mcp.catalog.memo import Memo

V = TypeVar("V")

MAX_CACHE_BYTES = 32 * 2**20
MAX_ENTRY_BYTES = 2 * 2**20
# The map from callers' texts (each up to sql.statement.MAX_SQL_CHARS) to keys, bounded in characters
# held (the text and the key's SQL), not in entries: 4,096 texts of 20,000 characters could hold 160 MB.
MAX_TEXT_CHARS = 8 * 2**20


@dataclass(frozen=True)
class ResultKey:
    """What makes two replies interchangeable."""

    sql: str  # regenerated from the validated tree, with the enforced LIMIT (refused: the caller's text)
    max_rows: int
    catalog: tuple[str, int, bool]  # Catalog.cache_key
    refused: bool = False  # the caller's text was refused before it had a validated form


@dataclass(frozen=True)
class TextKey:
    """The caller's exact text, in the same context: a shortcut to a ResultKey."""

    text: str
    max_rows: int
    catalog: tuple[str, int, bool]  # Catalog.cache_key


class ResultCache(Generic[V]):
    """Replies by ResultKey, bounded in bytes, on the server's one kind of cache (`catalog.memo`)."""

    def __init__(self, max_bytes: int = MAX_CACHE_BYTES, max_entry_bytes: int = MAX_ENTRY_BYTES) -> None:
        self.max_entry_bytes = max_entry_bytes
        self._entries: Memo[tuple[V, int]] = Memo(max_bytes, getsizeof=lambda entry: entry[1])
        self._texts: Memo[tuple[ResultKey, int]] = Memo(MAX_TEXT_CHARS, getsizeof=lambda entry: entry[1])
        self._lock = threading.Lock()
        self._flights: dict[ResultKey, tuple[threading.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: ResultKey) -> V | None:
        entry = self._entries.get(key)
        return entry[0] if entry is not None else None

    def entry_bytes(self, key: ResultKey) -> int:
        entry = self._entries.get(key)
        return entry[1] if entry is not None else 0

    def get_text(self, key: TextKey) -> V | None:
        """The reply stored for this exact text, if its entry is still there."""
        entry = self._texts.get(key)
        return self.get(entry[0]) if entry is not None else None

    def put(self, key: ResultKey, value: V, nbytes: int, text: TextKey | None = None) -> bool:
        """Store a reply of `nbytes`; False when it is too large to keep."""
        if nbytes > self.max_entry_bytes:
            return False
        self._entries.put(key, (value, max(1, nbytes)))
        if text is not None:
            self._texts.put(text, (key, len(text.text) + len(key.sql)))
        return True

    def put_refusal(self, text: TextKey, value: V, nbytes: int) -> bool:
        """Store the refusal of a text that never validated (validation is deterministic per catalog)."""
        key = ResultKey(text.text, text.max_rows, text.catalog, refused=True)
        return self.put(key, value, nbytes, text)

    @contextmanager
    def single_flight(self, key: ResultKey) -> Iterator[None]:
        """One computation per key at a time: concurrent callers of a key wait, then find it stored."""
        with self._lock:
            lock, users = self._flights.get(key, (threading.Lock(), 0))
            self._flights[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._flights[key]
                if users == 1:
                    del self._flights[key]
                else:
                    self._flights[key] = (lock, users - 1)

    def clear(self) -> None:
        self._entries.clear()
        self._texts.clear()
