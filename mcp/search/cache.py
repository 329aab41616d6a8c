"""Per-file scan results keyed by (path, size, mtime_ns), so a rescan reads only the files that changed.

Persisted as one JSON file (written atomically, only when something changed). The file carries a
fingerprint of everything the results depend on (parameter names, size limit, scanner version, root):
when any of these changes the cache starts empty. A cache file that cannot be read or is malformed is
logged as a warning and rebuilt; it never stops a scan.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp.search.classify import Kind, Usage
from utils.atomic import StateFileError, atomic_write_bytes, read_json_object

logger = logging.getLogger(__name__)

CACHE_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class FileResult:
    """What one file contributed to a scan: usages, or why it was skipped / could not be parsed."""

    size: int
    mtime_ns: int
    kind: str  # "python" | "text"
    usages: tuple[Usage, ...] = ()
    error: str | None = None  # the file was read but could not be classified (its usages fell back to text)
    skip: str | None = None  # a SkipReason value: the file was not analysed
    parsed: bool = False  # an AST parse was needed (a parameter name occurs in its code)

    def to_json(self) -> list[Any]:
        usages = [[u.parameter, u.line, u.kind.value, u.detail] for u in self.usages]
        return [self.size, self.mtime_ns, self.kind, self.skip, self.error, self.parsed, usages]

    @classmethod
    def from_json(cls, row: Any) -> FileResult:
        """Rebuild from `to_json()` output; raises ValueError/TypeError/KeyError when the row is malformed."""
        size, mtime_ns, kind, skip, error, parsed, usages = row
        if not isinstance(size, int) or not isinstance(mtime_ns, int) or kind not in ("python", "text"):
            raise ValueError(f"expected [size, mtime_ns, kind, ...], received {row!r:.120}")
        return cls(
            size,
            mtime_ns,
            kind,
            tuple(Usage(str(p), int(line), Kind(k), str(detail)) for p, line, k, detail in usages),
            None if error is None else str(error),
            None if skip is None else str(skip),
            bool(parsed),
        )


class ScanCache:
    """In-memory results for the current root and parameters, mirrored to `path` when one is given."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.entries: dict[str, FileResult] = {}
        self.fingerprint: str | None = None
        self.status = "empty"  # "empty" | "loaded" | "rebuilt" | "reset"
        self.message = ""
        self._loaded = False
        self._dirty = False

    def prepare(self, fingerprint: str) -> None:
        """Make the cache valid for `fingerprint`: load it from disk once, drop it if it was made for another."""
        if not self._loaded:
            self._loaded = True
            self._load(fingerprint)
        if self.fingerprint != fingerprint:
            if self.entries:
                self.status, self.message = "reset", "parameters, limits or root changed since the cache was written"
            self.entries = {}
            self.fingerprint = fingerprint
            self._dirty = True

    def _load(self, fingerprint: str) -> None:
        if self.path is None:
            return
        try:
            payload = read_json_object(self.path)
        except StateFileError as e:
            self._rebuild(str(e))
            return
        if payload is None:
            return
        try:
            if payload.get("schema_version") != CACHE_SCHEMA_VERSION:
                raise ValueError(
                    f"expected schema_version {CACHE_SCHEMA_VERSION}, received {payload.get('schema_version')!r}"
                )
            entries = payload["entries"]
            if not isinstance(entries, dict):
                raise TypeError(f"expected 'entries' to be an object, received {type(entries).__name__}")
            self.entries = {str(rel): FileResult.from_json(row) for rel, row in entries.items()}
            self.fingerprint = str(payload["fingerprint"])
        except (ValueError, TypeError, KeyError) as e:
            self.entries = {}
            self._rebuild(f"{self.path} is not a valid scan cache: {e}")
            return
        self.status = "loaded"

    def _rebuild(self, reason: str) -> None:
        logger.warning("codebase search cache rebuilt from scratch: %s", reason)
        self.status, self.message = "rebuilt", reason
        self._dirty = True

    def get(self, rel: str, size: int, mtime_ns: int) -> FileResult | None:
        """The stored result for `rel` if the file still has this size and modification time."""
        found = self.entries.get(rel)
        if found is not None and found.size == size and found.mtime_ns == mtime_ns:
            return found
        return None

    def put(self, rel: str, result: FileResult) -> None:
        """Store a fresh result for `rel`."""
        self.entries[rel] = result
        self._dirty = True

    def forget(self, rel: str) -> None:
        """Drop `rel` so it is analysed again next time (used for files modified during the scan)."""
        if self.entries.pop(rel, None) is not None:
            self._dirty = True

    def retain(self, present: set[str]) -> None:
        """Drop the results of files that no longer exist (or are no longer scanned)."""
        gone = [rel for rel in self.entries if rel not in present]
        for rel in gone:
            del self.entries[rel]
        if gone:
            self._dirty = True

    def save(self) -> None:
        """Write the cache file if anything changed; raises OSError when it cannot be written."""
        if self.path is None or not self._dirty:
            return
        payload = {
            "schema_version": CACHE_SCHEMA_VERSION,
            "fingerprint": self.fingerprint,
            "entries": {rel: result.to_json() for rel, result in self.entries.items()},
        }
        atomic_write_bytes(self.path, json.dumps(payload, separators=(",", ":")).encode("utf-8"))
        self._dirty = False
