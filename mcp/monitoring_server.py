"""The monitoring server: health checks of the bot and the sidecar, the dashboard and the metrics endpoint.

It runs the checks of `mcp.monitoring` (each on its own interval, psutil off the event loop, the bot's
files read-only) through a `MonitoringService`, and serves the metrics registry at
http://DASHBOARD_HOST:METRICS_PORT/metrics from the same event loop. `health_report()` and `history()`
are the cached bodies of the dashboard's GET /health and GET /api/history; `service` and `metrics` are
public so the dashboard can mount them. With DASHBOARD_ENABLED it also serves the dashboard
(mcp.dashboard: the page, /health, /api/history, /metrics, POST /reset-circuit-breaker) at
http://DASHBOARD_HOST:DASHBOARD_PORT/, on the same event loop.

    python -m mcp.main_mcp monitoring | grep -E "(cpu_percent|memory_mb)"   # one report per round
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from config.settings import Settings, get_settings
from mcp.dashboard.app import DEFAULT_MAX_BODY_BYTES, Extension, ResetBreaker
from mcp.dashboard.serve import start_dashboard
from mcp.monitoring.http import ServeError, metrics_app, start_site
from mcp.monitoring.http_guard import HttpGuard
from mcp.monitoring.metrics import MonitoringMetrics
from mcp.monitoring.metrics_auth import metrics_middlewares
from mcp.monitoring.report import collect_report
from mcp.monitoring.service import MonitoringService
from mcp.monitoring.sources import ServerStatesSource
from mcp.monitoring.wiring import MonitoringSources
from mcp.tools.monitoring_results import HealthReport, PerformanceReport

logger = logging.getLogger(__name__)


def _flat(figures: Mapping[str, Any]) -> dict[str, Any]:
    """Scalar figures only: what fits on one terminal line."""
    return {key: value for key, value in figures.items() if not isinstance(value, Mapping | list | tuple)}


def format_report(report: Mapping[str, Any]) -> list[str]:
    """A health report as terminal lines: a header, then one line per component with its scalar figures."""
    components = report.get("components") if isinstance(report.get("components"), Mapping) else {}
    lines = [
        f"{report.get('generated_at')} monitoring overall={report.get('status')} "
        f"components={len(components)} uptime_seconds={report.get('uptime_seconds')}"
    ]
    for name, component in components.items():
        figures = _flat(component.get("figures") or {})
        shown = " ".join(f"{key}={value}" for key, value in figures.items())
        lines.append(
            f"  {name}: {component.get('status')} - {component.get('message')}" + (f" [{shown}]" if shown else "")
        )
    return lines


class MonitoringServer:
    """Runs the health checks, serves /metrics; tools: health_report, history.

    `sources` (mcp.monitoring.wiring.MonitoringSources) is what the checks read; each field left None gets
    its production default (psutil, the supervisor's status file until `set_server_states` is called, the
    process's alert manager). The gate block of /health and POST /reset-circuit-breaker need the sidecar's
    MCPRiskIntegrator: `sources.gate_status` and `reset_breaker` (mcp.sidecar_builder wires both). Tests
    pass fakes.
    """

    name = "monitoring"

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        sources: MonitoringSources | None = None,
        report: Callable[[dict[str, Any]], None] | None = None,
        registry: CollectorRegistry | None = None,
        serve_metrics: bool | None = None,
        metrics_host: str | None = None,
        metrics_port: int | None = None,
        serve_dashboard: bool | None = None,
        dashboard_host: str | None = None,
        dashboard_port: int | None = None,
        reset_breaker: ResetBreaker | None = None,
        http_optional: bool = False,
        dashboard_extensions: Sequence[Extension] = (),
        dashboard_max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        trading: Any = None,
    ) -> None:
        self.settings = settings if settings is not None else get_settings()
        self.sources = (MonitoringSources() if sources is None else sources).resolved(self.settings)
        self.metrics = MonitoringMetrics(registry)
        self._report_to = report
        self._alert_stats = self.sources.alert_stats
        self.service = MonitoringService.from_settings(
            self.settings, self.sources, metrics=self.metrics, on_round=self._after_round
        )
        self.serve_metrics = self.settings.metrics_enabled if serve_metrics is None else serve_metrics
        self.metrics_host = self.settings.dashboard_host if metrics_host is None else metrics_host
        self.metrics_port = self.settings.metrics_port if metrics_port is None else metrics_port
        self.metrics_bound_port: int | None = None
        self.serve_dashboard = self.settings.dashboard_enabled if serve_dashboard is None else serve_dashboard
        self.dashboard_host = self.settings.dashboard_host if dashboard_host is None else dashboard_host
        # the one read of DASHBOARD_PORT: the dashboard binds it, /mcp's allowed origins are derived from it
        self.dashboard_port = self.settings.dashboard_port if dashboard_port is None else dashboard_port
        self.dashboard_bound_port: int | None = None
        # None: no MCP risk integrator wired in, and POST /reset-circuit-breaker answers 503
        self._reset_breaker = reset_breaker
        # True for `python -m mcp.main_mcp monitoring` beside a running sidecar: a taken port is a warning
        # and the reports still print; the sidecar proper (`all`) fails loudly instead
        self.http_optional = http_optional
        # routes mounted on the dashboard's app (MCP over HTTP at /mcp) and the body limit they need
        self.dashboard_extensions = tuple(dashboard_extensions)
        self.dashboard_max_body_bytes = dashboard_max_body_bytes
        # the trading view the dashboard's /api/trading reads (the sidecar's one); None: the view of STATE_DIR
        self.trading = trading
        self._runners: list[web.AppRunner] = []

    def set_server_states(self, source: ServerStatesSource) -> None:
        """Judge the sidecar's servers from the supervisor's per-server states (`source`) from now on."""
        self.service.set_server_states(source)

    async def run(self, ready: asyncio.Event) -> None:
        """Serve /metrics and the dashboard, check at once, say ready, then run every check when due until cancelled."""
        try:
            if self.serve_dashboard:
                if self._reset_breaker is None:
                    logger.warning("no MCP risk integrator wired in: POST /reset-circuit-breaker will answer 503")
                self.dashboard_bound_port = await self._serve(
                    start_dashboard(
                        self.settings,
                        self,
                        registry=self.metrics.registry,
                        reset_breaker=self._reset_breaker,
                        host=self.dashboard_host,
                        port=self.dashboard_port,
                        extend=self.dashboard_extensions,
                        max_body_bytes=self.dashboard_max_body_bytes,
                        trading_source=self.trading,
                    )
                )
            if self.serve_metrics:
                self.metrics_bound_port = await self._serve(
                    start_site(
                        # issue 11: beyond loopback /metrics needs DASHBOARD_TOKEN as a bearer, like the dashboard
                        metrics_app(
                            self.metrics.registry,
                            middlewares=metrics_middlewares(self.metrics_host, self.settings.dashboard_token),
                        ),
                        self.metrics_host,
                        self.metrics_port,
                        setting="METRICS_PORT",
                        what="Prometheus metrics",
                        guard=HttpGuard.from_settings(self.settings),
                    )
                )
            await self.service.run(ready)
        finally:
            # shielded: a second cancellation during the stop must not leave a port bound
            await asyncio.shield(self._stop_http())

    async def _serve(self, starting: Awaitable[tuple[web.AppRunner, int]]) -> int | None:
        """Await a site's start; the bound port, or None when it failed and HTTP is optional (logged)."""
        try:
            runner, port = await starting
        except ServeError as e:
            if not self.http_optional:
                raise
            logger.warning("%s; this process carries on without that endpoint", e)
            return None
        self._runners.append(runner)
        return port

    async def _stop_http(self) -> None:
        runners, self._runners = self._runners, []
        for runner in reversed(runners):
            await runner.cleanup()
        self.metrics_bound_port = None
        self.dashboard_bound_port = None

    def _after_round(self, service: MonitoringService) -> None:
        if self._report_to is not None:
            self._report_to(service.health_report())

    async def check_once(self) -> dict[str, Any]:
        """Run the checks that are due now (all of them the first time) and return the health report."""
        await self.service.run_round()
        return self.service.health_report()

    def health(self) -> dict[str, Any]:
        """For the supervisor: this server's own status (checks on time?) and every component in brief."""
        own = self.service.monitoring_component()
        report = self.service.health_report()
        return {
            "status": own["status"],
            "message": own["message"],
            "overall": report["status"],
            "rounds": self.service.rounds,
            "metrics_endpoint": None
            if self.metrics_bound_port is None
            else f"http://{self.metrics_host}:{self.metrics_bound_port}/metrics",
            "dashboard": None
            if self.dashboard_bound_port is None
            else f"http://{self.dashboard_host}:{self.dashboard_bound_port}/",
            "components": {
                name: {"status": component["status"], "message": component["message"], **_flat(component["figures"])}
                for name, component in report["components"].items()
            },
        }

    def health_report(self) -> HealthReport:
        """Overall status, every component (status, message, figures, since), the breaker and the gate."""
        return self.service.health_report()

    def history(self) -> dict[str, list[list[float]]]:
        """Recent points for charts: trade latency p50/p99, sidecar CPU and RSS, coverage."""
        return self.service.history()

    async def performance_report(self) -> PerformanceReport:
        """The 📊 PERFORMANCE REPORT now: trades copied and denied by reason, P&L, breaker trips, decision → ack
        p50/p99, the sidecar's CPU and RSS, coverage, alerts sent and suppressed (issue 9)."""
        suppressed = None
        try:
            totals = self._alert_stats()
            suppressed = int(totals.suppressed) if totals is not None else None
        except Exception:
            logger.exception("cannot read the alert manager's suppressed count; the report says unknown")
        text = await collect_report(self.settings, self.service.health_report(), suppressed=suppressed)
        return {"status": "ok", "text": text}

    def tools(self) -> Sequence[Callable[..., Any]]:
        """The MCP tools of this server."""
        return [self.health_report, self.history]
