"""The vocabulary of the alert pipeline: severities and the record of one alert on its way out."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum


class AlertSeverity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def log_level(self) -> int:
        """The logging level an alert of this severity is written at."""
        return _LOG_LEVELS[self]

    @property
    def rank(self) -> int:
        """Order of gravity: info 0 < warning 1 < error 2 < critical 3 (an escalation raises it)."""
        return _RANKS[self]


_LOG_LEVELS = {
    AlertSeverity.INFO: logging.INFO,
    AlertSeverity.WARNING: logging.WARNING,
    AlertSeverity.ERROR: logging.ERROR,
    AlertSeverity.CRITICAL: logging.CRITICAL,
}
_RANKS = {severity: rank for rank, severity in enumerate(AlertSeverity)}


def parse_severity(value: str | AlertSeverity) -> AlertSeverity | None:
    """The severity named by `value`, None when it is not one of info, warning, error, critical."""
    try:
        return AlertSeverity(str(value).strip().lower())
    except ValueError:
        return None


DEFAULT_ALERTNAME = "Alert"


@dataclass(frozen=True)
class Alert:
    """One alert as the pipeline sees it: already cleaned of secrets, not yet rendered for any channel.

    `alertname` is the alert type's name (e.g. CIRCUIT_BREAKER_TRIPPED) or "Alert" for free text;
    `key` groups alerts about the same thing (cooldown, resolution); `resolved` marks the notice that
    the thing a key was about is over.
    """

    text: str
    severity: AlertSeverity = AlertSeverity.INFO
    alertname: str = DEFAULT_ALERTNAME
    key: str | None = None
    staging: bool = False
    resolved: bool = False
    labels: dict[str, str] = field(default_factory=dict)
