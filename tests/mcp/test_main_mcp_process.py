"""`python -m mcp.main_mcp …` as a real process: READY over a real notify socket, `status`, SIGTERM, exit codes.

Each sidecar runs in a temporary working directory (no developer .env) with STATE_DIR and LOG_DIR there,
and search/testing roots pointed at tiny trees so start-up does no real work.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PYTHON = sys.executable
READY_BOUND_SECONDS = 60.0  # generous: start-up on a loaded 2-core machine
EXIT_BOUND_SECONDS = 15.0
STOP_REQUIREMENT_SECONDS = 10.0


def tiny_project(root: Path, *, covered: bool = True) -> Path:
    """A project with one module and one passing test; `covered=False` leaves most of the code untested."""
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    body = "def add(a, b):\n    return a + b\n"
    if not covered:
        body += "".join(f"\n\ndef unused_{i}(x):\n    y = x + {i}\n    return y * 2\n" for i in range(10))
    (root / "pkg" / "mod.py").write_text(body)
    (root / "tests").mkdir()
    (root / "tests" / "test_mod.py").write_text(
        "from pkg.mod import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    return root


@pytest.fixture
def sidecar_env(tmp_path: Path) -> dict[str, str]:
    work = tmp_path / "work"
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in {"NOTIFY_SOCKET", "WATCHDOG_USEC"}}
    env.update(
        PYTHONPATH=str(PROJECT_ROOT),
        STATE_DIR=str(tmp_path / "state"),
        LOG_DIR=str(tmp_path / "logs"),
        MCP_SEARCH_ROOT=str(tiny_project(tmp_path / "search_tree")),
        MCP_TESTING_PROJECT_ROOT=str(tiny_project(tmp_path / "test_tree")),
        MONITOR_INTERVAL_SECONDS="1",
        METRICS_PORT="0",  # any free port: never collide with a real Prometheus or another test on 9090
        DASHBOARD_PORT="0",  # likewise for the dashboard's 8080
        PYTHONUNBUFFERED="1",
    )
    env["_CWD"] = str(work)
    return env


def run_cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cwd = env["_CWD"]
    return subprocess.run(
        [PYTHON, "-m", "mcp.main_mcp", *args],
        cwd=cwd,
        env={k: v for k, v in env.items() if k != "_CWD"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_sidecar(env: dict[str, str], command: str = "all", *, stdout: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-m", "mcp.main_mcp", command],
        cwd=env["_CWD"],
        env={k: v for k, v in env.items() if k != "_CWD"},
        stdin=subprocess.DEVNULL,
        stdout=stdout if stdout is not None else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    yield receiver, path
    receiver.close()


def wait_for_message(receiver: socket.socket, prefix: str, process: subprocess.Popen[str], bound: float) -> list[str]:
    """Every datagram received until one starts with `prefix`; fails if the process exits or the bound passes."""
    deadline = time.monotonic() + bound
    seen: list[str] = []
    receiver.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            message = receiver.recv(4096).decode()
        except TimeoutError:
            if process.poll() is not None:
                break
            continue
        seen.append(message)
        if message.startswith(prefix):
            return seen
    process.kill()
    _, stderr = process.communicate(timeout=10)
    raise AssertionError(f"no {prefix!r} datagram (exit code {process.returncode}); got {seen}; stderr:\n{stderr}")


def stop_and_time(process: subprocess.Popen[str]) -> tuple[int, float, str]:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=EXIT_BOUND_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate(timeout=10)
        raise AssertionError(f"did not exit within {EXIT_BOUND_SECONDS} s of SIGTERM; stderr:\n{stderr}") from None
    return process.returncode, time.monotonic() - started, stderr


def test_all_starts_reports_and_stops_on_sigterm(
    sidecar_env: dict[str, str], notify_socket: tuple[socket.socket, str], tmp_path: Path
) -> None:
    receiver, path = notify_socket
    sidecar_env["NOTIFY_SOCKET"] = path
    process = start_sidecar(sidecar_env)
    try:
        seen = wait_for_message(receiver, "READY=1", process, READY_BOUND_SECONDS)
        assert any(m.startswith("STATUS=") for m in seen)

        status = run_cli(sidecar_env, "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.startswith("sidecar: HEALTHY")
        for name in ("codebase_search", "testing", "monitoring"):
            assert f"  {name}: running" in status.stdout
        assert "cpu_percent=" in status.stdout and "memory_mb=" in status.stdout

        as_json = json.loads(run_cli(sidecar_env, "status", "--json").stdout)
        assert as_json["healthy"] is True and as_json["status"]["pid"] == process.pid
    finally:
        code, elapsed, stderr = stop_and_time(process)

    print(f"sidecar 'all' stopped {elapsed:.2f} s after SIGTERM")
    assert code == 0, stderr
    assert elapsed <= STOP_REQUIREMENT_SECONDS, f"stop took {elapsed:.2f} s; the requirement is 10 s"
    assert "STOPPING=1" in wait_for_message(receiver, "STOPPING=1", process, 5)
    assert "MCP SERVERS STARTED" in stderr and "MCP SERVERS STOPPED" in stderr
    assert (tmp_path / "logs" / "mcp_servers.log").read_text().count("sidecar stopped cleanly") == 1

    after = run_cli(sidecar_env, "status")
    assert after.returncode == 1 and "stopped at" in after.stdout


def test_monitoring_prints_cpu_percent_and_memory_mb(sidecar_env: dict[str, str]) -> None:
    process = start_sidecar(sidecar_env, "monitoring", stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "cpu_percent" in line and "memory_mb" in line:
                break
        assert any("cpu_percent" in line and "memory_mb" in line for line in lines), lines
        assert any("monitoring overall=" in line for line in lines)
    finally:
        code, elapsed, stderr = stop_and_time(process)
    assert code == 0, stderr
    assert elapsed <= STOP_REQUIREMENT_SECONDS


def test_invalid_settings_exit_2_listing_every_bad_field(sidecar_env: dict[str, str]) -> None:
    sidecar_env.update(MAX_DAILY_LOSS="-5", DASHBOARD_PORT="eighty", MCP_TESTING_COVERAGE_TARGET="1.5")
    result = run_cli(sidecar_env, "all", timeout=60)
    assert result.returncode == 2
    for field in ("MAX_DAILY_LOSS", "DASHBOARD_PORT", "MCP_TESTING_COVERAGE_TARGET"):
        assert field in result.stderr, result.stderr
    assert "invalid configuration (3 problem(s))" in result.stderr


def test_unknown_command_is_a_usage_error(sidecar_env: dict[str, str]) -> None:
    result = run_cli(sidecar_env, "everything", timeout=60)
    assert result.returncode == 2
    assert "invalid choice: 'everything'" in result.stderr


def test_status_without_a_running_sidecar_exits_1(sidecar_env: dict[str, str]) -> None:
    result = run_cli(sidecar_env, "status", timeout=60)
    assert result.returncode == 1
    assert "sidecar not running: no status file" in result.stdout


def test_scan_json_on_a_tiny_tree(sidecar_env: dict[str, str], tmp_path: Path) -> None:
    tree = tmp_path / "scan_tree"
    (tree / "core").mkdir(parents=True)
    (tree / "core" / "risk.py").write_text(
        "def check(settings):\n    return settings.max_daily_loss\n\n\nmax_position_size = 50\n"
    )
    result = run_cli(sidecar_env, "scan", "--root", str(tree), "--param", "max_daily_loss", "--json")
    report = json.loads(result.stdout)
    assert report["parameters"]["max_daily_loss"]["usage_count"] >= 1
    assert result.returncode in (0, 1)
    assert result.returncode == (1 if report["violations"] else 0)


def test_test_json_on_a_tiny_project(sidecar_env: dict[str, str], tmp_path: Path) -> None:
    project = tiny_project(tmp_path / "covered")
    args = ["test", "--root", str(project), "--python", PYTHON, "--source", "pkg", "--path", "tests", "--json"]
    result = run_cli(sidecar_env, *args, "--threshold", "0.9")
    report = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["status"] == "passed" and report["passed"] == 1 and report["coverage"] == 1.0

    sparse = tiny_project(tmp_path / "sparse", covered=False)
    args = ["test", "--root", str(sparse), "--python", PYTHON, "--source", "pkg", "--path", "tests", "--json"]
    below = run_cli(sidecar_env, *args, "--threshold", "0.9")
    report = json.loads(below.stdout)
    assert below.returncode == 1
    assert report["meets_threshold"] is False and report["coverage"] < 0.9


def test_sigterm_during_the_initial_scan_of_a_large_tree_still_stops_in_time(sidecar_env: dict[str, str]) -> None:
    # the standard library: a cold scan that takes seconds, still running in its thread when SIGTERM lands
    sidecar_env["MCP_SEARCH_ROOT"] = sysconfig.get_paths()["stdlib"]
    process = start_sidecar(sidecar_env)
    assert process.stderr is not None
    for line in process.stderr:
        if "server 'monitoring' is ready" in line:
            break
    code, elapsed, stderr = stop_and_time(process)
    print(f"sidecar stopped {elapsed:.2f} s after SIGTERM during a scan")
    assert code == 0, stderr
    assert elapsed <= STOP_REQUIREMENT_SECONDS
    assert "SIGTERM received: stopping" in stderr
