"""The result of one scan and its JSON-safe views (the shapes the tools and the integrator return)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mcp.search.classify import Kind, Usage
from mcp.search.rules import Violation
from mcp.search.walker import Skipped

DEFAULT_MAX_LOCATIONS = 1000
MAX_SKIPPED_LISTED = 200


@dataclass
class ScanReport:
    """Everything one scan found; `to_dict()` is the risk_parameter_report payload."""

    root: str
    parameters: tuple[str, ...]
    usages: dict[str, tuple[Usage, ...]]  # file → its usages (files without any are left out)
    violations: list[Violation]
    errors: list[dict[str, str]]
    skipped: list[Skipped]
    files_skipped: dict[str, int]
    files_scanned: int
    files_analyzed: int  # read and analysed in this scan
    files_cached: int  # taken unchanged from the cache
    files_parsed: int  # of the analysed ones, how many needed an AST parse
    duration_ms: float
    scanned_at: float
    cache_status: str = "empty"
    cache_message: str = ""
    walked_files: tuple[str, ...] = ()  # every regular, non-ignored file of the walk (what search_code searches)
    _by_parameter: dict[str, list[tuple[str, Usage]]] | None = field(default=None, repr=False)

    def locations(self, parameter: str) -> list[tuple[str, Usage]]:
        """(file, usage) pairs of one parameter, ordered by file then line."""
        if self._by_parameter is None:
            index: dict[str, list[tuple[str, Usage]]] = {name: [] for name in self.parameters}
            for rel in sorted(self.usages):
                for usage in self.usages[rel]:
                    index.setdefault(usage.parameter, []).append((rel, usage))
            self._by_parameter = index
        return self._by_parameter.get(parameter, [])

    def usage_count(self, parameter: str) -> int:
        return len(self.locations(parameter))

    def parameter_summary(self, parameter: str, max_locations: int = DEFAULT_MAX_LOCATIONS) -> dict[str, Any]:
        """usage_count, by_kind, files and (at most `max_locations`) locations of one parameter."""
        found = self.locations(parameter)
        by_kind = Counter(usage.kind.value for _, usage in found)
        return {
            "usage_count": len(found),
            "by_kind": {kind.value: by_kind.get(kind.value, 0) for kind in Kind},
            "files": sorted({rel for rel, _ in found}),
            "locations": [
                {"file": rel, "line": u.line, "kind": u.kind.value, "detail": u.detail}
                for rel, u in found[:max_locations]
            ],
            "locations_truncated": len(found) > max_locations,
        }

    def to_dict(self, max_locations: int = DEFAULT_MAX_LOCATIONS) -> dict[str, Any]:
        """The JSON-safe report: status, counts, per-parameter usages, violations, errors."""
        return {
            "status": "ok",
            "root": self.root,
            "scanned_at": datetime.fromtimestamp(self.scanned_at, UTC).isoformat(),
            "duration_ms": round(self.duration_ms, 1),
            "files_scanned": self.files_scanned,
            "files_analyzed": self.files_analyzed,
            "files_cached": self.files_cached,
            "files_parsed": self.files_parsed,
            "files_skipped": dict(self.files_skipped),
            "skipped": [
                {"file": s.rel, "reason": s.reason.value, "detail": s.detail} for s in self.skipped[:MAX_SKIPPED_LISTED]
            ],
            "parameters": {name: self.parameter_summary(name, max_locations) for name in self.parameters},
            "violations": [v.to_dict() for v in self.violations],
            "errors": list(self.errors),
            "cache": {"status": self.cache_status, "message": self.cache_message},
        }


def format_text(report: ScanReport) -> str:
    """A terminal-friendly summary: parameters in use, violations, errors, what was skipped."""
    lines = [
        f"root: {report.root}",
        f"files scanned: {report.files_scanned} (parsed {report.files_parsed}, from cache {report.files_cached}) "
        f"in {report.duration_ms:.0f} ms",
    ]
    unused = []
    for name in report.parameters:
        found = report.locations(name)
        if not found:
            unused.append(name)
            continue
        kinds = Counter(usage.kind.value for _, usage in found)
        detail = ", ".join(f"{kind.value} {kinds[kind.value]}" for kind in Kind if kinds.get(kind.value))
        files = len({rel for rel, _ in found})
        lines.append(f"  {name}: {len(found)} uses ({detail}) in {files} files")
    if unused:
        lines.append(
            f"  not used: {len(unused)} parameters ({', '.join(unused[:10])}{', ...' if len(unused) > 10 else ''})"
        )
    lines.append(f"violations: {len(report.violations)}")
    lines += [f"  {v.file}:{v.line} [{v.rule.value}] {v.message}" for v in report.violations]
    if report.errors:
        lines.append(f"errors: {len(report.errors)}")
        lines += [f"  {error['file']}: {error['reason']}" for error in report.errors]
    if report.files_skipped:
        lines.append("skipped: " + ", ".join(f"{reason} {count}" for reason, count in report.files_skipped.items()))
    return "\n".join(lines) + "\n"
