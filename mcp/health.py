"""Health levels shared by every part of the sidecar (one Enum, ordered from best to worst) and the one
verdict that /health, `python -m mcp.main_mcp status`, `validate_health.sh` and the dashboard all use.

`starting` is the level of a component whose checks have not yet had one full window of readings: nothing
is known yet, so nothing is claimed. It counts as up (HTTP 200, [PASS]) and is never shown as degraded or
critical; a real problem shows once the readings have lasted their minimum duration.

A deploy may judge its release without the components it cannot cause (`excluded`, e.g. the bot-derived ones
when the bot was already down before the deploy); /health, `status` and the dashboard never exclude anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class HealthStatus(StrEnum):
    """How a component is doing; the order of the members is the order of severity."""

    HEALTHY = "healthy"
    STARTING = "starting"
    DEGRADED = "degraded"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for healthy, 1 for starting, 2 for degraded, 3 for critical."""
        return _RANK[self]

    @classmethod
    def parse(cls, value: object) -> HealthStatus:
        """The status named by `value`; anything unknown counts as critical, since it cannot be trusted."""
        try:
            return cls(str(value).lower())
        except ValueError:
            return cls.CRITICAL


_RANK = {HealthStatus.HEALTHY: 0, HealthStatus.STARTING: 1, HealthStatus.DEGRADED: 2, HealthStatus.CRITICAL: 3}


def worst(statuses: Iterable[HealthStatus]) -> HealthStatus:
    """The most severe of `statuses`; healthy when there are none."""
    return max(statuses, key=lambda status: status.rank, default=HealthStatus.HEALTHY)


HTTP_UP, HTTP_DOWN = 200, 503


@dataclass(frozen=True, slots=True)
class Verdict:
    """The overall health: its status, the HTTP code of /health, PASS/FAIL for scripts, and why."""

    status: HealthStatus
    problems: tuple[str, ...] = ()
    # the components left out of this verdict (present in the input and named in `excluded`), sorted
    excluded: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """Only a critical component fails the verdict (degraded warns, starting is not known yet)."""
        return self.status is not HealthStatus.CRITICAL

    @property
    def http_status(self) -> int:
        """200 while the verdict passes, 503 when it fails."""
        return HTTP_UP if self.passed else HTTP_DOWN

    @property
    def label(self) -> str:
        """ "PASS" or "FAIL"."""
        return "PASS" if self.passed else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        """JSON form (the `verdict` block of /health)."""
        status, problems = self.status.value, list(self.problems)
        return {"status": status, "passed": self.passed, "label": self.label, "problems": problems}


def verdict(components: Mapping[str, Any], excluded: frozenset[str] = frozenset()) -> Verdict:
    """The one verdict over components, each a status or a mapping with "status" (and "message").

    The worst status wins; an unknown status counts as critical. `problems` names every degraded or
    critical component with its message, worst first. Components named in `excluded` are left out of the
    status and the problems and listed in `Verdict.excluded` instead, so that whoever shows the verdict can
    say what it did not judge.
    """
    judged: list[tuple[str, HealthStatus, str]] = []
    left_out: list[str] = []
    for name, component in components.items():
        if str(name) in excluded:
            left_out.append(str(name))
            continue
        raw = component.get("status") if isinstance(component, Mapping) else component
        message = component.get("message") if isinstance(component, Mapping) else None
        judged.append((str(name), HealthStatus.parse(raw), str(message or "")))
    status = worst(level for _, level, _ in judged)
    bad = sorted((item for item in judged if item[1].rank >= HealthStatus.DEGRADED.rank), key=lambda i: -i[1].rank)
    problems = tuple(f"{name} {level.value}" + (f": {message}" if message else "") for name, level, message in bad)
    return Verdict(status, problems, tuple(sorted(left_out)))
