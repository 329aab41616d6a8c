"""Telegram operator commands, answered by the running sidecar.

Telegram allows one `getUpdates` consumer per bot token, so the commands are polled here, in the sidecar,
and never in the bot. `SidecarCommandBackend` implements `utils.alerting.commands.CommandBackend` over
the sidecar's own objects: the supervisor (/status), the monitoring server's cached health report
(/health), the testing server's last run (/coverage), a risk-parameter scan through the integrator's
gate (/scan: deferred, with the reason, during market hours or while the MCP breaker is open), the
alert manager's mute (/mute) and the integrator's MCP breaker (/reset_mcp).

`build_telegram_commands` gives the supervised server ("telegram_commands"), or None (with one log line
saying why) when TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID or TELEGRAM_ALLOWED_USER_IDS is missing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from mcp.sidecar_graph import SidecarGraph
from mcp.trading.text import daily_text, pnl_text, positions_text, trades_text
from utils.alerting.commands import Reply, TelegramCommands
from utils.alerts import get_alert_manager

logger = logging.getLogger(__name__)

# a reply lists at most this many parameters and violations: a chat message is a summary, not the report
MAX_LISTED = 8


class SupervisorView(Protocol):
    """What /status reads from the supervisor."""

    def summary(self) -> str:
        """One line: servers running, overall health, restarts."""
        ...

    def statistics(self) -> dict[str, Any]:
        """Uptime, restarts and the per-server state."""
        ...


class AlertMuter(Protocol):
    """What /mute uses of the alert manager."""

    def mute(self, minutes: float) -> float:
        """Mute non-critical alerts for `minutes` (0 unmutes); the epoch time the mute ends."""
        ...


def _percent(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "unknown"
    return f"{value:.1%}"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def status_reply(statistics: Mapping[str, Any], summary: str, breaker: Mapping[str, Any] | None) -> dict[str, Any]:
    """/status: the supervisor's summary line, uptime, restarts, one line per server, the MCP breaker."""
    servers: dict[str, str] = {}
    for name, entry in (statistics.get("servers") or {}).items():
        line = f"{entry.get('state')}, restarts {entry.get('restarts', 0)}"
        if isinstance(entry.get("uptime_seconds"), int | float):
            line += f", up {entry['uptime_seconds']:.0f} s"
        if entry.get("state") != "running" and entry.get("last_error"):
            line += f"; last error: {entry['last_error']}"
        servers[name] = line
    reply: dict[str, Any] = {
        "summary": summary,
        "uptime_seconds": statistics.get("uptime_seconds"),
        "restarts_total": statistics.get("restarts_total"),
        "servers": servers,
    }
    if breaker is not None:
        reason = f" ({breaker['reason']})" if breaker.get("reason") else ""
        reply["mcp_circuit_breaker"] = f"{breaker.get('state')}{reason}"
    return reply


def health_reply(report: Mapping[str, Any]) -> dict[str, Any]:
    """/health: the monitoring's overall status, one line per component, trading and gate state."""
    components = report.get("components") if isinstance(report.get("components"), Mapping) else {}
    gate = report.get("gate") if isinstance(report.get("gate"), Mapping) else {}
    breaker = report.get("circuit_breaker") if isinstance(report.get("circuit_breaker"), Mapping) else {}
    return {
        "overall": report.get("status"),
        "checked_at": report.get("generated_at"),
        "components": {
            name: f"{component.get('status')}: {component.get('message')}"
            for name, component in components.items()
            if isinstance(component, Mapping)
        },
        "trading_state": breaker.get("trading_state"),
        "heavy_work": gate.get("reason"),
    }


def coverage_reply(run: Mapping[str, Any]) -> dict[str, Any]:
    """/coverage: the last run's figure against the threshold, its counts and when it ran."""
    if run.get("coverage") is None:
        return {"status": run.get("status"), "message": run.get("message")}
    counts = ", ".join(f"{run.get(key, 0)} {key}" for key in ("passed", "failed", "skipped", "errors"))
    return {
        "status": run.get("status"),
        "coverage": _percent(run.get("coverage")),
        "threshold": _percent(run.get("threshold")),
        "meets_threshold": run.get("meets_threshold"),
        "tests": counts,
        "risk_files": _percent(run.get("risk_coverage")) if run.get("risk_coverage") is not None else None,
        "run_id": run.get("run_id"),
        "started_at": run.get("started_at"),
    }


def scan_reply(result: Mapping[str, Any]) -> dict[str, Any]:
    """/scan: the integrator's scan answer in brief: deferred with the reason, or the counts and the top finds."""
    status = result.get("status")
    if status == "deferred":
        return {"status": "deferred", "reason": result.get("reason")}
    if status != "completed":
        return {"status": status, "message": result.get("message") or result.get("reason")}
    parameters = result.get("scanned_params") if isinstance(result.get("scanned_params"), Mapping) else {}
    counts = {name: entry.get("usage_count", 0) for name, entry in parameters.items() if isinstance(entry, Mapping)}
    used = sorted(((name, n) for name, n in counts.items() if n), key=lambda item: (-item[1], item[0]))
    violations = [v for v in result.get("violations") or [] if isinstance(v, Mapping)]
    reply: dict[str, Any] = {
        "status": "completed",
        "parameters": len(parameters),
        "unused_parameters": len(parameters) - len(used),
        "files_scanned": result.get("files_scanned"),
        "violations": len(violations),
        "usages": dict(used[:MAX_LISTED]),
    }
    if violations:
        reply["first_violations"] = {
            str(number): f"{v.get('file')}:{v.get('line')} {v.get('rule')}: {v.get('message')}"
            for number, v in enumerate(violations[:MAX_LISTED], start=1)
        }
    return reply


class SidecarCommandBackend:
    """`CommandBackend` over the running sidecar (see the module docstring).

    A server that does not run in this sidecar (monitoring or testing disabled) gets a reply saying so.
    """

    def __init__(
        self,
        *,
        monitoring: Any = None,
        testing: Any = None,
        integrator: Any = None,
        alert_manager: Callable[[], AlertMuter] = get_alert_manager,
        trading: Any = None,
    ) -> None:
        self.monitoring = monitoring
        self.testing = testing
        # the sidecar's MCPRiskIntegrator (/status, /scan, /reset_mcp); None: those commands say it is missing
        self.integrator = integrator
        self._alert_manager = alert_manager
        # the trading view (mcp.trading.source.TradingSource): /pnl /positions /trades /daily
        self.trading = trading
        self.supervisor: SupervisorView | None = None

    def attach_supervisor(self, supervisor: SupervisorView) -> None:
        """Answer /status from this supervisor (it is built after the servers)."""
        self.supervisor = supervisor

    async def _integrator(self) -> Any:
        if self.integrator is None:
            raise RuntimeError("no MCP risk integrator in this sidecar: its log says why it could not be built")
        return self.integrator

    async def status(self) -> Reply:
        """The supervisor's statistics in brief, and the MCP breaker."""
        if self.supervisor is None:
            return "the supervisor is not attached yet: the sidecar is still starting; try again in a moment"
        integrator = await self._integrator()
        breaker = integrator.get_mcp_circuit_breaker_state()
        return status_reply(self.supervisor.statistics(), self.supervisor.summary(), breaker)

    async def health(self) -> Reply:
        """The monitoring server's cached health report, condensed."""
        if self.monitoring is None:
            return "the monitoring server does not run in this sidecar (MCP_MONITORING_ENABLED=false)"
        return health_reply(self.monitoring.health_report())

    async def coverage(self) -> Reply:
        """The testing server's last run."""
        if self.testing is None:
            return "the testing server does not run in this sidecar (MCP_TESTING_ENABLED=false)"
        return coverage_reply(await self.testing.get_coverage())

    async def scan(self) -> Reply:
        """A risk-parameter scan through the integrator's gate (deferred with the reason when refused)."""
        integrator = await self._integrator()
        return scan_reply(await integrator.scan_risk_parameters())

    async def mute(self, minutes: int) -> Reply:
        """Mute Telegram alerts below critical for `minutes` (0 unmutes)."""
        until = self._alert_manager().mute(minutes)
        if minutes == 0:
            return "Telegram alerts unmuted"
        return (
            f"Telegram alerts below critical muted for {minutes} minute(s), until {_iso(until)}; "
            "critical ones still go out"
        )

    async def reset_mcp(self) -> Reply:
        """Close the MCP circuit breaker by hand."""
        integrator = await self._integrator()
        await integrator.refresh_mcp_circuit_breaker()  # another process may have changed the state file
        before = integrator.get_mcp_circuit_breaker_state()
        after = await integrator.reset_mcp_circuit_breaker("Telegram /reset_mcp")
        if before.get("state") == "closed":
            return {"result": "the MCP circuit breaker was already closed; nothing to reset", "state": after["state"]}
        return {
            "result": f"MCP circuit breaker reset (was {before.get('state')}: {before.get('reason')})",
            "state": after.get("state"),
            "manual_resets": after.get("manual_resets"),
        }

    async def report(self) -> Reply:
        """The 📊 PERFORMANCE REPORT of the monitoring server, now."""
        if self.monitoring is None:
            return "the monitoring server does not run in this sidecar (MCP_MONITORING_ENABLED=false)"
        answer = await self.monitoring.performance_report()
        return str(answer.get("text") or answer)

    # --- trading view (issue 11): the same figures as the dashboard's /api/trading ---
    def _trading(self) -> Any:
        if self.trading is None:
            raise RuntimeError("no trading view in this sidecar: the ledger reader is not configured")
        return self.trading

    async def pnl(self) -> Reply:
        """Today's P&L against the daily-loss limit."""
        return pnl_text(await self._trading().view())

    async def positions(self) -> Reply:
        """What the bot holds."""
        return positions_text(await self._trading().view())

    async def trades(self, count: int) -> Reply:
        """The `count` newest followed trades."""
        return trades_text(await self._trading().view(trades=count))

    async def daily(self, days: int) -> Reply:
        """P&L per trading day."""
        return daily_text(await self._trading().daily(days))


class TelegramCommandsServer:
    """The commands' long polling as a supervised sidecar server; no MCP tools."""

    name = "telegram_commands"

    def __init__(self, commands: TelegramCommands, backend: SidecarCommandBackend) -> None:
        self.commands = commands
        self.backend = backend

    def attach_supervisor(self, supervisor: SupervisorView) -> None:
        """Let /status read the supervisor that runs this server."""
        self.backend.attach_supervisor(supervisor)

    async def run(self, ready: asyncio.Event) -> None:
        """Poll Telegram until cancelled. Ready at once: an unreachable Telegram is retried with backoff and
        shows as degraded health, not as a failed start (which would end in the server being given up).
        A rejected token raises."""
        ready.set()
        await self.commands.run(asyncio.Event())

    def health(self) -> dict[str, Any]:
        """Polling or not, and the command counters."""
        polling = self.commands.application is not None
        stats = dict(self.commands.stats)
        message = "polling for commands" if polling else "not polling (starting, or Telegram unreachable)"
        return {"status": "healthy" if polling else "degraded", "message": message, **stats}

    def tools(self) -> list[Callable[..., Any]]:
        """None: commands arrive over Telegram, not MCP."""
        return []


def build_telegram_commands(graph: SidecarGraph, **kw: Any) -> TelegramCommandsServer | None:
    """The commands server over the sidecar's graph (its monitoring and testing servers, integrator and
    trading view); None when the settings leave commands off (TelegramCommands.from_settings logs why).
    `kw` go to TelegramCommands (timeouts)."""
    backend = SidecarCommandBackend(
        monitoring=graph.server("monitoring"),
        testing=graph.server("testing"),
        integrator=graph.integrator,
        trading=graph.trading,
    )
    commands = TelegramCommands.from_settings(graph.settings, backend, **kw)
    if commands is None:
        return None
    return TelegramCommandsServer(commands, backend)
