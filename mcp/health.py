"""Health levels shared by every part of the sidecar: one Enum, ordered from best to worst."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class HealthStatus(StrEnum):
    """How a component is doing; the order of the members is the order of severity."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for healthy, 1 for degraded, 2 for critical."""
        return _RANK[self]

    @classmethod
    def parse(cls, value: object) -> HealthStatus:
        """The status named by `value`; anything unknown counts as critical, since it cannot be trusted."""
        try:
            return cls(str(value).lower())
        except ValueError:
            return cls.CRITICAL


_RANK = {HealthStatus.HEALTHY: 0, HealthStatus.DEGRADED: 1, HealthStatus.CRITICAL: 2}


def worst(statuses: Iterable[HealthStatus]) -> HealthStatus:
    """The most severe of `statuses`; healthy when there are none."""
    return max(statuses, key=lambda status: status.rank, default=HealthStatus.HEALTHY)
