"""What the interoperability tests share: where scripts/install_interop_deps.sh put the third-party clients,
loud skips when it could not, the environment of a sidecar pointed at the fixture project, and an HTTP
endpoint: the real sidecar process serving /mcp on its dashboard, on free loopback ports."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from config.settings import PROJECT_ROOT

CACHE = PROJECT_ROOT / ".cache"
SDK_DIR = CACHE / "mcp-sdk"
SDK_PYTHON = SDK_DIR / "venv" / "bin" / "python"
INSPECTOR_DIR = CACHE / "inspector"
INSPECTOR_BIN = INSPECTOR_DIR / "node_modules" / ".bin" / "mcp-inspector"
FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "projects" / "mcp_project"
CLIENT_SCRIPT = PROJECT_ROOT / "scripts" / "mcp_interop" / "sdk_client.py"
TOKEN = "interop-token-5d1f0a"
INSTALL_HINT = "run `bash scripts/install_interop_deps.sh` (make test does)"


def require_installed(target: Path, what: str) -> None:
    """Skip LOUDLY, with the installer's own reason, when `target` was not installed."""
    failed = target / ".install-failed"
    if failed.exists():
        pytest.skip(f"INTEROP SKIPPED - {what} could not be installed: {failed.read_text().strip()}")
    if not (target / ".installed").exists():
        pytest.skip(f"INTEROP SKIPPED - {what} is not installed in {target}: {INSTALL_HINT}")


def project_copy(tmp_path: Path) -> Path:
    """A private copy of the fixture project (so runs never write into the repository)."""
    target = tmp_path / "project"
    if not target.exists():
        shutil.copytree(FIXTURE, target)
    return target


def sidecar_env(tmp_path: Path) -> dict[str, str]:
    """The settings of a sidecar whose search root and testing project are the fixture copy."""
    project = project_copy(tmp_path)
    return {
        "STATE_DIR": str(tmp_path / "state"),
        "LOG_DIR": str(tmp_path / "logs"),
        "MCP_MARKET_HOURS_ENABLED": "false",
        "MCP_SEARCH_ROOT": str(project),
        "MCP_TESTING_PROJECT_ROOT": str(project),
        "MCP_TESTING_SOURCE_PACKAGES": "limits_kit",
        "MCP_TESTING_PATHS": "tests",
        "MCP_TOOLS_PAGE_SIZE": "4",  # ten tools: the client must follow nextCursor twice
        "MONITOR_INTERVAL_SECONDS": "3600",
    }


def client_workdir(tmp_path: Path) -> Path:
    """A working directory outside the project holding a copy of the client script."""
    workdir = tmp_path / "client"
    workdir.mkdir(exist_ok=True)
    assert str(PROJECT_ROOT) not in str(workdir.resolve())
    shutil.copy(CLIENT_SCRIPT, workdir / CLIENT_SCRIPT.name)
    return workdir


def sdk_env(major: str) -> dict[str, str]:
    """Only the SDK on the path: `import mcp` must find the official SDK, never our package."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
    env["PYTHONPATH"] = str(SDK_DIR / major)
    return env


def free_port() -> int:
    """A loopback port free right now (the sidecar binds it a moment later; a clash fails loudly)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Sidecar:
    url: str
    process: asyncio.subprocess.Process


@asynccontextmanager
async def running_sidecar(tmp_path: Path) -> AsyncIterator[Sidecar]:
    """The real sidecar (`python -m mcp.main_mcp all`) on free loopback ports, /mcp on its dashboard."""
    dashboard, metrics = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MCP_", "PYTEST_", "DASHBOARD_"))}
    env.update(sidecar_env(tmp_path))
    env.update(DASHBOARD_PORT=str(dashboard), METRICS_PORT=str(metrics), DASHBOARD_TOKEN=TOKEN)
    log = (tmp_path / "sidecar.err").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mcp.main_mcp", "all", cwd=PROJECT_ROOT, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    base = f"http://127.0.0.1:{dashboard}"
    try:
        await wait_until_serving(base, process, tmp_path / "sidecar.err")
        yield Sidecar(f"{base}/mcp", process)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


async def wait_until_serving(base: str, process: asyncio.subprocess.Process, log: Path) -> None:
    """Poll the dashboard's /health until it answers (bounded: 60 s), failing with the sidecar's log."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        for _ in range(300):
            if process.returncode is not None:
                break
            try:
                async with http.get(f"{base}/health") as response:
                    if response.status in (200, 503):
                        return
            except aiohttp.ClientError:
                pass  # not listening yet
            await asyncio.sleep(0.2)
    text = await asyncio.to_thread(log.read_text)
    raise AssertionError(f"the sidecar did not serve {base} (exit {process.returncode}):\n{text[-3000:]}")
