"""The entry point's pieces in-process: command line, registry, health period, bounded loop shutdown."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from core.integrations.mcp_risk_integration import MCPRiskIntegrator
from mcp.main_mcp import _close_loop, build_parser, effective_health_interval, serve
from mcp.server import Server
from mcp.server_registry import SERVERS, build_servers, selected_servers
from tests.fakes.fake_servers import ReadyServer
from tests.waiting import eventually
from utils.sd_notify import SystemdNotifier


def settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


def test_parser_knows_every_command() -> None:
    parser = build_parser()
    for command in ("all", "codebase_search", "testing", "monitoring", "status"):
        assert parser.parse_args([command]).command == command
    scan = parser.parse_args(["scan", "--root", "/x", "--param", "a", "--param", "b", "--json"])
    assert (scan.root, scan.param, scan.json) == (Path("/x"), ["a", "b"], True)
    test = parser.parse_args(["test", "--source", "pkg", "--path", "t", "--threshold", "0.5", "--python", "/p"])
    assert (test.source, test.path, test.threshold, test.python) == (["pkg"], ["t"], 0.5, Path("/p"))


def test_parser_rejects_a_bad_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["test", "--threshold", "high"])
    assert exit_info.value.code == 2
    assert "invalid float value: 'high'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("configured", "watchdog", "expected"), [(60.0, None, 60.0), (60.0, 30.0, 15.0), (10.0, 180.0, 10.0)]
)
def test_health_period_follows_the_watchdog(configured: float, watchdog: float | None, expected: float) -> None:
    assert effective_health_interval(configured, watchdog) == expected


def test_all_honours_the_enabled_flags() -> None:
    assert selected_servers("all", settings()) == list(SERVERS)
    assert selected_servers("all", settings(mcp_testing_enabled=False)) == ["codebase_search", "monitoring"]
    assert selected_servers("testing", settings(mcp_testing_enabled=False)) == ["testing"]
    with pytest.raises(ValueError, match="unknown server command 'nope'"):
        selected_servers("nope", settings())


def test_a_server_that_cannot_be_built_is_reported_not_raised() -> None:
    def broken(_settings: Settings, _gate: Any) -> Server:
        raise ImportError("no module named mcp.broken")

    servers, unavailable = build_servers(
        ["testing", "monitoring"],
        settings(),
        {"testing": broken, "monitoring": lambda _s, _g: ReadyServer("monitoring")},
    )
    assert [s.name for s in servers] == ["monitoring"]
    assert unavailable == {"testing": "ImportError: no module named mcp.broken"}


def test_an_object_that_is_not_a_server_is_unavailable() -> None:
    _, unavailable = build_servers(["monitoring"], settings(), {"monitoring": lambda _s, _g: object()})
    assert unavailable == {"monitoring": "object does not implement the Server protocol"}


def test_the_gate_reaches_only_the_gated_servers() -> None:
    received: dict[str, Any] = {}

    def recording(name: str) -> Any:
        def factory(_settings: Settings, gate: Any) -> Server:
            received[name] = gate
            return ReadyServer(name)

        return factory

    async def gate(kind: str) -> tuple[bool, str]:
        return True, kind

    overrides = {name: recording(name) for name in SERVERS}
    servers, unavailable = build_servers(list(SERVERS), settings(), overrides, gate=gate)
    assert unavailable == {} and len(servers) == 3
    assert received == {"codebase_search": gate, "testing": gate, "monitoring": None}


def test_the_real_servers_build_with_the_integrator_gate(tmp_path: Path) -> None:
    config = settings(state_dir=tmp_path, mcp_search_root=tmp_path, mcp_testing_project_root=tmp_path)
    gate = MCPRiskIntegrator(config).gate  # a private integrator: the process-wide one is not touched
    servers, unavailable = build_servers(list(SERVERS), config, gate=gate)
    assert unavailable == {}
    assert [s.name for s in servers] == ["codebase_search", "testing", "monitoring"]
    assert all(isinstance(s, Server) for s in servers)


async def test_serve_returns_0_on_a_clean_stop(tmp_path: Path) -> None:
    stop = asyncio.Event()
    server = ReadyServer("monitoring")
    running = asyncio.create_task(
        serve(
            settings(state_dir=tmp_path),
            [server],
            notifier=SystemdNotifier(""),
            stop=stop,
            install_signal_handlers=False,
        )
    )
    status_file = tmp_path / "sidecar_status.json"
    await eventually(lambda: asyncio.to_thread(status_file.exists), f"{status_file} appearing", within=30)
    stop.set()
    assert await asyncio.wait_for(running, timeout=30) == 0
    assert server.cancelled == 1


async def test_serve_returns_1_when_every_server_failed(tmp_path: Path) -> None:
    code = await asyncio.wait_for(
        serve(
            settings(state_dir=tmp_path),
            [],
            unavailable={"testing": "ImportError: gone"},
            notifier=SystemdNotifier(""),
            install_signal_handlers=False,
        ),
        timeout=30,
    )
    assert code == 1


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def new_loop() -> tuple[asyncio.AbstractEventLoop, ThreadPoolExecutor]:
    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor()
    loop.set_default_executor(executor)
    return loop, executor


def test_close_loop_is_clean_when_everything_ends() -> None:
    loop, executor = new_loop()

    async def main() -> None:
        asyncio.get_running_loop().create_task(asyncio.sleep(3600))
        await asyncio.to_thread(lambda: None)

    loop.run_until_complete(main())
    assert _close_loop(loop, executor) is True
    assert loop.is_closed()


def test_close_loop_does_not_wait_for_a_stuck_thread(release: threading.Event) -> None:
    loop, executor = new_loop()

    async def main() -> None:
        # a thread that outlives the stop (think: a scan over a huge tree)
        asyncio.get_running_loop().run_in_executor(None, release.wait)
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert _close_loop(loop, executor) is False
    assert loop.is_closed()


def test_close_loop_reports_a_task_that_ignores_cancellation() -> None:
    loop, executor = new_loop()
    gate = asyncio.Event()

    async def stubborn() -> None:
        while not gate.is_set():
            try:
                await gate.wait()
            except asyncio.CancelledError:
                # deliberately ignored: this is the misbehaving task the shutdown must not wait for
                continue

    async def main() -> None:
        asyncio.get_running_loop().create_task(stubborn())
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert _close_loop(loop, executor) is False  # main() then leaves with os._exit instead of hanging
    assert loop.is_closed()
