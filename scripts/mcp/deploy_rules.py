"""The deployment scripts' decisions, as pure functions: the sidecar's error rate read from /metrics,
whether it rose too much during a deployment, and whether the sidecar's reported health passes.

The error rate (one definition for monitor_deployment.sh and the automatic rollback of deploy_mcp_servers.sh):

    errors = monitoring_health_checks_total{status="critical"} + mcp_tool_errors_total   (summed over labels)
    events = monitoring_health_checks_total (every status)     + mcp_tool_calls_total    (summed over labels)
    rate   = errors / events        (None while events == 0: nothing to judge yet)

A deployment fails when the rate during it exceeds the rate before it by more than `max_rise`, measured in
percentage points of that rate (0.10: from 12 % to more than 22 %). Points rather than a ratio because a
baseline of 0 % makes any ratio infinite, and because the health checks come in rounds of about eight, so
one extra critical check moves a ratio of small rates by far more than 10 %.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

HEALTH_CHECKS = "monitoring_health_checks_total"
TOOL_CALLS = "mcp_tool_calls_total"
TOOL_ERRORS = "mcp_tool_errors_total"
CRITICAL = "critical"
DEFAULT_MAX_RISE = 0.10
SERVER_NAMES = ("codebase_search", "testing", "monitoring")
# The components judged only from the bot's own state (mcp/monitoring/bot_checks.py): a sidecar release cannot
# make them fail. When the bot was already down before a deploy, the deploy leaves them out of its verdict.
BOT_DERIVED_COMPONENTS = frozenset({"main_bot", "trade_executor", "circuit_breaker"})
BOT_WAS_DOWN = "the bot was not running before this deploy; not caused by it"


class MetricsFormatError(ValueError):
    """The body is not the sidecar's Prometheus text: check the URL points at the sidecar's /metrics."""


@dataclass(frozen=True, slots=True)
class Counts:
    """Error and event counters of one scrape (cumulative since the sidecar started)."""

    errors: float
    events: float

    @property
    def rate(self) -> float | None:
        """errors / events, None while there has been no event."""
        return self.errors / self.events if self.events > 0 else None

    def since(self, earlier: Counts) -> Counts | None:
        """The counts between `earlier` and this scrape; None when a counter went down (the sidecar restarted)."""
        if self.errors < earlier.errors or self.events < earlier.events:
            return None
        return Counts(self.errors - earlier.errors, self.events - earlier.events)


def parse_counts(text: str) -> Counts:
    """The error and event counters in a /metrics body (Prometheus text format 0.0.4)."""
    from prometheus_client.parser import text_string_to_metric_families

    errors = events = 0.0
    seen_health_checks = False
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == HEALTH_CHECKS:
                    seen_health_checks = True
                    events += sample.value
                    if sample.labels.get("status") == CRITICAL:
                        errors += sample.value
                elif sample.name == TOOL_CALLS:
                    events += sample.value
                elif sample.name == TOOL_ERRORS:
                    errors += sample.value
    except (ValueError, TypeError, IndexError) as e:
        raise MetricsFormatError(
            f"expected Prometheus text from the sidecar's /metrics, could not parse it: {e}"
        ) from e
    if not seen_health_checks:
        raise MetricsFormatError(
            f"expected the sidecar's /metrics with {HEALTH_CHECKS}; the body has no such series "
            f"({len(text)} bytes): is this the right port, and has the monitoring server run a check yet?"
        )
    return Counts(errors, events)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether the deployment may go on, and the sentence that says why."""

    ok: bool
    reason: str


def judge_rise(before: float | None, during: float | None, max_rise: float = DEFAULT_MAX_RISE) -> Verdict:
    """Roll back when the error rate during the deployment exceeds the rate before it by more than `max_rise`."""
    if not 0 <= max_rise <= 1:
        raise ValueError(f"max_rise is a fraction of events between 0 and 1, received {max_rise!r}")
    if during is None:
        return Verdict(True, "no events yet during the deployment: nothing to compare")
    baseline = 0.0 if before is None else before
    rise = during - baseline
    figures = f"error rate {during:.1%} during vs {baseline:.1%} before (rise {rise * 100:+.1f} points"
    if rise > max_rise:
        return Verdict(False, f"{figures}, limit +{max_rise * 100:.1f})")
    return Verdict(True, f"{figures}, within +{max_rise * 100:.1f})")


class Outcome(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    WARN = "WARN"
    INFO = "INFO"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of validate_health.sh: `[PASS] name: detail`."""

    outcome: Outcome
    name: str
    detail: str

    def line(self) -> str:
        """The line as printed."""
        return f"[{self.outcome.value}] {self.name}: {self.detail}"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def overall_check(health: Mapping[str, Any] | None, excluded: frozenset[str] = frozenset()) -> Check:
    """[PASS] or [FAIL]: the one health verdict (mcp.health.verdict) over the components of GET /health.

    `excluded`: components left out of the verdict (a deploy made while the bot was down); the line names them.
    """
    from mcp.health import verdict

    if health is None:
        return Check(Outcome.FAIL, "overall health", "unknown (no /health body)")
    judged = verdict(_mapping(health.get("components")), excluded)
    detail = judged.status.value
    if judged.problems:
        detail += f" ({'; '.join(judged.problems)})"
    if judged.excluded:
        detail += f"; excluded {', '.join(judged.excluded)} ({BOT_WAS_DOWN})"
    return Check(Outcome.PASS if judged.passed else Outcome.FAIL, "overall health", detail)


def excluded_checks(health: Mapping[str, Any] | None, excluded: frozenset[str]) -> list[Check]:
    """One [WARN] line per excluded component present in /health, with its real status and message."""
    components = _mapping(_mapping(health).get("components"))
    checks = []
    for name in sorted(excluded & {str(key) for key in components}):
        component = components[name]
        record = _mapping(component)
        level = record.get("status") if record else component
        message = record.get("message")
        shown = f"{level}: {message}" if message else f"{level}"
        checks.append(Check(Outcome.WARN, name, f"{shown} ({BOT_WAS_DOWN})"))
    return checks


def sidecar_check(status: Mapping[str, Any] | None, excluded: frozenset[str] = frozenset()) -> Check:
    """The sidecar as a whole, from `python -m mcp.main_mcp status --json`: healthy, or its problems.

    With `excluded`, the health verdict inside the status is recomputed without those components (the sidecar's
    other problems, such as a dead pid or a failed server, still count).
    """
    if status is None:
        return Check(Outcome.FAIL, "sidecar", "no status (`python -m mcp.main_mcp status --json` gave no JSON)")
    payload = _mapping(status.get("status"))
    problems = status.get("problems")
    healthy = status.get("healthy") is True
    listed = [str(problem) for problem in problems] if isinstance(problems, list) else []
    if excluded and not healthy and isinstance(problems, list):
        from mcp.status import status_verdict

        # `status` words its verdict problem "health verdict …": replace it by the verdict without `excluded`
        listed = [problem for problem in listed if not problem.startswith("health verdict ")]
        judged = status_verdict(payload, excluded)
        if not judged.passed:
            listed.append(f"health verdict {judged.status.value}: " + "; ".join(judged.problems))
        healthy = not listed
    if healthy:
        return Check(
            Outcome.PASS,
            "sidecar",
            f"running (pid {payload.get('pid')}, up {payload.get('uptime_seconds')} s, "
            f"restarts {payload.get('restarts_total')})",
        )
    return Check(Outcome.FAIL, "sidecar", f"not healthy: {'; '.join(listed) if listed else 'unknown'}")


def server_checks(
    status: Mapping[str, Any] | None, health: Mapping[str, Any] | None, disabled: frozenset[str] = frozenset()
) -> list[Check]:
    """One check per sidecar server: running under the supervisor and not critical in /health.

    `status` is the output of `python -m mcp.main_mcp status --json`, `health` the body of GET /health (None
    when unavailable), `disabled` the servers switched off by MCP_<NAME>_ENABLED=false.
    """
    servers = _mapping(_mapping(_mapping(status).get("status")).get("servers"))
    components = _mapping(_mapping(health).get("components"))
    checks = []
    for name in SERVER_NAMES:
        if name in disabled:
            checks.append(Check(Outcome.INFO, name, f"skipped: disabled by MCP_{name.upper()}_ENABLED=false"))
            continue
        if status is None:
            checks.append(Check(Outcome.FAIL, name, "no status from the sidecar (`python -m mcp.main_mcp status`)"))
            continue
        record = _mapping(servers.get(name))
        if not record:
            checks.append(Check(Outcome.FAIL, name, "missing from the sidecar's status (expected: enabled)"))
            continue
        state, level = record.get("state"), record.get("status")
        component = _mapping(components.get(name))
        seen = component.get("status", level)
        if state != "running":
            why = record.get("last_error") or "no error recorded"
            checks.append(Check(Outcome.FAIL, name, f"expected state running, received {state!r} ({why})"))
        elif CRITICAL in (level, seen):
            checks.append(Check(Outcome.FAIL, name, f"running but critical: {component.get('message') or level}"))
        elif "degraded" in (level, seen):
            message = component.get("message") or _mapping(record.get("health")).get("reason") or "no reason given"
            checks.append(Check(Outcome.PASS, name, f"running (degraded: {message})"))
        else:
            checks.append(Check(Outcome.PASS, name, f"running, {seen}"))
    return checks


def sidecar_figures(status: Mapping[str, Any] | None, health: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The sidecar's own CPU/RSS figures: from GET /health, else from the monitoring server's status record."""
    figures = _mapping(_mapping(_mapping(_mapping(health).get("components")).get("sidecar")).get("figures"))
    if figures:
        return figures
    servers = _mapping(_mapping(_mapping(status).get("status")).get("servers"))
    monitoring = _mapping(_mapping(servers.get("monitoring")).get("health"))
    return _mapping(_mapping(monitoring.get("components")).get("sidecar"))


def resource_checks(figures: Mapping[str, Any], cpu_limit_percent: float, memory_limit_mb: float) -> list[Check]:
    """The sidecar's CPU below `cpu_limit_percent` and its RSS below `memory_limit_mb`."""
    checks = []
    for key, limit, unit, label in (
        ("cpu_percent", cpu_limit_percent, "%", "sidecar CPU"),
        ("memory_mb", memory_limit_mb, "MB", "sidecar memory"),
    ):
        value = figures.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            checks.append(
                Check(Outcome.FAIL, label, f"no {key} figure reported (received {value!r}); is monitoring running?")
            )
        elif value < limit:
            checks.append(Check(Outcome.PASS, label, f"{value:g} {unit} < {limit:g} {unit}"))
        else:
            checks.append(Check(Outcome.FAIL, label, f"{value:g} {unit} >= limit {limit:g} {unit}"))
    return checks
