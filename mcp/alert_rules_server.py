"""The alert-rules service of the sidecar: evaluates `mcp.alert_rules` and sends the daily performance report.

Every MONITOR_INTERVAL_SECONDS it reads the monitoring server's cached health report (no psutil, no file
I/O of its own), runs the pure `evaluate`, and hands each notice to the process's alert manager, so the
fingerprint dedup, the key cooldown, the outbox and the retries all apply. It also sends the
📊 PERFORMANCE REPORT when PERFORMANCE_REPORT_TIME (UTC) comes round.

One trip, one message: the bot alerts its own trading-breaker trip ("Circuit breaker HALTED (kind): reason")
into the same outbox (STATE_DIR/alerts_outbox.sqlite3). Before the sidecar says it too, it looks in the
outbox for that very fingerprint (same alert name, text and scope) written since the trip; if it is there,
the sidecar records its own notice as delivered without sending it. The sidecar's notice goes out only
when the bot's did not (the bot died with the trip, or could not reach its alert channel). The same holds
for the end of a trip ("… halt ended (…); trading state ACTIVE").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from config.settings import Settings
from mcp.alert_rules import Echo, Notice, RuleConfig, RuleState, evaluate, observation_from_report
from mcp.health import HealthStatus
from mcp.monitoring.report import next_report_due, report_time
from mcp.monitoring.thresholds import HOST_WINDOW_FACTOR, MIN_DURATION_INTERVALS, MonitoringLimits
from utils.alerting.dedup import Action, Candidate, Decision
from utils.alerting.fingerprint import alert_fingerprint
from utils.alerting.model import DEFAULT_ALERTNAME, Alert, AlertSeverity
from utils.alerts import AlertType, get_alert_manager

logger = logging.getLogger(__name__)

# the bot writes its own trip alert to the outbox within milliseconds of the trip; this leaves it time
BREAKER_GRACE_INTERVALS = 2.0
MIN_BREAKER_GRACE_SECONDS = 3.0
# an echo row may be stamped a little before the trip time the state file records
ECHO_SLACK_SECONDS = 5.0


class MonitoringView(Protocol):
    """What the rules read of the monitoring server."""

    def health_report(self) -> dict[str, Any]:
        """The cached /health body."""
        ...

    async def performance_report(self) -> dict[str, Any]:
        """The 📊 PERFORMANCE REPORT (status, text)."""
        ...


def rule_config(settings: Settings) -> RuleConfig:
    """The rules' durations and levels from Settings and the monitoring's thresholds."""
    limits = MonitoringLimits.from_settings(settings)
    base = settings.monitor_interval_seconds
    hold = MIN_DURATION_INTERVALS * base
    return RuleConfig(
        stale_after_seconds=limits.snapshot_age_seconds[1],
        breaker_grace_seconds=max(BREAKER_GRACE_INTERVALS * base, MIN_BREAKER_GRACE_SECONDS),
        default_min_duration=hold,
        min_durations={"host": MIN_DURATION_INTERVALS * base * HOST_WINDOW_FACTOR},
        sidecar_cpu_warning=limits.sidecar_cpu_percent.warning,
        sidecar_memory_warning_mb=limits.sidecar_memory_mb.warning,
    )


async def delivered_by_bot(manager: Any, echo: Echo) -> bool:
    """True when the shared outbox holds the bot's message `echo` (same fingerprint) since `echo.since`."""
    pipeline = manager.pipeline
    if pipeline.log_only:
        return False  # no outbox: both processes only log, and a log line is not a message
    await pipeline.ensure_started()
    outbox = pipeline.outbox
    if outbox is None:
        return False
    fingerprint = alert_fingerprint(
        Alert(manager.clean(echo.text), AlertSeverity.INFO, staging=pipeline.config.staging)
    )
    rows = await outbox.recent(echo.since - ECHO_SLACK_SECONDS)
    return any(row.fingerprint == fingerprint and row.created_at >= echo.since - ECHO_SLACK_SECONDS for row in rows)


def record_as_delivered(manager: Any, notice: Notice, alert_type: Any, now: float) -> None:
    """Let the sidecar's dedup know the notice went out (through the bot): its resolution then works."""
    pipeline = manager.pipeline
    name = alert_type.name if alert_type is not None else DEFAULT_ALERTNAME
    severity = AlertSeverity(notice.severity)
    alert = Alert(manager.clean(notice.text), severity, name, notice.key, pipeline.config.staging, notice.resolved)
    action = Action.RESOLVED if notice.resolved else Action.SEND
    candidate = Candidate(alert_fingerprint(alert), severity, notice.key, notice.resolved)
    pipeline.dedup.record(candidate, Decision(action, "delivered by the bot"), now)


async def deliver(manager: Any, notice: Notice, now: float) -> str:
    """Send one notice through the alert manager; what became of it: sent, suppressed, by_bot or disabled."""
    alert_type = AlertType[notice.alert_type] if notice.alert_type else None
    if alert_type is AlertType.CIRCUIT_BREAKER_TRIPPED and not manager.alert_on_circuit_breaker:
        return "disabled"
    if notice.echo is not None and await delivered_by_bot(manager, notice.echo):
        record_as_delivered(manager, notice, alert_type, now)
        return "by_bot"
    if notice.resolved:
        ok = await manager.resolve(notice.key, notice.text, alert_type=alert_type)
    else:
        ok = await manager.send(notice.text, notice.severity, key=notice.key, alert_type=alert_type)
    return "sent" if ok else "suppressed"


class AlertRulesServer:
    """Evaluates the alert rules after the monitoring's rounds and sends the daily report (module docstring)."""

    name = "alert_rules"

    def __init__(
        self,
        settings: Settings,
        monitoring: MonitoringView,
        *,
        manager_factory: Callable[[], Any] = get_alert_manager,
        interval: float | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.monitoring = monitoring
        self._manager_factory = manager_factory
        self.interval = float(interval if interval is not None else settings.monitor_interval_seconds)
        if self.interval <= 0:
            raise ValueError(f"interval: expected seconds > 0, received {self.interval}")
        self._clock = clock
        self._sleep = sleep
        self.config = rule_config(settings)
        self.states: dict[str, RuleState] = {}
        self.evaluations = 0
        self.outcomes: dict[str, int] = {}
        self.last_error: str | None = None
        self.report_at = report_time(settings.performance_report_time)
        self.next_report: datetime | None = None
        self.reports_sent = 0

    # --- Server protocol --------------------------------------------------------------------------

    async def run(self, ready: asyncio.Event) -> None:
        """Say ready, then evaluate every interval (and send the report when due) until cancelled."""
        self.next_report = next_report_due(self._now(), self.report_at)
        if self.next_report is None:
            logger.info("daily performance report off (PERFORMANCE_REPORT_TIME=off)")
        ready.set()
        while True:
            await self.tick()
            await self._sleep(self.interval)

    def health(self) -> dict[str, Any]:
        """Firing and pending rules, what became of the notices, the next report."""
        status = HealthStatus.DEGRADED if self.last_error else HealthStatus.HEALTHY
        firing = sorted(key for key, state in self.states.items() if state.firing)
        return {
            "status": status.value,
            "message": f"last evaluation failed: {self.last_error}" if self.last_error else f"{len(firing)} firing",
            "firing": firing,
            "pending": sorted(key for key, state in self.states.items() if not state.firing),
            "evaluations": self.evaluations,
            "notices": dict(self.outcomes),
            "next_report": self.next_report.isoformat() if self.next_report else None,
            "reports_sent": self.reports_sent,
        }

    def tools(self) -> list[Callable[..., Any]]:
        """None: the report is a monitoring tool (get_performance_report)."""
        return []

    # --- one round --------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def tick(self) -> list[Notice]:
        """Evaluate once and deliver the notices; then the daily report if it is due. Never raises."""
        notices: list[Notice] = []
        try:
            notices = await self._evaluate()
            self.last_error = None
        except Exception as e:
            self.last_error = f"{type(e).__name__}: {e}"
            logger.exception("alert rules evaluation failed; the next round tries again")
        try:
            await self._report_if_due()
        except Exception:
            logger.exception("the daily performance report failed; it is tried again next round")
        return notices

    async def _evaluate(self) -> list[Notice]:
        report = self.monitoring.health_report()
        components = report.get("components") if isinstance(report, Mapping) else None
        if not components:
            return []  # no round yet: nothing observed, nothing concluded
        now = self._clock()
        self.states, notices = evaluate(self.states, observation_from_report(report), now, self.config)
        self.evaluations += 1
        if notices:
            manager = self._manager_factory()
            for notice in notices:
                outcome = await deliver(manager, notice, now)
                self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
                logger.info("alert rule %s %s: %s", notice.key, "resolved" if notice.resolved else "firing", outcome)
        return notices

    async def _report_if_due(self) -> None:
        now = self._now()
        if self.next_report is None or now < self.next_report:
            return
        self.next_report = next_report_due(now, self.report_at)
        answer = await self.monitoring.performance_report()
        text = str(answer.get("text") or "")
        body = text.split("\n", 1)[1] if text.startswith(AlertType.PERFORMANCE_REPORT.heading) else text
        manager = self._manager_factory()
        key = f"performance-report:{now:%Y-%m-%d}"
        if await manager.send(
            f"{AlertType.PERFORMANCE_REPORT.heading}\n{body}", "info", key=key, alert_type=AlertType.PERFORMANCE_REPORT
        ):
            self.reports_sent += 1
