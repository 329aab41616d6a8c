"""The entry point's pieces in-process: command line, registry, health period, bounded loop shutdown."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from core.integrations.mcp_risk_integration import MCPRiskIntegrator, get_mcp_risk_integrator
from mcp import sidecar_builder
from mcp.main_mcp import _close_loop, build_parser, effective_health_interval, serve
from mcp.server import Server
from mcp.server_registry import SERVERS, SERVICES, ServerSpec, resolve_factory, selected_servers
from mcp.sidecar_builder import build_graph, build_servers
from mcp.sidecar_graph import SidecarGraph
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
    def broken(_graph: SidecarGraph) -> Server:
        raise ImportError("no module named mcp.broken")

    graph = SidecarGraph(settings())
    servers, unavailable = build_servers(
        ["testing", "monitoring"], graph, {"testing": broken, "monitoring": lambda _g: ReadyServer("monitoring")}
    )
    assert [s.name for s in servers] == ["monitoring"]
    assert unavailable == {"testing": "ImportError: no module named mcp.broken"}
    assert list(graph.servers) == ["monitoring"]  # what later factories see


def test_an_object_that_is_not_a_server_is_unavailable() -> None:
    _, unavailable = build_servers(["monitoring"], SidecarGraph(settings()), {"monitoring": lambda _g: object()})
    assert unavailable == {"monitoring": "object does not implement the Server protocol"}


def test_the_graph_builds_the_gate_the_gated_servers_the_integrator_over_them_then_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def recording(name: str) -> Any:
        def factory(graph: SidecarGraph) -> Server:
            seen[name] = (graph.integrator, graph.gate)
            return ReadyServer(name)

        return factory

    capabilities: dict[str, Any] = {}

    def integrator(config: Settings, **kw: Any) -> MCPRiskIntegrator:
        capabilities.update(kw)
        return MCPRiskIntegrator(config, **kw)

    monkeypatch.setattr(sidecar_builder, "MCPRiskIntegrator", integrator)
    config = settings(state_dir=tmp_path)
    sidecar = build_graph(config, list(SERVERS), overrides={name: recording(name) for name in SERVERS})
    graph = sidecar.graph
    assert sidecar.unavailable == {} and [s.name for s in sidecar.servers] == list(SERVERS)
    assert isinstance(graph.integrator, MCPRiskIntegrator) and graph.integrator.settings is config
    # wired one way: the gate, the servers it gates, then the integrator over both (one scan cache, one history)
    assert capabilities == {
        "search": graph.servers["codebase_search"],
        "testing": graph.servers["testing"],
        "work_gate": graph.work_gate,
    }
    assert graph.work_gate is not None and graph.integrator.work_gate is graph.work_gate
    assert graph.gate == graph.work_gate.gate
    # the gated servers come first and get the gate; the others see the integrator
    assert seen["codebase_search"] == (None, graph.gate) and seen["testing"] == (None, graph.gate)
    assert seen["monitoring"][0] is graph.integrator


async def test_the_gate_the_servers_hold_is_the_integrator_s(tmp_path: Path) -> None:
    config = settings(state_dir=tmp_path, mcp_search_root=tmp_path, mcp_testing_project_root=tmp_path)
    graph = (await asyncio.to_thread(build_graph, config, list(SERVERS))).graph
    assert graph.integrator is not None and graph.gate is not None
    await graph.integrator.trip_mcp_circuit_breaker("sidecar memory 2000 MB is over MCP_RESOURCE_LIMIT_MB=1000")
    decision = await graph.gate("scan")
    assert not decision.allowed and "MCP circuit breaker is open" in decision.reason


async def test_without_the_integrator_s_gate_heavy_work_is_refused_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class BrokenGate:
        @staticmethod
        def from_settings(_config: Settings) -> Any:
            raise OSError("state file unreadable")

    monkeypatch.setattr(sidecar_builder, "HeavyWorkGate", BrokenGate)
    config = settings(state_dir=tmp_path, mcp_search_root=tmp_path, mcp_testing_project_root=tmp_path)
    sidecar = await asyncio.to_thread(functools.partial(build_graph, config, list(SERVERS), services=True))
    assert sidecar.graph.integrator is None and sidecar.graph.gate is not None
    why = "the MCP risk integrator's gate cannot be built: OSError: state file unreadable"
    with pytest.raises(RuntimeError, match=why):
        await sidecar.graph.gate("scan")
    # the servers still run, and defer their heavy work with the reason; the watch cannot run and says why
    search = sidecar.graph.servers["codebase_search"]
    answer = await search.refresh()
    assert answer["status"] == "deferred" and why in answer["reason"]
    assert sidecar.unavailable == {"risk_integrator": "RuntimeError: the MCP risk integrator cannot be built: "
                                   "OSError: state file unreadable"}  # fmt: skip
    assert [s.name for s in sidecar.servers][:3] == list(SERVERS)


async def test_an_integrator_that_cannot_be_built_leaves_the_gate_to_its_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_config: Settings, **_kw: Any) -> MCPRiskIntegrator:
        raise ValueError("bad capability")

    monkeypatch.setattr(sidecar_builder, "MCPRiskIntegrator", broken)
    config = settings(state_dir=tmp_path, mcp_search_root=tmp_path, mcp_testing_project_root=tmp_path)
    sidecar = await asyncio.to_thread(functools.partial(build_graph, config, list(SERVERS), services=True))
    assert sidecar.graph.integrator is None and sidecar.graph.integrator_problem == "ValueError: bad capability"
    assert (await sidecar.graph.gate("scan")).allowed is not None  # still the HeavyWorkGate's answer
    assert "risk_integrator" in sidecar.unavailable


def test_the_real_servers_build_with_the_integrator_gate(tmp_path: Path) -> None:
    config = settings(state_dir=tmp_path, mcp_search_root=tmp_path, mcp_testing_project_root=tmp_path)
    sidecar = build_graph(config, list(SERVERS))
    assert sidecar.unavailable == {}
    assert [s.name for s in sidecar.servers] == ["codebase_search", "testing", "monitoring"]
    assert all(isinstance(s, Server) for s in sidecar.servers)
    monitoring = sidecar.graph.servers["monitoring"]
    # one Settings object for the whole graph; the dashboard's reset is the integrator's
    assert monitoring.settings is config and sidecar.graph.integrator.settings is config
    assert monitoring._reset_breaker == sidecar.graph.integrator.reset_mcp_circuit_breaker
    assert monitoring.trading is sidecar.graph.trading  # one reader of the bot's trading view
    # the user's facade (test-plan snippets run in this process) answers with the graph's integrator
    assert get_mcp_risk_integrator() is sidecar.graph.integrator


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


def test_every_registry_entry_names_a_factory_that_imports() -> None:
    for name, spec in SERVERS.items():
        assert callable(resolve_factory(spec.factory)), name
    for name, factory in SERVICES.items():
        assert callable(resolve_factory(factory)), name


@pytest.mark.parametrize(
    ("reference", "error", "words"),
    [
        ("mcp.sidecar_builder", ValueError, "expected 'package.module:attribute'"),
        (":monitoring_server", ValueError, "expected 'package.module:attribute'"),
        ("mcp.sidecar_builder:nothing_here", TypeError, "has no callable 'nothing_here'"),
        ("mcp.sidecar_builder:SERVERS", TypeError, "has no callable 'SERVERS'"),
        ("mcp.no_such_module:build", ModuleNotFoundError, "mcp.no_such_module"),
    ],
)
def test_a_malformed_factory_reference_says_what_is_expected(reference: str, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        resolve_factory(reference)


def test_a_server_whose_module_cannot_be_imported_is_unavailable_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SERVERS, "gone", ServerSpec("mcp.no_such_module:build", None, gated=False))
    servers, unavailable = build_servers(["gone", "monitoring"], SidecarGraph(settings()))
    assert [s.name for s in servers] == ["monitoring"]
    assert unavailable == {"gone": "ModuleNotFoundError: No module named 'mcp.no_such_module'"}


def test_the_bot_s_start_up_check_loads_no_server(tmp_path: Path) -> None:
    # main.py imports mcp.preflight, hence the registry: no server module may come with it (the bot's RSS)
    import subprocess
    import sys

    probe = (
        "import sys, mcp.preflight\n"
        "heavy = [m for m in ('mcp.codebase_search', 'mcp.testing_server', 'mcp.monitoring_server', "
        "'mcp.sidecar_builder', 'mcp.risk_watch', 'core.integrations.mcp_risk_integration') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
