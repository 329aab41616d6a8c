"""The shapes every check shares: a component's reading, the one-method Check protocol, and the result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from mcp.health import worst
from mcp.monitoring.levels import Hysteresis, Level


@dataclass(frozen=True, slots=True)
class Reading:
    """What a check says about one component: its level, a sentence for operators, the figures behind it."""

    level: Level
    message: str
    figures: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Check(Protocol):
    """A health check: a name, its own interval, and `run`, which reads its sources and judges."""

    name: str
    interval: float

    async def run(self, now: float) -> Mapping[str, Reading]:
        """The readings of the components this check covers (usually one, named like the check)."""
        ...


@runtime_checkable
class Primable(Protocol):
    """A check that needs one call before its first run (psutil's cpu_percent has no reference point)."""

    async def prime(self) -> None:
        """Take the reference measurement."""
        ...


def iso(epoch: float | None) -> str | None:
    """ISO 8601 UTC text of an epoch time (None stays None)."""
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


@dataclass(frozen=True, slots=True)
class ComponentResult:
    """A component's cached result: the reading plus when it was taken and since when the level holds."""

    component: str
    check: str
    level: Level
    message: str
    figures: Mapping[str, Any]
    checked_at: float
    since: float
    duration_seconds: float
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form for /health: status, message, figures, checked_at, since (and error, if any)."""
        body: dict[str, Any] = {
            "status": self.level.value,
            "message": self.message,
            "figures": dict(self.figures),
            "checked_at": iso(self.checked_at),
            "since": iso(self.since),
        }
        if self.error is not None:
            body["error"] = self.error
        return body


class Judge:
    """The per-figure hysteresis of one check: feed figures, get levels; an unknown figure forgets its past."""

    def __init__(self, rules: Mapping[str, Hysteresis]) -> None:
        self.rules = dict(rules)

    def waiting(self, figure: str) -> Level:
        """The figure's level while its reading has no baseline yet: unchanged, `starting` before the first."""
        return self.rules[figure].level or Level.STARTING

    def level(self, figure: str, value: float | None, now: float) -> Level | None:
        """The figure's level after this reading, None when the value is unknown."""
        rule = self.rules[figure]
        if value is None:
            rule.reset()
            return None
        return rule.update(value, now)


def overall(levels: list[Level | None]) -> Level:
    """The worst of the judged levels; `starting` only while no figure has a verdict yet (healthy when none
    is known at all). A figure that appears later (the first trade's latency) is judged once it has lasted
    its minimum duration, without sending a component that is already judged back to `starting`."""
    judged = [level for level in levels if level is not None and level is not Level.STARTING]
    if judged:
        return worst(judged)
    return Level.STARTING if Level.STARTING in levels else Level.HEALTHY
