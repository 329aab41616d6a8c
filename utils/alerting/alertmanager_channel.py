"""Alertmanager delivery: `POST {ALERTMANAGER_URL}/api/v2/alerts`, how operators with many bots route alerts.

The payload (a list with one postable alert: labels, annotations, startsAt, endsAt for a resolution) is
built when the alert enters the outbox, so a retry sends exactly what was first accepted. Alertmanager
deduplicates and groups on the labels, so they are the same for an alert and its resolution.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from utils.alerting.channel import Outcome, OutcomeKind
from utils.alerting.model import Alert
from utils.alerting.outbox import OutboxRow

logger = logging.getLogger("utils.alerting.alertmanager")

CHANNEL_NAME = "alertmanager"
ALERTS_PATH = "/api/v2/alerts"
SERVICE = "polymarket-copy-bot"
_RETRYABLE_4XX = {408, 425, 429}


def iso_utc(epoch: float) -> str:
    """RFC 3339 time as Alertmanager expects it."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def alertmanager_labels(alert: Alert, environment: str, severity: str, digest: str) -> dict[str, str]:
    """The labels of an alert: its name, severity, environment, and its key (or a digest of its text)."""
    labels = {str(name): str(value) for name, value in alert.labels.items()}
    labels.update(
        alertname=alert.alertname,
        severity=severity,
        environment="staging" if alert.staging else environment,
        service=SERVICE,
    )
    if alert.key is not None:
        labels["key"] = alert.key
    else:
        labels["alert_id"] = digest
    return labels


def alertmanager_payload(alert: Alert, labels: dict[str, str], now: float) -> list[dict[str, Any]]:
    """The body of the POST: one postable alert; a resolution carries `endsAt`."""
    summary, _, description = alert.text.strip().partition("\n")
    entry: dict[str, Any] = {
        "labels": labels,
        "annotations": {"summary": summary, "description": description.strip() or summary},
        "startsAt": iso_utc(now),
    }
    if alert.resolved:
        entry["endsAt"] = iso_utc(now)
    return [entry]


def _retry_after_header(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


class AlertmanagerChannel:
    """Posts outbox rows to Alertmanager's v2 API."""

    name = CHANNEL_NAME

    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float = 10.0,
        session_factory: Callable[[], aiohttp.ClientSession] | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + ALERTS_PATH
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session_factory = session_factory
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            factory = self._session_factory or (lambda: aiohttp.ClientSession(timeout=self._timeout))
            self._session = factory()
        return self._session

    async def deliver(self, row: OutboxRow) -> Outcome:
        """One POST of the row's payload; 2xx delivered, 4xx refused for good (408/425/429 retried)."""
        try:
            body = json.loads(row.payload)
        except ValueError as e:
            return Outcome(OutcomeKind.PERMANENT, f"unreadable outbox payload ({e}); expected a JSON list")
        try:
            async with self._get_session().post(self.url, json=body) as response:
                status = response.status
                text = (await response.text())[:300]
                retry_after = _retry_after_header(response.headers.get("Retry-After"))
        except TimeoutError:
            return Outcome(OutcomeKind.TRANSIENT, "Alertmanager did not answer in time")
        except aiohttp.ClientError as e:
            return Outcome(OutcomeKind.TRANSIENT, f"{type(e).__name__}: {e}")
        if 200 <= status < 300:
            return Outcome.delivered()
        detail = f"HTTP {status}: {text.strip()}"
        if status == 429 and retry_after is not None:
            return Outcome(OutcomeKind.RETRY_AFTER, detail, retry_after=retry_after)
        if 400 <= status < 500 and status not in _RETRYABLE_4XX:
            return Outcome(OutcomeKind.PERMANENT, detail)
        return Outcome(OutcomeKind.TRANSIENT, detail)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
