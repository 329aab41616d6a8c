"""A TTL cache for read-only tool results, keyed by the tool and its (bound, canonical) arguments.

Entries belong to a group (the tool's server) so a tool that changes what a server reports (run_tests)
can drop that server's entries at once. Bounded: expired entries go first, then the least recently used.
The clock is injected so tests move time instead of sleeping.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_ENTRIES = 256


def cache_key(tool: str, arguments: Mapping[str, Any]) -> str:
    """The tool name and its arguments as canonical JSON (key order and spacing do not matter)."""
    return tool + "\0" + json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(slots=True)
class _Entry:
    value: Any
    expires_at: float
    group: str


class TTLCache:
    """get / put with a time to live per entry; counts requests and hits."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries <= 0:
            raise ValueError(f"max_entries must be > 0, received {max_entries}")
        self._clock = clock
        self._max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.requests = 0
        self.hits = 0

    def get(self, key: str) -> tuple[bool, Any]:
        """(True, value) for a live entry, else (False, None); counts the lookup."""
        self.requests += 1
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        if entry.expires_at <= self._clock():
            del self._entries[key]
            return False, None
        self._entries.move_to_end(key)
        self.hits += 1
        return True, entry.value

    def put(self, key: str, value: Any, ttl: float, group: str = "") -> None:
        """Keep `value` for `ttl` seconds (ttl <= 0 keeps nothing)."""
        if ttl <= 0:
            return
        self._entries[key] = _Entry(value, self._clock() + ttl, group)
        self._entries.move_to_end(key)
        if len(self._entries) > self._max_entries:
            self._evict()

    def _evict(self) -> None:
        now = self._clock()
        for key in [key for key, entry in self._entries.items() if entry.expires_at <= now]:
            del self._entries[key]
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, group: str) -> int:
        """Drop every entry of `group`; returns how many were dropped."""
        keys = [key for key, entry in self._entries.items() if entry.group == group]
        for key in keys:
            del self._entries[key]
        return len(keys)

    def __len__(self) -> int:
        return len(self._entries)
