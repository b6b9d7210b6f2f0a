"""A bounded cache of `query` replies: the catalog is immutable per idc-index-data version.

Key: the SQL regenerated from the validated tree (what actually runs, so two spellings of one query
share an entry), `max_rows`, the idc-index-data version, and the catalog's generation (bumped when a
fetched index is attached, which changes what a name can refer to). A second map goes from the
caller's exact text to that key, so a repeat skips parsing too; it is only a shortcut to the same key.

Bounded in bytes (each entry counted by its JSON size), least recently used first out; a reply whose
diagnostics were cut short by their time budget is never stored, so a busy moment is not pinned.
Concurrent callers of one key compute it once (`single_flight`): fifty clients asking the same
question start one query and one diagnosis, not fifty.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")

MAX_CACHE_BYTES = 32 * 2**20
MAX_ENTRY_BYTES = 2 * 2**20
MAX_TEXT_KEYS = 4_096


@dataclass(frozen=True)
class ResultKey:
    """What makes two replies interchangeable."""

    sql: str  # regenerated from the validated tree, with the enforced LIMIT
    max_rows: int
    data_version: str
    generation: int


@dataclass(frozen=True)
class TextKey:
    """The caller's exact text, in the same context: a shortcut to a ResultKey."""

    text: str
    max_rows: int
    data_version: str
    generation: int


class ResultCache(Generic[V]):
    """LRU by bytes. Thread-safe."""

    def __init__(self, max_bytes: int = MAX_CACHE_BYTES, max_entry_bytes: int = MAX_ENTRY_BYTES) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self._entries: OrderedDict[ResultKey, tuple[V, int]] = OrderedDict()
        self._texts: OrderedDict[TextKey, ResultKey] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._flights: dict[ResultKey, tuple[threading.Lock, int]] = {}
        self.hits = 0
        self.misses = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: ResultKey) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]

    def entry_bytes(self, key: ResultKey) -> int:
        with self._lock:
            entry = self._entries.get(key)
            return entry[1] if entry is not None else 0

    def get_text(self, key: TextKey) -> V | None:
        """The reply stored for this exact text, if its entry is still there."""
        with self._lock:
            result_key = self._texts.get(key)
        return self.get(result_key) if result_key is not None else None

    def put(self, key: ResultKey, value: V, nbytes: int, text: TextKey | None = None) -> bool:
        """Store a reply of `nbytes`; False when it is too large to keep."""
        if nbytes > self.max_entry_bytes:
            return False
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (value, nbytes)
            self._bytes += nbytes
            while self._bytes > self.max_bytes and self._entries:
                _, (_, size) = self._entries.popitem(last=False)
                self._bytes -= size
            if text is not None:
                self._texts[text] = key
                self._texts.move_to_end(text)
                while len(self._texts) > MAX_TEXT_KEYS:
                    self._texts.popitem(last=False)
        return True

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
        with self._lock:
            self._entries.clear()
            self._texts.clear()
            self._bytes = 0
