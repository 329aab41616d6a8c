"""Both HTTP ports of the sidecar refuse a foreign Host (421), slow request heads and bodies, and a client's
connections beyond the limit: the pure decisions first, then real servers on loopback (port 0) driven by
aiohttp and by raw asyncio sockets (slow-loris, connection counts), each bounded in count and time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from config.mcp_config import ConfigurationError, validate_monitoring_config
from mcp.dashboard.app import build_dashboard_app
from mcp.monitoring.http import start_site
from mcp.monitoring.http_guard import (
    ConnectionCounts,
    HttpGuard,
    allowed_host_names,
    host_allowed,
    host_name,
)
from mcp.monitoring_server import MonitoringServer
from mcp.protocol.http import add_mcp_routes, default_allowed_origins
from tests.fakes.monitoring_builders import settings
from tests.mcp.mcp_protocol_support import ToyTools, make_dispatcher
from tests.test_dashboard_server import make_server, running  # noqa: F401 (the fixture)

FOREIGN = "evil.example"
LOOPBACK_HEADERS = ["localhost", "LOCALHOST:8080", "127.0.0.1", "127.0.0.1:9090", "[::1]", "[::1]:8080", "localhost."]
BOUND = 10.0  # no test waits longer than this for anything


# --- the pure decisions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost", "localhost"),
        ("LocalHost:8080", "localhost"),
        ("127.0.0.1:9090", "127.0.0.1"),
        ("[::1]:8080", "::1"),
        ("[::1]", "::1"),
        ("dash.example.com.", "dash.example.com"),
        ("evil.example", "evil.example"),
        ("", None),
        ("a b", None),
        ("host:port", None),
        ("::1", None),  # an IPv6 Host must be bracketed
        ("[::1", None),
        ("[::1]x", None),
        ("[evil.example]", None),
        ("user@localhost", None),
        ("localhost/../x", None),
    ],
)
def test_host_name_parses_the_header_and_refuses_malformed_ones(header: str, name: str | None) -> None:
    assert host_name(header) == name


def test_the_allowed_names_are_loopback_dashboard_host_and_the_extra_setting() -> None:
    assert allowed_host_names("127.0.0.1") == {"localhost", "127.0.0.1", "::1"}
    assert allowed_host_names("0.0.0.0") == {"localhost", "127.0.0.1", "::1"}  # a wildcard is no name
    assert "10.0.0.5" in allowed_host_names("10.0.0.5")
    assert "fd00::5" in allowed_host_names("fd00::5")
    assert {"dash.example.com", "10.0.0.7"} <= allowed_host_names("127.0.0.1", ["Dash.Example.com", "10.0.0.7:8080"])


@pytest.mark.parametrize("header", [*LOOPBACK_HEADERS, None])
def test_loopback_and_a_missing_host_pass(header: str | None) -> None:
    assert host_allowed(header, allowed_host_names("127.0.0.1"))


@pytest.mark.parametrize("header", [FOREIGN, f"{FOREIGN}:8080", "127.0.0.2", "localhost.evil.example", "", "[::2]"])
def test_any_other_host_is_refused(header: str) -> None:
    assert not host_allowed(header, allowed_host_names("127.0.0.1"))


def test_connection_counts_stop_at_the_limit_and_free_a_slot_on_release() -> None:
    counts = ConnectionCounts(2)
    assert counts.acquire("a") and counts.acquire("a")
    assert not counts.acquire("a")
    assert counts.acquire("b")  # per client
    counts.release("a")
    assert counts.held("a") == 1 and counts.acquire("a")
    with pytest.raises(ValueError, match="connection limit >= 1"):
        ConnectionCounts(0)


def test_the_guard_refuses_nonsense_limits() -> None:
    with pytest.raises(ValueError, match="header_timeout > 0"):
        HttpGuard(frozenset(), header_timeout=0)


@pytest.mark.parametrize("value", ["http://dash.example.com", "dash.example.com/x", "a b", "user@host"])
def test_a_malformed_allowed_host_is_a_configuration_error(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigurationError, match="DASHBOARD_ALLOWED_HOSTS: expected host names"):
        validate_monitoring_config(tmp_path, dashboard_allowed_hosts=value)


def test_the_allowed_hosts_setting_is_comma_separated(tmp_path: Path) -> None:
    loaded = validate_monitoring_config(tmp_path, dashboard_allowed_hosts="Dash.example.com, 10.0.0.7")
    assert loaded.dashboard_allowed_hosts == ["dash.example.com", "10.0.0.7"]


# --- a foreign Host gets no 2xx on any route of either port ----------------------------------------


def mount_mcp(tmp_path: Path) -> Callable[[web.Application], None]:
    dispatcher, _ = make_dispatcher(ToyTools(tmp_path))

    def mount(app: web.Application) -> None:
        add_mcp_routes(app, lambda: dispatcher, token="t0ken", allowed_origins=default_allowed_origins(0))

    return mount


def dashboard_routes(tmp_path: Path) -> list[tuple[str, str]]:
    """Every (method, path) the dashboard app declares, MCP included: a route added later is covered too."""
    app = build_dashboard_app(
        settings(tmp_path), make_server(tmp_path), registry=CollectorRegistry(), extend=[mount_mcp(tmp_path)]
    )
    routes = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else "/"
        routes.add((route.method, path.replace("{name}", "dashboard.js")))
    return sorted(routes)


@pytest.fixture
async def both_ports(tmp_path: Path, running: Callable[..., Any]) -> tuple[int, int]:  # noqa: F811
    server: MonitoringServer = await running(
        make_server(
            tmp_path,
            serve_metrics=True,
            metrics_host="127.0.0.1",
            metrics_port=0,
            dashboard_extensions=[mount_mcp(tmp_path)],
        )
    )
    assert server.dashboard_bound_port and server.metrics_bound_port
    return server.dashboard_bound_port, server.metrics_bound_port


@pytest.mark.integration
async def test_every_route_of_both_ports_answers_421_to_a_foreign_host(
    tmp_path: Path, both_ports: tuple[int, int]
) -> None:
    dashboard, metrics = both_ports
    routes = dashboard_routes(tmp_path)
    assert ("GET", "/health") in routes and ("POST", "/mcp") in routes and ("GET", "/metrics") in routes
    targets = [(dashboard, method, path) for method, path in routes] + [(metrics, "GET", "/metrics")]
    targets += [(dashboard, "GET", "/no-such-route"), (metrics, "GET", "/")]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=BOUND)) as http:
        for port, method, path in targets:
            for host in (FOREIGN, f"{FOREIGN}:{port}"):
                headers = {"Host": host, "Authorization": "Bearer t0ken", "Content-Type": "application/json"}
                async with http.request(method, f"http://127.0.0.1:{port}{path}", headers=headers, data=b"{}") as r:
                    body = await r.text()
                    assert r.status == 421, (port, method, path, r.status)
                    if method != "HEAD":  # HEAD carries no body
                        assert "DASHBOARD_ALLOWED_HOSTS" in body and "status" not in body
        # and the same routes still answer on a loopback name
        for port, path in [
            (dashboard, "/health"),
            (dashboard, "/api/history"),
            (dashboard, "/"),
            (metrics, "/metrics"),
        ]:
            for host in ("localhost", f"127.0.0.1:{port}", f"[::1]:{port}"):
                async with http.get(f"http://127.0.0.1:{port}{path}", headers={"Host": host}) as r:
                    # /health is 503 while a component is critical: the point is that it answers
                    assert r.status in ((200, 503) if path == "/health" else (200,)), (port, path, host)


@pytest.mark.integration
async def test_an_extra_allowed_host_is_answered(tmp_path: Path, running: Callable[..., Any]) -> None:  # noqa: F811
    server = await running(make_server(tmp_path, settings={"dashboard_allowed_hosts": "dash.example.com"}))
    url = f"http://127.0.0.1:{server.dashboard_bound_port}/api/history"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=BOUND)) as http:
        async with http.get(url, headers={"Host": "DASH.example.com:443"}) as r:
            assert r.status == 200
        async with http.get(url, headers={"Host": "other.example.com"}) as r:
            assert r.status == 421


# --- slow clients and connection counts (raw sockets) ----------------------------------------------


async def echo(request: web.Request) -> web.Response:
    return web.Response(text=f"got {len(await request.read())} bytes")


@contextlib.asynccontextmanager
async def guarded(guard: HttpGuard) -> AsyncIterator[int]:
    app = web.Application(client_max_size=1000)
    app.router.add_get("/", echo)
    app.router.add_post("/", echo)
    runner, port = await start_site(app, "127.0.0.1", 0, setting="TEST_PORT", what="test", guard=guard)
    try:
        yield port
    finally:
        await runner.cleanup()


def guard(**kw: Any) -> HttpGuard:
    return HttpGuard(allowed_host_names("127.0.0.1"), **kw)


async def shut(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes (a reset counts as closed)."""
    chunks = []
    try:
        while chunk := await reader.read(4096):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


async def request(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    answer = await asyncio.wait_for(read_all(reader), BOUND)
    await shut(writer)
    return answer


@pytest.mark.integration
async def test_a_request_head_sent_byte_by_byte_is_cut_off() -> None:
    async with guarded(guard(header_timeout=0.5)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = b"GET / HTTP/1.1\r\nHost: localhost\r\n" + b"X-Slow: " + b"a" * 200
        closed = asyncio.create_task(read_all(reader))
        sent = 0
        for byte in head:  # at most 200 × 0.05 s; the server closes long before the head is complete
            if closed.done():
                break
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break
            sent += 1
            await asyncio.sleep(0.05)
        answer = await asyncio.wait_for(closed, BOUND)
        await shut(writer)
        assert sent < len(head), "the server kept reading a request head that never ended"
        assert not answer.startswith(b"HTTP/1.1 200")


@pytest.mark.integration
async def test_a_connection_that_sends_nothing_is_closed() -> None:
    async with guarded(guard(header_timeout=0.3)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(read_all(reader), BOUND) == b""
        await shut(writer)


@pytest.mark.integration
@pytest.mark.parametrize(
    "head",
    [
        b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789",
        b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    ],
    ids=["declared-length", "chunked"],
)
async def test_a_body_that_never_completes_gets_408_and_the_connection_closed(head: bytes) -> None:
    async with guarded(guard(body_timeout=0.3)) as port:
        answer = await request(port, head)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        assert b"HTTP_BODY_TIMEOUT_SECONDS" in answer
        # a body that does arrive is read once and handed to the handler
        whole = await request(
            port, b"POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello"
        )
        assert whole.startswith(b"HTTP/1.1 200") and whole.endswith(b"got 5 bytes")


@pytest.mark.integration
async def test_a_client_beyond_its_connection_limit_gets_503_until_one_closes() -> None:
    async with guarded(guard(max_connections_per_client=3, header_timeout=BOUND)) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        refused = await asyncio.wait_for(read_all(reader), BOUND)
        await shut(writer)
        assert refused.startswith(b"HTTP/1.1 503") and b"HTTP_MAX_CONNECTIONS_PER_CLIENT" in refused
        # the held connections still work
        first_reader, first_writer = held[0]
        first_writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert (await asyncio.wait_for(read_all(first_reader), BOUND)).startswith(b"HTTP/1.1 200")
        await shut(first_writer)
        # that one closed: a new connection is served (the server may see the close a moment later)
        for _ in range(50):
            answer = await request(port, b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            if answer.startswith(b"HTTP/1.1 200"):
                break
            await asyncio.sleep(0.05)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
        for _, held_writer in held[1:]:
            await shut(held_writer)


@pytest.mark.integration
async def test_an_idle_kept_alive_connection_is_closed_after_the_header_timeout() -> None:
    async with guarded(guard(header_timeout=0.3)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")  # keep-alive (HTTP/1.1 default)
        answer = await asyncio.wait_for(read_all(reader), BOUND)  # returns once the server closes
        await shut(writer)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"got 0 bytes")
