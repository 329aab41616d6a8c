"""The stdio transport: in-process over OS pipes, and the real `python -m mcp.main_mcp stdio` process fed every
kind of bad input, which must answer each with the right error and keep serving."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from config.settings import PROJECT_ROOT
from mcp.protocol.jsonrpc import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR
from mcp.protocol.stdio import StdioTransport
from tests.mcp.mcp_protocol_support import ToyTools, make_dispatcher

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "projects" / "mcp_project"
INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


class PipeClient:
    """Writes lines into the transport's input pipe, reads lines from its output pipe."""

    def __init__(self, transport_fds: tuple[int, int], client_fds: tuple[int, int]) -> None:
        self.server_in, self.server_out = transport_fds
        self.write_fd, self.read_fd = client_fds
        self._buffer = b""

    def send_raw(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.write_fd, view) :]

    def send(self, message: Any) -> None:
        self.send_raw(json.dumps(message).encode() + b"\n")

    async def receive(self) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            chunk = await asyncio.wait_for(asyncio.to_thread(os.read, self.read_fd, 65536), 10)
            assert chunk, "the server closed its output"
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def close_input(self) -> None:
        os.close(self.write_fd)


@pytest.fixture
async def served(tmp_path: Path) -> Any:
    toys = ToyTools(tmp_path)
    dispatcher, _ = make_dispatcher(toys)
    in_read, in_write = os.pipe()
    out_read, out_write = os.pipe()
    transport = StdioTransport(
        dispatcher, input_fd=in_read, output_fd=out_write, max_line_bytes=64 * 1024, eof_grace_seconds=0.2
    )
    client = PipeClient((in_read, out_write), (in_write, out_read))
    task = asyncio.create_task(transport.serve())
    yield client, transport, toys, task
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    for fd in (in_read, out_read, out_write, in_write):
        with contextlib.suppress(OSError):  # the test may have closed its input already
            os.close(fd)


async def test_messages_answered_one_per_line_until_end_of_input(served: Any) -> None:
    client, transport, _, task = served
    client.send(INIT)
    assert (await client.receive())["result"]["protocolVersion"] == "2025-11-25"
    client.send(INITIALIZED)
    client.send_raw(b"\n   \n")  # blank lines are harmless
    client.send({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert await client.receive() == {"jsonrpc": "2.0", "id": 1, "result": {}}
    client.send_raw(b'{"jsonrpc":"2.0","id":2,"method":"ping"}')  # the last message may lack its newline
    client.close_input()
    assert await client.receive() == {"jsonrpc": "2.0", "id": 2, "result": {}}
    await asyncio.wait_for(task, 5)
    assert transport.session.requests == 3  # initialize and the two pings


async def test_an_oversized_line_is_refused_without_buffering_it(served: Any) -> None:
    client, _, _, _ = served
    client.send(INIT)
    await client.receive()
    huge = b'{"jsonrpc":"2.0","id":9,"method":"ping","params":{"pad":"' + b"x" * 300_000 + b'"}}\n'
    writer = asyncio.create_task(asyncio.to_thread(client.send_raw, huge))
    error = await client.receive()
    await writer
    assert error["id"] is None
    assert error["error"]["code"] == INVALID_REQUEST
    assert "exceeds the 65536 byte limit" in error["error"]["message"]
    client.send({"jsonrpc": "2.0", "id": 10, "method": "ping"})
    assert (await client.receive())["id"] == 10


async def test_pings_are_answered_while_a_call_runs_and_cancellation_stops_it(served: Any) -> None:
    client, _, toys, _ = served
    client.send(INIT)
    await client.receive()
    client.send({"jsonrpc": "2.0", "id": "long", "method": "tools/call", "params": {"name": "wait_forever"}})
    await asyncio.wait_for(toys.started.wait(), 5)
    client.send({"jsonrpc": "2.0", "id": 2, "method": "ping"})
    assert (await client.receive())["id"] == 2
    client.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "long"}})
    await asyncio.wait_for(toys.cancelled.wait(), 5)
    client.send({"jsonrpc": "2.0", "id": 3, "method": "ping"})
    assert (await client.receive())["id"] == 3  # and no response to "long" came before it


async def test_calls_still_running_at_end_of_input_are_cancelled_after_the_grace(served: Any) -> None:
    client, transport, toys, task = served
    client.send(INIT)
    await client.receive()
    client.send({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "wait_forever"}})
    await asyncio.wait_for(toys.started.wait(), 5)
    client.close_input()
    await asyncio.wait_for(task, 5)
    assert toys.cancelled.is_set()
    assert transport.session.in_flight() == []


async def test_progress_notifications_arrive_before_the_response(served: Any) -> None:
    client, _, _, _ = served
    client.send(INIT)
    await client.receive()
    params = {"name": "count", "arguments": {"steps": 2}, "_meta": {"progressToken": "p"}}
    client.send({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": params})
    messages = [await client.receive() for _ in range(4)]
    assert [m.get("method") for m in messages] == ["notifications/progress"] * 3 + [None]
    assert messages[-1]["id"] == 4


# --- the real process ---------------------------------------------------------------------------------


def project_copy(tmp_path: Path) -> Path:
    """A private copy of the fixture project (tests may add symlinks to it)."""
    target = tmp_path / "project"
    if not target.exists():
        shutil.copytree(FIXTURE, target)
    return target


def server_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MCP_", "PYTEST_"))}
    env.update(
        STATE_DIR=str(tmp_path / "state"),
        LOG_DIR=str(tmp_path / "logs"),
        MCP_MARKET_HOURS_ENABLED="false",
        MCP_SEARCH_ROOT=str(project_copy(tmp_path)),
        MCP_TESTING_PROJECT_ROOT=str(project_copy(tmp_path)),
        MCP_TESTING_SOURCE_PACKAGES="limits_kit",
        MONITOR_INTERVAL_SECONDS="3600",
    )
    return env


async def start_server(tmp_path: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mcp.main_mcp",
        "stdio",
        *args,
        cwd=PROJECT_ROOT,
        env=server_env(tmp_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=16 * 1024 * 1024,
    )


async def exchange(process: asyncio.subprocess.Process, line: bytes) -> dict[str, Any]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(line if line.endswith(b"\n") else line + b"\n")
    await process.stdin.drain()
    answer = await asyncio.wait_for(process.stdout.readline(), 30)
    assert answer, "the server closed stdout"
    return json.loads(answer)


def call(request_id: int, name: str, arguments: dict[str, Any]) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
    ).encode()


BAD_INPUTS: list[tuple[str, bytes, Any, Any]] = [
    # (case, line, expected error code or "isError", expected id)
    ("malformed JSON", b'{"jsonrpc": "2.0", "id": 1, "method": ', PARSE_ERROR, None),
    ("not UTF-8", b'{"jsonrpc":"2.0","id":1,"method":"ping\xff"}', PARSE_ERROR, None),
    ("batch array", b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', INVALID_REQUEST, None),
    ("wrong jsonrpc", b'{"jsonrpc":"1.0","id":11,"method":"ping"}', INVALID_REQUEST, 11),
    ("missing id on a request", b'{"jsonrpc":"2.0","method":"tools/list"}', INVALID_REQUEST, None),
    ("null id", b'{"jsonrpc":"2.0","id":null,"method":"ping"}', INVALID_REQUEST, None),
    ("params not an object", b'{"jsonrpc":"2.0","id":12,"method":"tools/list","params":[]}', INVALID_PARAMS, 12),
    ("unknown method", b'{"jsonrpc":"2.0","id":13,"method":"server/discover"}', METHOD_NOT_FOUND, 13),
    ("unknown tool", call(14, "rm_rf", {}), INVALID_PARAMS, 14),
    ("bad arguments", call(15, "coverage_history", {"n": "ten"}), "isError", 15),
    ("../ traversal", call(16, "run_tests", {"paths": ["../../../etc"]}), "isError", 16),
    ("absolute path", call(17, "run_tests", {"paths": ["/etc/passwd"]}), "isError", 17),
    ("symlink out of the root", call(18, "run_tests", {"paths": ["escape_link/x.py"]}), "isError", 18),
    ("glob traversal", call(19, "search_code", {"pattern": "x", "glob": "../*"}), "isError", 19),
    ("pathological regex", call(20, "search_code", {"pattern": "(x+x+)+y", "regex": True}), "isError", 20),
]


@pytest.mark.integration
async def test_every_bad_input_gets_the_right_error_and_the_server_keeps_serving(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, project_copy(tmp_path) / "escape_link")
    process = await start_server(tmp_path)
    try:
        assert (await exchange(process, json.dumps(INIT).encode()))["result"]["protocolVersion"] == "2025-11-25"
        for case, line, expected, request_id in BAD_INPUTS:
            answer = await exchange(process, line)
            assert answer["id"] == request_id, case
            if expected == "isError":
                assert answer["result"]["isError"] is True, (case, answer)
            else:
                assert answer["error"]["code"] == expected, (case, answer)
            pong = await exchange(process, b'{"jsonrpc":"2.0","id":"alive","method":"ping"}')
            assert pong["result"] == {}, case
        huge = b'{"jsonrpc":"2.0","id":21,"method":"ping","params":{"x":"' + b"y" * (5 * 1024 * 1024) + b'"}}'
        answer = await exchange(process, huge)
        assert answer["error"]["code"] == INVALID_REQUEST and "byte limit" in answer["error"]["message"]
        assert (await exchange(process, b'{"jsonrpc":"2.0","id":22,"method":"ping"}'))["id"] == 22
        assert process.stdin is not None
        process.stdin.close()
        code = await asyncio.wait_for(process.wait(), 30)
        assert code == 0
        rest = await process.stdout.read() if process.stdout else b""
        assert rest == b""  # nothing but answers ever reached stdout
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.integration
async def test_unknown_server_names_exit_2(tmp_path: Path) -> None:
    process = await start_server(tmp_path, "no_such_server")
    _, err = await asyncio.wait_for(process.communicate(b""), 30)
    assert process.returncode == 2
    assert b"unknown server(s) ['no_such_server']" in err


@pytest.mark.integration
async def test_invalid_settings_exit_2_with_nothing_on_stdout(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    env["MCP_TESTING_COVERAGE_TARGET"] = "5"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mcp.main_mcp", "stdio", cwd=PROJECT_ROOT, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(json.dumps(INIT).encode() + b"\n"), 30)
    assert process.returncode == 2
    assert out == b""  # the protocol stream stays clean even for the error
    assert b"MCP_TESTING_COVERAGE_TARGET" in err


@pytest.mark.integration
def test_claiming_stdio_sends_prints_and_children_to_stderr_and_closes_childrens_stdin() -> None:
    script = textwrap.dedent(
        """
        import os, subprocess, sys
        from mcp.protocol.stdio_fds import claim_stdio
        fds = claim_stdio()
        print("stray print")
        os.write(1, b"stray fd write\\n")
        code = "import sys; print('child says hi'); print(repr(sys.stdin.read()))"
        child = subprocess.run([sys.executable, "-c", code])
        os.write(fds.output_fd, b'{"protocol": true}\\n')
        os.write(fds.output_fd, os.read(fds.input_fd, 100))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=b"echoed protocol input\n",
        capture_output=True,
        cwd=PROJECT_ROOT,
        timeout=60,
        check=True,
    )
    assert result.stdout == b'{"protocol": true}\necho protocol input\n'.replace(b"echo ", b"echoed ")
    assert b"stray print" in result.stderr
    assert b"stray fd write" in result.stderr
    assert b"child says hi" in result.stderr
    assert b"''" in result.stderr  # the child read an empty stdin instead of the protocol's input
