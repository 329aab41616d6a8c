"""The testing server's pure parts: coverage JSON, JUnit XML, pytest summary lines, the status decision,
risk-file coverage, progress parsing. No subprocess here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.integrations.rules import CoverageVerdict, coverage_verdict
from mcp.testing.progress import ProgressParser, ProgressReporter, ProgressState
from mcp.testing.results import (
    CoverageReport,
    FileCoverage,
    ResultParseError,
    RunStatus,
    SuiteCounts,
    decide_status,
    is_default_risk_file,
    meets_threshold,
    parse_coverage_json,
    parse_junit_xml,
    parse_pytest_summary,
    read_counts,
    risk_coverage,
)

ROOT = Path("/proj")


def coverage_json(files: dict[str, dict], total: float, branch: bool = False) -> bytes:
    return json.dumps(
        {"meta": {"format": 3, "branch_coverage": branch}, "files": files, "totals": {"percent_covered": total}}
    ).encode()


def summary(covered: int, statements: int, percent: float, branches: tuple[int, int] = (0, 0)) -> dict:
    return {
        "summary": {
            "covered_lines": covered,
            "num_statements": statements,
            "percent_covered": percent,
            "covered_branches": branches[0],
            "num_branches": branches[1],
        }
    }


class TestCoverageJson:
    def test_totals_and_files_become_fractions(self) -> None:
        data = coverage_json(
            {"pkg/a.py": summary(5, 8, 62.5), "/proj/pkg/b.py": summary(3, 4, 75.0)}, 66.66666666, branch=True
        )
        report = parse_coverage_json(data, ROOT)
        assert report.total == 0.666667
        assert report.branch is True
        # an absolute path under the root is reported relative to it, like coverage does for the cwd
        assert report.fractions() == {"pkg/a.py": 0.625, "pkg/b.py": 0.75}

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            (b"not json", "not valid JSON"),
            (b"\xff\xfe", "not valid JSON"),
            (b"[1, 2]", "expected an object, found list"),
            (b'{"files": {}}', "expected a 'totals' object"),
            (b'{"totals": {"percent_covered": 50}}', "expected a 'files' object"),
            (b'{"totals": {"percent_covered": "50"}, "files": {}}', "totals.percent_covered: expected a number"),
            (b'{"totals": {"percent_covered": 150}, "files": {}}', "expected 0..100, found 150"),
            (b'{"totals": {"percent_covered": true}, "files": {}}', "expected a number, found True"),
            (b'{"totals": {"percent_covered": 50}, "files": {"a.py": 3}}', "expected a 'summary' object"),
            (
                b'{"totals": {"percent_covered": 50}, "files": {"a.py": {"summary": {"percent_covered": 5}}}}',
                "covered_lines: expected a number, found None",
            ),
        ],
    )
    def test_malformed_reports_say_what_was_expected(self, data: bytes, expected: str) -> None:
        with pytest.raises(ResultParseError, match=expected):
            parse_coverage_json(data, ROOT)


JUNIT = (
    b'<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
    b'<testsuite name="pytest" errors="1" failures="2" skipped="3" tests="10" time="0.1"></testsuite></testsuites>'
)


class TestJunitXml:
    def test_counts_from_the_suite_attributes(self) -> None:
        assert parse_junit_xml(JUNIT) == SuiteCounts(passed=4, failed=2, skipped=3, errors=1, source="junit")

    def test_a_bare_testsuite_root_is_accepted(self) -> None:
        counts = parse_junit_xml(b'<testsuite tests="2" failures="0" errors="0" skipped="0"/>')
        assert (counts.passed, counts.total) == (2, 2)

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            (b"<testsuites><testsuite", "not well-formed"),
            (b"", "not well-formed"),
            (b"<html/>", "expected <testsuites> or <testsuite>"),
            (b"<testsuites/>", "expected <testsuites> or <testsuite>"),
            (b'<testsuite tests="many"/>', "'tests': expected an integer, found 'many'"),
            (b'<testsuite tests="-1"/>', "expected >= 0, found -1"),
        ],
    )
    def test_corrupt_xml_raises(self, data: bytes, expected: str) -> None:
        with pytest.raises(ResultParseError, match=expected):
            parse_junit_xml(data)

    def test_corrupt_xml_falls_back_to_the_summary_line(self) -> None:
        counts, note = read_counts(b"<testsuites><tes", "....F\n1 failed, 4 passed in 0.31s\n")
        assert counts == SuiteCounts(passed=4, failed=1, skipped=0, errors=0, source="summary")
        assert note is not None and "not well-formed" in note

    def test_missing_xml_and_no_summary_gives_nothing(self) -> None:
        assert read_counts(None, "Traceback ...\nNo module named coverage\n") == (None, "pytest wrote no JUnit XML")


class TestSummaryLine:
    @pytest.mark.parametrize(
        ("line", "expected"),
        [
            ("49 failed, 101 passed, 1 skipped in 2.67s", (101, 49, 1, 0)),
            ("========= 3 passed, 1 warning in 0.12s =========", (3, 0, 0, 0)),
            ("1 passed, 2 xfailed, 1 xpassed in 0.40s", (2, 0, 2, 0)),
            ("2 errors in 0.05s", (0, 0, 0, 2)),
            ("1 failed, 1 error in 75.00s (0:01:15)", (0, 1, 0, 1)),
            ("no tests ran in 0.01s", (0, 0, 0, 0)),
        ],
    )
    def test_summary_lines(self, line: str, expected: tuple[int, int, int, int]) -> None:
        counts = parse_pytest_summary(f"....\n{line}\n")
        assert counts is not None
        assert (counts.passed, counts.failed, counts.skipped, counts.errors) == expected

    @pytest.mark.parametrize("text", ["", "collected 3 items\n", "3 passed\n", "took 2 seconds in 4s\n"])
    def test_no_summary_line(self, text: str) -> None:
        assert parse_pytest_summary(text) is None

    def test_the_last_summary_wins(self) -> None:
        text = "a test printed: 9 failed in 1.00s\n...\n3 passed in 0.10s\n"
        assert parse_pytest_summary(text) == SuiteCounts(3, 0, 0, 0, "summary")


def decide(exit_code: int | None, counts: SuiteCounts | None = None, **kw: object) -> tuple[RunStatus, str]:
    args: dict = {
        "exit_code": exit_code,
        "timed_out": False,
        "counts": counts,
        "coverage_available": True,
        "output": "",
        "python": "/venv/bin/python",
        "timeout_seconds": 60.0,
    }
    args.update(kw)
    return decide_status(**args)


OK_COUNTS = SuiteCounts(3, 0, 1, 0, "junit")
FAILED_COUNTS = SuiteCounts(2, 1, 0, 0, "junit")


class TestDecideStatus:
    @pytest.mark.parametrize(
        ("exit_code", "counts", "extra", "status", "fragment"),
        [
            (0, OK_COUNTS, {}, RunStatus.PASSED, "3 passed, 1 skipped"),
            (0, OK_COUNTS, {"coverage_available": False}, RunStatus.ERROR, "coverage produced no report"),
            (0, None, {}, RunStatus.ERROR, "neither JUnit XML nor a summary"),
            (1, FAILED_COUNTS, {}, RunStatus.FAILED, "1 failed"),
            (1, SuiteCounts(0, 0, 0, 0, "junit"), {}, RunStatus.ERROR, "exited with code 1"),
            (2, None, {"output": "ERROR tests/test_x.py\nE   SyntaxError: bad"}, RunStatus.ERROR, "SyntaxError"),
            (3, None, {}, RunStatus.ERROR, "internal error"),
            (4, None, {"output": "ERROR: file or directory not found: nope"}, RunStatus.ERROR, "not found: nope"),
            (5, SuiteCounts(0, 0, 0, 0, "junit"), {}, RunStatus.NO_TESTS, "collected no tests"),
            (-9, None, {}, RunStatus.ERROR, "killed by signal 9"),
            (None, None, {"timed_out": True}, RunStatus.TIMEOUT, "60s timeout"),
        ],
    )
    def test_table(
        self, exit_code: int | None, counts: SuiteCounts | None, extra: dict, status: RunStatus, fragment: str
    ) -> None:
        decided, message = decide(exit_code, counts, **extra)
        assert decided is status
        assert fragment in message

    @pytest.mark.parametrize("module", ["coverage", "pytest"])
    def test_missing_module_says_how_to_install_it(self, module: str) -> None:
        status, message = decide(1, None, output=f"/venv/bin/python: No module named {module}\n")
        assert status is RunStatus.ERROR
        assert f"{module} is not importable by the interpreter /venv/bin/python" in message
        assert "/venv/bin/python -m pip install coverage pytest" in message

    def test_a_failing_test_mentioning_a_missing_module_is_still_a_failure(self) -> None:
        status, _ = decide(1, FAILED_COUNTS, output="E   ModuleNotFoundError: No module named 'pytest'\n")
        assert status is RunStatus.FAILED


def report_of(files: dict[str, FileCoverage]) -> CoverageReport:
    return CoverageReport(total=0.5, branch=True, files=files)


RISK_REPORT_FILES = {
    "core/circuit_breaker.py": FileCoverage(0.8, 7, 10, 1, 0),
    "core/trade_executor.py": FileCoverage(0.5, 4, 8, 1, 2),
    "core/risk_state.py": FileCoverage(1.0, 2, 2, 0, 0),
    "core/portfolio.py": FileCoverage(0.25, 1, 4, 0, 0),
}


class TestRiskCoverage:
    def test_default_rule_picks_files_named_after_risk_components(self) -> None:
        risk = risk_coverage(report_of(RISK_REPORT_FILES), [], Path("/repo"))
        assert set(risk.files) == {"core/circuit_breaker.py", "core/trade_executor.py", "core/risk_state.py"}
        # (7+1 + 4+1 + 2) / (10 + 8+2 + 2) = 15 / 22
        assert risk.aggregate == round(15 / 22, 6)
        assert risk.unmeasured == []

    def test_injected_list_wins_and_reports_files_never_measured(self) -> None:
        risk = risk_coverage(
            report_of(RISK_REPORT_FILES),
            ["/repo/core/portfolio.py", "core/portfolio.py", "core/nowhere.py"],
            Path("/repo"),
        )
        assert risk.files == {"core/portfolio.py": 0.25}
        assert risk.aggregate == 0.25
        assert risk.unmeasured == ["core/nowhere.py"]

    def test_nothing_measured_gives_no_aggregate(self) -> None:
        assert risk_coverage(report_of({}), [], Path("/repo")).aggregate is None

    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("core/circuit_breaker.py", True),
            ("core/risk_state.py", True),
            ("core/trade_executor.py", True),
            ("core/risk/notes.txt", False),
            ("core/portfolio.py", False),
        ],
    )
    def test_default_rule(self, path: str, expected: bool) -> None:
        assert is_default_risk_file(path) is expected


@pytest.mark.parametrize(
    ("coverage", "threshold", "expected"),
    [(0.85, 0.85, True), (0.849999, 0.85, False), (None, 0.0, False), (1.0, 1.0, True)],
)
def test_meets_threshold(coverage: float | None, threshold: float, expected: bool) -> None:
    assert meets_threshold(coverage, threshold) is expected


class TestProgressParser:
    OUTPUT = (
        "..........F.......s [ 20/45]\n"
        "....................[ 40/45]\n"
        ".....                [45/45]\n"
        "=== FAILURES ===\n....... dots in a traceback\n"
    )

    def test_counts_lines_and_partial_lines(self) -> None:
        parser = ProgressParser()
        assert parser.feed("....") == ProgressState(4, None)
        assert parser.feed("..") == ProgressState(6, None)
        assert parser.feed("....F.......s [ 20/45]\n") == ProgressState(20, 45)
        assert parser.feed(".") == ProgressState(21, 45)

    @given(st.lists(st.integers(min_value=1, max_value=30), max_size=20))
    def test_any_chunking_gives_the_same_final_state(self, cuts: list[int]) -> None:
        parser = ProgressParser()
        text, position = self.OUTPUT, 0
        for cut in cuts:
            parser.feed(text[position : position + cut])
            position += cut
        parser.feed(text[position:])
        assert parser.state == ProgressState(45, 45)

    def test_collected_line_gives_the_total(self) -> None:
        parser = ProgressParser()
        parser.feed("==== test session starts ====\ncollected 12 items\n\ntests/test_a.py ...")
        assert parser.state == ProgressState(3, 12)

    def test_report_sections_end_the_counting(self) -> None:
        parser = ProgressParser()
        parser.feed("..F\n=== FAILURES ===\n")
        assert parser.feed("....") is None
        assert parser.state == ProgressState(3, None)

    def test_a_chatty_line_without_newline_is_dropped_not_kept(self) -> None:
        parser = ProgressParser()
        parser.feed("x" * 10_000)
        parser.feed("..")
        assert parser.state == ProgressState(2, None)


class TestProgressReporter:
    async def test_values_strictly_increase_and_routine_updates_are_throttled(self) -> None:
        now = [0.0]
        calls: list[tuple[float, float | None, str]] = []

        async def callback(progress: float, total: float | None, message: str) -> None:
            calls.append((progress, total, message))

        reporter = ProgressReporter(callback, min_interval=1.0, clock=lambda: now[0])
        await reporter.started("start")
        await reporter.tests_progressed(ProgressState(1, None))  # within the interval: dropped
        await reporter.tests_progressed(ProgressState(5, 40))  # the total became known: sent
        now[0] = 0.5
        await reporter.tests_progressed(ProgressState(6, 40))  # dropped
        now[0] = 2.0
        await reporter.tests_progressed(ProgressState(40, 40))
        await reporter.reporting("writing the coverage report")
        await reporter.finished("passed: 40 passed")
        # one unit beyond the tests is the coverage report, so the final status is never a repeat
        assert calls == [
            (0.0, None, "start"),
            (5.0, 41.0, "5/40 tests finished"),
            (40.0, 41.0, "40/40 tests finished"),
            (40.5, 41.0, "writing the coverage report"),
            (41.0, 41.0, "passed: 40 passed"),
        ]

    async def test_nothing_counted_still_ends_above_the_start(self) -> None:
        calls: list[tuple[float, float | None, str]] = []

        async def callback(progress: float, total: float | None, message: str) -> None:
            calls.append((progress, total, message))

        reporter = ProgressReporter(callback)
        await reporter.started("start")
        await reporter.finished("missing_project: no such folder")
        assert calls == [(0.0, None, "start"), (1.0, 1.0, "missing_project: no such folder")]

    async def test_a_failing_callback_is_logged_and_ignored(self, caplog: pytest.LogCaptureFixture) -> None:
        async def broken(progress: float, total: float | None, message: str) -> None:
            raise RuntimeError("client went away")

        reporter = ProgressReporter(broken)
        await reporter.started("x")
        await reporter.finished("y")
        assert caplog.text.count("progress callback failed") == 2


# --- issue 12: the testing server's "meets threshold" is the one coverage rule ------------------------


@given(
    coverage=st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
    threshold=st.floats(min_value=0.01, max_value=1.0, allow_nan=False),
)
def test_meets_threshold_agrees_with_the_integrators_coverage_rule(coverage: float, threshold: float) -> None:
    assert meets_threshold(coverage, threshold) is (coverage_verdict(coverage, threshold) is CoverageVerdict.OK)


def test_a_figure_a_hair_below_the_threshold_does_not_meet_it() -> None:
    # a tolerance here once let the testing server say "meets" where the integrator said "below"
    assert meets_threshold(0.8 - 1e-12, 0.8) is False
    assert meets_threshold(0.8, 0.8) is True
    assert meets_threshold(None, 0.8) is False
