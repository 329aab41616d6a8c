"""Operator alerts: one `TelegramAlertManager` per process, and the module-level senders everyone imports.

Every alert is written to the log (logger ``alerts``, at its severity, secrets and wallets masked). With
a TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID it also goes to Telegram, and with ALERTMANAGER_URL to
Alertmanager, through `utils.alerting`: deduplicated after Alertmanager (fingerprints, the duplicate
window, the per-key cooldown, resolved notices once), written to an SQLite outbox in STATE_DIR before
any send, delivered in order with retries (RetryAfter honoured, backoff on timeouts and network errors,
dead letters for BadRequest/Forbidden). No token: the log only, with one warning at start-up.

A sender never raises into its caller: a broken alert channel must never stop trading or the sidecar.
It logs the failure and returns False. True means the alert was accepted: logged, and durably queued
for the channels; a sender waits up to `confirm_seconds` for the delivery so that a one-shot script
(`asyncio.run(send_telegram_alert("Test alert"))`) sees its message arrive, and never longer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import Enum
from typing import Any

from config.settings import Settings, get_settings
from utils.alerting.dedup import Action
from utils.alerting.model import DEFAULT_ALERTNAME, Alert, AlertSeverity, parse_severity
from utils.alerting.outbox import OutboxRow
from utils.alerting.pipeline import AlertPipeline, ChannelFactory, PipelineConfig, default_channels
from utils.alerting.redaction import protect_loggers
from utils.logging_setup import secret_values
from utils.secrets import mask_addresses, redact

__all__ = [
    "AlertSeverity",
    "AlertType",
    "TelegramAlertManager",
    "close_alerts",
    "configure_alerts",
    "describe_error",
    "flush_alerts",
    "format_alert",
    "get_alert_manager",
    "key_allows",
    "parse_severity",
    "reset_alert_manager",
    "resolve_alert",
    "send_alert",
    "send_error_alert",
    "send_staging_alert",
    "send_telegram_alert",
    "send_trade_alert",
]

logger = logging.getLogger("alerts")

# long enough for a healthy Bot API (~0.1–0.5 s), short enough that no caller waits on an outage
DEFAULT_CONFIRM_SECONDS = 1.0
NO_TOKEN_WARNING = "TELEGRAM_BOT_TOKEN is not set: alerts go to the log only (logger 'alerts')"


class AlertType(Enum):
    """The alert types of reference 000 §Alert Integration: emoji, title and default severity."""

    MCP_SERVERS_STARTED = ("🚀", "MCP SERVERS STARTED", AlertSeverity.INFO)
    MCP_SERVERS_STOPPED = ("🛑", "MCP SERVERS STOPPED", AlertSeverity.INFO)
    CIRCUIT_BREAKER_TRIPPED = ("⚠️", "CIRCUIT BREAKER TRIPPED", AlertSeverity.WARNING)
    PERFORMANCE_REPORT = ("📊", "PERFORMANCE REPORT", AlertSeverity.INFO)
    CRITICAL_ISSUE = ("🔴", "CRITICAL ISSUE", AlertSeverity.CRITICAL)
    RESOURCE_WARNING = ("⚠️", "RESOURCE WARNING", AlertSeverity.WARNING)
    TEST_COVERAGE = ("📈", "TEST COVERAGE", AlertSeverity.INFO)

    def __init__(self, emoji: str, title: str, severity: AlertSeverity) -> None:
        self.emoji = emoji
        self.title = title
        self.default_severity = severity

    @property
    def heading(self) -> str:
        """The first line of an alert of this type, e.g. '🚀 MCP SERVERS STARTED'."""
        return f"{self.emoji} {self.title}"


def format_alert(alert_type: AlertType, body: str) -> str:
    """The text of a typed alert: its heading, then the body."""
    body = body.strip()
    return f"{alert_type.heading}\n{body}" if body else alert_type.heading


def key_allows(last_sent_at: float | None, now: float, cooldown_seconds: float) -> bool:
    """May an alert with a key last sent at `last_sent_at` go out again at `now`?"""
    return last_sent_at is None or now - last_sent_at >= cooldown_seconds


def describe_error(error: str | BaseException, context: str = "") -> str:
    """One readable line for an error alert: '<context>: <Type>: <message>'."""
    if isinstance(error, BaseException):
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    else:
        text = str(error)
    return f"{context}: {text}" if context else text


class TelegramAlertManager:
    """The process's alerts: log line, dedup, outbox, Telegram and Alertmanager delivery.

    `send` returns True once an alert is accepted (logged and, with channels, queued in the outbox),
    False when a flag, dedup or a mute suppressed it or something failed. Metrics read `sent_by_severity`
    and `suppressed_count`, or set `on_sent(severity)` / `on_suppressed(reason)` callbacks.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        confirm_seconds: float = DEFAULT_CONFIRM_SECONDS,
        channel_factory: ChannelFactory = default_channels,
        **pipeline_overrides: Any,
    ) -> None:
        """`pipeline_overrides` are `PipelineConfig` fields (retry policy, timeouts) that tests shorten."""
        self.settings = settings
        self.confirm_seconds = confirm_seconds
        self._secrets = secret_values(settings)
        # before any Telegram object exists: the token must not reach a log line, even at DEBUG
        protect_loggers(self._secrets)
        self.pipeline = AlertPipeline(
            PipelineConfig.from_settings(settings, **pipeline_overrides),
            clock=clock,
            channel_factory=channel_factory,
            on_delivered=self._delivered,
            on_dead=self._dead,
        )
        self.sent_count = 0
        self.suppressed_count = 0
        self.failed_count = 0
        self.delivered_count = 0
        self.dead_count = 0
        self.sent_by_severity: dict[str, int] = {severity.value: 0 for severity in AlertSeverity}
        self.on_sent: Callable[[str], None] | None = None
        self.on_suppressed: Callable[[str], None] | None = None
        self._announce()

    def _announce(self) -> None:
        config = self.pipeline.config
        if self.settings.telegram_bot_token is None:
            if config.alertmanager_url:
                logger.warning("TELEGRAM_BOT_TOKEN is not set: alerts go to the log and Alertmanager only")
            else:
                logger.warning(NO_TOKEN_WARNING)
        for problem in config.problems():
            logger.warning(problem)
        if config.telegram_enabled:
            logger.info("alerts go to Telegram (outbox %s)", config.outbox_path)
        if config.alertmanager_url:
            logger.info("alerts also go to Alertmanager")

    @property
    def alert_on_trade(self) -> bool:
        return self.settings.alert_on_trade

    @property
    def alert_on_error(self) -> bool:
        return self.settings.alert_on_error

    @property
    def alert_on_circuit_breaker(self) -> bool:
        return self.settings.alert_on_circuit_breaker

    @property
    def log_only(self) -> bool:
        """True when the log is the only destination (no token and no Alertmanager)."""
        return self.pipeline.log_only

    def clean(self, text: str) -> str:
        """The text with every secret and wallet address masked."""
        return mask_addresses(redact(text, self._secrets))

    # --- sending -----------------------------------------------------------------------------------
    async def send(
        self,
        message: str,
        severity: str | AlertSeverity = AlertSeverity.INFO,
        *,
        key: str | None = None,
        staging: bool = False,
        alert_type: AlertType | None = None,
        resolved: bool = False,
    ) -> bool:
        """Accept one alert; never raises (a failure is logged and returns False)."""
        try:
            return await self._deliver(
                message, severity, key=key, staging=staging, alert_type=alert_type, resolved=resolved
            )
        except Exception:
            self.failed_count += 1
            logger.exception("alert channel failed; the alert was not delivered")
            return False

    async def resolve(
        self, key: str, message: str = "", *, alert_type: AlertType | None = None, staging: bool = False
    ) -> bool:
        """Say that what `key` alerted about is over; sent once, and only while the key is firing."""
        text = message.strip() or f"{key} is back to normal"
        return await self.send(text, AlertSeverity.INFO, key=key, staging=staging, alert_type=alert_type, resolved=True)

    def _level(self, severity: str | AlertSeverity) -> AlertSeverity:
        level = parse_severity(severity)
        if level is None:
            logger.warning(
                "unknown alert severity %r (expected one of %s); sending as warning",
                severity,
                ", ".join(member.value for member in AlertSeverity),
            )
            return AlertSeverity.WARNING
        return level

    async def _deliver(
        self,
        message: str,
        severity: str | AlertSeverity,
        *,
        key: str | None,
        staging: bool,
        alert_type: AlertType | None,
        resolved: bool,
    ) -> bool:
        level = self._level(severity)
        alert = Alert(
            text=self.clean(str(message)),
            severity=level,
            alertname=alert_type.name if alert_type is not None else DEFAULT_ALERTNAME,
            key=self.clean(key) if key is not None else None,
            staging=staging or self.pipeline.config.staging,
            resolved=resolved,
        )
        if not self.settings.alert_enabled:
            self._log(alert, "(ALERT_ENABLED=false)")
            self._suppressed("ALERT_ENABLED=false")
            return False
        submission = await self.pipeline.submit(alert)
        if submission.decision.action is Action.SUPPRESS:
            logger.debug("alert suppressed (%s): %s", submission.decision.reason, alert.text[:120])
            self._suppressed(submission.decision.reason)
            return False
        self._log(alert)
        self.sent_count += 1
        self.sent_by_severity[level.value] += 1
        self._hook(self.on_sent, level.value)
        waited = bool(submission.row_ids) and self.confirm_seconds > 0
        if waited and not await self.pipeline.wait_settled(submission.row_ids, self.confirm_seconds):
            logger.info(
                "alert queued for %s, not delivered yet; it stays in the outbox and is retried",
                ", ".join(submission.channels),
            )
        return True

    def _log(self, alert: Alert, extra_mark: str | None = None) -> None:
        marks = []
        if alert.staging:
            marks.append("[STAGING]")
        if alert.resolved:
            marks.append("RESOLVED")
        if extra_mark:
            marks.append(extra_mark)
        key_part = f" key={alert.key}" if alert.key is not None else ""
        prefix = "".join(f"{mark} " for mark in marks)
        text = alert.text.replace("\n", " | ")
        logger.log(alert.severity.log_level, "ALERT severity=%s%s %s%s", alert.severity.value, key_part, prefix, text)

    def _suppressed(self, reason: str) -> None:
        self.suppressed_count += 1
        self._hook(self.on_suppressed, reason)

    @staticmethod
    def _hook(hook: Callable[[str], None] | None, value: str) -> None:
        if hook is None:
            return
        try:
            hook(value)
        except Exception:
            logger.exception("an alert metrics hook failed; alerts go on")

    def _delivered(self, row: OutboxRow) -> None:
        self.delivered_count += 1

    def _dead(self, row: OutboxRow) -> None:
        self.dead_count += 1

    # --- operator controls -------------------------------------------------------------------------
    def mute(self, minutes: float) -> float:
        """Hold Telegram alerts below critical for `minutes` (0 unmutes); the epoch time the mute ends."""
        until = self.pipeline.mute(minutes * 60.0)
        if minutes > 0:
            logger.warning("Telegram alerts below critical muted for %.0f minute(s)", minutes)
        else:
            logger.info("Telegram alerts unmuted")
        return until

    @property
    def muted_until(self) -> float | None:
        """When the mute ends (epoch seconds), None when not muted."""
        return self.pipeline.muted_until if self.pipeline.muted() else None

    def stats(self) -> dict[str, Any]:
        """Counters for /health and the dashboard."""
        worker = self.pipeline.worker
        return {
            "mode": "log-only" if self.log_only else ", ".join(self.pipeline.config.channel_names),
            "sent": self.sent_count,
            "sent_by_severity": dict(self.sent_by_severity),
            "suppressed": self.suppressed_count,
            "failed": self.failed_count,
            "delivered": self.delivered_count,
            "dead_letters": self.dead_count,
            "muted_until": self.muted_until,
            "delivery": dict(worker.stats) if worker is not None else {},
        }

    async def flush(self, wait_seconds: float = 5.0) -> bool:
        """Wait until the outbox is drained; False if `wait_seconds` ran out (the rest stays queued)."""
        return await self.pipeline.flush(wait_seconds)

    async def aclose(self, grace_seconds: float = 3.0) -> None:
        """Stop delivering at shutdown: attempts in flight finish, undelivered alerts stay in the outbox."""
        await self.pipeline.aclose(grace_seconds)


_manager: TelegramAlertManager | None = None


def configure_alerts(settings: Settings, **kw: Any) -> TelegramAlertManager:
    """Build the process's alert manager from `settings` (entry points call this after loading settings)."""
    global _manager
    _manager = TelegramAlertManager(settings, **kw)
    return _manager


def get_alert_manager() -> TelegramAlertManager:
    """The process's alert manager, built from `get_settings()` on first use."""
    if _manager is None:
        return configure_alerts(get_settings())
    return _manager


def reset_alert_manager() -> None:
    """Forget the process's manager (tests; a reload of settings)."""
    global _manager
    _manager = None


def _manager_or_none() -> TelegramAlertManager | None:
    try:
        return get_alert_manager()
    except Exception:
        # invalid settings must not turn an alert into a crash of the caller
        logger.exception("cannot build the alert manager; the alert is logged here instead")
        return None


async def send_telegram_alert(message: str, severity: str = "info", *, key: str | None = None) -> bool:
    """Send an alert; `key` suppresses repeats of the same key within ALERT_COOLDOWN_MINUTES."""
    manager = _manager_or_none()
    if manager is None:
        logger.error("ALERT severity=%s (undelivered) %s", severity, mask_addresses(str(message)))
        return False
    return await manager.send(message, severity, key=key)


async def send_alert(alert_type: AlertType, body: str, severity: str | None = None, *, key: str | None = None) -> bool:
    """Send a typed alert (heading with its emoji); circuit-breaker alerts honour ALERT_ON_CIRCUIT_BREAKER."""
    manager = _manager_or_none()
    level = severity or alert_type.default_severity.value
    if manager is None:
        return await send_telegram_alert(format_alert(alert_type, body), level, key=key)
    if alert_type is AlertType.CIRCUIT_BREAKER_TRIPPED and not manager.alert_on_circuit_breaker:
        logger.info("circuit-breaker alert not sent (ALERT_ON_CIRCUIT_BREAKER=false): %s", manager.clean(body))
        return False
    return await manager.send(format_alert(alert_type, body), level, key=key, alert_type=alert_type)


async def resolve_alert(key: str, message: str = "", *, alert_type: AlertType | None = None) -> bool:
    """Send the resolved notice for `key` (once, and only if an alert with that key is firing)."""
    manager = _manager_or_none()
    if manager is None:
        return False
    return await manager.resolve(key, message, alert_type=alert_type)


async def send_error_alert(error: str | BaseException, context: str = "") -> bool:
    """Send an error alert (severity error) unless ALERT_ON_ERROR is false."""
    manager = _manager_or_none()
    text = describe_error(error, context)
    if manager is not None and not manager.alert_on_error:
        logger.info("error alert not sent (ALERT_ON_ERROR=false): %s", manager.clean(text))
        return False
    return await send_telegram_alert(f"❌ ERROR\n{text}", AlertSeverity.ERROR.value)


async def send_trade_alert(message: str) -> bool:
    """Send a trade notification when ALERT_ON_TRADE is true (it is off by default)."""
    manager = _manager_or_none()
    if manager is None or not manager.alert_on_trade:
        return False
    return await manager.send(message, AlertSeverity.INFO)


async def send_staging_alert(message: str) -> bool:
    """Send an alert marked [STAGING], to TELEGRAM_STAGING_CHAT_ID (else TELEGRAM_CHAT_ID)."""
    manager = _manager_or_none()
    if manager is None:
        logger.error("ALERT [STAGING] (undelivered) %s", mask_addresses(str(message)))
        return False
    return await manager.send(message, AlertSeverity.INFO, staging=True)


async def flush_alerts(wait_seconds: float = 5.0) -> bool:
    """Wait until queued alerts are delivered (shutdown, scripts); False if time ran out."""
    return await _manager.flush(wait_seconds) if _manager is not None else True


async def close_alerts(grace_seconds: float = 3.0) -> None:
    """Stop the process's alert delivery at shutdown (undelivered alerts stay in the outbox)."""
    if _manager is not None:
        await _manager.aclose(grace_seconds)
