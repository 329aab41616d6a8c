"""Builders shared by the circuit-breaker tests: a settable clock, an alert recorder, a breaker factory."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.circuit_breaker import CircuitBreaker

WALLET = "0x1234567890abcdef1234567890abcdef12c0ffee"
T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # a Monday afternoon, far from any DST change


class FakeClock:
    """A clock the test moves by hand: no sleeps, no wall-clock dependence."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0.0, **units: float) -> datetime:
        self.now += timedelta(seconds=seconds, **units)
        return self.now

    def set(self, moment: datetime) -> datetime:
        self.now = moment
        return moment


@dataclass
class AlertRecorder:
    """An alert callback that remembers (severity, message) pairs."""

    sent: list[tuple[str, str]] = field(default_factory=list)

    async def __call__(self, severity: str, message: str) -> None:
        self.sent.append((severity, message))

    def severities(self) -> list[str]:
        return [severity for severity, _ in self.sent]


def make_breaker(state_file: Path, clock: FakeClock, **overrides: Any) -> CircuitBreaker:
    """A breaker with small limits (loss 100, streak 3, burst 3 in 60 s, cooldown 1 h) on `state_file`."""
    options: dict[str, Any] = {
        "max_daily_loss": 100.0,
        "wallet_address": WALLET,
        "state_file": state_file,
        "cooldown_seconds": 3600.0,
        "consecutive_loss_limit": 3,
        "error_burst_count": 3,
        "error_burst_window_seconds": 60.0,
        "clock": clock,
    }
    options.update(overrides)
    return CircuitBreaker(**options)


def on_disk(path: Path) -> dict[str, Any]:
    """The JSON record stored at `path`."""
    return json.loads(path.read_text(encoding="utf-8"))
