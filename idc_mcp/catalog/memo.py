"""Bounded in-process caches: one way for every cache of the server.

Keys are values that cannot change: strings, numbers, and tuples or frozen dataclasses of them (a
`Selection`, a catalog's `Catalog.cache_key`). Never an object's `id()`, which Python gives to the next object
once the first is freed, and never the object itself (a mutable key, or one that keeps it alive).
Entries are dropped least recently used first, by count or by the size `getsizeof` gives them; a value
larger than the whole bound is not kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from cachetools import LRUCache

V = TypeVar("V")


class Memo(Generic[V]):
    """A thread-safe LRU map (cachetools' `LRUCache` under a lock)."""

    def __init__(self, maxsize: int, getsizeof: Callable[[V], int] | None = None) -> None:
        self._cache: LRUCache[Hashable, V] = LRUCache(maxsize, getsizeof)
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            return self._cache.get(key)

    def put(self, key: Hashable, value: V) -> None:
        hash(key)  # a mutable key (a list inside) is refused here, before it can go stale
        with self._lock:
            try:
                self._cache[key] = value
            except ValueError:  # larger than the whole bound: not kept
                pass

    def discard(self, key: Hashable) -> None:
        """Forget one entry (absent: nothing happens)."""
        with self._lock:
            self._cache.pop(key, None)

    def items(self) -> list[tuple[Hashable, V]]:
        """A snapshot of the entries, least recently used first."""
        with self._lock:
            return list(self._cache.items())

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)
