"""The alert pipeline put together: decide (dedup), write to the outbox, and let the worker deliver.

`AlertPipeline.submit` takes an `Alert` that is already cleaned of secrets. It decides with the dedup
state; what goes out is written to the outbox, one row per configured channel, before anything is
sent, and the worker is woken. With no channel configured (no token, no Alertmanager) there is no
outbox and no worker: the caller's log line is the alert.

The outbox, the dedup history and the configuration live as long as the pipeline; the worker and the
channels' HTTP clients belong to one event loop and are rebuilt when a new loop uses the pipeline
(a one-shot `asyncio.run` after another), because connections cannot move between loops.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.settings import Settings
from utils.alerting.alertmanager_channel import AlertmanagerChannel, alertmanager_labels, alertmanager_payload
from utils.alerting.channel import Channel
from utils.alerting.dedup import Action, Candidate, Decision, DedupState
from utils.alerting.delivery import DeliveryWorker, RetryPolicy
from utils.alerting.fingerprint import alert_fingerprint, text_digest
from utils.alerting.model import Alert, AlertSeverity
from utils.alerting.outbox import MEMORY, OUTBOX_FILE_NAME, NewRow, Outbox, OutboxError, OutboxRow
from utils.alerting.render import render_telegram

logger = logging.getLogger("utils.alerting.pipeline")

TELEGRAM = "telegram"
ALERTMANAGER = "alertmanager"


@dataclass(frozen=True)
class PipelineConfig:
    """What the pipeline needs from Settings, as plain values (tests build it directly)."""

    outbox_path: Path | str
    telegram_token: str | None = None
    telegram_base_url: str = "https://api.telegram.org/bot"
    chat_id: str | None = None
    staging_chat_id: str | None = None
    alertmanager_url: str | None = None
    environment: str = "development"
    window_seconds: float = 600.0
    cooldown_seconds: float = 300.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    telegram_connect_timeout: float = 5.0
    telegram_read_timeout: float = 10.0
    alertmanager_timeout: float = 10.0
    poll_interval_seconds: float = 2.0
    lease_ttl_seconds: float = 15.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> PipelineConfig:
        """The pipeline configuration of these settings (outbox in STATE_DIR)."""
        token = settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else None
        values: dict[str, Any] = {
            "outbox_path": Path(settings.state_dir) / OUTBOX_FILE_NAME,
            "telegram_token": token,
            "telegram_base_url": settings.telegram_base_url,
            "chat_id": settings.telegram_chat_id,
            "staging_chat_id": settings.telegram_staging_chat_id,
            "alertmanager_url": settings.alertmanager_url,
            "environment": str(settings.environment),
            "window_seconds": settings.duplicate_alert_window_minutes * 60.0,
            "cooldown_seconds": settings.alert_cooldown_minutes * 60.0,
        }
        values.update(overrides)
        return cls(**values)

    @property
    def staging(self) -> bool:
        """Every alert of a staging deployment is a staging alert."""
        return self.environment == "staging"

    @property
    def telegram_enabled(self) -> bool:
        """A token and somewhere to send to."""
        return bool(self.telegram_token) and bool(self.chat_id or self.staging_chat_id)

    @property
    def channel_names(self) -> list[str]:
        """The channels alerts are delivered to, besides the log."""
        names = [TELEGRAM] if self.telegram_enabled else []
        if self.alertmanager_url:
            names.append(ALERTMANAGER)
        return names

    def chat_for(self, staging: bool) -> str | None:
        """The chat of an alert: the staging chat (else the main one) for staging alerts."""
        if staging:
            return self.staging_chat_id or self.chat_id
        return self.chat_id

    def problems(self) -> list[str]:
        """Configuration that silently loses a channel, one sentence each (logged once at start-up)."""
        problems = []
        if self.telegram_token and not (self.chat_id or self.staging_chat_id):
            problems.append("TELEGRAM_BOT_TOKEN is set but TELEGRAM_CHAT_ID is not: Telegram alerts are off")
        elif self.telegram_token and not self.chat_id and not self.staging:
            problems.append(
                "TELEGRAM_CHAT_ID is not set: only staging alerts reach Telegram (TELEGRAM_STAGING_CHAT_ID)"
            )
        return problems


@dataclass(frozen=True)
class Submission:
    """What happened to one alert: the decision, its fingerprint, and the outbox rows written."""

    decision: Decision
    fingerprint: str
    row_ids: list[int] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)


@dataclass
class _Runtime:
    loop: asyncio.AbstractEventLoop
    worker: DeliveryWorker


ChannelFactory = Callable[[PipelineConfig], Mapping[str, Channel]]
RowHook = Callable[[OutboxRow], None]


def default_channels(config: PipelineConfig) -> dict[str, Channel]:
    """The real channels the configuration asks for (built in a worker thread; they bind to a loop on first use)."""
    channels: dict[str, Channel] = {}
    if config.telegram_enabled and config.telegram_token:
        # local: python-telegram-bot (~7 MB of RSS) is loaded only by a process that sends to Telegram
        from utils.alerting.telegram_channel import TelegramChannel

        channels[TELEGRAM] = TelegramChannel(
            config.telegram_token,
            config.telegram_base_url,
            connect_timeout=config.telegram_connect_timeout,
            read_timeout=config.telegram_read_timeout,
        )
    if config.alertmanager_url:
        channels[ALERTMANAGER] = AlertmanagerChannel(
            config.alertmanager_url, timeout_seconds=config.alertmanager_timeout
        )
    return channels


class AlertPipeline:
    """Dedup, outbox and delivery for one process."""

    def __init__(
        self,
        config: PipelineConfig,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        channel_factory: ChannelFactory = default_channels,
        on_delivered: RowHook | None = None,
        on_dead: RowHook | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._rng = rng
        self._channel_factory = channel_factory
        self.on_delivered = on_delivered
        self.on_dead = on_dead
        self.dedup = DedupState(config.window_seconds, config.cooldown_seconds)
        self.outbox: Outbox | None = None
        self.muted_until: float | None = None
        self._runtime: _Runtime | None = None
        self._start_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._seeded = False
        # one owner per pipeline, kept across event loops: a new loop's worker inherits the lease
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    @property
    def log_only(self) -> bool:
        """True when no channel is configured: the log is the only destination."""
        return not self.config.channel_names

    # --- decisions ---------------------------------------------------------------------------------
    def decide(self, alert: Alert, now: float | None = None) -> tuple[Decision, str]:
        """Dedup decision for `alert` (recorded); its fingerprint."""
        fingerprint = alert_fingerprint(alert)
        candidate = Candidate(fingerprint, alert.severity, alert.key, alert.resolved)
        return self.dedup.check(candidate, self._clock() if now is None else now), fingerprint

    def mute(self, seconds: float) -> float:
        """Hold Telegram alerts below critical for `seconds` (0 unmutes); the time the mute ends."""
        until = self._clock() + max(seconds, 0.0)
        self.muted_until = until if seconds > 0 else None
        return until

    def muted(self, now: float | None = None) -> bool:
        """True while a mute is in force."""
        return self.muted_until is not None and (self._clock() if now is None else now) < self.muted_until

    # --- submitting ----------------------------------------------------------------------------------
    async def submit(self, alert: Alert) -> Submission:
        """Decide, and write what goes out to the outbox before waking the worker."""
        if not self.log_only:
            await self.ensure_started()
        now = self._clock()
        decision, fingerprint = self.decide(alert, now)
        if decision.action is Action.SUPPRESS or self.log_only:
            return Submission(decision, fingerprint)
        rows = self._rows(alert, fingerprint, now)
        if not rows:
            return Submission(decision, fingerprint)
        ids = await self._enqueue(rows)
        if self._runtime is not None:
            self._runtime.worker.wake()
        return Submission(decision, fingerprint, ids, [row.channel for row in rows])

    def _rows(self, alert: Alert, fingerprint: str, now: float) -> list[NewRow]:
        alert_id = uuid.uuid4().hex
        kind = "resolved" if alert.resolved else "firing"
        severity = alert.severity
        if alert.resolved and alert.key is not None and alert.key in self.dedup.keys:
            # the resolution carries the labels of what it resolves, severity included
            severity = self.dedup.keys[alert.key].severity
        rows = []
        chat = self.config.chat_for(alert.staging)
        muted = self.muted(now) and alert.severity is not AlertSeverity.CRITICAL
        if TELEGRAM in self.config.channel_names and chat and not muted:
            text = render_telegram(alert.text, staging=alert.staging, resolved=alert.resolved)
            payload = json.dumps({"text": text, "parse_mode": "HTML"}, ensure_ascii=False)
            rows.append(NewRow(alert_id, TELEGRAM, chat, fingerprint, alert.key, severity.value, kind, payload))
        if ALERTMANAGER in self.config.channel_names:
            labels = alertmanager_labels(alert, self.config.environment, severity.value, text_digest(alert.text))
            payload = json.dumps(alertmanager_payload(alert, labels, now), ensure_ascii=False)
            rows.append(NewRow(alert_id, ALERTMANAGER, "", fingerprint, alert.key, severity.value, kind, payload))
        return rows

    async def _enqueue(self, rows: list[NewRow]) -> list[int]:
        assert self.outbox is not None  # ensure_started opened it
        try:
            return await self.outbox.enqueue(rows)
        except Exception as e:
            # the disk went away under us: keep going in memory rather than drop the alert
            logger.error("alert outbox write failed (%s); switching to an in-memory outbox until restart", e)
            await self._switch_to_memory()
            return await self.outbox.enqueue(rows)

    # --- lifecycle -----------------------------------------------------------------------------------
    async def ensure_started(self) -> None:
        """Open the outbox, seed dedup from it, start the worker on this loop (idempotent)."""
        loop = asyncio.get_running_loop()
        runtime = self._runtime
        if runtime is not None and runtime.loop is loop and runtime.worker.running:
            return
        if self._start_lock is None or self._start_lock[0] is not loop:
            self._start_lock = (loop, asyncio.Lock())
        async with self._start_lock[1]:
            runtime = self._runtime
            if runtime is not None and runtime.loop is loop and runtime.worker.running:
                return
            if runtime is not None and runtime.loop is not loop:
                # the previous loop is gone with its connections; its rows are still in the outbox
                logger.debug("alert pipeline moved to a new event loop; rebuilding the delivery worker")
                self._runtime = None
            await self._open_outbox()
            await self._start_worker(loop)

    async def _open_outbox(self) -> None:
        if self.outbox is not None:
            return
        outbox = Outbox(self.config.outbox_path, clock=self._clock)
        try:
            await outbox.open()
        except OutboxError as e:
            await outbox.close()
            logger.error("%s; alerts are kept in memory only until restart", e)
            outbox = Outbox(MEMORY, clock=self._clock)
            await outbox.open()
        self.outbox = outbox
        if not self._seeded:
            self._seeded = True
            await self._seed_dedup()
        if outbox.recovered_from is not None:
            text = (
                f"🔴 CRITICAL ISSUE\nThe alert outbox was corrupt and was moved aside to {outbox.recovered_from}; "
                "alerts not yet delivered from it were lost. A fresh outbox is in use."
            )
            alert = Alert(text, AlertSeverity.CRITICAL, "CRITICAL_ISSUE", key="alert-outbox-corrupt")
            decision, fingerprint = self.decide(alert)
            if decision.delivers:
                await outbox.enqueue(self._rows(alert, fingerprint, self._clock()))

    async def _switch_to_memory(self) -> None:
        old = self.outbox
        self.outbox = Outbox(MEMORY, clock=self._clock)
        await self.outbox.open()
        if self._runtime is not None:
            await self._runtime.worker.stop(grace_seconds=0.5)
            self._runtime = None
            await self._start_worker(asyncio.get_running_loop())
        if old is not None:
            try:
                await old.close()
            except Exception:
                logger.exception("closing the failed alert outbox failed")

    async def _seed_dedup(self) -> None:
        """Replay recent outbox rows into dedup, so a restart does not repeat what was just sent."""
        assert self.outbox is not None
        since = self._clock() - max(self.config.window_seconds, self.config.cooldown_seconds)
        seen: set[str] = set()
        for row in await self.outbox.recent(since):
            if row.alert_id in seen:
                continue
            seen.add(row.alert_id)
            resolved = row.kind == "resolved"
            severity = AlertSeverity(row.severity)
            candidate = Candidate(row.fingerprint, severity, row.alert_key, resolved)
            action = Action.RESOLVED if resolved else Action.SEND
            self.dedup.record(candidate, Decision(action, "replayed from the outbox"), row.created_at)

    async def _start_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.outbox is not None
        channels: dict[str, Channel] = {}
        try:
            # off the loop: each Telegram transport loads the CA bundle (~20 ms of CPU apiece, more on slow hosts)
            channels = dict(await asyncio.to_thread(self._channel_factory, self.config))
        except Exception:
            logger.exception("building the alert channels failed; alerts stay in the outbox")
        worker = DeliveryWorker(
            self.outbox,
            channels,
            policy=self.config.retry,
            clock=self._clock,
            rng=self._rng,
            owner=self.owner,
            poll_interval_seconds=self.config.poll_interval_seconds,
            lease_ttl_seconds=self.config.lease_ttl_seconds,
            on_delivered=self.on_delivered,
            on_dead=self.on_dead,
        )
        worker.start()
        self._runtime = _Runtime(loop, worker)

    @property
    def worker(self) -> DeliveryWorker | None:
        """The delivery worker of the current loop, if started."""
        return self._runtime.worker if self._runtime is not None else None

    async def wait_settled(self, row_ids: list[int], wait_seconds: float) -> bool:
        """Wait until these rows are sent or dead; False if `wait_seconds` ran out."""
        if not row_ids or wait_seconds <= 0 or self._runtime is None:
            return not row_ids
        return await self._runtime.worker.wait_settled(row_ids, wait_seconds)

    async def flush(self, wait_seconds: float) -> bool:
        """Wait until nothing is pending; False if `wait_seconds` ran out (what is left stays queued)."""
        if self.log_only:
            return True
        await self.ensure_started()
        assert self._runtime is not None
        self._runtime.worker.wake()
        return await self._runtime.worker.flush(wait_seconds)

    async def aclose(self, grace_seconds: float = 5.0) -> None:
        """Stop delivering (attempts in flight finish), close channels and the outbox; pending rows stay."""
        runtime, self._runtime = self._runtime, None
        if runtime is not None and runtime.loop is asyncio.get_running_loop():
            await runtime.worker.stop(grace_seconds)  # closes the channels, releases the lease
        if self.outbox is not None:
            outbox, self.outbox = self.outbox, None
            await outbox.close()

    async def requeue_dead(self, channel: str | None = None) -> int:
        """Retry the dead letters (after the operator fixed the chat or token); how many."""
        if self.log_only:
            return 0
        await self.ensure_started()
        assert self.outbox is not None and self._runtime is not None
        count = await self.outbox.requeue_dead(channel)
        self._runtime.worker.wake()
        return count
