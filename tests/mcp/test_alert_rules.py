"""The alert rules as a pure function: (states, observation, now) -> (states, notices), with a moved clock."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp.alert_rules import (
    BOT_DOWN,
    BOT_STALE,
    LOSS_CRITICAL,
    LOSS_WARNING,
    SIDECAR_RESOURCES,
    TRADING_BREAKER,
    Notice,
    Observation,
    RuleConfig,
    RuleState,
    evaluate,
    observation_from_report,
)
from mcp.monitoring.report import next_report_due

CONFIG = RuleConfig(
    stale_after_seconds=60.0,
    breaker_grace_seconds=4.0,
    default_min_duration=45.0,
    min_durations={"host": 180.0},
    sidecar_cpu_warning=1.0,
    sidecar_memory_warning_mb=100.0,
)


def report(**components: dict[str, Any]) -> Observation:
    return observation_from_report({"components": components})


def bot(status: str = "healthy", **figures: Any) -> dict[str, Any]:
    values = {"pid": 4321, "pid_alive": True, "snapshot_age_seconds": 1.0, "stale_after_seconds": 60.0}
    values.update(figures)
    return {"status": status, "message": "m", "figures": values}


def breaker(fraction: float | None = 0.0, state: str = "ACTIVE", **figures: Any) -> dict[str, Any]:
    values = {
        "trading_state": state,
        "daily_loss": None if fraction is None else fraction * 100,
        "daily_loss_limit": 100.0,
        "daily_loss_percent": fraction,
        "warning_percent": 0.12,
        "critical_percent": 0.15,
    }
    values.update(figures)
    return {"status": "healthy", "message": "m", "figures": values}


class Rules:
    """Carries the states from one evaluation to the next, like the runner does."""

    def __init__(self) -> None:
        self.states: dict[str, RuleState] = {}

    def at(self, now: float, observation: Observation) -> list[Notice]:
        self.states, notices = evaluate(self.states, observation, now, CONFIG)
        return notices


def keys(notices: list[Notice]) -> list[tuple[str, bool]]:
    return [(notice.key, notice.resolved) for notice in notices]


def test_bot_down_fires_at_once_when_the_pid_is_gone_and_resolves_once_when_it_is_back() -> None:
    rules = Rules()
    assert rules.at(0, report(main_bot=bot())) == []
    down = rules.at(1, report(main_bot=bot("critical", pid_alive=False, snapshot_age_seconds=3.0)))
    assert keys(down) == [(BOT_DOWN, False)]
    assert down[0].severity == "critical" and "BOT DOWN" in down[0].text and "4321" in down[0].text
    # still down: nothing new (Alertmanager: a firing alert is not re-announced by the rule)
    assert rules.at(2, report(main_bot=bot("critical", pid_alive=False))) == []
    back = rules.at(3, report(main_bot=bot(pid=9999)))
    assert keys(back) == [(BOT_DOWN, True)] and back[0].text.startswith("The bot is back")
    assert rules.at(4, report(main_bot=bot(pid=9999))) == []


def test_a_firing_alert_whose_component_is_not_in_the_report_stays_firing() -> None:
    rules = Rules()
    assert keys(rules.at(0, report(main_bot=bot("critical", pid_alive=False)))) == [(BOT_DOWN, False)]
    assert rules.at(1, report(host={"status": "healthy", "message": "", "figures": {}})) == []
    assert rules.states[BOT_DOWN].firing
    assert keys(rules.at(2, report(main_bot=bot()))) == [(BOT_DOWN, True)]


def test_a_missing_snapshot_is_bot_down_only_after_the_stale_age_so_a_starting_bot_is_not_alerted() -> None:
    rules = Rules()
    missing = {"status": "critical", "message": "risk_state.json does not exist", "figures": {}}
    assert rules.at(0, report(main_bot=missing)) == []
    assert rules.at(59, report(main_bot=missing)) == []
    assert keys(rules.at(60, report(main_bot=missing))) == [(BOT_DOWN, False)]


def test_a_condition_that_goes_away_before_its_duration_says_nothing_at_all() -> None:
    rules = Rules()
    missing = {"status": "critical", "message": "no snapshot", "figures": {}}
    assert rules.at(0, report(main_bot=missing)) == []
    assert rules.at(10, report(main_bot=bot())) == []  # the bot wrote its first snapshot: no firing, no resolved
    assert rules.states == {}


def test_a_stale_snapshot_with_a_live_pid_is_its_own_alert() -> None:
    rules = Rules()
    stale = rules.at(0, report(main_bot=bot("critical", snapshot_age_seconds=75.0)))
    assert keys(stale) == [(BOT_STALE, False)] and "75 s old" in stale[0].text
    assert keys(rules.at(5, report(main_bot=bot()))) == [(BOT_STALE, True)]


def test_daily_loss_warning_then_critical_is_one_alert_each_and_repeats_say_nothing() -> None:
    rules = Rules()
    assert rules.at(0, report(circuit_breaker=breaker(0.05))) == []
    warning = rules.at(1, report(circuit_breaker=breaker(0.13)))
    assert keys(warning) == [(LOSS_WARNING, False)] and warning[0].severity == "warning"
    assert warning[0].text.startswith("⚠️ DAILY LOSS WARNING\nToday's loss 13.0 is 13.0% of the 100.0 limit")
    assert "DAILY_LOSS_WARNING_PERCENT 12%" in warning[0].text
    assert rules.at(2, report(circuit_breaker=breaker(0.14))) == []
    critical = rules.at(3, report(circuit_breaker=breaker(0.16)))
    assert keys(critical) == [(LOSS_CRITICAL, False)] and critical[0].severity == "critical"
    for second in range(4, 10):
        assert rules.at(second, report(circuit_breaker=breaker(0.17))) == []


def test_daily_loss_resolves_only_past_the_hysteresis_margin_and_never_on_an_unknown_figure() -> None:
    rules = Rules()
    rules.at(0, report(circuit_breaker=breaker(0.13)))
    assert rules.at(1, report(circuit_breaker=breaker(0.1195))) == []  # inside the margin (0.12 - 0.006)
    assert rules.at(2, report(circuit_breaker=breaker(None))) == []  # figure unknown: not "back to normal"
    resolved = rules.at(3, report(circuit_breaker=breaker(0.02)))
    assert keys(resolved) == [(LOSS_WARNING, True)]
    assert resolved[0].text == "Daily loss back below 12% of the limit (now 2.0%)."  # today's figure, not the old one


def test_the_trading_breaker_fires_after_its_grace_with_the_bot_s_own_wording_as_the_echo() -> None:
    rules = Rules()
    halted = breaker(
        0.2, "HALTED", trip_kind="daily_loss", trip_reason="daily loss 20 >= 15", tripped_at="2026-12-07T01:00:00+00:00"
    )
    assert [n for n in rules.at(100, report(circuit_breaker=halted)) if n.key == TRADING_BREAKER] == []
    tripped = [n for n in rules.at(104, report(circuit_breaker=halted)) if n.key == TRADING_BREAKER]
    assert len(tripped) == 1
    notice = tripped[0]
    assert notice.alert_type == "CIRCUIT_BREAKER_TRIPPED" and notice.severity == "critical"
    assert notice.echo is not None and notice.echo.text == "Circuit breaker HALTED (daily_loss): daily loss 20 >= 15"
    cleared = breaker(
        0.0,
        last_trip_kind="daily_loss",
        last_cleared_by="manual reset: dashboard",
        last_cleared_at="2026-12-07T01:05:00+00:00",
    )
    resolved = [n for n in rules.at(110, report(circuit_breaker=cleared)) if n.key == TRADING_BREAKER]
    assert [n.resolved for n in resolved] == [True]
    assert resolved[0].text == "Trading circuit breaker ACTIVE again: halt cleared by manual reset: dashboard."
    assert resolved[0].echo is not None
    assert (
        resolved[0].echo.text == "Circuit breaker daily_loss halt ended (manual reset: dashboard); trading state ACTIVE"
    )


@pytest.mark.parametrize(
    ("kind", "severity"),
    [
        ("daily_loss", "critical"),
        ("corrupt_state", "critical"),
        ("consecutive_losses", "warning"),
        ("error_burst", "warning"),
    ],
)
def test_the_trading_breaker_alert_is_critical_only_for_daily_loss_and_corrupt_state(kind: str, severity: str) -> None:
    """README table: `trading-breaker` is critical for daily_loss / corrupt_state, else warning."""
    rules = Rules()
    halted = breaker(0.0, "HALTED", trip_kind=kind, trip_reason="why", tripped_at="2026-12-07T01:00:00+00:00")
    rules.at(100, report(circuit_breaker=halted))
    [notice] = [n for n in rules.at(104, report(circuit_breaker=halted)) if n.key == TRADING_BREAKER]
    assert (notice.alert_type, notice.severity) == ("CIRCUIT_BREAKER_TRIPPED", severity)


def test_a_component_is_alerted_only_once_critical_for_its_minimum_duration() -> None:
    rules = Rules()
    host = {"status": "critical", "message": "disk 97 %", "figures": {}}
    testing = {"status": "critical", "message": "crashed", "figures": {}}
    assert rules.at(0, report(host=host, testing=testing)) == []
    assert keys(rules.at(45, report(host=host, testing=testing))) == [("component-critical:testing", False)]
    host_notice = rules.at(180, report(host=host, testing=testing))
    assert keys(host_notice) == [("component-critical:host", False)] and "disk 97 %" in host_notice[0].text
    healthy = {"status": "healthy", "message": "ok", "figures": {}}
    assert keys(rules.at(181, report(host=host, testing=healthy))) == [("component-critical:testing", True)]
    assert "component-critical:testing" not in rules.states and rules.states["component-critical:host"].firing


@pytest.mark.parametrize("status", ["starting", "degraded", "healthy"])
def test_only_critical_counts_for_a_component(status: str) -> None:
    rules = Rules()
    for now in (0, 100, 1000):
        assert rules.at(now, report(testing={"status": status, "message": "", "figures": {}})) == []


def test_main_bot_and_circuit_breaker_are_not_alerted_twice_as_components() -> None:
    rules = Rules()
    critical_bot = bot("critical", pid_alive=False)
    halted = breaker(0.0, "HALTED", trip_kind="error_burst", trip_reason="5 errors", tripped_at=None)
    halted["status"] = "critical"
    for now in (0, 50, 100):
        notices = rules.at(now, report(main_bot=critical_bot, circuit_breaker=halted))
        assert all(not n.key.startswith("component-critical:") for n in notices)


def test_resource_warning_fires_after_the_sidecar_s_minimum_duration() -> None:
    rules = Rules()
    heavy = {"status": "degraded", "message": "", "figures": {"cpu_percent": 3.5, "memory_mb": 80.0}}
    assert rules.at(0, report(sidecar=heavy)) == []
    notices = rules.at(45, report(sidecar=heavy))
    assert keys(notices) == [(SIDECAR_RESOURCES, False)]
    assert notices[0].text.startswith("⚠️ RESOURCE WARNING") and "CPU 3.5 % (warning at 1 %)" in notices[0].text
    calm = {"status": "healthy", "message": "", "figures": {"cpu_percent": 0.3, "memory_mb": 60.0}}
    assert keys(rules.at(50, report(sidecar=calm))) == [(SIDECAR_RESOURCES, True)]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"components": "not a mapping"},
        {"components": {"main_bot": "text"}},
        {"components": {"main_bot": {"status": 3}}},
        {"components": {"main_bot": {"status": "critical", "figures": ["x"]}}},
    ],
)
def test_a_malformed_health_report_observes_nothing_it_cannot_read(body: dict[str, Any]) -> None:
    observation = observation_from_report(body)
    for component in observation.components.values():
        assert isinstance(component.figures, dict)
    _states, notices = evaluate({}, observation, 0.0, CONFIG)
    assert notices == []  # at worst a pending "bot down" that waits for the stale age


# --- every alert text is in README's alert list -------------------------------------------------------
README = Path(__file__).resolve().parents[2] / "README.md"
# each written as README writes it: <placeholders> for the figures
TEMPLATES = [
    "🔴 CRITICAL ISSUE",
    "⚠️ CIRCUIT BREAKER TRIPPED",
    "BOT DOWN: bot process <pid> is not running",
    "BOT DOWN: no usable risk snapshot",
    "BOT STALE: the risk snapshot is <n> s old",
    "Trading HALTED (<kind>): <reason>",
    "⚠️ DAILY LOSS WARNING",
    "🔴 DAILY LOSS CRITICAL",
    "Component <name> critical for <n> s or more: ",
    "⚠️ RESOURCE WARNING",
    "The bot is back: fresh risk snapshot, process alive.",
    "The bot's risk snapshot is\nfresh again.",
    "Trading circuit breaker ACTIVE again: halt cleared by <who>.",
    "Daily loss back below <n>% of\nthe limit (now <n>%).",
    "Component <name> is no longer critical.",
    "The monitoring sidecar is back under its\nwarning levels.",
]


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"<[a-z]+>", " ".join(template.split()))
    return re.compile(".+?".join(re.escape(part) for part in parts))


def every_notice() -> list[Notice]:
    """Every notice the rules can send: each condition fired, then resolved."""
    rules = Rules()
    missing = {"status": "critical", "message": "no snapshot", "figures": {}}
    halted = breaker(0.2, "HALTED", trip_kind="error_burst", trip_reason="5 errors", tripped_at="2026-12-07T01:00:00")
    heavy = {"status": "critical", "message": "", "figures": {"cpu_percent": 9.0, "memory_mb": 900.0}}
    found = rules.at(0, report(main_bot=bot("critical", pid_alive=False), circuit_breaker=halted, sidecar=heavy))
    found += rules.at(100, report(main_bot=bot("critical", pid_alive=False), circuit_breaker=halted, sidecar=heavy))
    cleared = breaker(0.0, last_trip_kind="error_burst", last_cleared_by="cooldown")
    found += rules.at(200, report(main_bot=bot(), circuit_breaker=cleared))
    found += rules.at(300, report(main_bot=missing))
    found += rules.at(400, report(main_bot=missing))
    found += rules.at(500, report(main_bot=bot("critical", snapshot_age_seconds=99.0)))
    found += rules.at(600, report(main_bot=bot()))
    return found


def test_every_alert_text_the_rules_send_is_in_the_readme_alert_list() -> None:
    readme = " ".join(README.read_text(encoding="utf-8").split())
    for template in TEMPLATES:
        assert " ".join(template.split()) in readme, f"README's alert list lacks {template!r}"
    notices = every_notice()
    assert len(notices) >= 14  # every rule fired and resolved at least once
    for notice in notices:
        lines = notice.text.splitlines()
        # a generic type heading is told apart by its next line (BOT DOWN, Trading HALTED, Component …)
        named = lines[:2] if lines[0] in {"🔴 CRITICAL ISSUE", "⚠️ CIRCUIT BREAKER TRIPPED"} else lines[:1]
        for line in named:
            assert any(_pattern(t).match(line) for t in TEMPLATES), f"alert text not in README's list: {line!r}"


# --- properties ---------------------------------------------------------------------------------------
LOSS_STEPS = st.one_of(st.none(), st.floats(min_value=0.0, max_value=0.5, allow_nan=False))
BOT_STEPS = st.sampled_from(["up", "dead", "stale", "missing"])


def bot_for(step: str) -> dict[str, Any]:
    if step == "dead":
        return bot("critical", pid_alive=False)
    if step == "stale":
        return bot("critical", snapshot_age_seconds=90.0)
    if step == "missing":
        return {"status": "critical", "message": "no snapshot", "figures": {}}
    return bot()


@given(
    st.lists(st.tuples(LOSS_STEPS, BOT_STEPS, st.floats(min_value=0.0, max_value=120.0, allow_nan=False)), max_size=40)
)
@settings(max_examples=200, deadline=None)
def test_per_key_notices_alternate_firing_then_resolved_whatever_the_figures_do(
    steps: list[tuple[float | None, str, float]],
) -> None:
    """Alertmanager semantics: per key, firing and resolved alternate, beginning with firing; never twice in a row."""
    rules, now = Rules(), 0.0
    last: dict[str, bool] = {}
    for fraction, bot_step, elapsed in steps:
        now += elapsed
        for notice in rules.at(now, report(main_bot=bot_for(bot_step), circuit_breaker=breaker(fraction))):
            if notice.resolved:
                assert last.get(notice.key) is False, f"{notice.key} resolved without firing first"
            else:
                assert notice.key not in last or last[notice.key] is True, f"{notice.key} fired twice"
            last[notice.key] = notice.resolved
        # the states say firing exactly for the keys whose last notice was a firing one
        assert {k for k, s in rules.states.items() if s.firing} == {k for k, resolved in last.items() if not resolved}


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.integers(0, 23),
    st.integers(0, 59),
)
def test_the_next_report_is_after_now_within_a_day_and_at_the_set_time(now: datetime, hour: int, minute: int) -> None:
    due = next_report_due(now, time(hour, minute, tzinfo=UTC))
    assert due is not None and now < due <= now + timedelta(days=1)
    assert (due.hour, due.minute, due.second, due.microsecond) == (hour, minute, 0, 0)
