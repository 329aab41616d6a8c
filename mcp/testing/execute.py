"""One coverage run of a project, end to end: `coverage run -m pytest`, `coverage json`, parse, decide.

Exactly the work of a plain `coverage run -m pytest` + `coverage json` in the project, plus a JUnit XML
written by pytest itself (no plugin) and a temporary folder for the data; nothing runs twice. Only when
the project's own config makes coverage write parallel data files is a `coverage combine` added.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mcp.containment.runtime import Containment
from mcp.testing.plan import RunPlan
from mcp.testing.progress import ProgressParser, ProgressReporter
from mcp.testing.results import (
    CoverageReport,
    ResultParseError,
    RunStatus,
    SuiteCounts,
    decide_status,
    parse_coverage_json,
    read_counts,
)
from mcp.testing.runner import (
    DEFAULT_KILL_GRACE_SECONDS,
    DEFAULT_OUTPUT_LIMIT_BYTES,
    OutputTail,
    PriorityPlan,
    child_environment,
    run_process,
)

_REPORT_TAIL_BYTES = 16 * 1024
DATA_FILE_NAME = ".coverage"


@dataclass(frozen=True)
class RunLimits:
    """Bounds on one run: wall time for both steps, the SIGTERM→SIGKILL grace, the output kept."""

    timeout_seconds: float
    kill_grace_seconds: float = DEFAULT_KILL_GRACE_SECONDS
    output_limit_bytes: int = DEFAULT_OUTPUT_LIMIT_BYTES


@dataclass
class Execution:
    """What a finished run produced, before it becomes a result dict."""

    status: RunStatus
    message: str
    exit_code: int | None
    counts: SuiteCounts | None
    coverage: CoverageReport | None
    output: str
    output_truncated: bool
    duration_seconds: float
    notes: list[str] = field(default_factory=list)


def _data_files(folder: Path) -> tuple[bool, bool]:
    names = os.listdir(folder)
    return DATA_FILE_NAME in names, any(name.startswith(DATA_FILE_NAME + ".") for name in names)


@dataclass(frozen=True)
class _Reports:
    counts: SuiteCounts | None
    counts_note: str | None
    coverage: CoverageReport | None
    coverage_note: str


def _read_reports(junit_xml: Path, coverage_json: Path, root: Path, output: str) -> _Reports:
    """Read and parse both report files (blocking: big suites write big files; run it in a thread)."""
    try:
        xml = junit_xml.read_bytes()
    except FileNotFoundError:
        xml = None
    counts, counts_note = read_counts(xml, output)
    try:
        report, note = parse_coverage_json(coverage_json.read_bytes(), root), ""
    except FileNotFoundError:
        report, note = None, "coverage wrote no JSON report"
    except ResultParseError as e:
        report, note = None, str(e)
    return _Reports(counts, counts_note, report, note)


async def execute_run(
    plan: RunPlan,
    *,
    limits: RunLimits,
    priority: PriorityPlan,
    base_env: Mapping[str, str],
    reporter: ProgressReporter,
    containment: Containment | None = None,
) -> Execution:
    """Run the plan's tests under coverage and return the parsed outcome; never raises for a bad suite.

    Raises runner.SpawnError only when a command cannot be started at all.
    """
    started = time.monotonic()
    deadline = started + limits.timeout_seconds
    workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="mcp-testing-"))
    if containment is not None:
        # recorded, so a sidecar killed mid-run has its folder removed at the next start
        await asyncio.to_thread(containment.track_folder, workdir)
    try:
        junit_xml, coverage_json = workdir / "junit.xml", workdir / "coverage.json"
        env = child_environment(base_env, workdir / DATA_FILE_NAME)
        tail = OutputTail(limits.output_limit_bytes)
        parser = ProgressParser()

        async def on_output(text: str) -> None:
            state = parser.feed(text)
            if state is not None:
                await reporter.tests_progressed(state)

        await reporter.started(f"running tests in {plan.root} with {plan.python}")
        tests = await run_process(
            plan.coverage_run_argv(junit_xml),
            cwd=plan.root,
            env=env,
            time_limit=deadline - time.monotonic(),
            tail=tail,
            priority=priority,
            sink=on_output,
            kill_grace=limits.kill_grace_seconds,
            containment=containment,
            temp_folder=workdir,
        )
        notes: list[str] = []
        timed_out = tests.timed_out
        if not timed_out:
            await reporter.tests_progressed(parser.state)
            await reporter.reporting(f"{parser.state.done} tests finished; writing the coverage report")
            timed_out = await _write_coverage_json(
                plan, workdir, coverage_json, env, deadline, limits, priority, notes, containment
            )
        output = tail.text()
        reports = await asyncio.to_thread(_read_reports, junit_xml, coverage_json, plan.root, output)
        report, counts = reports.coverage, reports.counts
        if report is None and not timed_out and reports.coverage_note:
            notes.append(reports.coverage_note)
        if reports.counts_note and counts is not None:
            notes.append(f"counts from pytest's summary line ({reports.counts_note})")
        status, message = decide_status(
            exit_code=tests.exit_code,
            timed_out=timed_out,
            counts=counts,
            coverage_available=report is not None,
            output=output,
            python=str(plan.python),
            timeout_seconds=limits.timeout_seconds,
        )
        if status is RunStatus.ERROR and notes:
            message = f"{message} ({'; '.join(notes)})"
        return Execution(
            status=status,
            message=message,
            exit_code=tests.exit_code,
            counts=counts,
            coverage=report,
            output=output,
            output_truncated=tail.truncated,
            duration_seconds=round(time.monotonic() - started, 3),
            notes=notes,
        )
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)
        if containment is not None:
            await asyncio.to_thread(containment.untrack_folder, workdir)


async def _write_coverage_json(
    plan: RunPlan,
    workdir: Path,
    coverage_json: Path,
    env: Mapping[str, str],
    deadline: float,
    limits: RunLimits,
    priority: PriorityPlan,
    notes: list[str],
    containment: Containment | None = None,
) -> bool:
    """`coverage json` (after `coverage combine` when only parallel data files exist); True on timeout."""
    has_data, has_parallel = await asyncio.to_thread(_data_files, workdir)
    if not has_data and not has_parallel:
        notes.append("coverage collected no data")
        return False
    steps = [] if has_data else [plan.coverage_combine_argv()]
    steps.append(plan.coverage_json_argv(coverage_json))
    for argv in steps:
        step_tail = OutputTail(_REPORT_TAIL_BYTES)
        outcome = await run_process(
            argv,
            cwd=plan.root,
            env=env,
            time_limit=deadline - time.monotonic(),
            tail=step_tail,
            priority=priority,
            kill_grace=limits.kill_grace_seconds,
            containment=containment,
            temp_folder=workdir,
        )
        if outcome.timed_out:
            return True
        # `coverage json` exits 2 when the project's fail_under is not met, yet the report is written
        if outcome.exit_code not in (0, 2):
            text = step_tail.text().strip()
            notes.append(f"`coverage {argv[3]}` exited {outcome.exit_code}: {text[-500:] or 'no output'}")
            return False
    return False
