"""The typed results of the testing tools: their outputSchemas are built from these (mcp/protocol/schema.py).

Every answer of run_tests / get_coverage carries the keys of `TestingServer._answer` (status, message,
coverage, counts, ...); a real run adds what it measured, an unchanged tree adds `last_status`, a refused one
its `reason`. A test validates every tool's real answers against its schema (tests/mcp/test_tool_output_schemas.py).
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

from mcp.testing.results import RunStatus


class RunResult(TypedDict):
    """One test run's outcome (or why there was none): status, coverage as a fraction 0..1, counts."""

    status: RunStatus
    message: str
    coverage: float | None
    threshold: float
    meets_threshold: bool
    passed: int
    failed: int
    skipped: int
    errors: int
    files: dict[str, float]
    risk_files: dict[str, float]
    risk_coverage: float | None
    duration_seconds: float
    exit_code: int | None
    run_id: str | None
    started_at: str | None
    # set once the run was prepared (absent when the caller's arguments were refused)
    forced: NotRequired[bool]
    project_root: NotRequired[str]
    python: NotRequired[str | None]
    fingerprint: NotRequired[str]
    # set by a run that executed
    branch_coverage: NotRequired[bool | None]
    risk_files_unmeasured: NotRequired[list[str]]
    test_paths: NotRequired[list[str]]
    source_packages: NotRequired[list[str]]
    notes: NotRequired[list[str]]
    output_truncated: NotRequired[bool]
    output_tail: NotRequired[str]
    history_error: NotRequired[str]
    # "deferred": the gate's reason; "unchanged": the status of the run it stands for
    reason: NotRequired[str]
    last_status: NotRequired[RunStatus]


class RunSummary(TypedDict):
    """One run of the history, in brief."""

    run_id: str | None
    started_at: str | None
    status: RunStatus | None
    coverage: float | None
    risk_coverage: float | None
    threshold: float | None
    meets_threshold: bool | None
    passed: int | None
    failed: int | None
    skipped: int | None
    errors: int | None
    duration_seconds: float | None
    exit_code: int | None
    message: str | None


class CoverageHistoryResult(TypedDict):
    """The last runs, newest first (with the history disabled, only this process's last run, in full)."""

    status: Literal["ok", "error"]
    runs: list[RunSummary | RunResult]
    message: NotRequired[str]
