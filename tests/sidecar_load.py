"""Real sidecar processes as load, for tests/test_batch_performance.py and tests/test_resilience.py.

- `sidecar_process_env`: the sidecar's environment (its own STATE_DIR/LOG_DIR, free ports, heavy work allowed).
- `spawn`: a child in its own session, output to a file; `niced` puts `nice -n 10` in front as the bot does.
- `McpStdioClient`: a minimal MCP client over `python -m mcp.main_mcp stdio …` (initialize, tools/call).
- `process_tree`, `freeze`, `thaw`: a process and all its descendants, stopped (SIGSTOP) and resumed.
- `HttpPoller`: GETs on loopback at a fixed rate, pausable, counting answers and errors.

Everything here signals only pids it was given (the children the caller started and their descendants).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sysconfig
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from core.sidecar_process import sidecar_command
from tests.live_stack import PROJECT_ROOT, clean_env, python

PROTOCOL_VERSION = "2025-06-18"
# a stdio reply can carry a whole coverage report
STDIO_LINE_LIMIT = 32 * 1024 * 1024


def stdlib_root() -> Path:
    """The Python standard library of this interpreter (the codebase scan's big, cold tree)."""
    return Path(sysconfig.get_paths()["stdlib"])


def sidecar_process_env(workdir: Path, *, dashboard_port: int, metrics_port: int, **values: Any) -> dict[str, str]:
    """The sidecar's environment: heavy work allowed at any hour, 1 s health checks, the given ports.

    The MCP circuit breaker's automatic trips are off so that a scan or test run is never deferred for
    using CPU: the callers want the sidecar busy (in production that breaker would defer the work).
    """
    env = clean_env(
        workdir,
        MCP_MARKET_HOURS_ENABLED="false",
        MCP_CIRCUIT_BREAKER_ENABLED="false",
        MCP_RESOURCE_LIMIT_CPU_PERCENT="100",
        MONITOR_INTERVAL_SECONDS="1",
        MCP_HEALTH_LOOP_SECONDS="1",
        DASHBOARD_PORT=str(dashboard_port),
        METRICS_PORT=str(metrics_port),
    )
    env.update({name: str(value) for name, value in values.items()})
    return env


def niced(mode: str, *extra: str) -> list[str]:
    """`nice -n 10 <python> -m mcp.main_mcp <mode> <extra…>`: the command line the bot itself uses."""
    return [*sidecar_command(python(), mode), *extra]


async def spawn(
    command: Sequence[str],
    env: Mapping[str, str],
    output: Path,
    *,
    pipes: bool = False,
    cwd: Path = PROJECT_ROOT,
    new_session: bool = False,
    discard_stdout: bool = False,
) -> asyncio.subprocess.Process:
    """Start `command` as the leader of a new process group (of a new session with `new_session`); stderr (and
    stdout unless `pipes`) to `output`; stdin a pipe if `pipes`.

    A new session matters on Linux with autogroup scheduling (kernel.sched_autogroup_enabled=1): each session
    is its own scheduling group, and `nice` only ranks processes within a group.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.PIPE if pipes else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if pipes else (asyncio.subprocess.DEVNULL if discard_stdout else sink),
            stderr=sink,
            start_new_session=new_session,
            process_group=None if new_session else 0,
            limit=STDIO_LINE_LIMIT,
        )


async def end_process(process: asyncio.subprocess.Process, grace: float = 12.0) -> int | None:
    """SIGTERM, then SIGKILL after `grace` seconds; the exit code. A no-op for a process already gone."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    return process.returncode


class McpCallError(Exception):
    """An MCP request failed: the JSON-RPC error, a closed pipe or a timeout (the message says which)."""


@dataclass
class McpStdioClient:
    """A minimal MCP client over a sidecar's stdio: one JSON message per line, replies matched by id."""

    process: asyncio.subprocess.Process
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _waiting: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls, command: Sequence[str], env: Mapping[str, str], output: Path, *, new_session: bool = False
    ) -> McpStdioClient:
        """Spawn the stdio sidecar (stderr to `output`) and complete the MCP handshake."""
        client = cls(await spawn(command, env, output, pipes=True, new_session=new_session))
        client._reader = asyncio.create_task(client._read_replies())
        await client.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "polymarket-copy-bot-tests", "version": "1"},
            },
            within=60.0,
        )
        await client._send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return client

    @property
    def pid(self) -> int:
        return self.process.pid

    async def request(self, method: str, params: dict[str, Any], *, within: float) -> dict[str, Any]:
        """Send one request and return its `result`; McpCallError for an error reply, a dead server or a timeout."""
        request_id = next(self._ids)
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = reply
        try:
            await self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            message = await asyncio.wait_for(reply, timeout=within)
        except TimeoutError as e:
            raise McpCallError(f"{method}: no reply within {within:g} s") from e
        finally:
            self._waiting.pop(request_id, None)
        if "error" in message:
            raise McpCallError(f"{method}: expected a result, received error {message['error']!r}")
        return message.get("result", {})

    async def call_tool(self, name: str, arguments: dict[str, Any], *, within: float) -> dict[str, Any]:
        """tools/call → the tool's structured result (McpCallError when isError is set)."""
        result = await self.request("tools/call", {"name": name, "arguments": arguments}, within=within)
        structured = result.get("structuredContent")
        if result.get("isError"):
            raise McpCallError(f"tool {name} failed: {structured or result.get('content')!r}")
        return structured if isinstance(structured, dict) else {"content": result.get("content")}

    async def close(self, grace: float = 10.0) -> int | None:
        """Close stdin (the server stops at end of input), then end_process after `grace`; the exit code."""
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), timeout=grace)
        except TimeoutError:
            await end_process(self.process, grace=2.0)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        return self.process.returncode

    async def _send(self, message: dict[str, Any]) -> None:
        stdin = self.process.stdin
        if stdin is None or stdin.is_closing():
            raise McpCallError(f"cannot send {message.get('method')}: the server's stdin is closed")
        stdin.write(json.dumps(message).encode() + b"\n")
        try:
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as e:
            raise McpCallError(f"cannot send {message.get('method')}: the server is gone ({e})") from e

    async def _read_replies(self) -> None:
        assert self.process.stdout is not None
        try:
            while line := await self.process.stdout.readline():
                message = json.loads(line)
                waiter = self._waiting.get(message.get("id")) if isinstance(message, dict) else None
                if waiter is not None and not waiter.done():
                    waiter.set_result(message)
        finally:
            # the server is gone (or we stop reading): nobody may wait forever for a reply
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(McpCallError("the MCP server closed its stdout before replying"))


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and its live descendants, parents first (empty if it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _signal_pid(pid: int, signum: int) -> bool:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def freeze(root_pids: Sequence[int]) -> set[int]:
    """SIGSTOP each root and every descendant, parents first, until no new descendant appears; the pids stopped."""
    stopped: set[int] = set()
    for _ in range(10):
        found = {proc.pid for pid in root_pids for proc in process_tree(pid)} - stopped
        if not found:
            break
        for pid in sorted(found):
            if _signal_pid(pid, signal.SIGSTOP):
                stopped.add(pid)
    return stopped


def thaw(pids: set[int]) -> None:
    """SIGCONT every pid of a `freeze` (those that still exist)."""
    for pid in pids:
        _signal_pid(pid, signal.SIGCONT)


def tree_usage(root_pids: Sequence[int]) -> tuple[float, float]:
    """(CPU seconds used so far, RSS MB now) of the roots and their descendants; reaped children included."""
    cpu = 0.0
    rss = 0.0
    for pid in root_pids:
        for proc in process_tree(pid):
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                cpu += times.user + times.system
                if proc.pid == pid:
                    # children that already exited (one test run after another) are only counted here
                    cpu += times.children_user + times.children_system
                rss += proc.memory_info().rss / 1e6
    return cpu, rss


@dataclass
class HttpPoller:
    """GET `url` `hz` times a second while running; counts answers by status and errors (never raises)."""

    url: str
    hz: float
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    running: asyncio.Event = field(default_factory=asyncio.Event)
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set while no request is in flight
    last_error: str = ""

    async def run(self, session: aiohttp.ClientSession) -> None:
        """Poll until cancelled, only while `running` is set."""
        interval = 1.0 / self.hz
        next_at = time.monotonic()
        self.idle.set()
        while True:
            if not self.running.is_set():
                await self.running.wait()
                next_at = time.monotonic()
            self.idle.clear()
            try:
                async with session.get(self.url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                    await response.read()
                    self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
            except (aiohttp.ClientError, TimeoutError) as e:
                self.errors += 1
                self.last_error = f"{type(e).__name__}: {e}"
            finally:
                self.idle.set()
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def pause(self, within: float = 5.0) -> None:
        """Stop polling and wait (up to `within` s) for the request in flight to finish."""
        self.running.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle.wait(), timeout=within)

    def resume(self) -> None:
        """Poll again."""
        self.running.set()

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())


async def http_status(session: aiohttp.ClientSession, url: str) -> int | None:
    """The status of GET url, or None when nothing answers."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=3)) as response:
            await response.read()
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return None


async def wait_until_served(
    session: aiohttp.ClientSession, url: str, within: float, watch: Sequence[asyncio.subprocess.Process] = ()
) -> int | None:
    """Poll GET url until it answers (any status) or `within` s pass or a watched process exits; the status."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if any(process.returncode is not None for process in watch):
            return None
        status = await http_status(session, url)
        if status is not None:
            return status
        await asyncio.sleep(0.2)
    return None
