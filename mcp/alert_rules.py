"""Alert rules for the bot's own state, evaluated in the sidecar: a pure function, Alertmanager-style.

`evaluate(states, observation, now, config) -> (new states, notices)` does no I/O. Each rule turns the
observation (the monitoring's cached health report, see `observation_from_report`) into the conditions
that hold now, one per alert key. A condition is *pending* from the first time it holds and *fires*
once it has held for its `for_seconds` (Alertmanager's `for:`); a firing condition that no longer holds
sends its resolved notice. The notices then go through the alert pipeline, whose fingerprint dedup and
key cooldown still apply (a sidecar restart does not repeat what the outbox shows was just sent).

Rules (keys in brackets):
- the bot process is down [bot-down]: its pid is gone (at once), or no snapshot at all for the stale age;
- the bot's snapshot is stale [bot-snapshot-stale]: older than the stale age while the pid is alive;
- the trading breaker is HALTED [trading-breaker]: the bot alerts its own trip; the sidecar says it too,
  after a short grace, unless the outbox shows the bot's message for this trip (see `Echo`);
- the daily loss at DAILY_LOSS_WARNING_PERCENT [daily-loss-warning] and DAILY_LOSS_CRITICAL_PERCENT
  [daily-loss-critical], one alert each, resolved below the level minus the hysteresis margin;
- a component critical for its minimum duration [component-critical:<name>] (main_bot and
  circuit_breaker have their own rules above and are not repeated here);
- ⚠️ RESOURCE WARNING [sidecar-resources]: the sidecar's CPU or RSS over its warning level for the
  sidecar check's minimum duration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

BOT_DOWN = "bot-down"
BOT_STALE = "bot-snapshot-stale"
TRADING_BREAKER = "trading-breaker"
LOSS_WARNING = "daily-loss-warning"
LOSS_CRITICAL = "daily-loss-critical"
SIDECAR_RESOURCES = "sidecar-resources"
COMPONENT_PREFIX = "component-critical:"
# components with a rule of their own: their critical level is not alerted a second time
OWN_RULES = frozenset({"main_bot", "circuit_breaker"})
# the loss alerts resolve only once the loss is this fraction of the warning level below the level
LOSS_MARGIN_FRACTION = 0.05


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """The durations and levels the rules need (built from Settings by the runner)."""

    stale_after_seconds: float = 60.0
    breaker_grace_seconds: float = 5.0
    default_min_duration: float = 45.0
    min_durations: Mapping[str, float] = field(default_factory=dict)
    sidecar_cpu_warning: float | None = None
    sidecar_memory_warning_mb: float | None = None

    def min_duration(self, component: str) -> float:
        """How long `component` must stay critical before it is alerted."""
        return self.min_durations.get(component, self.default_min_duration)


@dataclass(frozen=True, slots=True)
class Echo:
    """The bot's own message about the same event: if the shared outbox holds it (same fingerprint) since
    `since` (epoch), the sidecar's notice is not sent again, only recorded as delivered."""

    text: str
    since: float


@dataclass(frozen=True, slots=True)
class Condition:
    """A rule's finding for one key: it holds now, how bad, what to say, and after how long to say it."""

    key: str
    severity: str
    alert_type: str | None
    text: str
    resolved_text: str
    for_seconds: float = 0.0
    echo: Echo | None = None


@dataclass(frozen=True, slots=True)
class RuleState:
    """One key's state between evaluations: pending since, firing, and the words of its resolution."""

    active_since: float
    firing: bool = False
    severity: str = "warning"
    alert_type: str | None = None
    resolved_text: str = ""


@dataclass(frozen=True, slots=True)
class Notice:
    """One message to hand to the alert pipeline (firing or resolved)."""

    key: str
    severity: str
    text: str
    alert_type: str | None = None
    resolved: bool = False
    echo: Echo | None = None


@dataclass(frozen=True, slots=True)
class Component:
    """A component of the health report as the rules read it."""

    status: str
    message: str = ""
    figures: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Observation:
    """What the rules look at: every component of the latest health report."""

    components: Mapping[str, Component]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _epoch(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


def observation_from_report(report: Mapping[str, Any]) -> Observation:
    """The rules' view of a /health body; components without a status are left out."""
    raw = report.get("components")
    components: dict[str, Component] = {}
    if isinstance(raw, Mapping):
        for name, body in raw.items():
            if not isinstance(body, Mapping) or not isinstance(body.get("status"), str):
                continue
            figures = body.get("figures") if isinstance(body.get("figures"), Mapping) else {}
            components[str(name)] = Component(str(body["status"]), str(body.get("message") or ""), figures)
    return Observation(components)


# --- the rules: observation -> conditions -------------------------------------------------------------


def bot_conditions(observation: Observation, config: RuleConfig) -> list[Condition]:
    """bot-down (pid gone, or no snapshot for the stale age) and bot-snapshot-stale (pid alive, old snapshot)."""
    bot = observation.components.get("main_bot")
    if bot is None:
        return []
    figures = bot.figures
    back = "The bot is back: fresh risk snapshot, process alive."
    if figures.get("pid_alive") is False:
        text = (
            f"🔴 CRITICAL ISSUE\nBOT DOWN: bot process {figures.get('pid')} is not running "
            f"(last snapshot {figures.get('snapshot_age_seconds')} s old). Trading has stopped: restart the bot."
        )
        return [Condition(BOT_DOWN, "critical", "CRITICAL_ISSUE", text, back)]
    age = _number(figures.get("snapshot_age_seconds"))
    if age is None and bot.status == "critical" and figures.get("pid") is None:
        # no usable snapshot at all: down, unless the bot is merely starting (hence the wait)
        text = f"🔴 CRITICAL ISSUE\nBOT DOWN: no usable risk snapshot ({bot.message}). Is the bot running?"
        return [Condition(BOT_DOWN, "critical", "CRITICAL_ISSUE", text, back, config.stale_after_seconds)]
    stale = _number(figures.get("stale_after_seconds")) or config.stale_after_seconds
    if age is not None and age >= stale:
        text = (
            f"🔴 CRITICAL ISSUE\nBOT STALE: the risk snapshot is {age:.0f} s old (stale after {stale:g} s) "
            f"though pid {figures.get('pid')} is alive: the bot may be stuck."
        )
        return [Condition(BOT_STALE, "critical", "CRITICAL_ISSUE", text, "The bot's risk snapshot is fresh again.")]
    return []


def breaker_conditions(observation: Observation, config: RuleConfig) -> list[Condition]:
    """trading-breaker while the trading state is HALTED (the echo is the bot's own trip message)."""
    breaker = observation.components.get("circuit_breaker")
    if breaker is None or breaker.figures.get("trading_state") != "HALTED":
        return []
    figures = breaker.figures
    kind, reason = figures.get("trip_kind"), figures.get("trip_reason")
    tripped_at = _epoch(figures.get("tripped_at"))
    text = (
        f"⚠️ CIRCUIT BREAKER TRIPPED\nTrading HALTED ({kind}): {reason}. New entries are blocked; exits still pass. "
        "(seen by the monitoring sidecar)"
    )
    resolved = "Trading circuit breaker ACTIVE again."  # the wording with who cleared it is made at resolution
    echo = Echo(f"Circuit breaker HALTED ({kind}): {reason}", tripped_at) if tripped_at is not None else None
    severity = "critical" if kind in {"daily_loss", "corrupt_state"} else "warning"
    return [
        Condition(
            TRADING_BREAKER, severity, "CIRCUIT_BREAKER_TRIPPED", text, resolved, config.breaker_grace_seconds, echo
        )
    ]


def loss_conditions(observation: Observation, states: Mapping[str, RuleState]) -> list[Condition]:
    """daily-loss-warning and daily-loss-critical, with a hysteresis margin on the way down."""
    breaker = observation.components.get("circuit_breaker")
    if breaker is None:
        return []
    figures = breaker.figures
    fraction = _number(figures.get("daily_loss_percent"))
    warning, critical = _number(figures.get("warning_percent")), _number(figures.get("critical_percent"))
    if fraction is None or warning is None or critical is None:
        # unknown is not "back to normal": keep what fires, start nothing
        return [_hold(key, states[key]) for key in (LOSS_WARNING, LOSS_CRITICAL) if key in states]
    margin = warning * LOSS_MARGIN_FRACTION
    loss, limit = figures.get("daily_loss"), figures.get("daily_loss_limit")
    found = []
    for key, level, severity in ((LOSS_WARNING, warning, "warning"), (LOSS_CRITICAL, critical, "critical")):
        holds = fraction >= level or (key in states and fraction >= level - margin)
        if not holds:
            continue
        icon = "🔴" if severity == "critical" else "⚠️"
        text = (
            f"{icon} DAILY LOSS {severity.upper()}\nToday's loss {loss} is {fraction:.1%} of the {limit} limit "
            f"(DAILY_LOSS_{severity.upper()}_PERCENT {level:.0%})."
        )
        back = f"Daily loss back below {level:.0%} of the limit."  # the figure is added at resolution
        found.append(Condition(key, severity, None, text, back))
    return found


def _hold(key: str, state: RuleState) -> Condition:
    # never fires anew (infinite wait); only keeps a firing key from resolving on a missing figure
    return Condition(key, state.severity, state.alert_type, "", state.resolved_text, float("inf"))


def component_conditions(observation: Observation, config: RuleConfig) -> list[Condition]:
    """component-critical:<name> for each critical component without a rule of its own."""
    found = []
    for name, component in observation.components.items():
        if name in OWN_RULES or component.status != "critical":
            continue
        hold = config.min_duration(name)
        text = f"🔴 CRITICAL ISSUE\nComponent {name} critical for {hold:g} s or more: {component.message}"
        back = f"Component {name} is no longer critical."
        found.append(Condition(f"{COMPONENT_PREFIX}{name}", "critical", "CRITICAL_ISSUE", text, back, hold))
    return found


def resource_conditions(observation: Observation, config: RuleConfig) -> list[Condition]:
    """sidecar-resources: the sidecar's CPU or RSS over its warning level (⚠️ RESOURCE WARNING)."""
    sidecar = observation.components.get("sidecar")
    if sidecar is None:
        return []
    cpu, memory = _number(sidecar.figures.get("cpu_percent")), _number(sidecar.figures.get("memory_mb"))
    over = []
    if cpu is not None and config.sidecar_cpu_warning is not None and cpu > config.sidecar_cpu_warning:
        over.append(f"CPU {cpu:.1f} % (warning at {config.sidecar_cpu_warning:g} %)")
    if (
        memory is not None
        and config.sidecar_memory_warning_mb is not None
        and memory > config.sidecar_memory_warning_mb
    ):
        over.append(f"RSS {memory:.0f} MB (warning at {config.sidecar_memory_warning_mb:g} MB)")
    if not over:
        return []
    text = "⚠️ RESOURCE WARNING\nThe monitoring sidecar is over its warning level: " + ", ".join(over) + "."
    back = "The monitoring sidecar is back under its warning levels."
    hold = config.min_duration("sidecar")
    return [Condition(SIDECAR_RESOURCES, "warning", "RESOURCE_WARNING", text, back, hold)]


def conditions(observation: Observation, states: Mapping[str, RuleState], config: RuleConfig) -> list[Condition]:
    """Every condition that holds now, one per key."""
    return [
        *bot_conditions(observation, config),
        *breaker_conditions(observation, config),
        *loss_conditions(observation, states),
        *component_conditions(observation, config),
        *resource_conditions(observation, config),
    ]


# --- the state machine --------------------------------------------------------------------------------


def evaluate(
    states: Mapping[str, RuleState], observation: Observation, now: float, config: RuleConfig
) -> tuple[dict[str, RuleState], list[Notice]]:
    """New rule states and the notices to send (firing, then resolved), given the last states and `now`."""
    new: dict[str, RuleState] = {}
    notices: list[Notice] = []
    for condition in conditions(observation, states, config):
        previous = states.get(condition.key)
        state = previous or RuleState(active_since=now)
        state = replace(state, resolved_text=condition.resolved_text or state.resolved_text)
        if not state.firing and now - state.active_since >= condition.for_seconds:
            state = replace(state, firing=True, severity=condition.severity, alert_type=condition.alert_type)
            notices.append(
                Notice(condition.key, condition.severity, condition.text, condition.alert_type, False, condition.echo)
            )
        new[condition.key] = state
    for key, state in states.items():
        if key in new or not state.firing:
            continue  # still holding, or a pending condition that went away before it fired: nothing to say
        if source_component(key) not in observation.components:
            new[key] = state  # its component was not observed this time: unknown is not "resolved"
            continue
        echo = _resolve_echo(key, observation, now)
        text = _resolution_text(key, state, observation)
        notices.append(Notice(key, "info", text, state.alert_type, True, echo))
    return new, notices


def source_component(key: str) -> str:
    """The health component a rule key is judged from."""
    if key in (BOT_DOWN, BOT_STALE):
        return "main_bot"
    if key in (TRADING_BREAKER, LOSS_WARNING, LOSS_CRITICAL):
        return "circuit_breaker"
    if key == SIDECAR_RESOURCES:
        return "sidecar"
    return key.removeprefix(COMPONENT_PREFIX)


def _resolution_text(key: str, state: RuleState, observation: Observation) -> str:
    """The resolved notice's words, with the figures of now (not those of the last firing round)."""
    if key == TRADING_BREAKER:
        return _breaker_resolution(observation)
    if key in (LOSS_WARNING, LOSS_CRITICAL):
        breaker = observation.components.get("circuit_breaker")
        fraction = _number(breaker.figures.get("daily_loss_percent")) if breaker is not None else None
        if fraction is not None:
            return f"{state.resolved_text.rstrip('.')} (now {fraction:.1%})."
    return state.resolved_text


def _breaker_resolution(observation: Observation) -> str:
    breaker = observation.components.get("circuit_breaker")
    cleared = breaker.figures.get("last_cleared_by") if breaker is not None else None
    return "Trading circuit breaker ACTIVE again" + (f": halt cleared by {cleared}." if cleared else ".")


def _resolve_echo(key: str, observation: Observation, now: float) -> Echo | None:
    """The bot's own message when a trip ends ("… halt ended (…); trading state ACTIVE")."""
    if key != TRADING_BREAKER:
        return None
    breaker = observation.components.get("circuit_breaker")
    figures = breaker.figures if breaker is not None else {}
    kind, cleared_by = figures.get("last_trip_kind"), figures.get("last_cleared_by")
    cleared_at = _epoch(figures.get("last_cleared_at"))
    if not kind or not cleared_by:
        return None
    return Echo(f"Circuit breaker {kind} halt ended ({cleared_by}); trading state ACTIVE", cleared_at or now)
