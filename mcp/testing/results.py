"""Pure parsing of a test run's outputs and the decision of its status: no I/O, no clock.

Inputs are what the subprocess left behind: coverage's JSON report, pytest's JUnit XML, and the tail of
the combined stdout/stderr. Each parser raises `ResultParseError` (what was expected, what was found)
instead of guessing; the caller turns that into an "error" status with the message.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from core.integrations.rules import CoverageVerdict, coverage_verdict


class RunStatus(StrEnum):
    """The outcome of one `run_tests` call."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"  # the suite could not run: collection error, bad arguments, coverage or pytest missing
    TIMEOUT = "timeout"
    MISSING_PROJECT = "missing_project"
    MISSING_INTERPRETER = "missing_interpreter"
    NO_TESTS = "no_tests"  # pytest exit code 5
    UNCHANGED = "unchanged"  # not re-run: the code fingerprint equals the last run's
    DEFERRED = "deferred"  # the gate refused (market hours, MCP breaker open, ...)
    BUSY = "busy"  # a run is already in progress
    NOT_RUN = "not_run"  # get_coverage() before any run was ever recorded


# Outcomes decided by the code alone: an unchanged tree would give the same answer, so it is not re-run.
# An error or a timeout may come from the environment (a missing package, a loaded machine): re-run those.
REUSABLE_STATUSES = frozenset({RunStatus.PASSED, RunStatus.FAILED, RunStatus.NO_TESTS})
# Real attempts go into the history; answers given without running (unchanged, deferred, busy) do not.
RECORDED_STATUSES = frozenset(
    {
        RunStatus.PASSED,
        RunStatus.FAILED,
        RunStatus.ERROR,
        RunStatus.TIMEOUT,
        RunStatus.MISSING_PROJECT,
        RunStatus.MISSING_INTERPRETER,
        RunStatus.NO_TESTS,
    }
)

# pytest's documented exit codes
PYTEST_OK, PYTEST_TESTS_FAILED, PYTEST_INTERRUPTED = 0, 1, 2
PYTEST_INTERNAL_ERROR, PYTEST_USAGE_ERROR, PYTEST_NO_TESTS = 3, 4, 5

DEFAULT_RISK_NAME_PARTS = ("circuit_breaker", "trade_executor", "risk")
PIP_HINT = "pip install coverage pytest"


class ResultParseError(ValueError):
    """A report file exists but is not what coverage / pytest write; the run is reported as an error."""


@dataclass(frozen=True)
class SuiteCounts:
    """How many tests passed, failed, were skipped or errored, and where the figures came from."""

    passed: int
    failed: int
    skipped: int
    errors: int
    source: str  # "junit" or "summary"

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped + self.errors


def _non_negative_int(attributes: Mapping[str, str], name: str) -> int:
    raw = attributes.get(name, "0")
    try:
        value = int(raw)
    except ValueError as e:
        raise ResultParseError(f"JUnit XML attribute {name!r}: expected an integer, found {raw!r}") from e
    if value < 0:
        raise ResultParseError(f"JUnit XML attribute {name!r}: expected >= 0, found {value}")
    return value


def parse_junit_xml(data: bytes) -> SuiteCounts:
    """Counts summed over the <testsuite> elements of pytest's JUnit XML."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise ResultParseError(f"JUnit XML is not well-formed: {e}") from e
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    if root.tag not in ("testsuite", "testsuites") or not suites:
        raise ResultParseError(f"JUnit XML: expected <testsuites> or <testsuite> at the root, found <{root.tag}>")
    tests = failures = errors = skipped = 0
    for suite in suites:
        tests += _non_negative_int(suite.attrib, "tests")
        failures += _non_negative_int(suite.attrib, "failures")
        errors += _non_negative_int(suite.attrib, "errors")
        skipped += _non_negative_int(suite.attrib, "skipped")
    # pytest counts collection and setup/teardown errors in "errors" but not always in "tests"
    passed = max(0, tests - failures - errors - skipped)
    return SuiteCounts(passed=passed, failed=failures, skipped=skipped, errors=errors, source="junit")


_SUMMARY_TIME = re.compile(r"\bin \d+(?:\.\d+)?s\b")
_SUMMARY_PAIR = re.compile(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?|deselected|warnings?|rerun)\b")


def parse_pytest_summary(output: str) -> SuiteCounts | None:
    """Counts from pytest's final line ("2 failed, 10 passed, 1 skipped in 0.52s"), None if there is none."""
    for raw_line in reversed(output.splitlines()):
        line = raw_line.strip().strip("=").strip()
        if not _SUMMARY_TIME.search(line):
            continue
        pairs = _SUMMARY_PAIR.findall(line)
        if not pairs and "no tests ran" not in line:
            continue
        found: dict[str, int] = {}
        for number, word in pairs:
            key = "errors" if word.startswith("error") else word
            found[key] = found.get(key, 0) + int(number)
        return SuiteCounts(
            # an unexpected pass (non-strict xpass) passes; an expected failure counts as skipped, as in JUnit
            passed=found.get("passed", 0) + found.get("xpassed", 0),
            failed=found.get("failed", 0),
            skipped=found.get("skipped", 0) + found.get("xfailed", 0),
            errors=found.get("errors", 0),
            source="summary",
        )
    return None


def read_counts(junit_xml: bytes | None, output: str) -> tuple[SuiteCounts | None, str | None]:
    """Counts from the JUnit XML, else from the summary line; with a note when the XML was unusable."""
    note = None
    if junit_xml is not None:
        try:
            return parse_junit_xml(junit_xml), None
        except ResultParseError as e:
            note = str(e)
    else:
        note = "pytest wrote no JUnit XML"
    return parse_pytest_summary(output), note


@dataclass(frozen=True)
class FileCoverage:
    """One measured file: coverage's own percentage plus the raw figures to aggregate several files."""

    fraction: float
    covered_lines: int
    num_statements: int
    covered_branches: int
    num_branches: int


@dataclass(frozen=True)
class CoverageReport:
    """The parts of coverage's JSON report the server uses; percentages turned into fractions in 0..1."""

    total: float
    branch: bool
    files: dict[str, FileCoverage]

    def fractions(self) -> dict[str, float]:
        return {path: figures.fraction for path, figures in self.files.items()}


def _number(mapping: Mapping[str, Any], key: str, where: str, default: float | None = None) -> float:
    value = mapping.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultParseError(f"coverage JSON {where}.{key}: expected a number, found {value!r}")
    return float(value)


def _fraction(percent: float, where: str) -> float:
    if not 0.0 <= percent <= 100.0:
        raise ResultParseError(f"coverage JSON {where}.percent_covered: expected 0..100, found {percent}")
    return round(percent / 100.0, 6)


def normalise_path(path: str, root: Path) -> str:
    """A report path as POSIX text relative to `root` when it lies under it, else unchanged."""
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            return candidate.relative_to(root).as_posix()
        except ValueError:
            return candidate.as_posix()
    return PurePosixPath(candidate.as_posix()).as_posix()


def parse_coverage_json(data: bytes, root: Path) -> CoverageReport:
    """Total, branch flag and per-file figures from `coverage json` output (format 2 or 3)."""
    try:
        payload = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultParseError(f"coverage JSON is not valid JSON: {e}") from e
    if not isinstance(payload, dict):
        raise ResultParseError(f"coverage JSON: expected an object, found {type(payload).__name__}")
    totals, files, meta = payload.get("totals"), payload.get("files"), payload.get("meta", {})
    if not isinstance(totals, dict):
        raise ResultParseError(f"coverage JSON: expected a 'totals' object, found {totals!r:.80}")
    if not isinstance(files, dict):
        raise ResultParseError(f"coverage JSON: expected a 'files' object, found {files!r:.80}")
    parsed: dict[str, FileCoverage] = {}
    for name, entry in files.items():
        summary = entry.get("summary") if isinstance(entry, dict) else None
        if not isinstance(summary, dict):
            raise ResultParseError(f"coverage JSON files[{name!r}]: expected a 'summary' object, found {entry!r:.80}")
        where = f"files[{name!r}].summary"
        parsed[normalise_path(name, root)] = FileCoverage(
            fraction=_fraction(_number(summary, "percent_covered", where), where),
            covered_lines=int(_number(summary, "covered_lines", where)),
            num_statements=int(_number(summary, "num_statements", where)),
            covered_branches=int(_number(summary, "covered_branches", where, 0)),
            num_branches=int(_number(summary, "num_branches", where, 0)),
        )
    return CoverageReport(
        total=_fraction(_number(totals, "percent_covered", "totals"), "totals"),
        branch=bool(meta.get("branch_coverage", False)) if isinstance(meta, dict) else False,
        files=parsed,
    )


def is_default_risk_file(path: str) -> bool:
    """The fallback rule when the search server supplied no list: the file name names a risk component."""
    name = PurePosixPath(path).name
    return name.endswith(".py") and any(part in name for part in DEFAULT_RISK_NAME_PARTS)


@dataclass(frozen=True)
class RiskCoverage:
    """Coverage of the risk-related files: each measured one, the aggregate, and the ones never measured."""

    files: dict[str, float]
    aggregate: float | None
    unmeasured: list[str]


def risk_coverage(report: CoverageReport, risk_files: Iterable[str], root: Path) -> RiskCoverage:
    """Coverage restricted to the risk files (or, with an empty list, to files matching the default rule)."""
    wanted = sorted({normalise_path(path, root) for path in risk_files})
    if not wanted:
        wanted = sorted(path for path in report.files if is_default_risk_file(path))
    measured = {path: report.files[path] for path in wanted if path in report.files}
    covered = sum(f.covered_lines + f.covered_branches for f in measured.values())
    total = sum(f.num_statements + f.num_branches for f in measured.values())
    return RiskCoverage(
        files={path: figures.fraction for path, figures in measured.items()},
        # the same formula coverage uses for its total, so one file alone gives its own percentage
        aggregate=round(covered / total, 6) if total else None,
        unmeasured=[path for path in wanted if path not in measured],
    )


_MISSING_MODULE = re.compile(r"No module named '?(coverage|pytest)'?")


def error_lines(output: str, limit: int = 8) -> list[str]:
    """The lines of pytest output that name what went wrong (collection errors, usage errors)."""
    picked: list[str] = []
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.startswith(("ERROR ", "ERROR:", "E   ", "ImportError", "SyntaxError", "usage:", "pytest: error:")):
            picked.append(stripped[:300])
    return picked[-limit:]


def decide_status(
    *,
    exit_code: int | None,
    timed_out: bool,
    counts: SuiteCounts | None,
    coverage_available: bool,
    output: str,
    python: str,
    timeout_seconds: float,
) -> tuple[RunStatus, str]:
    """The status of a finished (or killed) run and a message saying what happened and what to do."""
    if timed_out:
        return RunStatus.TIMEOUT, (
            f"the test run exceeded its {timeout_seconds:g}s timeout; its process group was killed "
            "(look for a hanging test, or raise MCP_TESTING_TIMEOUT_SECONDS)"
        )
    missing = _MISSING_MODULE.search(output) if counts is None else None
    if missing is not None and exit_code != PYTEST_OK:
        return RunStatus.ERROR, (
            f"{missing.group(1)} is not importable by the interpreter {python}: "
            f"run `{python} -m {PIP_HINT}` in that environment"
        )
    details = "; ".join(error_lines(output))
    if exit_code == PYTEST_NO_TESTS:
        return RunStatus.NO_TESTS, "pytest collected no tests (exit code 5): check the test paths"
    if exit_code == PYTEST_OK:
        if counts is None:
            return RunStatus.ERROR, "pytest exited 0 but neither JUnit XML nor a summary line gave the counts"
        if not coverage_available:
            return RunStatus.ERROR, "tests passed but coverage produced no report (no data collected?)"
        return RunStatus.PASSED, f"{counts.passed} passed, {counts.skipped} skipped"
    if exit_code == PYTEST_TESTS_FAILED and counts is not None and (counts.failed or counts.errors):
        return RunStatus.FAILED, f"{counts.failed} failed, {counts.errors} errors, {counts.passed} passed"
    if exit_code == PYTEST_INTERRUPTED:
        return RunStatus.ERROR, f"pytest was interrupted, usually by collection errors: {details or 'see output'}"
    if exit_code == PYTEST_USAGE_ERROR:
        return RunStatus.ERROR, f"pytest rejected its arguments or configuration: {details or 'see output'}"
    if exit_code == PYTEST_INTERNAL_ERROR:
        return RunStatus.ERROR, f"pytest hit an internal error: {details or 'see output'}"
    if exit_code is not None and exit_code < 0:
        return RunStatus.ERROR, f"the test process was killed by signal {-exit_code}"
    return RunStatus.ERROR, (
        f"the test process exited with code {exit_code} without usable results: {details or 'see output_tail'}"
    )


def summarise_counts(counts: SuiteCounts | None) -> dict[str, int]:
    """The four counters of a result dict (zeros when the run produced none)."""
    if counts is None:
        return {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    return {"passed": counts.passed, "failed": counts.failed, "skipped": counts.skipped, "errors": counts.errors}


def meets_threshold(coverage: float | None, threshold: float) -> bool:
    """Whether a coverage fraction reaches the target (a missing figure never does), by the one coverage rule.

    The integrator and the breaker judge the same figure with `coverage_verdict`; a tolerance here would let
    the testing server say "meets" where they say "below" (issue 12: one rule).
    """
    return coverage is not None and coverage_verdict(coverage, threshold) is CoverageVerdict.OK


def tail_text(output: str, max_lines: int = 40) -> str:
    """The last lines of the output, for a result a human or an assistant will read."""
    return "\n".join(output.splitlines()[-max_lines:])
