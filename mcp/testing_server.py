"""The testing server of the sidecar: runs a project's tests with coverage when asked, keeps the history.

Any Python project: root, interpreter, test paths and source packages are configurable. A run is a
contained subprocess (see mcp/testing/runner.py); the result is a dict whose `status` is always one of
`RunStatus`, whatever happened (missing project, missing interpreter, a suite that errors or hangs).
The server never raises for a bad suite.

Configuration rule: explicit constructor arguments win. The MCP_TESTING_* settings describe the
settings' own project (MCP_TESTING_PROJECT_ROOT); so when `project_root` is passed explicitly, the
interpreter, test paths and source packages are NOT taken from the settings: unless given, they are
the project's `.venv/bin/python` (else the sidecar's interpreter), pytest's own `testpaths`, and the
project's own coverage configuration.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.settings import Settings, get_settings
from mcp.containment.runtime import Containment
from mcp.protocol.results import ToolError
from mcp.testing.execute import Execution, RunLimits, execute_run
from mcp.testing.history import HISTORY_FILE_NAME, HistoryError, HistoryStore
from mcp.testing.plan import RunPlan, prepare_run
from mcp.testing.progress import ProgressCallback, ProgressReporter
from mcp.testing.results import (
    RECORDED_STATUSES,
    REUSABLE_STATUSES,
    RunStatus,
    meets_threshold,
    risk_coverage,
    summarise_counts,
    tail_text,
)
from mcp.testing.runner import (
    DEFAULT_KILL_GRACE_SECONDS,
    DEFAULT_NICENESS,
    DEFAULT_OUTPUT_LIMIT_BYTES,
    SpawnError,
    system_priority_plan,
)
from mcp.testing.tool_results import CoverageHistoryResult, RunResult

__all__ = ["Gate", "RunStatus", "TestingServer"]

logger = logging.getLogger(__name__)

# the integrator's gate: ("test_run") -> (allowed, reason); a NamedTuple or an object with those attributes
Gate = Callable[[str], Awaitable[Any]]
GATE_KIND = "test_run"
MAX_HISTORY_QUERY = 1000


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _gate_answer(decision: Any) -> tuple[bool, str]:
    if isinstance(decision, tuple) and len(decision) == 2:
        return bool(decision[0]), str(decision[1])
    if hasattr(decision, "allowed"):
        return bool(decision.allowed), str(getattr(decision, "reason", ""))
    raise TypeError(f"gate answer: expected (allowed, reason) or an object with .allowed/.reason, got {decision!r}")


class TestingServer:
    """Runs tests with coverage on request; tools: run_tests, get_coverage, coverage_history."""

    __test__ = False  # the name starts with "Test": keep pytest from trying to collect it
    name = "testing"

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        project_root: Path | None = None,
        python: Path | None = None,
        test_paths: Sequence[str] | None = None,
        source_packages: Sequence[str] | None = None,
        history_path: Path | None = None,
        timeout_seconds: float | None = None,
        risk_files: Sequence[str] = (),
        threshold: float | None = None,
        gate: Gate | None = None,
        record_history: bool = True,
        niceness: int | None = DEFAULT_NICENESS,
        kill_grace_seconds: float = DEFAULT_KILL_GRACE_SECONDS,
        output_limit_bytes: int = DEFAULT_OUTPUT_LIMIT_BYTES,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = _utc_now,
        containment: Containment | None = None,
    ) -> None:
        self._settings = settings
        # None: each run is still led by the wrapper under SCHED_IDLE, but has no cgroup and no record
        self._containment = containment
        if project_root is None:
            # the settings describe their own project: take its interpreter, paths and packages too
            project_root = self._setting("mcp_testing_project_root")
            python = python if python is not None else self._setting("mcp_testing_python")
            test_paths = test_paths if test_paths is not None else self._setting("mcp_testing_paths")
            if source_packages is None:
                source_packages = self._setting("mcp_testing_source_packages")
        self._root_setting = Path(project_root)
        self._python_setting = python
        self._test_paths = list(test_paths or ())
        self._sources = list(source_packages or ())
        if timeout_seconds is None:
            timeout_seconds = self._setting("mcp_testing_timeout_seconds")
        self._timeout = float(timeout_seconds)
        self.threshold = float(threshold if threshold is not None else self._setting("mcp_testing_coverage_target"))
        if self._timeout <= 0:
            raise ValueError(f"timeout_seconds must be > 0, received {self._timeout}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold is a coverage fraction in 0..1, received {self.threshold}")
        self._history: HistoryStore | None = None
        if record_history:
            if history_path is None:
                history_path = Path(self._setting("state_dir")) / HISTORY_FILE_NAME
            self._history = HistoryStore(Path(history_path), clock=clock)
        self._risk_files = list(risk_files)
        self._gate = gate
        self._niceness = niceness
        self._limits = RunLimits(self._timeout, kill_grace_seconds, output_limit_bytes)
        self._environ = environ
        self._clock = clock
        self._running = False
        self._last: dict[str, Any] | None = None
        self._history_loaded = False
        self._history_error: str | None = None
        self._runs = 0

    def _setting(self, name: str) -> Any:
        # Settings are read only for what was not passed, so a fully specified server (the one-shot CLI,
        # tests) works even where the environment holds settings that do not validate.
        if self._settings is None:
            self._settings = get_settings()
        return getattr(self._settings, name)

    @property
    def project_root(self) -> Path:
        """The configured project root (as configured: it may not exist)."""
        return self._root_setting

    # --- wiring -------------------------------------------------------------------------------------

    def set_gate(self, gate: Gate | None) -> None:
        """Install the integrator's gate (built after the servers, so it cannot come in the constructor)."""
        self._gate = gate

    def set_risk_files(self, paths: Sequence[str]) -> None:
        """The files where risk parameters are used (from the search server); empty means the name rule."""
        self._risk_files = list(paths)

    # --- Server protocol ----------------------------------------------------------------------------

    async def run(self, ready: asyncio.Event) -> None:
        """Idle server: ready once the leftovers of a killed sidecar are cleaned up; runs until cancelled."""
        if self._containment is not None:
            await asyncio.to_thread(self._containment.start)
        ready.set()
        await asyncio.Event().wait()

    def isolation(self) -> dict[str, Any] | None:
        """The isolation of the test runs (None before start or without containment)."""
        return None if self._containment is None else self._containment.describe()

    def health(self) -> dict[str, Any]:
        """Cheap view: running or idle, the last run's status and coverage, history problems."""
        last = self._last
        problem = last is not None and last["status"] in {
            RunStatus.ERROR,
            RunStatus.TIMEOUT,
            RunStatus.MISSING_PROJECT,
            RunStatus.MISSING_INTERPRETER,
        }
        return {
            "status": "degraded" if problem or self._history_error else "healthy",
            "running": self._running,
            "project_root": str(self._root_setting),
            "runs": self._runs,
            "last_run": None
            if last is None
            else {key: last.get(key) for key in ("run_id", "status", "coverage", "started_at", "message")},
            "threshold": self.threshold,
            "history_error": self._history_error,
        }

    def tools(self) -> list[Callable[..., Any]]:
        """The MCP tools (plain bound methods; `progress` is supplied by the protocol layer, not the client)."""
        return [self.run_tests, self.get_coverage, self.coverage_history]

    # --- tools --------------------------------------------------------------------------------------

    async def run_tests(
        self,
        paths: list[str] | None = None,
        force: bool = False,
        progress: ProgressCallback | None = None,
    ) -> RunResult | ToolError:
        """Run the project's tests with coverage; skipped when the code is unchanged since the last run
        unless force=True. Returns status, coverage (fraction 0..1), counts, per-file and risk-file coverage."""
        if not isinstance(force, bool):
            return self._answer(RunStatus.ERROR, f"force: expected true or false, received {force!r}")
        if self._running:
            return self._answer(RunStatus.BUSY, "a test run is already in progress; call again when it ends")
        self._running = True
        reporter = ProgressReporter(progress)
        try:
            result = await self._run_tests(paths, force, reporter)
        finally:
            self._running = False
        await reporter.finished(f"{result['status']}: {result['message']}")
        return result

    async def get_coverage(self) -> RunResult | ToolError:
        """The last run's result (from the history after a restart); status not_run if there was none."""
        last = await self._last_result()
        if last is None:
            return self._answer(RunStatus.NOT_RUN, "no test run recorded yet: call run_tests")
        return last

    async def coverage_history(self, n: int = 10) -> CoverageHistoryResult | ToolError:
        """The last n runs (newest first): status, coverage, counts, duration."""
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_HISTORY_QUERY:
            message = f"n: expected an integer 1..{MAX_HISTORY_QUERY}, received {n!r}"
            return {"status": "error", "message": message, "runs": []}
        if self._history is None:
            runs = [] if self._last is None else [self._last]
            return {"status": "ok", "runs": runs, "message": "history disabled: only this process's last run"}
        try:
            runs = await self._history.recent(n)
        except HistoryError as e:
            self._history_error = str(e)
            return {"status": "error", "message": str(e), "runs": []}
        return {"status": "ok", "runs": runs}

    # --- a run --------------------------------------------------------------------------------------

    async def _run_tests(self, paths: list[str] | None, force: bool, reporter: ProgressReporter) -> dict[str, Any]:
        run_id = uuid.uuid4().hex[:12]
        started_at = self._clock().isoformat()
        base = {"run_id": run_id, "started_at": started_at, "forced": force}
        prepared = await asyncio.to_thread(
            prepare_run,
            self._root_setting,
            self._python_setting,
            self._test_paths if paths is None else paths,
            self._sources,
        )
        python = None if prepared.python is None else str(prepared.python)
        where = {"project_root": str(prepared.root or self._root_setting), "python": python, **base}
        if prepared.plan is None or prepared.fingerprint is None:
            problem = prepared.problem or "the run could not be prepared"
            if prepared.problem_kind == "bad_arguments":
                return self._answer(RunStatus.ERROR, problem, **where)  # the caller's mistake: not a run
            return await self._finish(self._answer(RunStatus(prepared.problem_kind), problem, **where))
        plan, fingerprint = prepared.plan, prepared.fingerprint
        if not force:
            unchanged = await self._unchanged_answer(fingerprint)
            if unchanged is not None:
                return unchanged
        if self._gate is not None:
            try:
                allowed, reason = _gate_answer(await self._gate(GATE_KIND))
            except asyncio.CancelledError:
                raise
            except Exception as e:
                # a broken gate must not let heavy work through: fail safe, say why
                logger.exception("the test-run gate failed; deferring the run")
                allowed, reason = False, f"the gate could not be consulted ({type(e).__name__}: {e})"
            if not allowed:
                return self._answer(RunStatus.DEFERRED, f"test run deferred: {reason}", reason=reason, **base)
        try:
            execution = await execute_run(
                plan,
                limits=self._limits,
                priority=await asyncio.to_thread(system_priority_plan, self._niceness),
                base_env=os.environ if self._environ is None else self._environ,
                reporter=reporter,
                containment=self._containment,
            )
        except SpawnError as e:
            message = f"could not start the test run: {e}"
            return await self._finish(self._answer(RunStatus.ERROR, message, fingerprint=fingerprint, **base))
        return await self._finish(self._result(execution, plan, fingerprint, base))

    async def _unchanged_answer(self, fingerprint: str) -> dict[str, Any] | None:
        last = await self._last_result()
        if last is None or last.get("fingerprint") != fingerprint or last.get("status") not in REUSABLE_STATUSES:
            return None
        answer = dict(last)
        answer["last_status"] = last["status"]
        answer["status"] = RunStatus.UNCHANGED.value
        answer["message"] = (
            f"code unchanged since run {last['run_id']} at {last['started_at']} ({last['status']}); "
            "pass force=True to run again"
        )
        return answer

    def _result(self, execution: Execution, plan: RunPlan, fingerprint: str, base: dict[str, Any]) -> dict[str, Any]:
        report = execution.coverage
        coverage = None if report is None else report.total
        risk = None if report is None else risk_coverage(report, self._risk_files, plan.root)
        result = self._answer(
            execution.status,
            execution.message,
            **base,
            coverage=coverage,
            meets_threshold=meets_threshold(coverage, self.threshold),
            branch_coverage=None if report is None else report.branch,
            files={} if report is None else report.fractions(),
            risk_files={} if risk is None else risk.files,
            risk_coverage=None if risk is None else risk.aggregate,
            risk_files_unmeasured=[] if risk is None else risk.unmeasured,
            duration_seconds=execution.duration_seconds,
            exit_code=execution.exit_code,
            project_root=str(plan.root),
            python=str(plan.python),
            test_paths=list(plan.test_paths),
            source_packages=list(plan.source_packages),
            fingerprint=fingerprint,
            notes=execution.notes,
            output_truncated=execution.output_truncated,
            **summarise_counts(execution.counts),
        )
        if execution.status is not RunStatus.PASSED:
            result["output_tail"] = tail_text(execution.output)
        return result

    def _answer(self, status: RunStatus, message: str, **fields: Any) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "status": status.value,
            "message": message,
            "coverage": None,
            "threshold": self.threshold,
            "meets_threshold": False,
            **summarise_counts(None),
            "files": {},
            "risk_files": {},
            "risk_coverage": None,
            "duration_seconds": 0.0,
            "exit_code": None,
            "run_id": None,
            "started_at": None,
        }
        answer.update(fields)
        return answer

    async def _finish(self, result: dict[str, Any]) -> dict[str, Any]:
        """Remember a real run and append it to the history; a history failure is reported, not raised."""
        if result["status"] not in RECORDED_STATUSES:
            return result
        self._last = result
        self._runs += 1
        if self._history is not None:
            try:
                await self._history.record(result)
                self._history_error = None
            except HistoryError as e:
                self._history_error = str(e)
                logger.error("test run %s not saved to history: %s", result["run_id"], e)
                result["history_error"] = str(e)
        logger.info("test run %s: %s (coverage %s)", result["run_id"], result["status"], result["coverage"])
        return result

    async def _last_result(self) -> dict[str, Any] | None:
        if self._last is None and not self._history_loaded and self._history is not None:
            self._history_loaded = True
            try:
                self._last = await self._history.last_result()
            except HistoryError as e:
                self._history_error = str(e)
                logger.error("cannot read the test history: %s", e)
        return self._last
