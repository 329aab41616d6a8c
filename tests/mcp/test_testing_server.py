"""The testing server end to end, on small stand-alone projects written into tmp_path (never on this
repository's own suite): real `coverage run -m pytest` subprocesses, real process groups and signals,
a real SQLite history."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from config.settings import Settings
from mcp.server import Server
from mcp.testing_server import TestingServer
from tests.mcp.testing_projects import (
    CALC,
    PASSING_FILES,
    PASSING_TESTS,
    PASSING_TOTAL,
    RISK_LIMITS,
    alive,
    alive_in_group,
    failing_project,
    fake_interpreter,
    hanging_project,
    passing_project,
    write_project,
)
from tests.waiting import eventually


def make_server(tmp_path: Path, root: Path, **overrides: Any) -> TestingServer:
    # niceness None: on a loaded machine niceness 10 only slows these tests down; the low priority
    # itself is checked by test_a_chatty_low_priority_suite_… (inside the child) and in test_testing_runner.py
    options: dict[str, Any] = {
        "niceness": None,
        "project_root": root,
        "history_path": tmp_path / "history.sqlite3",
        "timeout_seconds": 90.0,
        "threshold": 0.5,
        "kill_grace_seconds": 0.5,
    }
    options.update(overrides)
    return TestingServer(**options)


def tree_snapshot(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


class ProgressLog:
    def __init__(self) -> None:
        self.calls: list[tuple[float, float | None, str]] = []

    async def __call__(self, progress: float, total: float | None, message: str) -> None:
        self.calls.append((progress, total, message))


@dataclass
class Decision:
    """Shaped like the integrator's GateDecision."""

    allowed: bool
    reason: str


# --- the server protocol and configuration (no subprocess) -------------------------------------------


async def test_is_an_idle_server_that_is_ready_at_once(tmp_path: Path) -> None:
    server = make_server(tmp_path, tmp_path)
    assert isinstance(server, Server)
    assert server.name == "testing"
    assert [tool.__name__ for tool in server.tools()] == ["run_tests", "get_coverage", "coverage_history"]
    ready = asyncio.Event()
    task = asyncio.create_task(server.run(ready))
    await asyncio.wait_for(ready.wait(), timeout=5)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert server.health()["status"] == "healthy"


async def test_settings_configure_the_server(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        state_dir=tmp_path / "state",
        mcp_testing_project_root=tmp_path / "nowhere",
        mcp_testing_coverage_target=0.9,
        mcp_testing_timeout_seconds=42,
    )
    server = TestingServer(settings)
    assert (server.threshold, server.project_root) == (0.9, tmp_path / "nowhere")
    result = await server.run_tests()
    assert result["status"] == "missing_project"
    assert "MCP_TESTING_PROJECT_ROOT" in result["message"]
    assert (tmp_path / "state" / "testing_history.sqlite3").exists()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [({"timeout_seconds": 0}, "timeout_seconds must be > 0"), ({"threshold": 85}, "fraction in 0..1")],
)
def test_bad_configuration_is_refused(tmp_path: Path, overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        make_server(tmp_path, tmp_path, **overrides)


async def test_missing_project_is_a_status_recorded_in_history(tmp_path: Path) -> None:
    server = make_server(tmp_path, tmp_path / "gone")
    result = await server.run_tests()
    assert result["status"] == "missing_project"
    assert str(tmp_path / "gone") in result["message"]
    assert server.health()["status"] == "degraded"
    history = await server.coverage_history(5)
    assert [run["status"] for run in history["runs"]] == ["missing_project"]


async def test_missing_interpreter_is_a_status(tmp_path: Path) -> None:
    server = make_server(tmp_path, passing_project(tmp_path / "proj"), python=tmp_path / "no" / "python")
    result = await server.run_tests()
    assert result["status"] == "missing_interpreter"
    assert "does not exist" in result["message"]


async def test_a_path_leaving_the_project_is_refused_without_running(tmp_path: Path) -> None:
    server = make_server(tmp_path, passing_project(tmp_path / "proj"))
    result = await server.run_tests(paths=["../../etc"])
    assert result["status"] == "error"
    assert "leaves it" in result["message"]
    assert server.health()["runs"] == 0


async def test_gate_refusal_defers_without_running(tmp_path: Path) -> None:
    asked: list[str] = []

    async def gate(kind: str) -> Decision:
        asked.append(kind)
        return Decision(False, "market hours (09:00-16:00 UTC)")

    server = make_server(tmp_path, passing_project(tmp_path / "proj"), gate=gate)
    result = await server.run_tests(force=True)
    assert (result["status"], result["reason"]) == ("deferred", "market hours (09:00-16:00 UTC)")
    assert "deferred" in result["message"]
    assert asked == ["test_run"]
    assert server.health()["runs"] == 0
    assert (await server.coverage_history(5))["runs"] == []
    assert (await server.get_coverage())["status"] == "not_run"


async def test_a_failing_gate_defers_and_bad_arguments_are_errors(tmp_path: Path) -> None:
    async def broken_gate(kind: str) -> Decision:
        raise RuntimeError("integrator state unreadable")

    server = make_server(tmp_path, passing_project(tmp_path / "proj"), gate=broken_gate)
    result = await server.run_tests()
    assert result["status"] == "deferred"
    assert "gate could not be consulted (RuntimeError: integrator state unreadable)" in result["reason"]
    assert (await server.run_tests(force="yes"))["status"] == "error"  # type: ignore[arg-type]
    assert (await server.run_tests(paths="tests"))["status"] == "error"  # type: ignore[arg-type]
    assert server.health()["runs"] == 0


async def test_history_order_and_argument_checks(tmp_path: Path) -> None:
    clock_values = iter(f"2026-11-21T10:0{i}:00+00:00" for i in range(5))

    class Clock:
        def __call__(self) -> Any:
            from datetime import datetime

            return datetime.fromisoformat(next(clock_values))

    server = make_server(tmp_path, tmp_path / "gone", clock=Clock())
    ids = [(await server.run_tests())["run_id"] for _ in range(3)]
    history = await server.coverage_history(2)
    assert [run["run_id"] for run in history["runs"]] == [ids[2], ids[1]]
    for bad in (0, -1, 1001, "3", True, 2.5):
        answer = await server.coverage_history(bad)  # type: ignore[arg-type]
        assert answer["status"] == "error" and "expected an integer 1..1000" in answer["message"]


async def test_a_corrupt_history_file_is_moved_aside_and_the_run_still_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "history.sqlite3").write_bytes(b"garbage, not sqlite" * 200)
    server = make_server(tmp_path, tmp_path / "gone")
    result = await server.run_tests()
    assert result["status"] == "missing_project" and "history_error" not in result
    assert len(await asyncio.to_thread(lambda: list(tmp_path.glob("history.sqlite3.corrupt-*")))) == 1
    assert [run["run_id"] for run in (await server.coverage_history(5))["runs"]] == [result["run_id"]]
    assert "was corrupt" in caplog.text


async def test_an_unusable_history_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where the history folder should be")
    server = make_server(tmp_path, tmp_path / "gone", history_path=tmp_path / "blocker" / "h.sqlite3")
    result = await server.run_tests()
    assert result["status"] == "missing_project"
    assert "cannot create the folder" in result["history_error"]
    assert server.health()["history_error"] is not None
    assert (await server.coverage_history(3))["status"] == "error"


# --- real runs ---------------------------------------------------------------------------------------


@pytest.mark.integration
async def test_passing_project_exact_coverage_counts_progress_and_a_clean_tree(tmp_path: Path) -> None:
    root = passing_project(tmp_path / "proj")
    before = tree_snapshot(root)
    asked: list[str] = []

    async def gate(kind: str) -> tuple[bool, str]:
        asked.append(kind)
        return True, "outside market hours"

    server = make_server(tmp_path, root, source_packages=["pkg"], gate=gate)
    progress = ProgressLog()
    result = await server.run_tests(progress=progress)
    assert result["status"] == "passed", result
    assert result["coverage"] == PASSING_TOTAL
    assert result["files"] == PASSING_FILES
    assert (result["passed"], result["failed"], result["skipped"], result["errors"]) == (3, 0, 1, 0)
    assert (result["risk_files"], result["risk_coverage"]) == ({"pkg/risk_limits.py": 0.75}, 0.75)
    assert (result["meets_threshold"], result["threshold"], result["exit_code"]) == (True, 0.5, 0)
    assert asked == ["test_run"]
    # progress: a start, the tests finishing, an end at total/total
    assert progress.calls[0][:2] == (0.0, None) and "running tests" in progress.calls[0][2]
    # 4 tests plus one unit for the coverage report; values strictly increase, as MCP requires
    assert progress.calls[-2][2] == "4 tests finished; writing the coverage report"
    assert progress.calls[-1] == (5.0, 5.0, "passed: 3 passed, 1 skipped")
    values = [call[0] for call in progress.calls]
    assert values == sorted(set(values))
    # the sidecar only reads the project: no .coverage, __pycache__ or .pytest_cache left behind
    assert tree_snapshot(root) == before
    assert await server.get_coverage() == result
    assert server.health()["last_run"]["status"] == "passed"


@pytest.mark.integration
async def test_the_figure_is_plain_coverage_s_figure_with_the_project_s_own_config(tmp_path: Path) -> None:
    files = {
        ".coveragerc": "[run]\nbranch = True\nsource = pkg\n",
        "pkg/__init__.py": "",
        "pkg/calc.py": CALC,
        "pkg/risk_limits.py": RISK_LIMITS,
        "tests/test_calc.py": PASSING_TESTS,
    }
    ours, plain = write_project(tmp_path / "ours", files), write_project(tmp_path / "plain", files)
    result = await make_server(tmp_path, ours).run_tests()
    assert (result["status"], result["branch_coverage"]) == ("passed", True)
    # by hand: calc.py (5 lines + 0 of 2 branches), risk_limits.py (3 lines + 1 of 2 branches): 9/16
    assert result["coverage"] == 0.5625
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)

    def run_plain() -> float:
        for argv in (["coverage", "run", "-m", "pytest", "-q"], ["coverage", "json", "-o", "c.json"]):
            subprocess.run([sys.executable, "-m", *argv], cwd=plain, env=env, capture_output=True, check=False)
        return json.loads((plain / "c.json").read_text())["totals"]["percent_covered"] / 100

    assert result["coverage"] == pytest.approx(await asyncio.to_thread(run_plain), abs=1e-6)


@pytest.mark.integration
async def test_failing_tests_are_counted_and_their_output_kept(tmp_path: Path) -> None:
    result = await make_server(tmp_path, failing_project(tmp_path / "proj"), source_packages=["pkg"]).run_tests()
    assert result["status"] == "failed"
    assert (result["passed"], result["failed"], result["errors"]) == (1, 1, 0)
    assert result["exit_code"] == 1
    assert result["coverage"] is not None  # coverage is still measured when tests fail
    assert "deliberately wrong sum" in result["output_tail"]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("test_source", "fragments"),
    [
        ("def test_x(:\n    pass\n", ["test_broken.py", "interrupted", "SyntaxError"]),
        ("import missing_dependency_xyz\n\n\ndef test_x():\n    pass\n", ["missing_dependency_xyz"]),
    ],
    ids=["syntax-error", "import-error"],
)
async def test_collection_errors_are_an_error_with_the_cause(
    tmp_path: Path, test_source: str, fragments: list[str]
) -> None:
    root = write_project(tmp_path / "proj", {"tests/test_broken.py": test_source, "tests/test_ok.py": CALC})
    result = await make_server(tmp_path, root).run_tests()
    assert result["status"] == "error"
    assert result["exit_code"] == 2
    assert result["errors"] >= 1
    for fragment in fragments:
        assert fragment in result["message"], result["message"]


@pytest.mark.integration
async def test_no_tests_is_its_own_status(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", {"tests/helpers.py": "VALUE = 1\n"})
    result = await make_server(tmp_path, root).run_tests()
    assert (result["status"], result["exit_code"]) == ("no_tests", 5)
    assert result["coverage"] is None


@pytest.mark.integration
async def test_an_interpreter_without_coverage_says_how_to_install_it(tmp_path: Path) -> None:
    python = fake_interpreter(tmp_path / "python-without-coverage")
    result = await make_server(tmp_path, passing_project(tmp_path / "proj"), python=python).run_tests()
    assert result["status"] == "error"
    assert f"coverage is not importable by the interpreter {python}" in result["message"]
    assert "pip install coverage pytest" in result["message"]


@pytest.mark.integration
@pytest.mark.slow
async def test_a_hanging_suite_times_out_and_its_whole_process_tree_dies(tmp_path: Path) -> None:
    pid_file = tmp_path / "hang.pids"
    environ = {**os.environ, "HANG_PID_FILE": str(pid_file)}
    server = make_server(tmp_path, hanging_project(tmp_path / "proj"), timeout_seconds=10.0, environ=environ)
    run = asyncio.create_task(server.run_tests())
    await eventually(lambda: run.done() or asyncio.to_thread(pid_file.exists), "the suite hanging", within=10)
    assert not run.done(), f"the run ended before the test hung: {run.result()}"
    leader, pgid, in_group, escaped = (int(x) for x in pid_file.read_text().split())
    # the run's group is led by the wrapper (the test process's parent), apart from ours
    assert pgid == psutil.Process(leader).ppid()
    assert pgid != os.getpgid(0)
    busy = await server.run_tests(force=True)
    assert busy["status"] == "busy" and server.health()["running"] is True
    result = await run
    assert result["status"] == "timeout"
    assert "10s timeout" in result["message"]
    # SIGTERM was ignored: SIGKILL followed; the grandchild in the group and the one that left it are dead
    assert [alive(pid) for pid in (leader, in_group, escaped)] == [False, False, False]
    assert alive_in_group(pgid) == []
    assert server.health()["status"] == "degraded"
    assert (await server.coverage_history(1))["runs"][0]["status"] == "timeout"


@pytest.mark.integration
@pytest.mark.slow
async def test_unchanged_code_is_not_rerun_unless_forced_even_after_a_restart(tmp_path: Path) -> None:
    root = passing_project(tmp_path / "proj")
    first = await make_server(tmp_path, root, source_packages=["pkg"]).run_tests()
    assert first["status"] == "passed"
    restarted = make_server(tmp_path, root, source_packages=["pkg"])  # same history file, fresh process state
    again = await restarted.run_tests()
    assert (again["status"], again["last_status"], again["run_id"]) == ("unchanged", "passed", first["run_id"])
    assert again["coverage"] == first["coverage"] and "force=True" in again["message"]
    forced = await restarted.run_tests(force=True)
    assert forced["status"] == "passed" and forced["run_id"] != first["run_id"]
    (root / "tests" / "test_more.py").write_text("def test_more():\n    assert True\n")
    changed = await restarted.run_tests()
    assert (changed["status"], changed["passed"]) == ("passed", 4)
    other_paths = await restarted.run_tests(paths=["tests/test_more.py"])  # other arguments: another run
    assert (other_paths["status"], other_paths["passed"]) == ("passed", 1)
    assert len((await restarted.coverage_history(10))["runs"]) == 4


@pytest.mark.integration
async def test_counts_fall_back_to_the_summary_line_when_junit_xml_is_gone(tmp_path: Path) -> None:
    conftest = (
        "import os\n\n\ndef pytest_unconfigure(config):\n"
        "    path = config.option.xmlpath\n    if path and os.path.exists(path):\n        os.remove(path)\n"
    )
    root = write_project(
        tmp_path / "proj",
        {"conftest.py": conftest, "tests/test_a.py": "def test_a():\n    pass\n\n\ndef test_b():\n    pass\n"},
    )
    result = await make_server(tmp_path, root).run_tests()
    assert (result["status"], result["passed"]) == ("passed", 2)
    assert any("summary line" in note for note in result["notes"])


@pytest.mark.integration
async def test_a_chatty_low_priority_suite_is_capped_and_the_secrets_never_reach_it(tmp_path: Path) -> None:
    chatty = (
        "import os\n\n\ndef test_env():\n"
        "    assert 'TELEGRAM_BOT_TOKEN' not in os.environ and 'CLOB_API_SECRET' not in os.environ\n"
        "    assert os.environ['PYTHONDONTWRITEBYTECODE'] == '1'\n"
        "    assert os.getpriority(os.PRIO_PROCESS, 0) >= 10\n"
        # issue 10: led by the wrapper (our parent, after nice/ionice exec), under SCHED_IDLE (nice 19 if refused)
        "    assert os.getpgid(0) == os.getppid()\n"
        "    assert os.sched_getscheduler(0) == os.SCHED_IDLE or os.getpriority(os.PRIO_PROCESS, 0) == 19\n\n\n"
        "def test_chatty():\n    print('noise ' * 50_000)\n    assert False, 'chatty failure'\n"
    )
    root = write_project(tmp_path / "proj", {"tests/test_chatty.py": chatty})
    environ = {**os.environ, "TELEGRAM_BOT_TOKEN": "123456:canary-token", "CLOB_API_SECRET": "canary-secret"}
    server = make_server(tmp_path, root, output_limit_bytes=8192, environ=environ, niceness=10)
    result = await server.run_tests()
    assert result["status"] == "failed"
    assert (result["passed"], result["failed"]) == (1, 1)  # from the JUnit XML, whatever the cut
    assert result["output_truncated"] is True
    assert "chatty failure" in result["output_tail"]
    assert len(result["output_tail"]) <= 8192
    assert "canary" not in json.dumps(result)
