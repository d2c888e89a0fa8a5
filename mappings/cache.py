"""A per-process cache so workers parse a version's JSON once, not once per message."""

from __future__ import annotations

import threading
from collections import OrderedDict

from mappings.model import MappingSet
from mappings.store import MappingStore


class MappingCache:
    """Parsed versions keyed by (source, version); safe because stored versions never change.

    Each message still asks the database which version is active (one indexed row), so an
    activation or rollback is picked up by the very next message. Keep one cache per
    database: the key does not say which database a version came from.
    """

    def __init__(self, max_entries: int = 64) -> None:
        self._max = max_entries
        self._sets: OrderedDict[tuple[str, int], MappingSet] = OrderedDict()
        self._lock = threading.Lock()

    def active(self, store: MappingStore, source: str) -> MappingSet:
        """The source's active set, read through ``store`` only when not cached yet."""
        version = store.active_version(source)
        key = (source, version)
        with self._lock:
            found = self._sets.get(key)
            if found is not None:
                self._sets.move_to_end(key)
                return found
        loaded = store.get(source, version)
        with self._lock:
            self._sets[key] = loaded
            while len(self._sets) > self._max:
                self._sets.popitem(last=False)
        return loaded

    def clear(self) -> None:
        with self._lock:
            self._sets.clear()
