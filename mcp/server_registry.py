"""The one registry of the sidecar's servers: name → factory and the setting that enables it.

Adding a server means one entry here. Each factory imports its module only when called, so a server whose
module cannot be imported is reported as unavailable by name instead of breaking the others. The servers
that do heavy work (scans, test runs) receive the MCPRiskIntegrator's gate. `SERVICES` (the integrator's
watch, the Telegram commands) run only in `all`, beside the servers, supervised like them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from config.settings import Settings
from mcp.server import Server

logger = logging.getLogger(__name__)


# the integrator's gate: gate(kind) -> a decision with .allowed and .reason (heavy work waits when refused)
Gate = Callable[[str], Awaitable[Any]]


def _codebase_search(settings: Settings, gate: Gate | None) -> Server:
    from mcp.codebase_search import CodebaseSearchServer

    return CodebaseSearchServer(settings, gate=gate)


def _testing(settings: Settings, gate: Gate | None) -> Server:
    from mcp.containment.runtime import get_process_containment
    from mcp.testing_server import TestingServer

    # issue 10: runs get a cgroup and a record in STATE_DIR, cleaned up by the next sidecar if this one is killed
    return TestingServer(settings, gate=gate, containment=get_process_containment(settings.state_dir))


def _monitoring(settings: Settings, gate: Gate | None) -> Server:
    from mcp.monitoring_server import MonitoringServer

    # monitoring is never gated: it keeps running (in a basic mode) whatever the gate says
    return MonitoringServer(settings)


ServerFactory = Callable[[Settings, Gate | None], Server]


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """How to build a server, which setting turns it on in `all`, and whether it does gated heavy work."""

    factory: ServerFactory
    enabled_setting: str
    gated: bool


SERVERS: dict[str, ServerSpec] = {
    "codebase_search": ServerSpec(_codebase_search, "mcp_codebase_search_enabled", gated=True),
    "testing": ServerSpec(_testing, "mcp_testing_enabled", gated=True),
    "monitoring": ServerSpec(_monitoring, "mcp_monitoring_enabled", gated=False),
}


def selected_servers(command: str, settings: Settings) -> list[str]:
    """The server names a command runs: `all` honours the MCP_*_ENABLED flags; a server's own name runs it."""
    if command == "all":
        return [name for name, spec in SERVERS.items() if getattr(settings, spec.enabled_setting)]
    if command in SERVERS:
        return [command]
    raise ValueError(f"unknown server command {command!r}; expected 'all' or one of {sorted(SERVERS)}")


def build_servers(
    names: Sequence[str],
    settings: Settings,
    overrides: Mapping[str, ServerFactory] | None = None,
    *,
    gate: Gate | None = None,
) -> tuple[list[Server], dict[str, str]]:
    """Build the named servers (the gated ones get `gate`); returns (servers, {name: why unavailable}).

    A server that cannot be built (an import error, a bad setting) is reported, not raised, so the
    others still run.
    """
    servers: list[Server] = []
    unavailable: dict[str, str] = {}
    for name in names:
        spec = SERVERS[name]
        factory = (overrides or {}).get(name) or spec.factory
        try:
            server = factory(settings, gate if spec.gated else None)
        except Exception as e:
            logger.exception("server %r cannot be built", name)
            unavailable[name] = f"{type(e).__name__}: {e}"
            continue
        if not isinstance(server, Server):
            unavailable[name] = f"{type(server).__name__} does not implement the Server protocol"
            continue
        servers.append(server)
    return servers, unavailable


def integrator_gate() -> Gate | None:
    """The process's MCPRiskIntegrator gate; None (heavy work ungated, reason logged) if it is unavailable."""
    try:
        from core.integrations.mcp_risk_integration import get_mcp_risk_integrator

        return get_mcp_risk_integrator().gate
    except Exception:
        logger.exception("the MCP risk integrator is unavailable: heavy work (scans, test runs) runs ungated")
        return None


# --- services: background work of `all` only --------------------------------------------------------
# A service is supervised like a server (restarts, health, status) but has no command of its own and is
# never served over stdio: the integrator's watch belongs to the one running sidecar, and Telegram allows
# one getUpdates consumer per token. A factory sees the built servers and may return None: off for these
# settings (it logs why).
ServiceFactory = Callable[[Settings, Sequence[Server]], Server | None]


def _named(servers: Sequence[Server], name: str) -> Any:
    return next((server for server in servers if server.name == name), None)


def _risk_integrator(settings: Settings, servers: Sequence[Server]) -> Server:
    from mcp.risk_watch import RiskWatchServer

    # always on, never gated: it is what trips and recovers the MCP breaker behind the gate
    return RiskWatchServer(settings, testing=_named(servers, "testing"))


def _telegram_commands(settings: Settings, servers: Sequence[Server]) -> Server | None:
    if settings.telegram_bot_token is None:
        # checked before the import: python-telegram-bot costs ~7 MB of RSS that a log-only sidecar never uses
        logger.info("Telegram commands are off: TELEGRAM_BOT_TOKEN is not set")
        return None
    from mcp.telegram_backend import build_telegram_commands

    return build_telegram_commands(settings, servers)


# --- issue 9 (i9alerts): alert rules + daily report, and the dead man's switch heartbeat ---------------
def _alert_rules(settings: Settings, servers: Sequence[Server]) -> Server | None:
    monitoring = _named(servers, "monitoring")
    if monitoring is None:
        logger.info("alert rules are off: the monitoring server does not run in this sidecar")
        return None
    from mcp.alert_rules_server import AlertRulesServer

    return AlertRulesServer(settings, monitoring)


def _heartbeat(settings: Settings, servers: Sequence[Server]) -> Server | None:
    if settings.heartbeat_url is None:
        return None  # optional: HEARTBEAT_URL unset means no external dead man's switch
    from mcp.heartbeat import HeartbeatServer

    return HeartbeatServer.from_settings(settings)


SERVICES: dict[str, ServiceFactory] = {
    "risk_integrator": _risk_integrator,
    "telegram_commands": _telegram_commands,
    "alert_rules": _alert_rules,
    "heartbeat": _heartbeat,
}


def build_services(
    settings: Settings,
    servers: Sequence[Server],
    factories: Mapping[str, ServiceFactory] | None = None,
) -> tuple[list[Server], dict[str, str]]:
    """Build the services of `all` beside `servers`; returns (services, {name: why unavailable}).

    A factory that answers None leaves its service off; one that raises is reported, like a server.
    """
    built: list[Server] = []
    unavailable: dict[str, str] = {}
    for name, factory in (SERVICES if factories is None else factories).items():
        if name in SERVERS:
            raise ValueError(f"service name {name!r} is already a server name; expected a name not in {list(SERVERS)}")
        try:
            service = factory(settings, servers)
        except Exception as e:
            logger.exception("service %r cannot be built", name)
            unavailable[name] = f"{type(e).__name__}: {e}"
            continue
        if service is None:
            continue
        if not isinstance(service, Server):
            unavailable[name] = f"{type(service).__name__} does not implement the Server protocol"
            continue
        built.append(service)
    return built, unavailable
