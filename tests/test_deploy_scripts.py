"""The deployment scripts, run for real: shellcheck; validate_health.sh against a live sidecar and against
nothing; a staging dry run that changes nothing; the market-hours refusal; production deploys into a temporary
install under the pid-file supervisor (as on a machine without systemd), a manual rollback, and a broken
release rolled back automatically while the previous sidecar comes back.

Every sidecar here is started by the scripts or by a fixture, on free loopback ports, and stopped by its pid.
The install's .venv is a symlink to the interpreter environment running the tests.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = PROJECT_ROOT / "scripts"
REQUIRED_TOOLS = ("bash", "curl", "tar", "flock", "setsid", "df")
MISSING_TOOLS = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
needs_tools = pytest.mark.skipif(
    bool(MISSING_TOOLS), reason=f"SKIPPED LOUDLY: the deployment scripts need {MISSING_TOOLS}, not installed"
)
RELEASE_PATHS = [
    "core",
    "mcp",
    "utils",
    "config",
    "scripts",
    "data",
    "tests",
    "main.py",
    "pyproject.toml",
    "constraints.txt",
    "Makefile",
    "README.md",
    ".env.example",
]
STRIPPED_PREFIXES = ("MCP_", "DASHBOARD_", "METRICS_", "MONITOR", "TELEGRAM_", "ALERT", "DEPLOY_", "DAILY_LOSS_")
STRIPPED_NAMES = {"ENVIRONMENT", "STATE_DIR", "LOG_DIR", "DRY_RUN", "NOTIFY_SOCKET", "PYTHONPATH"}
MARKER = '\nif __name__ == "__main__":'
# an account that exists everywhere, standing in for `polymarket` when the tests run as root
SERVICE_USER = "nobody"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def script_env(install: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without our settings, pointed at `install`, under the pid-file supervisor."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(STRIPPED_PREFIXES) and k not in STRIPPED_NAMES}
    env.update(
        DEPLOY_INSTALL_DIR=str(install),
        DEPLOY_SUPERVISOR="pidfile",
        DEPLOY_MIN_FREE_MB="50",
        DEPLOY_SAMPLE_SECONDS="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


def run(script: Path, *args: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run a script; stdout and stderr together, as an operator sees them."""
    return subprocess.run(
        [str(script), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def lines_with(output: str, tag: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(f"[{tag}]")]


def tree_digest(root: Path, skip: tuple[str, ...] = ()) -> str:
    """Names, types, modes and contents of everything under `root` (top-level folders in `skip` left out)."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == root:
            dirnames[:] = [name for name in dirnames if name not in skip]
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = here / name
            info = path.lstat()
            digest.update(f"{path.relative_to(root)}\0{info.st_mode}\0".encode())
            if path.is_symlink():
                digest.update(os.readlink(path).encode())
            elif path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()


def snapshot_release(target: Path) -> Path:
    """A copy of this repository's release files: what an operator deploys from a checkout."""
    target.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in RELEASE_PATHS:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore, symlinks=True)
        elif source.exists():
            shutil.copy2(source, target / name)
    return target


def new_install(root: Path, **settings: str) -> Path:
    """An install directory holding only its interpreter (.venv) and its configuration (.env)."""
    root.mkdir(parents=True)
    (root / ".venv").symlink_to(Path(sys.prefix))
    lines = [f"{key.upper()}={value}" for key, value in settings.items()]
    (root / ".env").write_text("\n".join(lines) + "\n")
    return root


@contextlib.contextmanager
def bot_beside(install: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real bot (paper trading, no sidecar of its own) writing the install's state, as in production.

    The overall health verdict is the one of /health: with no bot, main_bot is critical and validation fails
    (rightly), so the checks that expect a pass run beside a live bot.
    """
    env = script_env(install, STATE_DIR=str(install / "state"), LOG_DIR=str(install / "logs"))
    env.update(MCP_INTEGRATION_ENABLED="false", PYTHONUNBUFFERED="1")
    with (install / "bot.out").open("wb") as out:
        bot = subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "main.py")],
            cwd=install,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not (install / "state" / "risk_state.json").exists():
            if bot.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the bot did not start:\n{(install / 'bot.out').read_text()[-3000:]}")
            time.sleep(0.2)
        yield bot
    finally:
        if bot.poll() is None:
            bot.send_signal(signal.SIGTERM)
            try:
                bot.wait(timeout=15)
            except subprocess.TimeoutExpired:
                bot.kill()
                bot.wait(timeout=5)


def sidecar_pid(install: Path) -> int | None:
    """The pid in the install's pid file when it is a live sidecar, else None."""
    try:
        pid = int((install / "state" / "mcp_sidecar.pid").read_text().split()[0])
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    alive = stat.rsplit(")", 1)[1].split()[0] != "Z"
    return pid if alive and b"mcp.main_mcp" in cmdline else None


def deployed_source(install: Path) -> str:
    text = (install / "DEPLOYED_VERSION").read_text()
    match = re.search(r"^source=(.*)$", text, re.MULTILINE)
    assert match, text
    return match.group(1)


def stop_sidecar(install: Path) -> None:
    """Stop the sidecar of `install` through its supervisor; SIGKILL our pid if that did not work."""
    supervisor = SCRIPTS / "mcp" / "pidfile_supervisor.sh"
    run(supervisor, "stop", env=script_env(install), timeout=60)
    pid = sidecar_pid(install)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)


def install_settings() -> dict[str, str]:
    """Free ports and fast rounds. The test machine is shared, so the sidecar's CPU limit is lifted: its start-up
    scan would otherwise turn it critical for a round and the monitoring step would see an unrelated rise."""
    return {
        "dashboard_port": str(free_port()),
        "metrics_port": str(free_port()),
        "monitor_interval_seconds": "1",
        "mcp_health_loop_seconds": "1",
        "mcp_resource_limit_cpu_percent": "100",
    }


# --- shellcheck -------------------------------------------------------------------------------------


def shell_scripts() -> list[Path]:
    found = []
    for path in sorted(SCRIPTS.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            head = path.read_bytes()[:64]
            if path.suffix == ".sh" or head.startswith(b"#!/usr/bin/env bash") or head.startswith(b"#!/bin/bash"):
                found.append(path)
    return found


def test_every_script_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("SKIPPED LOUDLY: shellcheck is not installed (Debian package 'shellcheck'): scripts NOT checked")
    scripts = shell_scripts()
    assert {p.name for p in scripts} >= {
        "deploy_mcp_servers.sh",
        "deploy_staging.sh",
        "deploy_production.sh",
        "validate_health.sh",
        "monitor_deployment.sh",
        "rollback_mcp.sh",
        "pidfile_supervisor.sh",
        "lib.sh",
    }
    result = subprocess.run(
        [shellcheck, "-x", *map(str, scripts)], capture_output=True, text=True, timeout=120, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


# --- validate_health.sh and monitor_deployment.sh against a live sidecar ---------------------------


@dataclass
class Live:
    install: Path
    process: subprocess.Popen[bytes]
    bot: subprocess.Popen[bytes]


def linked_install(root: Path, **settings: str) -> Path:
    """An install whose code is this repository (symlinks), for checks that need no copy."""
    install = new_install(root, **settings)
    for name in RELEASE_PATHS:
        if (PROJECT_ROOT / name).exists():
            (install / name).symlink_to(PROJECT_ROOT / name)
    return install


@pytest.fixture(scope="module")
def live_sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """`python -m mcp.main_mcp all` in a temporary install beside a live bot, waited for until `status` passes."""
    install = linked_install(tmp_path_factory.mktemp("live") / "install", **install_settings())
    env = script_env(install)
    with bot_beside(install) as bot:
        yield from _live_sidecar(install, env, bot)


def _live_sidecar(install: Path, env: dict[str, str], bot: subprocess.Popen[bytes]) -> Iterator[Live]:
    with (install / "sidecar.out").open("wb") as out:
        process = subprocess.Popen(
            [str(install / ".venv" / "bin" / "python"), "-m", "mcp.main_mcp", "all"],
            cwd=install,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            status = subprocess.run(
                [str(install / ".venv" / "bin" / "python"), "-m", "mcp.main_mcp", "status"],
                cwd=install,
                env=env,
                capture_output=True,
                timeout=30,
                check=False,
            )
            if status.returncode == 0:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the sidecar did not become healthy:\n{(install / 'sidecar.out').read_text()[-3000:]}")
        yield Live(install, process, bot)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


EXPECTED_PASSES = (
    "configuration",
    "dashboard",
    "dashboard /health",
    "metrics",
    "sidecar",
    "codebase_search",
    "testing",
    "monitoring",
    "sidecar CPU",
    "sidecar memory",
    "integration",
    "disk",
)


@needs_tools
@pytest.mark.parametrize("mode", [[], ["--staging"], ["--production"], ["--post-deploy"]], ids=str)
def test_validate_health_passes_against_a_running_sidecar(live_sidecar: Live, mode: list[str]) -> None:
    result = run(SCRIPTS / "mcp" / "validate_health.sh", *mode, env=script_env(live_sidecar.install))
    assert result.returncode == 0, result.stdout
    assert not lines_with(result.stdout, "FAIL"), result.stdout
    passed = {line[len("[PASS] ") :].split(":", 1)[0] for line in lines_with(result.stdout, "PASS")}
    assert passed >= set(EXPECTED_PASSES), result.stdout
    assert result.stdout.rstrip().endswith("[PASS] All health checks passed")


@needs_tools
def test_monitor_deployment_watches_a_stable_sidecar(live_sidecar: Live) -> None:
    script = SCRIPTS / "mcp" / "monitor_deployment.sh"
    env = script_env(live_sidecar.install)
    result = run(script, "--seconds", "2", "--interval", "1", env=env)
    assert result.returncode == 0, result.stdout
    assert f"[PASS] sidecar pid {live_sidecar.process.pid} stable for 2 s" in result.stdout
    # the bot dies: main_bot turns critical in every round, against a 0 % baseline that is a rise
    live_sidecar.bot.kill()
    live_sidecar.bot.wait(timeout=10)
    time.sleep(4)  # 1 s rounds, 1.5 s minimum duration
    worse = run(script, "--seconds", "1", "--interval", "1", "--baseline", "0", "--max-rise", "0", env=env)
    assert worse.returncode == 1, worse.stdout
    assert "limit +0.0)" in lines_with(worse.stdout, "FAIL")[-1]


# --- beyond loopback: the scripts send DASHBOARD_TOKEN ------------------------------------------------

# DASHBOARD_HOST=0.0.0.0 is not loopback for the sidecar (mcp.dashboard.security.is_loopback_host), so both
# ports require the token; the scripts reach it on 127.0.0.1 (url_host), a name the Host allow-list always
# accepts. No traffic leaves the machine.
BEYOND_LOOPBACK_HOST = "0.0.0.0"
SCRIPT_TOKEN = "gapdeploy-Secret-9c1e5b"


@pytest.fixture(scope="module")
def token_sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A live sidecar (beside a live bot) listening on every interface, DASHBOARD_TOKEN in the install's .env."""
    settings = {**install_settings(), "dashboard_host": BEYOND_LOOPBACK_HOST, "dashboard_token": SCRIPT_TOKEN}
    install = linked_install(tmp_path_factory.mktemp("token") / "install", **settings)
    env = script_env(install)
    with bot_beside(install) as bot:
        yield from _live_sidecar(install, env, bot)


def command_lines_holding(needle: bytes, seen: dict[str, int]) -> list[str]:
    """The command lines of every process now running that contain `needle`; `seen` counts what was looked at."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        seen["processes"] += 1
        for name in (b"curl", b"deploy_support.py", b"validate_health.sh"):
            if name in cmdline:
                seen[name.decode()] += 1
        if needle in cmdline:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def run_watching_ps(
    script: Path, *args: str, env: dict[str, str], needle: str
) -> tuple[str, list[str], dict[str, int]]:
    """Run `script` while polling every process's command line for `needle` (bounded: until it exits, 240 s at
    most); its output, the command lines that held the needle, and how many processes of each kind were seen."""
    seen = {"processes": 0, "curl": 0, "deploy_support.py": 0, "validate_health.sh": 0}
    leaks: list[str] = []
    process = subprocess.Popen(
        [str(script), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    stdout = process.stdout
    assert stdout is not None
    # the output goes to a thread so that a full pipe never stalls the script while we poll
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.append(stdout.read()), daemon=True)
    reader.start()
    deadline = time.monotonic() + 240
    try:
        while process.poll() is None and time.monotonic() < deadline:
            leaks += command_lines_holding(needle.encode(), seen)
            time.sleep(0.002)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        reader.join(30)
        stdout.close()
    return b"".join(chunks).decode(errors="replace"), leaks, seen


@needs_tools
def test_validate_health_sends_the_token_beyond_loopback_and_never_shows_it(token_sidecar: Live) -> None:
    script = SCRIPTS / "mcp" / "validate_health.sh"
    output, leaks, seen = run_watching_ps(script, env=script_env(token_sidecar.install), needle=SCRIPT_TOKEN)
    assert not lines_with(output, "FAIL"), output
    passed = {line[len("[PASS] ") :].split(":", 1)[0] for line in lines_with(output, "PASS")}
    assert passed >= set(EXPECTED_PASSES), output
    assert output.rstrip().endswith("[PASS] All health checks passed")
    assert SCRIPT_TOKEN not in output
    assert leaks == [], "the token appeared on a command line (ps shows it)"
    # the poll really watched the run: the script and its settings helper were seen (curl too, most times)
    assert seen["validate_health.sh"] > 0 and seen["deploy_support.py"] > 0, seen


@needs_tools
def test_without_the_token_the_sidecar_answers_nothing_beyond_loopback(token_sidecar: Live) -> None:
    """The same sidecar, asked by curl with no header: the scripts' token is what made the checks pass."""
    port = next(
        line.split("=", 1)[1]
        for line in (token_sidecar.install / ".env").read_text().splitlines()
        if line.startswith("METRICS_PORT=")
    )
    result = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/metrics"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.stdout == "401"


@needs_tools
@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"DASHBOARD_TOKEN": "not-the-sidecars-token"}, "token refused: the sidecar refused the DASHBOARD_TOKEN"),
        ({"DASHBOARD_TOKEN": "", "DASHBOARD_HOST": "127.0.0.1"}, "token missing: the sidecar listens beyond loopback"),
    ],
    ids=["wrong-token", "no-token"],
)
def test_a_refused_or_missing_token_fails_naming_dashboard_token(
    token_sidecar: Live, overrides: dict[str, str], words: str
) -> None:
    # the operator's environment overrides the install's .env: the scripts then hold another token than the sidecar
    env = script_env(token_sidecar.install, **overrides)
    result = run(SCRIPTS / "mcp" / "validate_health.sh", env=env)
    assert result.returncode == 1, result.stdout
    failed = {line.split(":", 1)[0]: line for line in lines_with(result.stdout, "FAIL")}
    for check in ("[FAIL] dashboard", "[FAIL] dashboard /health", "[FAIL] metrics"):
        assert words in failed.get(check, ""), result.stdout
    monitor = run(SCRIPTS / "mcp" / "monitor_deployment.sh", "--seconds", "2", "--interval", "1", env=env)
    assert monitor.returncode == 1, monitor.stdout
    assert "[FAIL] metrics: token refused or missing (DASHBOARD_TOKEN)" in monitor.stdout
    assert "not-the-sidecars-token" not in result.stdout + monitor.stdout


@needs_tools
def test_monitor_deployment_sends_the_token_beyond_loopback(token_sidecar: Live) -> None:
    env = script_env(token_sidecar.install)
    result = run(SCRIPTS / "mcp" / "monitor_deployment.sh", "--seconds", "2", "--interval", "1", env=env)
    assert result.returncode == 0, result.stdout
    assert f"[PASS] sidecar pid {token_sidecar.process.pid} stable for 2 s" in result.stdout
    assert SCRIPT_TOKEN not in result.stdout


@needs_tools
def test_validate_health_fails_when_nothing_runs(tmp_path: Path) -> None:
    install = linked_install(tmp_path / "install", **install_settings())
    result = run(SCRIPTS / "mcp" / "validate_health.sh", env=script_env(install))
    assert result.returncode == 1
    failed = {line[len("[FAIL] ") :].split(":", 1)[0] for line in lines_with(result.stdout, "FAIL")}
    assert failed >= {"dashboard", "metrics", "sidecar", "codebase_search", "testing", "monitoring"}, result.stdout
    assert re.search(r"^\[FAIL\] \d+ health check\(s\) failed$", result.stdout, re.MULTILINE)
    assert "[PASS] integration" in result.stdout, "checks that can pass still run and pass"


@needs_tools
def test_validate_health_names_invalid_settings(tmp_path: Path) -> None:
    install = linked_install(tmp_path / "install", monitor_interval_seconds="-5", dashboard_port=str(free_port()))
    result = run(SCRIPTS / "mcp" / "validate_health.sh", env=script_env(install))
    assert result.returncode == 1
    configuration = [line for line in lines_with(result.stdout, "FAIL") if line.startswith("[FAIL] configuration")]
    assert configuration and "MONITOR_INTERVAL_SECONDS" in configuration[0], result.stdout


@needs_tools
@pytest.mark.parametrize(
    ("script", "args", "code", "message"),
    [
        ("mcp/validate_health.sh", ["--bogus"], 2, "unknown option '--bogus'"),
        ("mcp/monitor_deployment.sh", ["--seconds", "soon"], 2, "expected non-negative numbers"),
        ("mcp/monitor_deployment.sh", ["--seconds"], 2, "--seconds needs a value"),
        ("mcp/rollback_mcp.sh", ["--backup"], 2, "--backup needs a file"),
        ("mcp/rollback_mcp.sh", [], 1, "no backup to restore"),
        ("mcp/pidfile_supervisor.sh", ["reload"], 2, "usage:"),
        ("deploy_mcp_servers.sh", [], 2, "usage:"),
        ("deploy_mcp_servers.sh", ["prod"], 2, "unknown argument 'prod'"),
        ("deploy_mcp_servers.sh", ["production", "--monitor-seconds", "5m"], 2, "must be a whole number"),
    ],
)
def test_scripts_refuse_malformed_arguments(
    tmp_path: Path, script: str, args: list[str], code: int, message: str
) -> None:
    install = new_install(tmp_path / "install")
    before = tree_digest(install)
    result = run(SCRIPTS / script, *args, env=script_env(install, DEPLOY_NOW_HOUR="20"))
    assert result.returncode == code, result.stdout
    assert message in result.stdout
    assert tree_digest(install) == before


@needs_tools
def test_rollback_refuses_an_archive_that_writes_outside_the_release(tmp_path: Path) -> None:
    install = linked_install(tmp_path / "install")
    evil = tmp_path / "mcp_20260101T000000Z.tar.gz"
    payload = tmp_path / "payload.txt"
    payload.write_text("overwrites the bot's state")
    with tarfile.open(evil, "w:gz") as archive:
        archive.add(payload, arcname="state/risk_state.json")
    before = tree_digest(install)
    result = run(SCRIPTS / "mcp" / "rollback_mcp.sh", "--backup", str(evil), env=script_env(install))
    assert result.returncode == 1
    assert "[ERROR] backup" in result.stdout and "state/risk_state.json" in result.stdout
    assert tree_digest(install) == before


# --- deploy: dry runs and the market-hours guard ----------------------------------------------------


@needs_tools
def test_staging_deploy_on_a_new_install_is_a_dry_run_that_changes_nothing(tmp_path: Path) -> None:
    install = new_install(tmp_path / "install", **install_settings())
    before = tree_digest(install)
    env = script_env(install, DEPLOY_NOW_HOUR="11", DEPLOY_SOURCE_DIR=str(PROJECT_ROOT))
    result = run(SCRIPTS / "mcp" / "deploy_staging.sh", env=env)
    assert result.returncode == 0, result.stdout
    assert "DRY_RUN=1" in result.stdout and "[INFO] DRY_RUN mode completed: no changes made" in result.stdout
    assert lines_with(result.stdout, "INFO") and not lines_with(result.stdout, "FAIL")
    assert "[PASS] release settings valid" in result.stdout
    assert result.stdout.rstrip().endswith("[PASS] All validations passed")
    assert tree_digest(install) == before


@needs_tools
@pytest.mark.parametrize("hour", ["8", "15", "08"])
def test_production_deploy_is_refused_during_market_hours_without_force(tmp_path: Path, hour: str) -> None:
    install = new_install(tmp_path / "install")
    before = tree_digest(install)
    result = run(SCRIPTS / "deploy_mcp_servers.sh", "production", env=script_env(install, DEPLOY_NOW_HOUR=hour))
    assert result.returncode == 3, result.stdout
    assert "[ERROR] production deploys are refused from 8:00 to 16:00 UTC" in result.stdout
    assert tree_digest(install) == before


@needs_tools
@pytest.mark.parametrize("hour", ["7", "16"])
def test_production_deploy_outside_market_hours_goes_on_to_the_pre_flight(tmp_path: Path, hour: str) -> None:
    install = new_install(tmp_path / "install")
    not_a_release = tmp_path / "empty"
    not_a_release.mkdir()
    env = script_env(install, DEPLOY_NOW_HOUR=hour, DEPLOY_SOURCE_DIR=str(not_a_release))
    result = run(SCRIPTS / "deploy_mcp_servers.sh", "production", env=env)
    assert f"[PASS] deploy window: {hour}:00 UTC is outside market hours" in result.stdout
    assert result.returncode == 1 and "pre-flight failed" in result.stdout, result.stdout


@needs_tools
@pytest.mark.parametrize("hour", ["24", "ten", "-1", " "])
def test_a_malformed_deploy_hour_is_refused(tmp_path: Path, hour: str) -> None:
    install = new_install(tmp_path / "install")
    env = script_env(install, DEPLOY_NOW_HOUR=hour)
    result = run(SCRIPTS / "deploy_mcp_servers.sh", "production", env=env)
    assert result.returncode == 2, result.stdout
    assert "DEPLOY_NOW_HOUR" in result.stdout


# --- deploy for real: a production install under the pid-file supervisor ----------------------------


# After the close, so that production deploys go ahead. The machine running the tests is shared: its host CPU
# check turns critical at random, which the deploy's error rate (rightly) counts; a wide rollback threshold keeps
# that noise from deciding these tests. The threshold itself is exercised against a live sidecar in
# test_monitor_deployment_watches_a_stable_sidecar and, rule by rule, in tests/test_deploy_support.py.
DEPLOY_SETTINGS = {"DEPLOY_NOW_HOUR": "20", "DEPLOY_MAX_ERROR_RATE_RISE": "0.5"}


@dataclass
class Installed:
    root: Path
    install: Path
    v1: Path
    output: str

    def env(self, **extra: str) -> dict[str, str]:
        return script_env(self.install, **{**DEPLOY_SETTINGS, **extra})

    def release(self, name: str) -> Path:
        """A new release: a copy of v1 (its own scripts deploy it, as from a checkout)."""
        target = self.root / name
        shutil.copytree(self.v1, target, symlinks=True)
        return target


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """Release v1 deployed to production in a new install; v1's sidecar is running when every test ends."""
    if MISSING_TOOLS:
        pytest.skip(f"SKIPPED LOUDLY: the deployment scripts need {MISSING_TOOLS}, not installed")
    root = tmp_path_factory.mktemp("deploy")
    install = new_install(root / "install", **install_settings())
    v1 = snapshot_release(root / "v1")
    try:
        with bot_beside(install):  # production: the bot trades beside the sidecar being deployed
            env = script_env(install, **DEPLOY_SETTINGS)
            result = run(v1 / "scripts" / "deploy_mcp_servers.sh", "production", "--monitor-seconds", "3", env=env)
            if result.returncode != 0:
                pytest.fail(f"deploying v1 failed ({result.returncode}):\n{result.stdout}")
            yield Installed(root, install, v1, result.stdout)
    finally:
        stop_sidecar(install)


def test_production_deploy_installs_starts_validates_and_monitors(installed: Installed) -> None:
    output = installed.output
    assert not lines_with(output, "FAIL") and not lines_with(output, "ERROR"), output
    for expected in (
        "[PASS] pre-flight disk:",
        "[PASS] release imports:",
        "[INFO] backup: new install",
        "[PASS] install: copied core mcp utils config scripts",
        "[INFO] sidecar started (pid",
        "[PASS] All health checks passed",
        "stable for 3 s",
        "[INFO] Production deployment completed",
    ):
        assert expected in output, f"{expected!r} missing from:\n{output}"
    assert deployed_source(installed.install) == str(installed.v1)
    pid = sidecar_pid(installed.install)
    assert pid is not None
    assert os.readlink(f"/proc/{pid}/cwd") == str(installed.install)
    assert (installed.install / "mcp" / "main_mcp.py").read_bytes() == (
        installed.v1 / "mcp" / "main_mcp.py"
    ).read_bytes()
    assert not list(installed.install.rglob("__pycache__")), "the sidecar runs with PYTHONDONTWRITEBYTECODE"


def test_staging_dry_run_against_the_running_install_changes_nothing(installed: Installed) -> None:
    pid = sidecar_pid(installed.install)
    # state/ and logs/ are the running sidecar's own; everything else must stay byte for byte
    before = tree_digest(installed.install, skip=("state", "logs"))
    result = run(installed.v1 / "scripts" / "deploy_mcp_servers.sh", "staging", env=installed.env())
    assert result.returncode == 0, result.stdout
    assert f"[INFO] pre-flight sidecar: running (pid {pid}); error rate before: rate=" in result.stdout
    assert "[INFO] DRY_RUN: would back up" in result.stdout
    assert tree_digest(installed.install, skip=("state", "logs")) == before
    assert sidecar_pid(installed.install) == pid


def test_forced_deploy_in_market_hours_then_manual_rollback(installed: Installed) -> None:
    v2 = installed.release("v2")
    (v2 / "data" / "release-note.txt").write_text("v2\n")
    old_pid = sidecar_pid(installed.install)
    deploy = run(
        v2 / "scripts" / "deploy_mcp_servers.sh",
        "production",
        "--force",
        "--monitor-seconds",
        "3",
        env=installed.env(DEPLOY_NOW_HOUR="10", DEPLOY_SERVICE_USER=SERVICE_USER),
    )
    assert deploy.returncode == 0, deploy.stdout
    assert "going on because of --force" in deploy.stdout
    if os.geteuid() == 0:
        # run as root: the code stays root's, readable by the service's group only; state/ and logs/ are its own
        service = pwd.getpwnam(SERVICE_USER)
        main_stat = (installed.install / "mcp" / "main_mcp.py").stat()
        assert (main_stat.st_uid, main_stat.st_gid) == (0, service.pw_gid)
        assert main_stat.st_mode & 0o077 == 0o040, oct(main_stat.st_mode)
        assert (installed.install / "state").stat().st_uid == service.pw_uid
        assert f"group {grp.getgrgid(service.pw_gid).gr_name}" in deploy.stdout
    assert deployed_source(installed.install) == str(v2)
    assert (installed.install / "data" / "release-note.txt").exists()
    new_pid = sidecar_pid(installed.install)
    assert new_pid is not None and new_pid != old_pid
    backups = sorted((installed.install / "backups" / "mcp").glob("mcp_*.tar.gz"))
    assert backups, deploy.stdout
    with tarfile.open(backups[-1]) as archive:
        names = set(archive.getnames())
        version = archive.extractfile("DEPLOYED_VERSION")
        assert version is not None
        assert f"source={installed.v1}" in version.read().decode()
    assert {".env", "mcp/main_mcp.py", "config/settings.py"} <= names
    assert not any(name.startswith(("state", "logs", ".venv", "backups")) for name in names)
    assert oct(backups[-1].stat().st_mode & 0o777) == "0o600", "the backup holds .env"

    # the operator's rollback, from the install's own copy of the scripts
    rollback = run(installed.install / "scripts" / "mcp" / "rollback_mcp.sh", env=script_env(installed.install))
    assert rollback.returncode == 0, rollback.stdout
    assert f"[PASS] restored {backups[-1]}" in rollback.stdout
    assert "[PASS] All health checks passed" in rollback.stdout
    assert deployed_source(installed.install) == str(installed.v1)
    assert not (installed.install / "data" / "release-note.txt").exists()
    restored_pid = sidecar_pid(installed.install)
    assert restored_pid is not None and restored_pid != new_pid


def test_a_release_that_dies_at_start_is_rolled_back_and_the_previous_sidecar_runs_again(
    installed: Installed,
) -> None:
    broken = installed.release("v3-broken")
    main = broken / "mcp" / "main_mcp.py"
    source = main.read_text()
    assert source.count(MARKER) == 1, "mcp/main_mcp.py changed shape: update how this test breaks it"
    main.write_text(
        source.replace(MARKER, '\ndef main(argv=None):\n    raise SystemExit("regression: dies at start")\n\n' + MARKER)
    )
    old_pid = sidecar_pid(installed.install)
    result = run(
        broken / "scripts" / "deploy_mcp_servers.sh", "production", "--monitor-seconds", "3", env=installed.env()
    )
    assert result.returncode == 1, result.stdout
    assert "regression: dies at start" in result.stdout, "the failed start's own output is shown"
    assert "[ERROR] deploy failed: the new sidecar did not start" in result.stdout
    assert "failed and was rolled back" in result.stdout
    assert deployed_source(installed.install) == str(installed.v1)
    assert "regression" not in (installed.install / "mcp" / "main_mcp.py").read_text()
    pid = sidecar_pid(installed.install)
    assert pid is not None and pid != old_pid
    health = run(SCRIPTS / "mcp" / "validate_health.sh", env=script_env(installed.install))
    assert health.returncode == 0, health.stdout


def test_a_release_whose_settings_do_not_validate_is_refused_before_any_change(installed: Installed) -> None:
    bad = installed.release("v4-bad-settings")
    settings = bad / "config" / "settings.py"
    text = settings.read_text()
    # a default the install's .env does not override, so the install's configuration cannot save it
    good_default = "dashboard_refresh_seconds: float = Field(default=5.0, gt=0)"
    assert good_default in text, "config/settings.py changed shape: update how this test breaks it"
    settings.write_text(text.replace(good_default, "dashboard_refresh_seconds: float = Field(default=-1.0, gt=0)"))
    pid = sidecar_pid(installed.install)
    before = tree_digest(installed.install, skip=("state", "logs"))
    result = run(bad / "scripts" / "deploy_mcp_servers.sh", "production", "--monitor-seconds", "3", env=installed.env())
    assert result.returncode == 1, result.stdout
    assert "[FAIL] release settings" in result.stdout and "DASHBOARD_REFRESH_SECONDS" in result.stdout
    assert "[ERROR] pre-flight failed" in result.stdout
    assert tree_digest(installed.install, skip=("state", "logs")) == before
    assert sidecar_pid(installed.install) == pid


# --- deploy for real beyond loopback: health validation and the error-rate monitor carry the token ---------


@needs_tools
def test_production_deploys_beyond_loopback_validate_and_monitor_with_the_token(tmp_path: Path) -> None:
    """Without the token every step after the restart would get 401 and roll back: two deploys onto a sidecar on
    0.0.0.0, the second one reading the running sidecar's error rate (its baseline) through the guarded /metrics."""
    settings = {**install_settings(), "dashboard_host": BEYOND_LOOPBACK_HOST, "dashboard_token": SCRIPT_TOKEN}
    install = new_install(tmp_path / "install", **settings)
    v1 = snapshot_release(tmp_path / "v1")
    env = script_env(install, **DEPLOY_SETTINGS)
    try:
        with bot_beside(install):
            first = run(v1 / "scripts" / "deploy_mcp_servers.sh", "production", "--monitor-seconds", "3", env=env)
            assert first.returncode == 0, first.stdout
            pid = sidecar_pid(install)
            assert pid is not None
            output, leaks, seen = run_watching_ps(
                v1 / "scripts" / "deploy_mcp_servers.sh",
                "production",
                "--monitor-seconds",
                "3",
                env=env,
                needle=SCRIPT_TOKEN,
            )
    finally:
        stop_sidecar(install)
    for result in (first.stdout, output):
        assert not lines_with(result, "FAIL") and not lines_with(result, "ERROR"), result
        assert "[PASS] All health checks passed" in result and "stable for 3 s" in result, result
        assert "[INFO] Production deployment completed" in result, result
        assert SCRIPT_TOKEN not in result
    assert f"[INFO] pre-flight sidecar: running (pid {pid}); error rate before: rate=" in output, output
    assert leaks == [], "the token appeared on a command line (ps shows it)"
    assert seen["deploy_support.py"] > 0, seen


# --- a bot already down before the deploy is not the release's doing --------------------------------------

BOT_WAS_DOWN = "(the bot was not running before this deploy; not caused by it)"
EXCLUDED_NOTE = "(excluded main_bot, trade_executor, circuit_breaker: the bot was not running before this deploy)"
# a release that stops the bot when its sidecar starts: the bot runs before the deploy and is dead after it
BOT_KILLER = """
_release_main = main


def main(argv=None):
    import contextlib, json, os, signal

    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        os.kill(int(json.loads(open("state/risk_state.json").read())["pid"]), signal.SIGTERM)
    return _release_main(argv)

"""


@needs_tools
def test_a_deploy_judges_the_bot_only_when_the_pre_flight_saw_it_running(tmp_path: Path) -> None:
    """Bot running before and killed by the release: rolled back. Bot down before: the new sidecar stays, with the
    bot-derived components shown as [WARN] and excluded, and the exclusion is never applied unasked."""
    install = new_install(tmp_path / "install", **install_settings())
    v1 = snapshot_release(tmp_path / "v1")
    killer = tmp_path / "v2-kills-the-bot"
    shutil.copytree(v1, killer, symlinks=True)
    main = killer / "mcp" / "main_mcp.py"
    source = main.read_text()
    assert source.count(MARKER) == 1, "mcp/main_mcp.py changed shape: update how this test breaks it"
    main.write_text(source.replace(MARKER, BOT_KILLER + MARKER))
    v3 = tmp_path / "v3"
    shutil.copytree(v1, v3, symlinks=True)
    env = script_env(install, **DEPLOY_SETTINGS, DEPLOY_HEALTH_WAIT_SECONDS="20")
    deploy = ("production", "--monitor-seconds", "3")
    try:
        with bot_beside(install) as bot:
            first = run(v1 / "scripts" / "deploy_mcp_servers.sh", *deploy, env=env)
            assert first.returncode == 0, first.stdout
            # reap the bot the moment it dies, so that its pid is gone (a zombie would still count as running)
            threading.Thread(target=bot.wait, daemon=True).start()
            killed = run(killer / "scripts" / "deploy_mcp_servers.sh", *deploy, env=env)
            assert bot.wait(timeout=30) is not None
        assert "[INFO] pre-flight bot: running: pid" in killed.stdout, killed.stdout
        assert "[FAIL] overall health: critical (main_bot critical" in killed.stdout, killed.stdout
        assert "--bot-was-down" not in killed.stdout and BOT_WAS_DOWN not in killed.stdout, killed.stdout
        assert "[ERROR] deploy failed: the new sidecar is not healthy" in killed.stdout, killed.stdout
        # the files of v1 come back, but rollback_mcp.sh judges the dead bot too (nothing changes when the bot ran
        # before), so it reports the restored sidecar unhealthy: exit 4, "deploy failed AND rollback failed"
        assert "[PASS] restored" in killed.stdout and killed.returncode == 4, killed.stdout
        assert deployed_source(install) == str(v1), "the release that killed the bot was rolled back"

        # now the bot is down before the deploy: the new sidecar is judged by what it can cause
        down = run(v3 / "scripts" / "deploy_mcp_servers.sh", *deploy, env=env)
        assert down.returncode == 0, down.stdout
        assert "[WARN] pre-flight bot: not running:" in down.stdout, down.stdout
        assert "rolled back" not in down.stdout and not lines_with(down.stdout, "FAIL"), down.stdout
        warned = {line.split(":")[0] for line in lines_with(down.stdout, "WARN") if BOT_WAS_DOWN in line}
        assert warned == {"[WARN] main_bot", "[WARN] trade_executor", "[WARN] circuit_breaker"}, down.stdout
        assert "[WARN] main_bot: critical: bot process" in down.stdout, "the real status is shown"
        assert (
            "[PASS] overall health:" in down.stdout
            and f"; excluded circuit_breaker, main_bot, trade_executor {BOT_WAS_DOWN}" in down.stdout
        ), down.stdout
        assert f"[PASS] All health checks passed {EXCLUDED_NOTE}" in down.stdout, down.stdout
        assert "[INFO] Production deployment completed" in down.stdout
        assert down.stdout.rstrip().endswith(f"[PASS] All health checks passed {EXCLUDED_NOTE}"), down.stdout
        assert deployed_source(install) == str(v3)
        assert sidecar_pid(install) is not None

        # the same sidecar, validated without the pre-flight's word: the dead bot fails it, as /health says
        plain = run(SCRIPTS / "mcp" / "validate_health.sh", env=script_env(install))
        assert plain.returncode == 1, plain.stdout
        assert "[FAIL] overall health: critical (main_bot critical" in plain.stdout, plain.stdout
        assert BOT_WAS_DOWN not in plain.stdout and "excluded" not in plain.stdout, plain.stdout
    finally:
        stop_sidecar(install)


@pytest.mark.parametrize(
    "args", [["--bot-was-down"], ["--staging", "--bot-was-down"], ["--bot-was-down", "--post-deploy"]]
)
def test_validate_health_takes_bot_was_down_only_after_post_deploy(tmp_path: Path, args: list[str]) -> None:
    result = run(SCRIPTS / "mcp" / "validate_health.sh", *args, env=script_env(tmp_path))
    assert result.returncode == 2, result.stdout
    assert "[ERROR]" in result.stdout and "--bot-was-down" in result.stdout, result.stdout
