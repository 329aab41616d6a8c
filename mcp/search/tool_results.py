"""The typed results of the codebase search tools: their outputSchemas are built from these (mcp/protocol/schema.py).

Keys and their types are what `CodebaseSearchServer` and `ScanReport` really return (a test validates every
tool's real answers against its published schema: tests/mcp/test_tool_output_schemas.py).
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

from mcp.search.classify import Kind
from mcp.search.rules import Rule
from mcp.search.walker import SkipReason

# "ok": fresh figures; "deferred": the gate refused a rescan; "error": the rescan failed (last figures kept)
ScanStatus = Literal["ok", "deferred", "error"]


class SearchFailure(TypedDict):
    """A search or scan that could not run: why, and the pattern or parameter it was about."""

    status: Literal["error"]
    error: str
    pattern: NotRequired[str]
    parameter: NotRequired[str]


class LineMatch(TypedDict):
    """One matching line."""

    file: str
    line: int
    text: str


class SearchCodeResult(TypedDict):
    """Matching lines of the tree's files, at most max_results, and how much was searched."""

    status: Literal["ok"]
    pattern: str
    regex: bool
    glob: str | None
    matches: list[LineMatch]
    match_count: int
    truncated: bool
    time_budget_exhausted: bool
    files_searched: int
    files_skipped: int
    duration_ms: float


class Location(TypedDict):
    """One use of a parameter: where, and whether it defines, reads, writes or hard-codes it."""

    file: str
    line: int
    kind: Kind
    detail: str


class ViolationEntry(TypedDict):
    """A broken rule: a write outside the allowed modules, a literal shadowing a setting, .env.example drift."""

    rule: Rule
    file: str
    line: int
    parameter: str
    message: str


class ScanProblem(TypedDict):
    """A file the scan could not read or parse, or a drift check it had to skip."""

    file: str
    reason: str


class SkippedEntry(TypedDict):
    """Something under the root that was not scanned, and why."""

    file: str
    reason: SkipReason
    detail: str


class CacheState(TypedDict):
    """The scan cache: used, rebuilt or unreadable."""

    status: str
    message: str


class ParameterSummary(TypedDict):
    """Every use of one parameter (at most 1000 locations listed)."""

    usage_count: int
    by_kind: dict[str, int]
    files: list[str]
    locations: list[Location]
    locations_truncated: bool


class RiskParameterReportResult(TypedDict):
    """The last scan: every risk parameter's uses, violations, errors; stale when this call could not rescan."""

    status: ScanStatus
    reason: str
    root: str
    scanned_at: str
    duration_ms: float
    files_scanned: int
    files_analyzed: int
    files_cached: int
    files_parsed: int
    files_skipped: dict[str, int]
    skipped: list[SkippedEntry]
    parameters: dict[str, ParameterSummary]
    violations: list[ViolationEntry]
    errors: list[ScanProblem]
    cache: CacheState
    stale: bool


class NoScanYet(TypedDict):
    """No scan has finished yet (the gate deferred it, or it failed): empty figures, and why."""

    status: Literal["deferred", "error"]
    reason: str
    root: str
    scanned_at: None
    files_scanned: int
    files_skipped: dict[str, int]
    duration_ms: float
    parameters: dict[str, ParameterSummary]
    violations: list[ViolationEntry]
    errors: list[ScanProblem]


class ParameterUsagesResult(TypedDict):
    """Where one parameter is used, and the violations that name it."""

    status: ScanStatus
    reason: str
    parameter: str
    configured: bool
    usage_count: int
    by_kind: dict[str, int]
    files: list[str]
    locations: list[Location]
    locations_truncated: bool
    violations: list[ViolationEntry]


class UsagesUnavailable(TypedDict):
    """No figures for the parameter: the gate deferred the scan, or no scan has finished yet."""

    status: Literal["deferred", "error"]
    reason: str
    parameter: str
