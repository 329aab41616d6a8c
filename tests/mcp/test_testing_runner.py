"""The testing server's run plan and subprocess runner: argument checks, environment, priority, output cap,
fingerprint, and real processes being contained and killed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcp.testing.plan import (
    BadArgumentError,
    RunPlan,
    code_fingerprint,
    default_interpreter,
    interpreter_problem,
    make_plan,
    resolve_root,
)
from mcp.testing.runner import (
    OutputTail,
    PriorityPlan,
    SpawnError,
    child_environment,
    is_secret_env,
    plan_priority,
    run_process,
)
from tests.mcp.testing_projects import alive_in_group, gone_soon
from tests.waiting import eventually, wait_until


class TestPlan:
    def test_commands_respect_the_project_config_and_add_only_what_the_server_needs(self, tmp_path: Path) -> None:
        plan = make_plan(tmp_path, Path("/venv/bin/python"), ["tests/unit", "tests/test_x.py::test_y"], ["core", "mcp"])
        assert plan.coverage_run_argv(Path("/tmp/j.xml")) == [
            "/venv/bin/python",
            "-m",
            "coverage",
            "run",
            "--source=core,mcp",
            "-m",
            "pytest",
            "tests/unit",
            "tests/test_x.py::test_y",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "console_output_style=count",
            "--junitxml=/tmp/j.xml",
        ]
        assert plan.coverage_json_argv(Path("/tmp/c.json")) == [
            "/venv/bin/python",
            "-m",
            "coverage",
            "json",
            "-q",
            "-o",
            "/tmp/c.json",
        ]

    def test_no_sources_means_no_source_option(self, tmp_path: Path) -> None:
        argv = RunPlan(tmp_path, Path("py"), (), ()).coverage_run_argv(Path("j.xml"))
        assert not any(arg.startswith("--source") for arg in argv)

    @pytest.mark.parametrize(
        ("paths", "sources", "expected"),
        [
            (["/etc/passwd"], [], "absolute"),
            (["../other"], [], "leaves it"),
            (["tests/../../x"], [], "leaves it"),
            (["-p", "evil"], [], "option-like"),
            (["--rootdir=/"], [], "option-like"),
            ([""], [], "non-empty string"),
            ([3], [], "non-empty string"),
            ("tests", [], "a list of strings"),
            ([], ["a,b"], "with a comma"),
            ([], ["--omit=x"], "option-like"),
            ([], ["/abs/pkg"], "absolute"),
            (["tests\x00"], [], "option-like"),
        ],
    )
    def test_bad_arguments_are_refused_with_the_reason(
        self, tmp_path: Path, paths: object, sources: list[object], expected: str
    ) -> None:
        with pytest.raises(BadArgumentError, match=expected):
            make_plan(tmp_path, Path("py"), paths, sources)  # type: ignore[arg-type]

    def test_root_and_interpreter_checks(self, tmp_path: Path) -> None:
        assert resolve_root(tmp_path / "missing") is None
        (tmp_path / "file").write_text("x")
        assert resolve_root(tmp_path / "file") is None
        assert resolve_root(tmp_path) == tmp_path.resolve()
        assert "does not exist" in (interpreter_problem(tmp_path / "nope") or "")
        assert "not executable" in (interpreter_problem(tmp_path / "file") or "")
        assert "not a file" in (interpreter_problem(tmp_path) or "")
        assert interpreter_problem(Path(sys.executable)) is None

    def test_default_interpreter_prefers_the_project_venv(self, tmp_path: Path) -> None:
        assert default_interpreter(tmp_path) == Path(sys.executable)
        venv_python = tmp_path / ".venv" / "bin" / "python"
        venv_python.parent.mkdir(parents=True)
        venv_python.symlink_to(sys.executable)
        assert default_interpreter(tmp_path) == venv_python  # the symlink itself: a venv needs it


class TestFingerprint:
    def test_changes_with_code_and_config_only(self, tmp_path: Path) -> None:
        (tmp_path / "pkg").mkdir()
        code = tmp_path / "pkg" / "a.py"
        code.write_text("x = 1\n")
        first = code_fingerprint(tmp_path)
        assert code_fingerprint(tmp_path) == first
        # noise the run does not depend on: data files, caches, hidden folders, virtualenvs
        (tmp_path / "notes.txt").write_text("hello")
        (tmp_path / "pkg" / "__pycache__").mkdir()
        (tmp_path / "pkg" / "__pycache__" / "a.py").write_text("cached")
        (tmp_path / ".git").mkdir()
        (tmp_path / ".git" / "hook.py").write_text("x")
        (tmp_path / "env").mkdir()
        (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr")
        (tmp_path / "env" / "site.py").write_text("x")
        assert code_fingerprint(tmp_path) == first
        code.write_text("x = 2\n")  # same size, new mtime
        os.utime(code, ns=(time.time_ns(), time.time_ns() + 1_000_000))
        second = code_fingerprint(tmp_path)
        assert second != first
        (tmp_path / "pytest.ini").write_text("[pytest]\n")
        assert code_fingerprint(tmp_path) != second
        assert code_fingerprint(tmp_path, ["other paths"]) != code_fingerprint(tmp_path)


class TestEnvironment:
    @pytest.mark.parametrize(
        ("name", "secret"),
        [
            ("TELEGRAM_BOT_TOKEN", True),
            ("TELEGRAM_CHAT_ID", True),
            ("PRIVATE_KEY", True),
            ("POLY_PRIVATE_KEY", True),
            ("DASHBOARD_TOKEN", True),
            ("GITHUB_TOKEN", True),
            ("CLOB_API_KEY", True),
            ("CLOB_API_PASSPHRASE", True),
            ("SOME_SECRET", True),
            ("PATH", False),
            ("HOME", False),
            ("TOKENIZER_MODE", False),
        ],
    )
    def test_secret_names(self, name: str, secret: bool) -> None:
        assert is_secret_env(name) is secret

    def test_child_environment(self, tmp_path: Path) -> None:
        base = {
            "PATH": "/usr/bin",
            "TELEGRAM_BOT_TOKEN": "123:abc",
            "CLOB_API_SECRET": "s",
            "PYTEST_ADDOPTS": "-x",
            "COV_CORE_SOURCE": "core",
            "COVERAGE_FILE": "/home/me/.coverage",
            "COVERAGE_PROCESS_CONFIG": "{}",
            "COVERAGE_RCFILE": "/home/me/.coveragerc",
            "PYTEST_CURRENT_TEST": "tests/x.py::t (call)",
        }
        env = child_environment(base, tmp_path / ".coverage")
        assert env == {
            "PATH": "/usr/bin",
            "COVERAGE_FILE": str(tmp_path / ".coverage"),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PY_COLORS": "0",
            "NO_COLOR": "1",
        }


class TestPriority:
    def test_wrappers_reach_the_target_niceness(self) -> None:
        plan = plan_priority(10, 0, "/usr/bin/nice", "/usr/bin/ionice")
        nice_ionice = ("/usr/bin/nice", "-n", "10", "/usr/bin/ionice", "-c", "3", "-t")
        assert plan == PriorityPlan(nice_ionice, None, False, sched_idle=True)

    def test_already_nice_enough_adds_no_nice(self) -> None:
        plan = plan_priority(10, 12, "/usr/bin/nice", "/usr/bin/ionice")
        assert plan.prefix == ("/usr/bin/ionice", "-c", "3", "-t")
        assert plan_priority(10, 4, "/usr/bin/nice", None).prefix == ("/usr/bin/nice", "-n", "6")

    def test_missing_executables_fall_back_to_after_spawn(self) -> None:
        assert plan_priority(10, 0, None, None) == PriorityPlan((), 10, True, sched_idle=True)

    def test_no_target_means_no_change(self) -> None:
        # no SCHED_IDLE either: the run keeps the sidecar's priority
        assert plan_priority(None, 0, "/usr/bin/nice", "/usr/bin/ionice") == PriorityPlan((), None, False, False)


class TestOutputTail:
    def test_keeps_only_the_tail(self) -> None:
        tail = OutputTail(limit=10)
        tail.append(b"0123456789")
        assert not tail.truncated
        tail.append(b"abcdef")
        assert (tail.text(), tail.total_bytes, tail.truncated) == ("6789abcdef", 16, True)

    def test_refuses_a_non_positive_limit(self) -> None:
        with pytest.raises(ValueError, match="positive number of bytes"):
            OutputTail(0)


NO_PRIORITY = PriorityPlan((), None, False)


@pytest.mark.integration
class TestRunProcess:
    async def test_output_is_capped_and_the_exit_code_kept(self, tmp_path: Path) -> None:
        tail = OutputTail(limit=1000)
        chunks: list[str] = []

        async def sink(text: str) -> None:
            chunks.append(text)

        script = "import sys; sys.stdout.write('x' * 200_000 + 'END'); sys.exit(3)"
        outcome = await run_process(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            env=os.environ,
            time_limit=30,
            tail=tail,
            priority=NO_PRIORITY,
            sink=sink,
        )
        assert (outcome.exit_code, outcome.timed_out) == (3, False)
        assert tail.text().endswith("END") and len(tail.text()) == 1000
        assert tail.total_bytes == 200_003
        assert sum(len(c) for c in chunks) == 200_003

    async def test_stdin_is_closed_and_priority_applied(self, tmp_path: Path) -> None:
        tail = OutputTail()
        # the fallback sets the priority right after spawn: the child waits a moment before looking
        script = (
            "import os, sys, time; time.sleep(0.5); "
            # the group's leader is the wrapper (mcp.containment.wrapper), the command's parent
            "print(repr(sys.stdin.read()), os.getpriority(os.PRIO_PROCESS, 0), os.getpgid(0) == os.getppid())"
        )
        target = os.getpriority(os.PRIO_PROCESS, 0) + 3
        outcome = await run_process(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            env=os.environ,
            time_limit=30,
            tail=tail,
            priority=plan_priority(target, os.getpriority(os.PRIO_PROCESS, 0), None, None),  # the fallback path
        )
        assert outcome.exit_code == 0
        assert tail.text().split() == ["''", str(target), "True"]

    @pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV])
    async def test_a_signal_death_passes_through_the_wrapper(self, tmp_path: Path, signum: int) -> None:
        """The run's wrapper dies the way its command did: the exit code stays negative (e.g. -9 for an OOM kill)."""
        script = f"import os; os.kill(os.getpid(), {int(signum)})"
        outcome = await run_process(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            env=os.environ,
            time_limit=30,
            tail=OutputTail(),
            priority=NO_PRIORITY,
        )
        assert (outcome.exit_code, outcome.timed_out) == (-signum, False)

    async def test_a_missing_command_is_a_spawn_error(self, tmp_path: Path) -> None:
        with pytest.raises(SpawnError, match="cannot start"):
            await run_process(
                [str(tmp_path / "nope")], cwd=tmp_path, env={}, time_limit=5, tail=OutputTail(), priority=NO_PRIORITY
            )

    async def test_cancellation_kills_the_group(self, tmp_path: Path) -> None:
        pid_file = tmp_path / "pid"
        script = (
            "import os, subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
            f"open({str(pid_file)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
            "time.sleep(600)\n"
        )
        task = asyncio.create_task(
            run_process(
                [sys.executable, "-c", script],
                cwd=tmp_path,
                env=os.environ,
                time_limit=120,
                tail=OutputTail(),
                priority=NO_PRIORITY,
                kill_grace=0.5,
            )
        )
        await eventually(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 2, "both pids written")
        leader, child = (int(x) for x in pid_file.read_text().split())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert gone_soon(leader)
        assert gone_soon(child)
        assert alive_in_group(leader) == []


@pytest.mark.integration
def test_a_test_run_dies_with_a_sidecar_killed_by_sigkill(tmp_path: Path) -> None:
    """kill -9 of the sidecar must not leave its test run behind with nobody enforcing the timeout."""
    pid_file = tmp_path / "child.pid"
    child_script = tmp_path / "hang.py"
    child_script.write_text(f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)\n")
    parent_script = (
        "import asyncio, os, sys\n"
        "from pathlib import Path\n"
        "from mcp.testing.runner import OutputTail, PriorityPlan, run_process\n"
        f"child = [sys.executable, {str(child_script)!r}]\n"
        f"asyncio.run(run_process(child, cwd=Path({str(tmp_path)!r}), env=os.environ, time_limit=600,"
        " tail=OutputTail(), priority=PriorityPlan((), None, False)))\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_script], cwd=Path(__file__).resolve().parents[2])
    try:
        wait_until(lambda: pid_file.exists() and pid_file.read_text(), "the test run starting", within=30)
        child = int(pid_file.read_text())
        parent.kill()
        parent.wait()
        assert gone_soon(child), "the test run outlived the SIGKILLed sidecar"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
