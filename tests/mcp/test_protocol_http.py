"""Streamable HTTP at /mcp on a real aiohttp server on loopback (port 0): sessions, headers, Origin, token,
size limit, SSE progress, cancellation, and every bad request answered with the right status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mcp.protocol.http import MCP_ENDPOINT_KEY, McpHttpEndpoint, accepts, add_mcp_routes, default_allowed_origins
from mcp.protocol.jsonrpc import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR
from tests.mcp.mcp_protocol_support import FakeClock, ToyTools, make_dispatcher

TOKEN = "s3cret-token-for-tests"
PORT_FOR_ORIGINS = 8080
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


@dataclass
class Server:
    url: str
    http: aiohttp.ClientSession
    endpoint: McpHttpEndpoint
    toys: ToyTools

    def headers(self, session_id: str | None = None, **extra: str) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {TOKEN}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        }
        if session_id is not None:
            headers["Mcp-Session-Id"] = session_id
        headers.update(extra)
        return headers

    async def post(self, message: Any, session_id: str | None = None, **headers: str) -> aiohttp.ClientResponse:
        body = message if isinstance(message, bytes) else json.dumps(message).encode()
        return await self.http.post(self.url, data=body, headers=self.headers(session_id, **headers))

    async def initialize(self) -> str:
        response = await self.post(INIT)
        assert response.status == 200, await response.text()
        session_id = response.headers["Mcp-Session-Id"]
        notified = await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session_id)
        assert notified.status == 202
        return session_id


async def serve(tmp_path: Path, *, token: str | None = TOKEN, **kw: Any) -> AsyncIterator[Server]:
    toys = ToyTools(tmp_path)
    dispatcher, _ = make_dispatcher(toys)
    app = web.Application()
    add_mcp_routes(
        app, lambda: dispatcher, token=token, allowed_origins=default_allowed_origins(PORT_FOR_ORIGINS), **kw
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        yield Server(f"http://127.0.0.1:{port}/mcp", http, app[MCP_ENDPOINT_KEY], toys)
    await runner.cleanup()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async for running in serve(tmp_path, max_body=4096):
        yield running


pytestmark = pytest.mark.integration


async def test_initialize_opens_a_session_and_requests_use_it(server: Server) -> None:
    response = await server.post(INIT)
    assert response.status == 200
    assert response.content_type == "application/json"
    session_id = response.headers["Mcp-Session-Id"]
    assert len(session_id) >= 40 and all(0x21 <= ord(char) <= 0x7E for char in session_id)
    body = await response.json()
    assert body["result"]["protocolVersion"] == "2025-06-18"
    listed = await server.post({"jsonrpc": "2.0", "id": 0, "method": "tools/list"}, session_id)
    assert listed.status == 200
    assert (await listed.json())["id"] == 0
    called = await server.post(
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}},
        session_id,
        **{"MCP-Protocol-Version": "2025-06-18"},
    )
    assert (await called.json())["result"]["structuredContent"] == {"status": "ok", "text": "x"}
    other = (await server.post(INIT)).headers["Mcp-Session-Id"]
    assert other != session_id


async def test_notifications_and_client_responses_get_202_without_body(server: Server) -> None:
    session_id = await server.initialize()
    for message in (
        {"jsonrpc": "2.0", "method": "notifications/whatever"},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 77}},
        {"jsonrpc": "2.0", "id": 3, "result": {}},
    ):
        response = await server.post(message, session_id)
        assert response.status == 202
        assert await response.read() == b""


async def test_get_is_405_and_delete_ends_the_session(server: Server) -> None:
    session_id = await server.initialize()
    get = await server.http.get(server.url, headers=server.headers(session_id))
    assert get.status == 405
    assert get.headers["Allow"] == "POST, DELETE"
    deleted = await server.http.delete(server.url, headers=server.headers(session_id))
    assert deleted.status == 204
    after = await server.post({"jsonrpc": "2.0", "id": 5, "method": "ping"}, session_id)
    assert after.status == 404
    again = await server.http.delete(server.url, headers=server.headers(session_id))
    assert again.status == 404


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 400),  # no session id
        ({"Mcp-Session-Id": "not-a-session"}, 404),
    ],
)
async def test_requests_need_a_known_session(server: Server, headers: dict[str, str], status: int) -> None:
    response = await server.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, **headers)
    assert response.status == status
    body = await response.json()
    assert body["error"]["code"] == INVALID_REQUEST
    assert body["id"] is None


@pytest.mark.parametrize("version", ["1999-01-01", "2025-11-25", "garbage"])
async def test_protocol_version_header_must_match_the_session(server: Server, version: str) -> None:
    session_id = await server.initialize()  # negotiated 2025-06-18
    response = await server.post(
        {"jsonrpc": "2.0", "id": 1, "method": "ping"}, session_id, **{"MCP-Protocol-Version": version}
    )
    assert response.status == 400
    assert "MCP-Protocol-Version" in (await response.json())["error"]["message"]


async def test_unknown_methods_are_32601_even_without_a_session(server: Server) -> None:
    for session_id in (None, "unknown"):
        response = await server.post(
            {"jsonrpc": "2.0", "id": 9, "method": "server/discover"},
            session_id,
            **{"MCP-Protocol-Version": "2026-07-28"},
        )
        assert response.status == 200
        body = await response.json()
        assert body["id"] == 9 and body["error"]["code"] == METHOD_NOT_FOUND


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("http://evil.example", 403),
        ("null", 403),
        ("http://127.0.0.1:9999", 403),
        (f"http://127.0.0.1:{PORT_FOR_ORIGINS}", 200),
        (f"HTTP://LOCALHOST:{PORT_FOR_ORIGINS}/", 200),
    ],
)
async def test_origin_is_validated(server: Server, origin: str, status: int) -> None:
    response = await server.post(INIT, Origin=origin)
    assert response.status == status
    if status == 403:
        assert "Mcp-Session-Id" not in response.headers
        assert (await response.json())["error"]["message"].startswith("forbidden: origin")


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
async def test_a_bearer_token_is_required(server: Server, authorization: str | None) -> None:
    headers = server.headers()
    if authorization is None:
        del headers["Authorization"]
    else:
        headers["Authorization"] = authorization
    for method in ("POST", "GET", "DELETE"):
        response = await server.http.request(method, server.url, data=json.dumps(INIT), headers=headers)
        assert response.status == 401, method
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert server.endpoint.sessions == {}


async def test_without_a_configured_token_the_endpoint_is_disabled(tmp_path: Path) -> None:
    async for server in serve(tmp_path, token=None):
        response = await server.post(INIT)
        assert response.status == 403
        assert "DASHBOARD_TOKEN" in (await response.json())["error"]["message"]


async def test_bodies_over_the_limit_are_413(server: Server) -> None:
    big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x" * 5000}}).encode()
    declared = await server.post(big)
    assert declared.status == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    chunked = await server.http.post(server.url, data=chunks(), headers=server.headers())
    assert chunked.status == 413
    assert (await server.post(INIT)).status == 200  # and the server keeps serving


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, PARSE_ERROR),
        (b"", 400, PARSE_ERROR),
        (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', 400, INVALID_REQUEST),
        (b'{"jsonrpc":"1.0","id":1,"method":"ping"}', 400, INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":5}', 400, INVALID_PARAMS),
    ],
)
async def test_malformed_bodies_are_400_with_a_jsonrpc_error(
    server: Server, body: bytes, status: int, code: int
) -> None:
    response = await server.post(body)
    assert response.status == status
    assert (await response.json())["error"]["code"] == code


async def test_a_request_method_without_id_is_400(server: Server) -> None:
    session_id = await server.initialize()
    response = await server.post({"jsonrpc": "2.0", "method": "tools/list"}, session_id)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == INVALID_REQUEST


async def test_wrong_content_type_and_accept_are_refused(server: Server) -> None:
    assert (await server.post(INIT, **{"Content-Type": "text/plain"})).status == 415
    assert (await server.post(INIT, Accept="text/html")).status == 406
    assert (await server.post(INIT, Accept="*/*")).status == 200


def test_accept_header_parsing() -> None:
    assert accepts(None, "application/json")
    assert accepts("text/event-stream;q=0.9, application/json", "application/json")
    assert accepts("application/*", "application/json")
    assert not accepts("text/event-stream", "application/json")


async def test_a_progress_token_gets_an_sse_stream_with_progress_then_the_response(server: Server) -> None:
    session_id = await server.initialize()
    params = {"name": "count", "arguments": {"steps": 2}, "_meta": {"progressToken": "tok"}}
    response = await server.post({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}, session_id)
    assert response.status == 200
    assert response.content_type == "text/event-stream"
    text = await response.text()
    events = [json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: ")]
    assert [event.get("method") for event in events] == ["notifications/progress"] * 3 + [None]
    assert [event["params"]["progress"] for event in events[:3]] == [0.0, 1.0, 2.0]
    assert events[-1]["id"] == 7 and events[-1]["result"]["isError"] is False
    json_only = await server.post(
        {"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": params}, session_id, Accept="application/json"
    )
    assert json_only.content_type == "application/json"  # no SSE for a client that does not accept it


async def test_cancellation_over_http_ends_the_call_without_a_response(server: Server) -> None:
    session_id = await server.initialize()
    call = asyncio.create_task(
        server.post(
            {"jsonrpc": "2.0", "id": "w", "method": "tools/call", "params": {"name": "wait_forever"}}, session_id
        )
    )
    await asyncio.wait_for(server.toys.started.wait(), 10)
    cancel = await server.post(
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "w"}}, session_id
    )
    assert cancel.status == 202
    response = await asyncio.wait_for(call, 10)
    assert response.status == 202
    assert await response.read() == b""
    assert server.toys.cancelled.is_set()


async def test_tool_errors_and_unknown_tools(server: Server) -> None:
    session_id = await server.initialize()
    unknown = await server.post(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "nope"}}, session_id
    )
    assert (await unknown.json())["error"]["code"] == INVALID_PARAMS
    bad = await server.post(
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "read_file", "arguments": {"path": "../x"}},
        },
        session_id,
    )
    assert (await bad.json())["result"]["isError"] is True


async def test_sessions_are_bounded_and_idle_ones_expire(tmp_path: Path) -> None:
    clock = FakeClock()
    async for server in serve(tmp_path, max_sessions=2, session_idle_seconds=60):
        server.endpoint._clock = clock
        first = await server.initialize()
        second = await server.initialize()
        third = await server.initialize()  # the least recently used idle session makes room
        assert set(server.endpoint.sessions) == {second, third}
        assert (await server.post({"jsonrpc": "2.0", "id": 1, "method": "ping"}, first)).status == 404
        clock.advance(61)
        await server.post(INIT)  # any request sweeps expired sessions
        assert second not in server.endpoint.sessions and third not in server.endpoint.sessions


async def test_a_failing_dispatcher_factory_is_503_and_retried(tmp_path: Path) -> None:
    attempts = []
    toys = ToyTools(tmp_path)
    dispatcher, _ = make_dispatcher(toys)

    def factory() -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("servers not built yet")
        return dispatcher

    app = web.Application()
    add_mcp_routes(app, factory, token=TOKEN, allowed_origins=())
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/mcp"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    try:
        async with aiohttp.ClientSession() as http:
            assert (await http.post(url, data=json.dumps(INIT), headers=headers)).status == 503
            assert (await http.post(url, data=json.dumps(INIT), headers=headers)).status == 200
    finally:
        await runner.cleanup()


async def test_the_monitoring_servers_dashboard_serves_mcp_beside_its_own_routes(tmp_path: Path) -> None:
    from config.settings import Settings
    from mcp.codebase_search import CodebaseSearchServer
    from mcp.monitoring_server import MonitoringServer
    from mcp.tools.runtime import offer_tools_on_dashboard

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, state_dir=tmp_path / "state", dashboard_token=TOKEN, dashboard_port=0, mcp_search_root=tmp_path
    )
    monitoring = MonitoringServer(settings, serve_metrics=False, dashboard_port=0, reset_breaker=_no_reset)
    search = CodebaseSearchServer(settings, cache_path=tmp_path / "scan.json")
    assert offer_tools_on_dashboard(settings, [search, monitoring])
    assert not offer_tools_on_dashboard(settings, [search])  # no monitoring server here: no dashboard
    ready = asyncio.Event()
    task = asyncio.create_task(monitoring.run(ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        base = f"http://127.0.0.1:{monitoring.dashboard_bound_port}"
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as http:
            response = await http.post(f"{base}/mcp", data=json.dumps(INIT), headers=headers)
            assert response.status == 200
            session_id = response.headers["Mcp-Session-Id"]
            listed = await http.post(
                f"{base}/mcp",
                data=json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
                headers={**headers, "Mcp-Session-Id": session_id},
            )
            names = [tool["name"] for tool in (await listed.json())["result"]["tools"]]
            assert names[0] == "search_code" and "get_health" in names and "run_tests" not in names
            assert (await http.get(f"{base}/health")).status in (200, 503)
            assert (await http.post(f"{base}/mcp", data=json.dumps(INIT))).status == 401
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _no_reset(by: str) -> dict[str, Any]:
    return {"state": "closed"}
