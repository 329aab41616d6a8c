"""docs/architecture.md's walk-through holds: a fourth server is one module and one registry entry.

The test copies the product into a temporary folder, applies the two code blocks of the walk-through as they
stand in the document (the module file; the `SERVERS` entry in mcp/server_registry.py), and
runs the copy as real processes: `stdio echo` lists and calls the new tool over MCP, and `echo` runs it under
the supervisor until systemd's READY, with the server running in `sidecar_status.json`. Nothing else in the
copy is touched, so if the walk-through needs one more step, this fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOC = PROJECT_ROOT / "docs" / "architecture.md"
MODULE_MARKER = "<!-- fourth-server module:"
REGISTRY_MARKER = "<!-- fourth-server registry:"
PRODUCT = ("core", "mcp", "utils", "config", "main.py")
BOUND_SECONDS = 60.0  # generous: start-up on a loaded 2-core machine
INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def code_block_after(text: str, marker: str) -> str:
    """The first ```python block after `marker` in the document."""
    at = text.find(marker)
    assert at >= 0, f"{DOC} lost its marker {marker!r}: the walk-through's blocks must stay marked"
    found = re.search(r"```python\n(.*?)```", text[at:], re.DOTALL)
    assert found is not None, f"no ```python block after {marker!r} in {DOC}"
    return found.group(1)


def apply_registry_block(registry: str, block: str) -> str:
    """Put the block's imports (if any) after `from __future__ …`, its indented lines after the "monitoring" entry."""
    lines = [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    imports = [line for line in lines if not line.startswith(" ")]
    entries = [line for line in lines if line.startswith(" ")]
    assert entries, f"the registry block should hold an entry, got {lines}"
    future = "from __future__ import annotations\n"
    assert registry.count(future) == 1, "mcp/server_registry.py: expected one `from __future__` line"
    registry = registry.replace(future, future + "".join(f"{line}\n" for line in imports))
    monitoring = re.findall(r'^ +"monitoring": ServerSpec\(.*\n', registry, re.MULTILINE)
    assert len(monitoring) == 1, f"mcp/server_registry.py: expected one one-line monitoring entry, got {monitoring}"
    return registry.replace(monitoring[0], monitoring[0] + "".join(f"{line}\n" for line in entries))


@pytest.fixture(scope="module")
def tree_with_echo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the product with the walk-through applied, and nothing else changed."""
    doc = DOC.read_text(encoding="utf-8")
    tree = tmp_path_factory.mktemp("fourth") / "tree"
    for name in PRODUCT:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tree / name)
    (tree / "mcp" / "echo_server.py").write_text(code_block_after(doc, MODULE_MARKER), encoding="utf-8")
    registry = tree / "mcp" / "server_registry.py"
    registry.write_text(
        apply_registry_block(registry.read_text(encoding="utf-8"), code_block_after(doc, REGISTRY_MARKER)),
        encoding="utf-8",
    )
    return tree


def echo_env(tree: Path, tmp_path: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MCP_", "PYTEST_", "TELEGRAM_", "HEARTBEAT_")) and key not in {"NOTIFY_SOCKET"}
    }
    env.update(
        PYTHONPATH=str(tree),  # the copy, never this checkout: `-m` also puts the working directory first
        STATE_DIR=str(tmp_path / "state"),
        LOG_DIR=str(tmp_path / "logs"),
        DASHBOARD_PORT="0",
        METRICS_PORT="0",
        PYTHONUNBUFFERED="1",
    )
    return env


async def exchange(process: asyncio.subprocess.Process, message: dict[str, Any]) -> dict[str, Any]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(message).encode() + b"\n")
    await process.stdin.drain()
    answer = await asyncio.wait_for(process.stdout.readline(), BOUND_SECONDS)
    assert answer, "the server closed stdout"
    return json.loads(answer)


async def test_a_fourth_server_is_one_module_and_one_registry_entry(tree_with_echo: Path, tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mcp.main_mcp",
        "stdio",
        "echo",
        cwd=tree_with_echo,
        env=echo_env(tree_with_echo, tmp_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert "result" in await exchange(process, INIT)
        listed = await exchange(process, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        names = [tool["name"] for tool in listed["result"]["tools"]]
        if names != ["echo"]:
            process.kill()
            stderr = await process.stderr.read() if process.stderr else b""
            pytest.fail(f"tools/list answered {names}, expected ['echo']; stderr:\n{stderr.decode(errors='replace')}")
        called = await exchange(
            process,
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": "hi"}},
            },
        )
        assert called["result"]["isError"] is False, called
        assert called["result"]["structuredContent"] == {"status": "ok", "text": "hi"}
        assert process.stdin is not None
        process.stdin.close()
        assert await asyncio.wait_for(process.wait(), BOUND_SECONDS) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        stderr = await process.stderr.read() if process.stderr else b""
    assert b"Traceback" not in stderr, stderr.decode(errors="replace")


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    yield receiver, path
    receiver.close()


def test_the_fourth_server_runs_under_the_supervisor(
    tree_with_echo: Path, tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    receiver, path = notify_socket
    env = echo_env(tree_with_echo, tmp_path)
    env["NOTIFY_SOCKET"] = path
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp.main_mcp", "echo"],
        cwd=tree_with_echo,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # READY=1 comes after the supervisor wrote its status file: a real event, no polling
        receiver.settimeout(BOUND_SECONDS)
        seen: list[str] = []
        while not any(message.startswith(("READY=1", "STOPPING=1")) for message in seen):
            try:
                seen.append(receiver.recv(4096).decode())
            except TimeoutError:
                break
        if not any(message.startswith("READY=1") for message in seen):
            process.kill()
            _, stderr = process.communicate(timeout=10)
            pytest.fail(f"no READY=1 from `python -m mcp.main_mcp echo` (got {seen}); stderr:\n{stderr}")
        status = json.loads((tmp_path / "state" / "sidecar_status.json").read_text(encoding="utf-8"))
        echo = status["servers"]["echo"]
        assert (echo["state"], echo["status"], echo["health"]["calls"]) == ("running", "healthy", 0), status
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=BOUND_SECONDS)
        assert process.returncode == 0, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
