"""The integrator in fresh processes: the user's test-plan snippets run as written, and the proof that the
sidecar never writes the bot's risk snapshot or breaker state file.

The snippets are the user's own (reference 001, Phases 2, 4 and 6), kept verbatim below as the Python a
shell passes to `python -c "…"` (the `\\"` of the markdown become `"`); when the reference folder sits
beside the repository, a test checks they still match it character for character. Each runs in a fresh
working directory: no .env, no state/ folder, nothing set up.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from config.settings import PROJECT_ROOT
from utils.atomic import atomic_write_json

REFERENCE_PLAN = next(iter(sorted((PROJECT_ROOT.parent / "shared" / "reference").glob("001_*.md"))), None)
FIXTURE_PROJECTS = PROJECT_ROOT / "tests" / "fixtures" / "projects"
COVERED_PROJECT = FIXTURE_PROJECTS / "integrator_covered"

PHASE2_SCAN = """import asyncio
from core.integrations.mcp_risk_integration import get_mcp_risk_integrator

async def test():
    integrator = get_mcp_risk_integrator()
    result = await integrator.scan_risk_parameters()
    print('Risk parameter scan:')
    print(f'  Status: {result["status"]}')
    print(f'  Scanned: {result["total_scans"]} params')
    for param, data in result.get('scanned_params', {}).items():
        print(f'  {param}: {data.get("usage_count", 0)} uses')

asyncio.run(test())"""

PHASE2_COVERAGE = """import asyncio
from core.integrations.mcp_risk_integration import get_mcp_risk_integrator

async def test():
    integrator = get_mcp_risk_integrator()
    result = await integrator.verify_test_coverage()
    print('Test coverage verification:')
    print(f'  Status: {result["status"]}')
    print(f'  Coverage: {result.get("coverage", 0):.1%}')
    print(f'  Threshold: {result.get("threshold", 0):.1%}')
    print(f'  Meets threshold: {result.get("meets_threshold", False)}')

asyncio.run(test())"""

PHASE4_INTEGRATOR = """import asyncio
from core.integrations.mcp_risk_integration import get_mcp_risk_integrator

async def test():
    integrator = get_mcp_risk_integrator()

    # Initialize with mock components
    from unittest.mock import Mock
    circuit_breaker = Mock()
    trade_executor = Mock()
    await integrator.initialize(circuit_breaker, trade_executor)
    await integrator.enable()

    # Test trip
    await integrator.trip_mcp_circuit_breaker('Test trip')
    print(f'Circuit breaker tripped: {integrator.mcp_circuit_breaker_active}')

    # Test reset
    await integrator.reset_mcp_circuit_breaker()
    print(f'Circuit breaker reset: {integrator.mcp_circuit_breaker_active}')

    # Get state
    stats = integrator.get_statistics()
    print('Statistics:')
    print(f'  Enabled: {stats["enabled"]}')
    print(f'  Circuit breaker active: {stats["mcp_circuit_breaker_active"]}')

asyncio.run(test())"""

PHASE6_MONITOR = """import asyncio
import time
from core.integrations.mcp_risk_integration import get_mcp_risk_integrator

async def test():
    integrator = get_mcp_risk_integrator()
    from unittest.mock import Mock
    await integrator.initialize(Mock(), Mock())
    await integrator.enable()

    # Monitor for 60 seconds
    print('Monitoring resource usage for 60 seconds...')
    for i in range(12):  # 12 checks every 5 seconds
        stats = await integrator.monitor_all()
        cpu = stats.get('resource_usage', {}).get('total_cpu_percent', 0)
        memory = stats.get('resource_usage', {}).get('total_memory_mb', 0)
        within_limits = stats.get('resource_usage', {}).get('within_limits', False)

        print(f'{i*5}s - CPU: {cpu:.1f}%, Memory: {memory:.1f}MB, Within limits: {within_limits}')

        if not within_limits:
            print('⚠️  Resource usage exceeds limits!')
            break

        await asyncio.sleep(5)

asyncio.run(test())"""


def fresh_env(**extra: str) -> dict[str, str]:
    """The test process's environment minus anything that configures the bot, plus `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MCP_", "TELEGRAM_", "DASHBOARD_", "METRICS_", "MONITOR", "ALERT"))
        and key not in {"STATE_DIR", "LOG_DIR", "ENVIRONMENT", "NOTIFY_SOCKET"}
    }
    env.update(PYTHONPATH=str(PROJECT_ROOT), PYTHONUNBUFFERED="1", **extra)
    return env


def run_python(code: str, cwd: Path, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def lines_of(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout.splitlines()


@pytest.mark.skipif(REFERENCE_PLAN is None, reason="the user's reference folder (../shared) is not beside the repo")
def test_snippets_are_the_users_own() -> None:
    assert REFERENCE_PLAN is not None
    text = REFERENCE_PLAN.read_text(encoding="utf-8")
    blocks = [block.replace('\\"', '"') for block in re.findall(r'python -c "\n(.*?)\n"\n', text, re.S)]
    for snippet in (PHASE2_SCAN, PHASE2_COVERAGE, PHASE4_INTEGRATOR, PHASE6_MONITOR):
        assert snippet in blocks


@pytest.mark.integration
class TestUserPlanSnippets:
    def test_phase4_trip_and_reset(self, tmp_path: Path) -> None:
        lines = lines_of(run_python(PHASE4_INTEGRATOR, tmp_path, fresh_env()))
        assert lines == [
            "Circuit breaker tripped: True",
            "Circuit breaker reset: False",
            "Statistics:",
            "  Enabled: True",
            "  Circuit breaker active: False",
        ]
        stored = json.loads((tmp_path / "state" / "mcp_circuit_breaker.json").read_text())
        assert (stored["state"], stored["trips"], stored["manual_resets"]) == ("closed", 1, 1)

    @pytest.mark.slow
    def test_phase2_scan_of_this_repository(self, tmp_path: Path) -> None:
        env = fresh_env(MCP_MARKET_HOURS_ENABLED="false")
        lines = lines_of(run_python(PHASE2_SCAN, tmp_path, env, timeout=110))
        assert lines[:2] == ["Risk parameter scan:", "  Status: completed"]
        scanned = re.fullmatch(r"  Scanned: (\d+) params", lines[2])
        assert scanned is not None
        uses = dict(re.fullmatch(r"  (\w+): (\d+) uses", line).groups() for line in lines[3:])  # type: ignore[union-attr]
        assert len(uses) == int(scanned.group(1)) > 0
        assert int(uses["max_daily_loss"]) > 0  # settings, breaker and executor all use it

    def test_phase2_coverage_on_a_fixture_project(self, tmp_path: Path) -> None:
        # never this repository's own suite from inside it: the fresh process tests a tiny fixture project
        env = fresh_env(
            MCP_MARKET_HOURS_ENABLED="false",
            MCP_TESTING_PROJECT_ROOT=str(COVERED_PROJECT),
            MCP_TESTING_PATHS="tests",
            MCP_TESTING_SOURCE_PACKAGES="tinyrisk",
        )
        lines = lines_of(run_python(PHASE2_COVERAGE, tmp_path, env))
        assert lines == [
            "Test coverage verification:",
            "  Status: completed",
            "  Coverage: 100.0%",
            "  Threshold: 85.0%",
            "  Meets threshold: True",
        ]

    @pytest.mark.slow
    def test_phase6_monitoring_for_60_seconds(self, tmp_path: Path) -> None:
        # as written: 12 checks 5 s apart (about 60 s); bounded by the subprocess timeout
        lines = lines_of(run_python(PHASE6_MONITOR, tmp_path, fresh_env(), timeout=110))
        assert lines[0] == "Monitoring resource usage for 60 seconds..."
        samples = [
            re.fullmatch(r"(\d+)s - CPU: ([\d.]+)%, Memory: ([\d.]+)MB, Within limits: True", x) for x in lines[1:]
        ]
        assert all(samples), lines
        assert [int(m.group(1)) for m in samples if m] == list(range(0, 60, 5))
        assert all(0 < float(m.group(3)) < 1000 for m in samples if m)


# --- the sidecar never writes the bot's files ----------------------------------------------------------

AUDITED_SIDECAR = r"""
import asyncio, json, os, sys

PROTECTED = {os.path.realpath(p) for p in json.loads(os.environ["PROTECTED_FILES"])}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
PATH_EVENTS = {"os.rename", "os.remove", "os.truncate", "os.chmod", "os.chown", "os.utime", "os.link",
               "os.symlink", "shutil.move", "shutil.copyfile", "shutil.rmtree"}
violations, reads = [], []

def _real(value):
    if isinstance(value, (str, bytes, os.PathLike)):
        return os.path.realpath(os.fsdecode(value))
    return None

def audit(event, args):
    if event == "open":
        path, mode, flags = (list(args) + [None, None])[:3]
        target = _real(path)
        if target in PROTECTED:
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & WRITE_FLAGS)
            (violations if writes else reads).append([event, target, mode, flags])
    elif event in PATH_EVENTS:
        touched = [_real(arg) for arg in args]
        if any(t in PROTECTED for t in touched):
            violations.append([event] + [str(a) for a in args])

sys.addaudithook(audit)
open(os.environ["AUDIT_CANARY"], "a").close()  # proves the hook sees a write: must be the one violation

from core.integrations.mcp_risk_integration import get_mcp_risk_integrator

async def main():
    integrator = get_mcp_risk_integrator()
    await integrator.initialize()  # the sidecar's default: read-only views over the bot's state files
    monitored = [await integrator.monitor_all() for _ in range(3)]
    scan = await integrator.scan_risk_parameters()
    coverage = await integrator.verify_test_coverage()
    await integrator.trip_mcp_circuit_breaker("audit")
    await integrator.reset_mcp_circuit_breaker()
    refused = []
    for view in (integrator.circuit_breaker_view, integrator.trade_executor_view):
        try:
            view.state = "HALTED"
        except AttributeError as e:
            refused.append(type(e).__name__)
    print(json.dumps({
        "violations": violations, "reads": len(reads), "refused": refused,
        "statuses": [m["risk_state"]["executor"].get("view", {}).get("status") for m in monitored],
        "trading_state": monitored[-1]["risk_state"]["trading_state"],
        "scan": scan["status"], "coverage": coverage["status"],
    }))

asyncio.run(main())
"""


def bot_files(state_dir: Path, *, corrupt_snapshot: bool) -> dict[Path, bytes]:
    """The bot's two files as the bot writes them, then made read-only (0444)."""
    state_dir.mkdir(parents=True)
    snapshot = state_dir / "risk_state.json"
    breaker = state_dir / "circuit_breaker.json"
    if corrupt_snapshot:
        snapshot.write_bytes(b'{"schema_version": 1, "trading_state": "ACT')
    else:
        atomic_write_json(snapshot, {"schema_version": 1, "trading_state": "ACTIVE", "latency_ms": {"p99": 5.0}})
    atomic_write_json(breaker, {"schema_version": 1, "state": "ACTIVE", "trip_history": []})
    for path in (snapshot, breaker):
        path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    return {path: path.read_bytes() for path in (snapshot, breaker)}


def fingerprint(path: Path) -> tuple[bytes, int, int, int]:
    info = path.stat()
    return path.read_bytes(), info.st_mtime_ns, info.st_ino, stat.S_IMODE(info.st_mode)


@pytest.mark.integration
@pytest.mark.parametrize("corrupt_snapshot", [False, True], ids=["valid-snapshot", "corrupt-snapshot"])
def test_the_sidecar_never_writes_the_bot_files(tmp_path: Path, corrupt_snapshot: bool) -> None:
    state_dir = tmp_path / "state"
    files = bot_files(state_dir, corrupt_snapshot=corrupt_snapshot)
    before = {path: fingerprint(path) for path in files}
    # root ignores 0444, so the bytes/mtime/inode comparison and the audit hook are the real proof
    canary = tmp_path / "canary.json"
    env = fresh_env(
        STATE_DIR=str(state_dir),
        PROTECTED_FILES=json.dumps([*map(str, files), str(canary)]),
        AUDIT_CANARY=str(canary),
        MCP_MARKET_HOURS_ENABLED="false",
        MCP_SEARCH_ROOT=str(COVERED_PROJECT),
        MCP_TESTING_PROJECT_ROOT=str(COVERED_PROJECT),
        MCP_TESTING_PATHS="tests",
        MCP_TESTING_SOURCE_PACKAGES="tinyrisk",
    )
    work = tmp_path / "work"
    work.mkdir()
    report: dict[str, Any] = json.loads(lines_of(run_python(AUDITED_SIDECAR, work, env))[-1])
    assert [violation[:3] for violation in report["violations"]] == [["open", str(canary), "a"]]
    assert report["reads"] >= 3  # the views did read the files, through read-only opens
    assert report["refused"] == ["ReadOnlyViolation", "ReadOnlyViolation"]
    assert report["statuses"] == (["corrupt"] * 3 if corrupt_snapshot else ["ok"] * 3)
    assert report["trading_state"] == "ACTIVE"
    assert (report["scan"], report["coverage"]) == ("completed", "completed")
    assert {path: fingerprint(path) for path in files} == before
    leftovers = sorted(p.name for p in state_dir.iterdir() if p.name.startswith(("risk_state", "circuit_breaker")))
    assert leftovers == ["circuit_breaker.json", "risk_state.json"]  # no temp files, no .corrupt- copies


# the real sidecar (`python -m mcp.main_mcp all`) with an audit hook installed before anything is imported;
# every open of a protected file goes to a report file opened beforehand (os.write: no open() inside the hook)
AUDITED_MAIN_MCP = r"""
import json, os, runpy, sys

PROTECTED = {os.path.realpath(p) for p in json.loads(os.environ["PROTECTED_FILES"])}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
PATH_EVENTS = {"os.rename", "os.remove", "os.truncate", "os.chmod", "os.chown", "os.utime", "os.link",
               "os.symlink", "shutil.move", "shutil.copyfile", "shutil.rmtree"}
REPORT = os.open(os.environ["AUDIT_REPORT"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

def note(*fields):
    line = json.dumps([f if isinstance(f, (int, type(None))) else str(f) for f in fields]) + "\n"
    os.write(REPORT, line.encode())

def _real(value):
    if isinstance(value, (str, bytes, os.PathLike)):
        return os.path.realpath(os.fsdecode(value))
    return None

def audit(event, args):
    if event == "open":
        path, mode, flags = (list(args) + [None, None])[:3]
        target = _real(path)
        if target in PROTECTED:
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & WRITE_FLAGS)
            note("WRITE" if writes else "read", event, target, mode, flags)
    elif event in PATH_EVENTS and any(_real(arg) in PROTECTED for arg in args):
        note("WRITE", event, *args)

sys.addaudithook(audit)
open(os.environ["AUDIT_CANARY"], "a").close()  # proves the hook sees a write: must be the one violation
sys.argv = ["mcp.main_mcp", "all"]
runpy.run_module("mcp.main_mcp", run_name="__main__", alter_sys=True)
"""


def audit_lines(report: Path) -> list[list[Any]]:
    if not report.exists():
        return []
    return [json.loads(line) for line in report.read_text().splitlines() if line.strip()]


@pytest.mark.integration
@pytest.mark.slow
def test_the_running_sidecar_never_writes_the_bot_files(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    files = bot_files(state_dir, corrupt_snapshot=False)
    before = {path: fingerprint(path) for path in files}
    report = tmp_path / "audit.jsonl"
    canary = tmp_path / "canary.json"
    env = fresh_env(
        STATE_DIR=str(state_dir),
        LOG_DIR=str(tmp_path / "logs"),
        PROTECTED_FILES=json.dumps([*map(str, files), str(canary)]),
        AUDIT_CANARY=str(canary),
        AUDIT_REPORT=str(report),
        MCP_MARKET_HOURS_ENABLED="false",
        MCP_SEARCH_ROOT=str(COVERED_PROJECT),
        MCP_TESTING_PROJECT_ROOT=str(COVERED_PROJECT),
        MONITOR_INTERVAL_SECONDS="1",
        DASHBOARD_PORT="0",
        METRICS_PORT="0",
    )
    work = tmp_path / "work"
    work.mkdir()
    sidecar = subprocess.Popen(
        [sys.executable, "-c", AUDITED_MAIN_MCP],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60  # start-up on a loaded 2-core machine, then a few monitoring rounds
        while time.monotonic() < deadline and sidecar.poll() is None:
            if sum(1 for line in audit_lines(report) if line[0] == "read") >= 6:
                break
            time.sleep(0.5)
        assert sidecar.poll() is None, f"the sidecar exited early ({sidecar.returncode})"
    finally:
        if sidecar.poll() is None:
            sidecar.send_signal(signal.SIGTERM)
        try:
            _, stderr = sidecar.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            sidecar.kill()
            _, stderr = sidecar.communicate(timeout=10)
    lines = audit_lines(report)
    assert sum(1 for line in lines if line[0] == "read") >= 6, f"the sidecar never read the bot's files:\n{stderr}"
    assert [line[:3] for line in lines if line[0] == "WRITE"] == [["WRITE", "open", str(canary)]]
    assert {path: fingerprint(path) for path in files} == before
