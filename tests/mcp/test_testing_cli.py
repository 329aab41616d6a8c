"""`python -m mcp.main_mcp test`'s function: one coverage run on any tree, report, exit code."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from mcp.testing import cli
from mcp.testing.cli import format_report
from tests.mcp.testing_projects import PASSING_TOTAL, passing_project


class TerminalBuffer(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_cli(
    root: Path, *, threshold: float, as_json: bool = False, stream: io.StringIO | None = None, **kw: object
) -> tuple[int, str]:
    out = stream if stream is not None else io.StringIO()
    options: dict[str, object] = {"python": Path(sys.executable), "sources": ["pkg"], "paths": []}
    options.update(kw)
    code = cli.test_command(
        root,
        options["python"],  # type: ignore[arg-type]
        options["sources"],  # type: ignore[arg-type]
        options["paths"],  # type: ignore[arg-type]
        as_json,
        out,
        threshold,
        timeout_seconds=120,
    )
    return code, out.getvalue()


@pytest.mark.integration
def test_json_report_and_exit_zero_when_passing_above_threshold(tmp_path: Path) -> None:
    code, out = run_cli(passing_project(tmp_path / "proj"), threshold=0.6, as_json=True)
    report = json.loads(out)
    assert code == 0
    assert (report["status"], report["coverage"], report["meets_threshold"]) == ("passed", PASSING_TOTAL, True)
    assert not (tmp_path / "state").exists()  # a one-shot run keeps no history


@pytest.mark.integration
def test_below_threshold_exits_one_with_progress_on_a_terminal(tmp_path: Path) -> None:
    terminal = TerminalBuffer()
    code, out = run_cli(passing_project(tmp_path / "proj"), threshold=0.9, stream=terminal)
    assert code == 1
    assert "coverage: 66.7% (threshold 90.0%): BELOW THRESHOLD" in out
    assert "pkg/risk_limits.py: 75.0%" in out
    assert "running tests in" in out  # progress lines appear only because the stream is a terminal


@pytest.mark.parametrize(
    ("setup", "threshold", "kw", "expected"),
    [
        ("missing-root", 0.5, {}, "is not an existing directory"),
        ("project", 1.5, {}, "expected a coverage fraction in 0..1"),
        ("project", 0.5, {"paths": ["../elsewhere"]}, "leaves it"),
        ("project", 0.5, {"sources": ["--omit=*"]}, "option-like"),
        ("project", 0.5, {"python": Path("/nonexistent/python")}, "does not exist"),
    ],
)
def test_bad_arguments_exit_two_with_the_reason(
    tmp_path: Path, setup: str, threshold: float, kw: dict, expected: str
) -> None:
    root = tmp_path / "missing" if setup == "missing-root" else passing_project(tmp_path / "proj")
    code, out = run_cli(root, threshold=threshold, **kw)
    assert code == 2
    assert expected in out


def test_bad_arguments_in_json_mode_are_json(tmp_path: Path) -> None:
    code, out = run_cli(tmp_path / "missing", threshold=0.5, as_json=True)
    assert code == 2
    assert json.loads(out)["status"] == "error"


def test_human_report_of_an_error_shows_the_output_tail() -> None:
    result = {
        "status": "error",
        "message": "pytest was interrupted",
        "passed": 0,
        "failed": 0,
        "skipped": 0,
        "errors": 1,
        "coverage": None,
        "threshold": 0.85,
        "meets_threshold": False,
        "duration_seconds": 1.25,
        "output_tail": "E   SyntaxError: invalid syntax",
    }
    text = format_report(result)
    assert "coverage: n/a (threshold 85.0%): BELOW THRESHOLD" in text
    assert text.endswith("--- output (tail) ---\nE   SyntaxError: invalid syntax")
