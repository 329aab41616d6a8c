"""Builds the sidecar's object graph once: the one place where its parts are made and handed each other.

    settings ─┬─> HeavyWorkGate.from_settings(settings)                  (the integrator's gate)
              ├─> the gated servers of the command (codebase_search, testing), given work_gate.gate
              ├─> MCPRiskIntegrator(settings, search=<codebase_search>, testing=<testing>, work_gate=…)
              ├─> every other server (monitoring: the integrator's gate block and MCP breaker reset)
              └─> with `all`, the services (the integrator's watch, Telegram, alert rules, heartbeat)

Each factory receives the one `SidecarGraph` (mcp.sidecar_graph): settings, the gate, the integrator, the
servers built before it, the trading view. Nothing looks the integrator or the settings up on its own.
Which servers and services exist, and which factory builds each, is mcp.server_registry.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from config.settings import Settings
from core.integrations.heavy_work_gate import HeavyWorkGate
from core.integrations.mcp_risk_integration import MCPRiskIntegrator, set_process_integrator
from mcp.alert_rules_server import AlertRulesServer
from mcp.codebase_search import CodebaseSearchServer
from mcp.containment.runtime import get_process_containment
from mcp.heartbeat import HeartbeatServer
from mcp.monitoring.gate_status import IntegratorGateStatus
from mcp.monitoring.wiring import MonitoringSources
from mcp.monitoring_server import MonitoringServer
from mcp.risk_watch import RiskWatchServer
from mcp.server import Server
from mcp.server_registry import SERVERS, SERVICES, ServerFactory, ServiceFactory, resolve_factory
from mcp.sidecar_graph import SidecarGraph, refusing_gate
from mcp.testing_server import TestingServer
from mcp.trading.source import TradingSource

logger = logging.getLogger(__name__)

# the servers whose tools the integrator uses (its search and testing capabilities), by server name
SEARCH_SERVER, TESTING_SERVER = "codebase_search", "testing"


def codebase_search_server(graph: SidecarGraph) -> Server:
    return CodebaseSearchServer(graph.settings, gate=graph.gate)


def testing_server(graph: SidecarGraph) -> Server:
    # issue 10: runs get a cgroup and a record in STATE_DIR, cleaned up by the next sidecar if this one is killed
    return TestingServer(graph.settings, gate=graph.gate, containment=get_process_containment(graph.state_dir))


def monitoring_server(graph: SidecarGraph, *, sources: MonitoringSources | None = None, **options: Any) -> Server:
    """The monitoring server over the graph: /health's gate block and POST /reset-circuit-breaker from the
    graph's integrator, `sources` (default: production) for the rest; `options` go to MonitoringServer (no
    ports for stdio, report printing). Never gated: it keeps running (in a basic mode) whatever the gate says.
    """
    integrator = graph.integrator
    gate_status = None if integrator is None else IntegratorGateStatus(graph.settings, integrator)
    return MonitoringServer(
        graph.settings,
        sources=replace(MonitoringSources() if sources is None else sources, gate_status=gate_status),
        reset_breaker=None if integrator is None else integrator.reset_mcp_circuit_breaker,
        trading=graph.trading,
        **options,
    )


def _build_one(name: str, factory: ServerFactory | str, graph: SidecarGraph, what: str) -> tuple[Any, str]:
    """(the built object or None, why it is unavailable or ""); a failure (the factory's module cannot be
    imported, a bad setting) is reported, not raised."""
    try:
        built = resolve_factory(factory)(graph)
    except Exception as e:
        logger.exception("%s %r cannot be built", what, name)
        return None, f"{type(e).__name__}: {e}"
    if built is not None and not isinstance(built, Server):
        return None, f"{type(built).__name__} does not implement the Server protocol"
    return built, ""


def build_servers(
    names: Sequence[str], graph: SidecarGraph, overrides: Mapping[str, ServerFactory] | None = None
) -> tuple[list[Server], dict[str, str]]:
    """Build the named servers over `graph` (each added to graph.servers); returns (servers, {name: why}).

    A server that cannot be built (a bad setting, a broken module) is reported, not raised, so the others
    still run.
    """
    servers: list[Server] = []
    unavailable: dict[str, str] = {}
    for name in names:
        factory = (overrides or {}).get(name) or SERVERS[name].factory
        server, why = _build_one(name, factory, graph, "server")
        if server is None:
            unavailable[name] = why or "its factory built nothing"
            continue
        graph.servers[name] = server
        servers.append(server)
    return servers, unavailable


def build_work_gate(graph: SidecarGraph) -> None:
    """The integrator's HeavyWorkGate, built first: the gated servers ask it, the integrator is built over it.

    When it cannot be built (its state file), the servers get a gate that refuses heavy work with the reason.
    """
    try:
        work_gate = HeavyWorkGate.from_settings(graph.settings)
    except Exception as e:
        logger.exception("the MCP risk integrator's gate cannot be built: heavy work (scans, test runs) stays deferred")
        graph.integrator_problem = f"{type(e).__name__}: {e}"
        graph.gate = refusing_gate(f"the MCP risk integrator's gate cannot be built: {graph.integrator_problem}")
        return
    graph.work_gate = work_gate
    graph.gate = work_gate.gate


def build_integrator(graph: SidecarGraph) -> None:
    """The MCPRiskIntegrator over the graph's gate and its search and testing servers (when they do not run
    here, the integrator builds its own on first use: Telegram /scan, the test-plan snippets still work).

    When it cannot be built, graph.integrator stays None and graph.integrator_problem says why.
    """
    if graph.work_gate is None:
        return  # its gate could not be built: the problem is recorded already
    try:
        integrator = MCPRiskIntegrator(
            graph.settings,
            search=graph.server(SEARCH_SERVER),
            testing=graph.server(TESTING_SERVER),
            work_gate=graph.work_gate,
        )
    except Exception as e:
        logger.exception("the MCP risk integrator cannot be built: the watch, the gate block and resets are off")
        graph.integrator_problem = f"{type(e).__name__}: {e}"
        return
    graph.integrator = integrator
    # the user's facade (for test-plan snippets run in this process) answers with the graph's integrator;
    # nothing in the product looks it up
    set_process_integrator(integrator)


@dataclass
class Sidecar:
    """What `build_graph` built: the graph, the servers and services to supervise (in order), and why the
    others are unavailable."""

    graph: SidecarGraph
    servers: list[Server] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)


def build_graph(
    settings: Settings,
    names: Sequence[str] = (),
    *,
    services: bool = False,
    overrides: Mapping[str, ServerFactory] | None = None,
    service_factories: Mapping[str, ServiceFactory] | None = None,
) -> Sidecar:
    """The sidecar's object graph, built once: the integrator's gate, the gated servers among `names`, the
    integrator over both, the other servers, then (with `services`) the services of `all`. Servers keep the
    order of `names`."""
    graph = SidecarGraph(settings, trading=TradingSource.from_settings(settings))
    build_work_gate(graph)
    gated = [name for name in names if SERVERS[name].gated]
    _, unavailable = build_servers(gated, graph, overrides)
    build_integrator(graph)
    _, down = build_servers([name for name in names if name not in gated], graph, overrides)
    unavailable.update(down)
    built = [graph.servers[name] for name in names if name in graph.servers]
    if services:
        extra, down = build_services(graph, service_factories)
        built.extend(extra)
        unavailable.update(down)
    return Sidecar(graph, built, unavailable)


def risk_watch(graph: SidecarGraph) -> Server:
    if graph.integrator is None:
        raise RuntimeError(f"the MCP risk integrator cannot be built: {graph.integrator_problem}")
    # always on, never gated: it is what trips and recovers the MCP breaker behind the gate
    return RiskWatchServer(graph.settings, graph.integrator, testing=graph.server(TESTING_SERVER))


def telegram_commands(graph: SidecarGraph) -> Server | None:
    if graph.settings.telegram_bot_token is None:
        logger.info("Telegram commands are off: TELEGRAM_BOT_TOKEN is not set")
        return None
    # local: python-telegram-bot costs ~7 MB of RSS that a sidecar without TELEGRAM_BOT_TOKEN never uses
    from mcp.telegram_backend import build_telegram_commands

    return build_telegram_commands(graph)


# --- issue 9 (i9alerts): alert rules + daily report, and the dead man's switch heartbeat ---------------
def alert_rules(graph: SidecarGraph) -> Server | None:
    monitoring = graph.server("monitoring")
    if monitoring is None:
        logger.info("alert rules are off: the monitoring server does not run in this sidecar")
        return None
    return AlertRulesServer(graph.settings, monitoring)


def heartbeat(graph: SidecarGraph) -> Server | None:
    if graph.settings.heartbeat_url is None:
        return None  # optional: HEARTBEAT_URL unset means no external dead man's switch
    return HeartbeatServer.from_settings(graph.settings)


def build_services(
    graph: SidecarGraph, factories: Mapping[str, ServiceFactory] | None = None
) -> tuple[list[Server], dict[str, str]]:
    """Build the services of `all` over `graph`; returns (services, {name: why unavailable}).

    A factory that answers None leaves its service off; one that raises is reported, like a server.
    """
    built: list[Server] = []
    unavailable: dict[str, str] = {}
    for name, factory in (SERVICES if factories is None else factories).items():
        if name in SERVERS:
            raise ValueError(f"service name {name!r} is already a server name; expected a name not in {list(SERVERS)}")
        service, why = _build_one(name, factory, graph, "service")
        if why:
            unavailable[name] = why
        if service is None:
            continue
        graph.servers[name] = service
        built.append(service)
    return built, unavailable
